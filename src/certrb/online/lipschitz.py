"""Stability lower bounds from a grid of certified values and the terms' continuity constants.

Both stability constants, coercivity ``alpha(mu) = lambda_min(X^{-1/2} Herm(A(mu)) X^{-1/2})``
and inf-sup ``beta(mu) = sigma_min(X^{-1/2} A(mu) X^{-1/2})``, move by at most the spectral
norm of the change of the operator (Weyl's inequalities). With ``gamma_q >= ||A_q||_{X -> X'}``,
for any grid node ``mu_j``::

    beta(mu) >= beta_LB(mu_j) - sum_q gamma_q |theta_q(mu) - theta_q(mu_j)|.

Online, a parameter takes the best of this bound over the corners of its grid cell: ``2^P``
lookups, no linear program, cost independent of the grid size. The values, the coefficients
at the nodes and ``gamma`` are built offline (:func:`certrb.offline.lipschitz.lipschitz_grid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError, StabilityError
from .coefficients import Coefficients, evaluate_coefficients
from .parameters import ParameterSpace

__all__ = ["LipschitzBound"]

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class LipschitzBound:
    """Online stability lower bound on a tensor grid: ``max`` over the cell's corners of the Lipschitz bound.

    Parameters
    ----------
    coefficients : callable
        The operator's coefficient function, (n_mu, P) -> (n_mu, Q).
    space : ParameterSpace
        The grid spans it: ``values.shape[i]`` nodes equally spaced on axis ``i`` in the
        axis' scale (``ParameterSpace.grid``).
    values : ndarray of float64, shape (n_1, ..., n_P)
        Lower bounds of the stability constant at the nodes, positive; every ``n_i >= 2``.
    theta : ndarray of float64 or complex128, shape (n_1 * ... * n_P, Q)
        The operator coefficients at the nodes (C order), as evaluated when ``values`` were.
    gamma : ndarray of float64, shape (Q,)
        Upper bounds of the terms' norms ``||A_q||_{X -> X'}``, non-negative.
    certified : bool
        ``values`` and ``gamma`` are proved (set by the offline builder).
    quality : float
        Smallest ratio of this bound to the one it was built from at the cells' centres
        (measured offline; NaN when unknown). Not used by the bound.

    Raises
    ------
    ShapeError, ValueError
        On inconsistent shapes or invalid values.

    """

    coefficients: Coefficients
    space: ParameterSpace
    values: NDArray[np.float64]
    theta: NDArray
    gamma: NDArray[np.float64]
    certified: bool = False
    quality: float = math.nan
    _strides: NDArray[np.intp] = field(init=False, repr=False)
    _offsets: NDArray[np.intp] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        values = _frozen(self.values, "values", "f")
        theta, gamma = _frozen(self.theta, "theta", "fc"), _frozen(self.gamma, "gamma", "f")
        p = self.space.dim
        if values.ndim != p or min(values.shape) < 2:
            raise ShapeError(f"values must have shape (n_1, ..., n_{p}) with every n_i >= 2; got {values.shape}")
        if gamma.ndim != 1 or theta.shape != (values.size, gamma.shape[0]):
            raise ShapeError(f"theta must have shape ({values.size}, Q) and gamma (Q,); got {theta.shape} "
                             f"and {gamma.shape}")
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError("values must be finite and positive")
        if not (np.isfinite(gamma).all() and (gamma >= 0).all()) or not np.isfinite(theta).all():
            raise ValueError("gamma must be finite and non-negative, theta finite")
        strides = np.array([int(np.prod(values.shape[i + 1:])) for i in range(p)], dtype=np.intp)
        offsets = np.array(list(product((0, 1), repeat=p)), dtype=np.intp) @ strides
        for key, value in (("values", values), ("theta", theta), ("gamma", gamma), ("certified", bool(self.certified)),
                           ("quality", float(self.quality)), ("_strides", strides), ("_offsets", offsets)):
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return f"LipschitzBound(nodes={self.values.shape}, quality={self.quality:.3g}, certified={self.certified})"

    def __call__(self, mus: ArrayLike) -> NDArray[np.float64]:
        """Lower bounds of the stability constant at ``mus`` (n_mu, P), shape (n_mu,) of float64.

        Raises
        ------
        StabilityError
            Where the bound is not positive (the grid is too coarse there); names the parameter.

        """
        m = self.space.validate(mus)
        theta = evaluate_coefficients(self.coefficients, m, self.gamma.shape[0], "operator")
        return self._lower(m, theta)

    def _lower(self, mus: NDArray[np.float64], theta: NDArray) -> NDArray[np.float64]:
        """:meth:`__call__` with the coefficients ``theta`` (n_mu, Q) at the validated ``mus`` given."""
        n = np.array(self.values.shape)
        cell = np.minimum(np.maximum(self.space.to_unit(mus) * (n - 1), 0).astype(np.intp), n - 2)
        nodes = (cell @ self._strides)[:, None] + self._offsets[None]  # flat indices of the cell's 2^P corners
        # sum_q gamma_q |dtheta_q| rounded up: each |difference| and product within (1 + 2 eps), the sum of Q
        # non-negative terms within (1 + Q eps)
        drift = (np.abs(theta[:, None, :] - self.theta[nodes]) @ self.gamma) * (1 + (self.gamma.shape[0] + 6) * _EPS)
        best = (self.values.reshape(-1)[nodes] - drift).max(axis=1)
        bad = ~(best > 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise StabilityError(f"the Lipschitz grid bound is not positive at mu = {mus[i].tolist()} "
                                 f"(nodes {self.values.shape}): build the grid finer")
        return best * (1 - 2 * _EPS)  # the subtraction's rounding

    def to_arrays(self) -> dict[str, Any]:
        """Arrays to store (``values``, ``theta``, ``gamma``, ``quality``, ``certified`` as 1.0 / 0.0)."""
        return {"values": self.values, "theta": self.theta, "gamma": self.gamma,
                "quality": np.asarray(float(self.quality)), "certified": np.asarray(float(self.certified))}


def _frozen(value: ArrayLike, name: str, kinds: str) -> NDArray:
    arr = np.asarray(value)
    if arr.dtype.kind not in kinds:
        raise ValueError(f"{name} must be floating-point data; got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.complex128 if arr.dtype.kind == "c" else np.float64)
    arr.flags.writeable = False
    return arr

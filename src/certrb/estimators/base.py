"""Shared offline data of the residual estimators and their online protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ..errors import EstimatorError

__all__ = ["ESTIMATOR_NAMES", "Estimator", "OfflineData", "check_name", "norm_and_roundoff"]

ESTIMATOR_NAMES = ("expanded", "point-basis", "eim", "eim-stabilized", "orthonormal")


def check_name(name: str) -> str:
    """Return ``name`` if it is a known estimator, else raise EstimatorError."""
    if name not in ESTIMATOR_NAMES:
        raise EstimatorError(f"unknown estimator {name!r}; choose one of {ESTIMATOR_NAMES}")
    return name


@runtime_checkable
class Estimator(Protocol):
    """Online residual-norm estimator (holds small arrays only)."""

    name: str

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """Dual norms ``||r(mu)||_{V'}`` from coefficients ``x`` (n_mu, Q_f + Q_a n), shape (n_mu,)."""
        ...

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bound of ``||r(mu)||_{V'} - eps`` for ``eps = residual_norm(x, n)``, shape (n_mu,).

        NaN where the estimator has no certificate (its bound is then not rigorous).
        """
        ...

    def arrays(self) -> dict[str, NDArray]:
        """The arrays that define the estimator (for saving)."""
        ...


def norm_and_roundoff(est: Estimator, x: NDArray, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``eps = est.residual_norm(x, n)`` and ``est.roundoff(x, n, eps)``, shapes (n_mu,).

    An estimator may define ``norm_and_roundoff(x, n)`` to compute both at once (E5 does, in
    one compiled call for a single parameter); this is used when present.
    """
    both = getattr(est, "norm_and_roundoff", None)
    if both is not None:
        return both(x, n)
    eps = est.residual_norm(x, n)
    return eps, est.roundoff(x, n, eps)


@dataclass(eq=False)
class OfflineData:
    """Truth-size data shared by the estimators' offline stages.

    Attributes
    ----------
    problem : Problem
        The truth model.
    basis : ndarray, shape (n_h, N)
        X-orthonormal reduced basis.
    components : ndarray, shape (n_h, K)
        Residual components ``g_k`` (ordering: see :mod:`certrb.residual`).
    riesz : ndarray, shape (n_h, K)
        Their Riesz representatives ``X^{-1} g_k``.
    solve_reduced : callable
        ``mus (n_mu, P) -> x (n_mu, K)``: residual coefficients of the reduced
        solutions (used by the interpolation-based estimators).
    train : ndarray, shape (n_train, P)
        Training parameters for the interpolation-based estimators.
    rng : numpy.random.Generator
    refine : int
        Extended-precision refinement steps for truth-space solves.
    options : dict
        Per-estimator options, e.g. ``{"point-basis": {"max_points": 3000}}``.
    certify : bool
        Measure the round-off certificates (docs/roundoff.md) of the estimators that have one.
    remainder : ExpandedEstimator, optional
        The certified classical estimator over all K components, if already built (the EIM
        estimators bound their interpolation remainder with it); built on demand otherwise.

    """

    problem: object
    basis: NDArray
    components: NDArray
    riesz: NDArray
    solve_reduced: object
    train: NDArray
    rng: np.random.Generator
    refine: int = 1
    options: dict = field(default_factory=dict)
    certify: bool = True
    remainder: object | None = None

    @property
    def q_f(self) -> int:
        """Number of right-hand-side terms."""
        return self.problem.rhs.n_terms  # type: ignore[attr-defined]

    @property
    def q_a(self) -> int:
        """Number of operator terms."""
        return self.problem.operator.n_terms  # type: ignore[attr-defined]

    @property
    def n_basis(self) -> int:
        """Reduced dimension N."""
        return self.basis.shape[1]

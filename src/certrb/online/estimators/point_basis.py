"""E2 ``point-basis`` online: Casenave's 2012 formula.

``eps(mu)^2 = sum_kl conj(x_k) x_l G_kl`` is linear in the products
``z(mu) = (conj(x_k) x_l)_{k<=l}`` (real and imaginary parts for complex
problems: d = K(K+1)/2 real unknowns for real problems, K^2 for complex ones).
Offline, parameters ``mu_r`` with independent ``z(mu_r)`` are picked by a
column-pivoted QR among ``oversample * d`` random candidates (rows of ``T``
equilibrated), and ``eps(mu_r)^2`` is computed directly in the truth space for
the *reduced* solution at ``mu_r``. Online, ``T lambda = z(mu)`` is solved and
``eps^2 = sum_r lambda_r eps(mu_r)^2`` returned.

When the products span fewer than d dimensions (e.g. a constant coefficient
makes a product identically zero), only as many points as the numerical rank
``d'`` of the candidates' products are kept and ``T`` (d x d') is solved in the
least-squares sense through its QR factorization; this is still exact for
every ``z(mu)`` in the span.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

from ...errors import EstimatorError
from ..residual import pad_coefficients
from .base import check_keys, stored

__all__ = ["PointBasisEstimator", "products"]


def products(x: NDArray, complex_: bool) -> NDArray[np.float64]:
    """Independent real products of residual coefficients.

    Parameters
    ----------
    x : ndarray, shape (n_mu, K)
    complex_ : bool
        Whether the problem is complex (then real and imaginary parts of the
        off-diagonal products are separate unknowns).

    Returns
    -------
    z : ndarray, shape (n_mu, d), d = K(K+1)/2 (real) or K^2 (complex)

    """
    k = x.shape[1]
    iu, ju = np.triu_indices(k, 1)
    diag = np.abs(x) ** 2
    off = x[:, iu].conj() * x[:, ju]
    if complex_:
        return np.concatenate([diag, 2 * off.real, -2 * off.imag], axis=1)
    return np.concatenate([diag, 2 * off.real], axis=1)


@dataclass(frozen=True, eq=False)
class PointBasisEstimator:
    """Online E2 data.

    Attributes
    ----------
    q, r : ndarray, shape (d, d') and (d', d')
        Thin QR factorization of the row-equilibrated ``T`` (d' <= d points).
    row_scale : ndarray, shape (d,)
        Row equilibration of ``T``.
    eps2 : ndarray, shape (d',)
        Truth-space ``eps(mu_r)^2`` at the points.
    points : ndarray, shape (d', P)
        The parameters ``mu_r`` (each used with the sub-model ``sizes[r]``).
    sizes : ndarray of int, shape (d',)
        Sub-model size used at each point.
    n_components : int
        K of the model the estimator was built for (sub-models are zero-padded).
    complex_ : bool
    condition : float
        2-norm condition number of the equilibrated ``T``.

    """

    q: NDArray[np.float64]
    r: NDArray[np.float64]
    row_scale: NDArray[np.float64]
    eps2: NDArray[np.float64]
    points: NDArray[np.float64]
    sizes: NDArray[np.intp]
    n_components: int
    complex_: bool
    condition: float
    name: str = "point-basis"

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``sqrt(max(eps2 . T^+ z(x), 0))`` for x (n_mu, K_n), shape (n_mu,)."""
        if x.shape[1] != self.n_components and np.all(self.sizes == self.sizes.max()):
            raise EstimatorError(
                f"this point-basis estimator was built for K = {self.n_components} residual terms only; "
                "build one for the sub-model (reduce with basis[:, :n]) or with options nested=True"
            )
        z = products(pad_coefficients(x, self.n_components), self.complex_)
        lam = sla.solve_triangular(self.r, self.q.T @ (z * self.row_scale).T)
        return np.sqrt(np.maximum(self.eps2 @ lam, 0.0))

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """NaN: this estimator carries no round-off certificate."""
        return np.full(x.shape[0], np.nan)

    def to_arrays(self) -> dict[str, NDArray]:
        """The arrays that define the estimator (for saving)."""
        return {"q": self.q, "r": self.r, "row_scale": self.row_scale, "eps2": self.eps2,
                "points": self.points, "sizes": self.sizes, "n_components": np.asarray(self.n_components),
                "complex_": np.asarray(self.complex_), "condition": np.asarray(self.condition)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray]) -> PointBasisEstimator:
        """Inverse of :meth:`to_arrays`, checked (ShapeError, ValueError naming the array).

        With K = ``n_components`` >= 1 and d products: ``q`` (d, d'), 1 <= d' <= d; ``r`` (d', d')
        upper triangular with a non-zero diagonal; ``row_scale`` (d,) positive; ``eps2`` (d',)
        non-negative; ``points`` (d', P); ``sizes`` (d',) positive integers; all finite float64.
        """
        check_keys(arrays, ("q", "r", "row_scale", "eps2", "points", "sizes", "n_components", "complex_",
                            "condition"))
        k = int(stored(arrays, "n_components", "int", ()))
        complex_ = bool(stored(arrays, "complex_", "bool", ()))
        if k < 1:
            raise ValueError(f"array 'n_components' must be >= 1; got {k}")
        d = k * k if complex_ else k * (k + 1) // 2
        q = stored(arrays, "q", "real", (d, None))
        rank = q.shape[1]
        r = stored(arrays, "r", "real", (rank, rank))
        if rank == 0 or not np.array_equal(r, np.triu(r)) or not r.diagonal().all():
            raise ValueError("array 'r' is not upper triangular with a non-zero diagonal (or is empty)")
        row_scale = stored(arrays, "row_scale", "real", (d,))
        if not (row_scale > 0).all():
            raise ValueError("array 'row_scale' has non-positive entries")
        sizes = stored(arrays, "sizes", "int", (rank,))
        if not (sizes >= 1).all():
            raise ValueError("array 'sizes' has entries < 1")
        return cls(q, r, row_scale, stored(arrays, "eps2", "real", (rank,), nonnegative=True),
                   stored(arrays, "points", "real", (rank, None)), sizes, k, complex_,
                   float(stored(arrays, "condition", "real", ())))

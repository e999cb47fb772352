"""E2 ``point-basis-square`` online: Casenave's 2012 formula with its square system, as written.

As in :mod:`certrb.online.estimators.point_basis`, ``eps(mu)^2`` is linear in the
products ``z(mu)``. Here the unknowns are the ``d`` products that are not identically
zero (a product of two purely real and purely imaginary coefficients has a zero real
part), ``d`` parameters ``mu_r`` are drawn at random, ``T = [z(mu_1) .. z(mu_d)]`` is
square (d x d) and LU-factored, and online ``T lambda = z(mu)`` is solved and
``eps^2 = sum_r lambda_r eps(mu_r)^2`` returned.

In exact arithmetic the formula holds for every coefficient vector if ``T`` is
invertible. The products of reduced solutions obey exact identities (Galerkin
orthogonality, ``x_(q,i) x_(q',j) = x_(q,j) x_(q',i)``, constant coefficients), so
``T`` is singular in exact arithmetic and numerically of rank ``rank < d``; the
stored ``condition`` and ``rank`` say how far. The least-squares variant
``point-basis`` keeps ``rank`` points instead. docs/estimators.md compares both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

from ...errors import EstimatorError
from .base import check_keys, stored
from .point_basis import products

__all__ = ["PointBasisSquareEstimator"]


@dataclass(frozen=True, eq=False)
class PointBasisSquareEstimator:
    """Online data of the square 2012 formula.

    Attributes
    ----------
    keep : ndarray of int, shape (d,)
        Indices of the products that are not identically zero, among the
        K(K+1)/2 (real) or K^2 (complex) of :func:`~certrb.online.estimators.point_basis.products`.
    lu : ndarray, shape (d, d), float64
        LU factors of ``T`` (``scipy.linalg.lu_factor`` layout), non-zero pivots.
    piv : ndarray of int, shape (d,)
        Row interchanges of the LU factorization.
    eps2 : ndarray, shape (d,), float64
        Truth-space ``eps(mu_r)^2`` at the points.
    points : ndarray, shape (d, P), float64
        The parameters ``mu_r``.
    n_components : int
        K of the model the estimator was built for (sub-models are zero-padded).
    complex_ : bool
    condition : float
        2-norm condition number of ``T`` (inf if a singular value is exactly zero).
    rank : int
        Numerical rank of ``T``: singular values above ``d * eps * sigma_max``.

    """

    keep: NDArray[np.intp]
    lu: NDArray[np.float64]
    piv: NDArray[np.intp]
    eps2: NDArray[np.float64]
    points: NDArray[np.float64]
    n_components: int
    complex_: bool
    condition: float
    rank: int
    name: str = "point-basis-square"

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``sqrt(max(eps2 . T^{-1} z(x), 0))`` for x (n_mu, K), shape (n_mu,).

        Only the model it was built for (K = ``n_components``): ``T`` is singular (see
        the module docstring), so the products of a zero-padded sub-model's
        coefficients, which obey other identities, are not in its range.
        """
        if x.shape[1] != self.n_components:
            raise EstimatorError(
                f"this point-basis-square estimator was built for K = {self.n_components} residual terms only; "
                "build one for the sub-model (reduce with basis[:, :n])"
            )
        z = products(x, self.complex_)[:, self.keep]
        lam = sla.lu_solve((self.lu, self.piv), z.T, check_finite=False)
        return np.sqrt(np.maximum(self.eps2 @ lam, 0.0))

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """NaN: this estimator carries no round-off certificate."""
        return np.full(x.shape[0], np.nan)

    def to_arrays(self) -> dict[str, NDArray]:
        """The arrays that define the estimator (for saving)."""
        return {"keep": self.keep, "lu": self.lu, "piv": self.piv, "eps2": self.eps2, "points": self.points,
                "n_components": np.asarray(self.n_components), "complex_": np.asarray(self.complex_),
                "condition": np.asarray(self.condition), "rank": np.asarray(self.rank)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray]) -> PointBasisSquareEstimator:
        """Inverse of :meth:`to_arrays`, checked (ShapeError, ValueError naming the array).

        With K = ``n_components`` >= 1 and D = K(K+1)/2 (real) or K^2 (complex):
        ``keep`` (d,) increasing integers in [0, D), d >= 1; ``lu`` (d, d) finite float64
        with a non-zero diagonal; ``piv`` (d,) integers in [0, d); ``eps2`` (d,)
        non-negative; ``points`` (d, P); ``condition`` >= 1 (inf allowed); ``rank`` in [0, d].
        """
        check_keys(arrays, ("keep", "lu", "piv", "eps2", "points", "n_components", "complex_", "condition", "rank"))
        k = int(stored(arrays, "n_components", "int", ()))
        complex_ = bool(stored(arrays, "complex_", "bool", ()))
        if k < 1:
            raise ValueError(f"array 'n_components' must be >= 1; got {k}")
        total = k * k if complex_ else k * (k + 1) // 2
        keep = stored(arrays, "keep", "int", (None,))
        d = keep.size
        if d == 0 or not ((keep >= 0) & (keep < total)).all() or not (np.diff(keep) > 0).all():
            raise ValueError(f"array 'keep' must hold d >= 1 increasing integers in [0, {total})")
        lu = stored(arrays, "lu", "real", (d, d))
        if not lu.diagonal().all():
            raise ValueError("array 'lu' has a zero pivot on its diagonal")
        piv = stored(arrays, "piv", "int", (d,))
        if not ((piv >= 0) & (piv < d)).all():
            raise ValueError(f"array 'piv' must hold integers in [0, {d})")
        if "condition" not in arrays:
            raise ValueError("missing array 'condition'")
        cond = np.asarray(arrays["condition"])  # stored() refuses inf, a singular T's condition
        if cond.shape != () or cond.dtype != np.float64 or not float(cond) >= 1:
            raise ValueError("array 'condition' must be a float64 scalar >= 1 (inf allowed)")
        rank = int(stored(arrays, "rank", "int", ()))
        if not 0 <= rank <= d:
            raise ValueError(f"array 'rank' must be in [0, {d}]; got {rank}")
        return cls(keep, lu, piv, stored(arrays, "eps2", "real", (d,), nonnegative=True),
                   stored(arrays, "points", "real", (d, None)), k, complex_, float(cond), rank)

"""E3 ``eim`` and E4 ``eim-stabilized`` online: residual norms through an EIM of x(mu).

An EIM greedy over training coefficient vectors ``x(mu)`` (of the model and,
so that nested sub-models are served too, of its sub-models, zero-padded)
selects vectors ``q_j`` and magic indices ``k_j``. Offline, the residual of each
``q_j``, ``s_j = sum_k (q_j)_k g_k``, is formed in the truth space and its Riesz
representative X-orthonormalized: ``X^{-1} S = Psi R_s`` (so that
``H = S^H X^{-1} S = R_s^H R_s``). Online, ``lambda = B^{-1} x[k]`` and
``eps = ||R_s lambda||_2``. E4 computes the interpolation (greedy and online)
iteratively so round-off does not accumulate.

:meth:`EIMEstimator.roundoff` bounds what ``eps`` can miss: the round-off of
the factorization (a :class:`~certrb.online.estimators.roundoff.FactorCertificate` of
``X^{-1} S ~ Psi R_s``) and the interpolation remainder ``x - lambda Q``, computed
online, whose residual norm is bounded by the certified classical formula (E1) over
all components: accurate because the remainder itself is small (docs/roundoff.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ...errors import ShapeError
from ..interpolation import interpolation_coefficients
from ..residual import pad_coefficients
from .base import check_keys, stored, upper_trapezoidal
from .expanded import ExpandedEstimator
from .roundoff import UNIT, FactorCertificate, gamma

__all__ = ["EIMEstimator"]


@dataclass(frozen=True, eq=False)
class EIMEstimator:
    """Online E3/E4 data.

    Attributes
    ----------
    vectors : ndarray, shape (m, K)
        EIM basis vectors ``q_j``.
    indices : ndarray of int, shape (m,)
        Magic indices ``k_j``.
    matrix : ndarray, shape (m, m)
        Unit lower-triangular ``B``.
    R : ndarray, shape (r, m)
        Factor with ``H = R^H R``.
    stabilized : bool
    errors : ndarray
        EIM greedy error history (max-norm remainders).
    certificate : FactorCertificate, optional
        Offline defects of the factorization of the ``q_j`` residuals.
    remainder : ExpandedEstimator, optional
        Certified Gram of all K components: bounds the dual norm of the residual of the
        interpolation remainder ``x - lambda Q``. Without these two, :meth:`roundoff` is NaN.

    """

    vectors: NDArray
    indices: NDArray[np.intp]
    matrix: NDArray
    R: NDArray
    stabilized: bool
    errors: NDArray[np.float64]
    certificate: FactorCertificate | None = None
    remainder: ExpandedEstimator | None = None

    @property
    def name(self) -> str:
        """``"eim-stabilized"`` or ``"eim"``."""
        return "eim-stabilized" if self.stabilized else "eim"

    @property
    def n_terms(self) -> int:
        """Number of interpolation terms m."""
        return self.indices.size

    def _coefficients(self, x: NDArray) -> tuple[NDArray, NDArray]:
        xp = pad_coefficients(x, self.vectors.shape[1])
        return xp, interpolation_coefficients(self.vectors, self.indices, self.matrix, xp, stabilized=self.stabilized)

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``||R B^{-1} x[k]||_2`` for x (n_mu, K_n), shape (n_mu,)."""
        y = self._coefficients(x)[1] @ self.R.T
        return np.sqrt(np.einsum("mr,mr->m", y.conj(), y).real)

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bound of ``||r(mu)||_{V'} - eps`` (round-off and interpolation remainder), shape (n_mu,).

        ``eps`` must be :meth:`residual_norm` of the same ``x``; the interpolation
        coefficients are recomputed (the same deterministic arithmetic).
        """
        if self.certificate is None or self.remainder is None:
            return np.full(x.shape[0], np.nan)
        xp, lam = self._coefficients(x)
        rem = xp - lam @ self.vectors
        # the remainder's residual, certified through the Gram of the components (rem is small: no sqrt(u) floor)
        rem_norm = self.remainder.residual_norm(rem, self.remainder.G.shape[0])
        rem_norm = rem_norm + self.remainder.roundoff(rem, self.remainder.G.shape[0], rem_norm)
        # the rounding of rem itself and of x, weighted by the components' dual norms
        norms = self.remainder.norms
        g = gamma(self.n_terms + 2)
        slack = (g + 4 * UNIT) * (np.abs(xp) @ norms) + g * (np.abs(lam) @ (np.abs(self.vectors) @ norms))
        head = self.certificate.delta(lam, eps)
        return (head + rem_norm + slack) * (1.0 + gamma(self.vectors.shape[1] + self.n_terms + 8))

    def to_arrays(self) -> dict[str, NDArray]:
        """The arrays that define the estimator (for saving)."""
        out = {"vectors": self.vectors, "indices": self.indices, "matrix": self.matrix, "R": self.R,
               "stabilized": np.asarray(self.stabilized), "errors": self.errors}
        if self.certificate is not None and self.remainder is not None:
            out.update(self.certificate.to_arrays("certificate_"))
            out.update({f"remainder_{k}": v for k, v in self.remainder.to_arrays().items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray]) -> EIMEstimator:
        """Inverse of :meth:`to_arrays`, checked (ShapeError, ValueError naming the array).

        ``vectors`` (m, K) finite; ``indices`` (m,) distinct integers in [0, K); ``matrix``
        (m, m) unit lower triangular; ``R`` (r, m) finite and upper trapezoidal; ``errors``
        float64; the certificate (of ``R``) and the remainder estimator (certified, K
        components) together or not at all.
        """
        rest = {k[len("remainder_"):]: v for k, v in arrays.items() if k.startswith("remainder_")}
        own = ("vectors", "indices", "matrix", "R", "stabilized", "errors", *FactorCertificate.keys("certificate_"))
        check_keys({k: v for k, v in arrays.items() if not k.startswith("remainder_")}, own)
        vectors = stored(arrays, "vectors", "value", (None, None))
        m, k = vectors.shape
        indices = stored(arrays, "indices", "int", (m,))
        if m == 0 or not ((indices >= 0) & (indices < k)).all() or np.unique(indices).size != m:
            raise ValueError(f"array 'indices' must hold m >= 1 distinct integers in [0, {k})")
        matrix = stored(arrays, "matrix", "value", (m, m))
        if not (np.array_equal(matrix, np.tril(matrix)) and (matrix.diagonal() == 1).all()):
            raise ValueError("array 'matrix' is not unit lower triangular")
        R = upper_trapezoidal(arrays, "R", m)
        cert = FactorCertificate.from_arrays(arrays, "certificate_", R.shape)
        remainder = ExpandedEstimator.from_arrays(rest) if rest else None
        if (cert is None) != (remainder is None) or (remainder is not None and remainder.slack is None):
            raise ValueError("the certificate and the certified remainder estimator come together or not at all")
        if remainder is not None and remainder.G.shape[0] != k:
            raise ShapeError(f"array 'remainder_G' has shape {remainder.G.shape}; expected ({k}, {k})")
        return cls(vectors, indices, matrix, R, bool(stored(arrays, "stabilized", "bool", ())),
                   stored(arrays, "errors", "real", (None,)), cert, remainder)

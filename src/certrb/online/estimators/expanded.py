"""E1 ``expanded`` online: ``eps^2 = x^H G x``, the classical offline expansion.

Round-off floor ~ sqrt(eps_mach) relative to ``||f||_{V'}``: every term of the
quadratic form is of size ``||f||^2`` while the sum is ``eps^2``. With a
certificate (a matrix ``M`` bounding the errors of ``G`` and of the online
quadratic form, see docs/roundoff.md) the bound ``sqrt(eps^2 + |x|^T M |x|)`` is
rigorous, and its floor shows that loss of half the digits honestly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ...errors import ShapeError
from .base import check_keys, stored
from .roundoff import UNIT, gamma

__all__ = ["ExpandedEstimator"]


@dataclass(frozen=True, eq=False)
class ExpandedEstimator:
    """Online E1 data.

    Attributes
    ----------
    G : ndarray, shape (K, K)
        Hermitian Gram matrix of the residual components' Riesz representatives.
    slack : ndarray of float64, shape (K, K), optional
        Non-negative ``M`` with ``|x^H G_exact x - fl(x^H G x)| <= |x|^T M |x|``.
    norms : ndarray of float64, shape (K,), optional
        Upper bounds of the components' dual norms. Without ``slack`` and
        ``norms``, :meth:`roundoff` is NaN.

    """

    G: NDArray
    slack: NDArray[np.float64] | None = None
    norms: NDArray[np.float64] | None = None
    name: str = "expanded"

    def squared(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """The raw quadratic form ``Re(x^H G x)`` (n_mu,), which round-off can make negative."""
        k = x.shape[1]
        Gk = self.G[:k, :k]
        return np.einsum("ml,ml->m", x.conj() @ Gk, x).real

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``sqrt(max(x^H G x, 0))`` for x (n_mu, K_n), shape (n_mu,)."""
        return np.sqrt(np.maximum(self.squared(x, n), 0.0))

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """``sqrt(eps^2 + |x|^T M |x|) - eps`` plus the rounding of x, shape (n_mu,); NaN without a certificate."""
        if self.slack is None or self.norms is None:
            return np.full(x.shape[0], np.nan)
        k = x.shape[1]
        ax = np.abs(x)
        spread = np.einsum("ml,ml->m", ax @ self.slack[:k, :k], ax)
        root = np.sqrt(eps * eps + spread)
        # root - eps loses at most a few units of root; 8u root covers it and the final rounding
        return ((root - eps) + 4 * UNIT * (ax @ self.norms[:k])) * (1.0 + gamma(k + 8)) + 8 * UNIT * root

    def to_arrays(self) -> dict[str, NDArray]:
        """The arrays that define the estimator (for saving)."""
        out = {"G": self.G}
        if self.slack is not None and self.norms is not None:
            out.update(slack=self.slack, norms=self.norms)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray]) -> ExpandedEstimator:
        """Inverse of :meth:`to_arrays` (``slack`` and ``norms`` together, or neither).

        Checked (ShapeError, ValueError naming the array): ``G`` (K, K) finite, Hermitian, with a
        non-negative diagonal; ``slack`` (K, K) and ``norms`` (K,) float64, finite, non-negative.
        """
        check_keys(arrays, ("G", "slack", "norms"))
        G = stored(arrays, "G", "value", (None, None))
        k = G.shape[0]
        if G.shape != (k, k):
            raise ShapeError(f"array 'G' has shape {G.shape}; expected a square matrix")
        if not np.array_equal(G, G.conj().T) or not (G.diagonal().real >= 0).all():
            raise ValueError("array 'G' is not Hermitian with a non-negative diagonal")
        if ("slack" in arrays) != ("norms" in arrays):
            raise ValueError("arrays 'slack' and 'norms' come together or not at all")
        if "slack" not in arrays:
            return cls(G)
        return cls(G, stored(arrays, "slack", "real", (k, k), nonnegative=True),
                   stored(arrays, "norms", "real", (k,), nonnegative=True))

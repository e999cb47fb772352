"""E1 ``expanded``: the classical offline expansion ``eps^2 = x^H G x``.

Round-off floor ~ sqrt(eps_mach) relative to ``||f||_{V'}``: every term of the
quadratic form is of size ``||f||^2`` while the sum is ``eps^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..innerproduct import herm
from .base import OfflineData

__all__ = ["ExpandedEstimator", "build", "gram"]


def gram(components: NDArray, riesz: NDArray) -> NDArray:
    """Gram matrix ``G_kl = g_k^H X^{-1} g_l`` (K, K) from components and Riesz representatives."""
    G = herm(components) @ riesz
    return (G + G.conj().T) / 2


@dataclass(frozen=True, eq=False)
class ExpandedEstimator:
    """Online E1 data.

    Attributes
    ----------
    G : ndarray, shape (K, K)
        Hermitian Gram matrix of the residual components' Riesz representatives.

    """

    G: NDArray
    name: str = "expanded"

    def squared(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """The raw quadratic form ``Re(x^H G x)`` (n_mu,), which round-off can make negative."""
        k = x.shape[1]
        Gk = self.G[:k, :k]
        return np.einsum("ml,ml->m", x.conj() @ Gk, x).real

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``sqrt(max(x^H G x, 0))`` for x (n_mu, K_n), shape (n_mu,)."""
        return np.sqrt(np.maximum(self.squared(x, n), 0.0))

    def arrays(self) -> dict[str, NDArray]:
        """Arrays to save."""
        return {"G": self.G}


def build(data: OfflineData) -> ExpandedEstimator:
    """Build E1 from the shared offline data."""
    return ExpandedEstimator(gram(data.components, data.riesz))

"""E1 ``expanded``: the classical offline expansion ``eps^2 = x^H G x``.

Round-off floor ~ sqrt(eps_mach) relative to ``||f||_{V'}``: every term of the
quadratic form is of size ``||f||^2`` while the sum is ``eps^2``. With a
certificate (a matrix ``M`` bounding the errors of ``G`` and of the online
quadratic form, see docs/roundoff.md) the bound ``sqrt(eps^2 + |x|^T M |x|)`` is
rigorous, and its floor shows that loss of half the digits honestly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..innerproduct import herm
from .base import OfflineData
from .roundoff import SAFETY, UNIT, ComponentBounds, component_bounds, gamma

__all__ = ["ExpandedEstimator", "build", "certify", "gram"]


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

    def arrays(self) -> dict[str, NDArray]:
        """Arrays to save."""
        out = {"G": self.G}
        if self.slack is not None and self.norms is not None:
            out.update(slack=self.slack, norms=self.norms)
        return out


def certify(problem, basis: NDArray, components: NDArray, riesz: NDArray, G: NDArray,
            bounds: ComponentBounds | None = None) -> ExpandedEstimator:
    """E1 with its certificate, from the stored components ``g_hat`` and Riesz representatives ``z`` (n_h, K).

    ``|G_exact - G| <= (D + D^T) / 2 + 2u |G|`` with
    ``D_kl = n_k a_l + b_k n_l + gamma_{n_h} (|g_hat|^H |z|)_kl``, where ``a_l`` bounds the
    Riesz defect of ``z_l``, ``b_k`` the dual norm of ``g_k - g_hat_k`` and ``n_k`` the
    dual norm of ``g_k``; the online quadratic form adds ``gamma_{2K+4} |G|``. ``bounds``
    (:func:`~certrb.estimators.roundoff.component_bounds`) may be shared with other estimators.
    """
    ip = problem.inner_product
    bounds = component_bounds(problem, basis, riesz) if bounds is None else bounds
    a, norms = bounds.defects, bounds.norms
    rounding = bounds.exact - components.astype(bounds.exact.dtype)
    b = SAFETY * np.asarray(ip.dual_norms(np.asarray(rounding, dtype=components.dtype)), dtype=np.float64)
    n_h, K = components.shape
    D = np.outer(norms, a) + np.outer(b, norms) + gamma(n_h + 2) * (np.abs(components).T @ np.abs(riesz))
    slack = (D + D.T) / 2 + (2 * UNIT + gamma(2 * K + 4)) * np.abs(G)
    return ExpandedEstimator(G, slack * (1.0 + gamma(K + 4)), norms)


def build(data: OfflineData) -> ExpandedEstimator:
    """Build E1 (with its certificate if ``data.certify``) from the shared offline data."""
    G = gram(data.components, data.riesz)
    return certify(data.problem, data.basis, data.components, data.riesz, G) if data.certify else ExpandedEstimator(G)

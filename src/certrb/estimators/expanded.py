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

from ..innerproduct import InnerProduct, herm
from .base import OfflineData
from .roundoff import UNIT, ComponentBounds, component_bounds, gamma, gram_extended

__all__ = ["ExpandedEstimator", "build", "certify", "gram"]


def gram(riesz: NDArray, inner_product: InnerProduct, other: NDArray | None = None) -> NDArray:
    """Gram matrix ``G_kl = (rho_k, rho_l)_V = rho_k^H X rho_l`` of Riesz representatives (n_h, K).

    Formed in extended precision and rounded once (:func:`~certrb.estimators.roundoff.gram_extended`),
    so that what the classical formula loses is its online cancellation alone. With ``other``
    (n_h, L), the block ``riesz^H X other`` (K, L); without, the Hermitian (K, K) matrix.
    """
    if riesz.dtype.type in (np.longdouble, np.clongdouble):  # an extended-precision model: plain products
        G = herm(riesz) @ (inner_product.matrix @ (riesz if other is None else other))
    else:
        G = gram_extended(inner_product.matrix, riesz if other is None else other, riesz)
    return G if other is not None else (G + G.conj().T) / 2


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


def certify(problem, basis: NDArray, riesz: NDArray, G: NDArray,
            bounds: ComponentBounds | None = None) -> ExpandedEstimator:
    """E1 with its certificate, from the stored Riesz representatives ``z`` (n_h, K) and ``G = gram(z)``.

    ``|G_exact - G| <= D + 3u |G|`` with ``D = n a^T + a n^T + 2^-60 |z|^H |X| |z|``, where
    ``a_k`` bounds the Riesz defect ``||rho_k - z_k||_V`` and ``n_k`` bounds ``||rho_k||_V``
    (the last term, with margin, covers the extended-precision products of :func:`gram`; for
    complex data, ``4 (n_h + w + 4) 2^-64`` replaces ``2^-60``, w the most non-zeros in a row
    of X); the online quadratic form adds ``gamma_{2K+4} |G|``.
    ``bounds`` (:func:`~certrb.estimators.roundoff.component_bounds`) may be shared with other
    estimators.
    """
    X = problem.inner_product.matrix
    bounds = component_bounds(problem, basis, riesz) if bounds is None else bounds
    a, norms = bounds.defects, bounds.norms
    n_h, K = riesz.shape
    abs_z = np.abs(riesz)
    if np.iscomplexobj(riesz) or np.iscomplexobj(X.data):  # clongdouble products: gamma_n at u = 2^-64
        width = int(np.diff(X.indptr).max(initial=0))
        products = 4 * (n_h + width + 4) * 2.0**-64
    else:  # the error-free splitting of gram_extended
        products = 2.0**-60
    D = np.outer(norms, a) + np.outer(a, norms) + products * (abs_z.T @ (abs(X) @ abs_z))
    slack = D + (3 * UNIT + gamma(2 * K + 4)) * np.abs(G)
    return ExpandedEstimator(G, slack * (1.0 + gamma(K + 4)), norms)


def build(data: OfflineData) -> ExpandedEstimator:
    """Build E1 (with its certificate if ``data.certify``) from the shared offline data."""
    G = gram(data.riesz, data.problem.inner_product)  # type: ignore[attr-defined]
    return certify(data.problem, data.basis, data.riesz, G) if data.certify else ExpandedEstimator(G)

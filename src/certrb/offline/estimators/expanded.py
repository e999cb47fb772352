"""E1 ``expanded`` offline: the Gram matrix ``G`` of the Riesz representatives and its certificate.

Round-off floor ~ sqrt(eps_mach) relative to ``||f||_{V'}``: every term of the
quadratic form is of size ``||f||^2`` while the sum is ``eps^2``. With a
certificate (a matrix ``M`` bounding the errors of ``G`` and of the online
quadratic form, see docs/roundoff.md) the bound ``sqrt(eps^2 + |x|^T M |x|)`` is
rigorous, and its floor shows that loss of half the digits honestly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ...online.estimators.expanded import ExpandedEstimator
from ...online.estimators.roundoff import UNIT, gamma
from ..innerproduct import InnerProduct, herm
from .roundoff import ComponentBounds, component_bounds, gram_error, gram_extended

if TYPE_CHECKING:
    from .base import OfflineData

__all__ = ["build", "certify", "gram"]


def gram(riesz: NDArray, inner_product: InnerProduct, other: NDArray | None = None) -> NDArray:
    """Gram matrix ``G_kl = (rho_k, rho_l)_V = rho_k^H X rho_l`` of Riesz representatives (n_h, K).

    Formed in extended precision and rounded once (:func:`~certrb.offline.estimators.roundoff.gram_extended`),
    so that what the classical formula loses is its online cancellation alone. With ``other``
    (n_h, L), the block ``riesz^H X other`` (K, L); without, the Hermitian (K, K) matrix.
    """
    if riesz.dtype.type in (np.longdouble, np.clongdouble):  # an extended-precision model: plain products
        G = herm(riesz) @ (inner_product.matrix @ (riesz if other is None else other))
    else:
        G = gram_extended(inner_product.matrix, riesz if other is None else other, riesz)
    return G if other is not None else (G + G.conj().T) / 2


def certify(problem, basis: NDArray, riesz: NDArray, G: NDArray,
            bounds: ComponentBounds | None = None) -> ExpandedEstimator:
    """E1 with its certificate, from the stored Riesz representatives ``z`` (n_h, K) and ``G = gram(z)``.

    ``|G_exact - G| <= D + 3u |G|`` with ``D = n a^T + a n^T + max(E, E^T)``, where
    ``a_k`` bounds the Riesz defect ``||rho_k - z_k||_V``, ``n_k`` bounds ``||rho_k||_V``
    and ``E`` the error of the extended-precision products of :func:`gram`
    (:func:`~certrb.offline.estimators.roundoff.gram_error`, derived from the splitting for
    any n_h; the max covers blocks computed as either triangle); the online quadratic form
    adds ``gamma_{2K+4} |G|``.
    ``bounds`` (:func:`~certrb.offline.estimators.roundoff.component_bounds`) may be shared with other
    estimators.
    """
    X = problem.inner_product.matrix
    bounds = component_bounds(problem, basis, riesz) if bounds is None else bounds
    a, norms = bounds.defects, bounds.norms
    K = riesz.shape[1]
    products = gram_error(X, riesz)
    D = np.outer(norms, a) + np.outer(a, norms) + np.maximum(products, products.T)
    slack = D + (3 * UNIT + gamma(2 * K + 4)) * np.abs(G)
    return ExpandedEstimator(G, slack * (1.0 + gamma(K + 4)), norms)


def build(data: OfflineData) -> ExpandedEstimator:
    """E1 from the builder's incrementally bordered Gram matrix, with its certificate if ``data.certify``."""
    return data.remainder() if data.certify else ExpandedEstimator(data.builder.gram)

"""E5 ``orthonormal`` offline: the X-orthonormal factorization ``X^{-1} g = Psi R`` and its certificate.

The factorization is extended column block by column block as the basis grows
(:class:`~certrb.offline.builder.OfflineBuilder`); the online evaluator is
:class:`~certrb.online.estimators.orthonormal.OrthonormalEstimator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ...online.estimators.orthonormal import OrthonormalEstimator
from ..basis import qr_extend
from ..innerproduct import InnerProduct
from .roundoff import ComponentBounds, component_bounds, factor_certificate

if TYPE_CHECKING:
    from .base import OfflineData

__all__ = ["build", "certify", "extend_factor"]


def extend_factor(
    psi: NDArray, R: NDArray, new_riesz: NDArray, inner_product: InnerProduct
) -> tuple[NDArray, NDArray]:
    """Extend ``rho = Psi R`` by new Riesz representatives (n_h, k).

    Returns
    -------
    psi : ndarray, shape (n_h, r')
        X-orthonormal.
    R : ndarray, shape (r', K + k)
        Upper trapezoidal.

    """
    psi_new, coeff, _ = qr_extend(psi, new_riesz, inner_product, rtol=1e-14)
    R_new = np.zeros((psi_new.shape[1], R.shape[1] + new_riesz.shape[1]), dtype=coeff.dtype)
    R_new[: R.shape[0], : R.shape[1]] = R
    R_new[:, R.shape[1]:] = coeff
    return psi_new, R_new


def certify(problem, basis: NDArray, riesz: NDArray, psi: NDArray, R: NDArray,
            bounds: ComponentBounds | None = None) -> OrthonormalEstimator:
    """E5 with its round-off certificate measured from the truth-size factorization ``riesz ~ psi R``.

    ``bounds`` (:func:`~certrb.offline.estimators.roundoff.component_bounds`) may be shared with other estimators.
    """
    bounds = component_bounds(problem, basis, riesz) if bounds is None else bounds
    return OrthonormalEstimator(R, factor_certificate(problem.inner_product, bounds.exact, riesz, psi, R,
                                                      bounds.defects, bounds.norms))


def build(data: OfflineData) -> OrthonormalEstimator:
    """E5 from the builder's incrementally extended factor, with its certificate if ``data.certify``."""
    b = data.builder
    return certify(data.problem, b.basis, b.riesz, b.psi, b.R, data.bounds()) if data.certify else \
        OrthonormalEstimator(b.R)

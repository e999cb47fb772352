"""E5 ``orthonormal``: ``eps = ||R x||_2`` with ``X^{-1} g = Psi R``, Psi X-orthonormal.

This is the estimator of Buhr, Engwer, Ohlberger & Rave (2014) used by pyMOR.
Its round-off floor is ~eps_mach relative to ``||f||_{V'}``. The factorization
is extended column block by column block as the basis grows. With a
:class:`~certrb.estimators.roundoff.FactorCertificate` attached, :meth:`roundoff`
bounds the floating-point error of the estimate (docs/roundoff.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .. import online_kernels
from ..basis import qr_extend
from ..innerproduct import InnerProduct
from .base import OfflineData
from .roundoff import ComponentBounds, FactorCertificate, component_bounds, factor_certificate

__all__ = ["OrthonormalEstimator", "build", "certify", "extend_factor"]


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


@dataclass(frozen=True, eq=False)
class OrthonormalEstimator:
    """Online E5 data.

    Attributes
    ----------
    R : ndarray, shape (r, K)
        Upper-trapezoidal factor of the Riesz representatives.
    certificate : FactorCertificate, optional
        Offline defects of the factorization; without it :meth:`roundoff` is NaN.

    """

    R: NDArray
    certificate: FactorCertificate | None = None
    name: str = "orthonormal"
    _RT: NDArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_RT", np.ascontiguousarray(self.R.T))  # rows [:K_n] are contiguous

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``||R[:, :K_n] x||_2`` for x (n_mu, K_n), shape (n_mu,)."""
        if x.shape[0] == 1 and x.dtype.kind == "f":  # one parameter: a vector product is leaner
            y1 = x[0] @ self._RT[: x.shape[1]]
            return np.sqrt(np.array([y1 @ y1]))
        y = x @ self._RT[: x.shape[1]]
        if y.dtype.kind == "c":
            return np.sqrt(np.einsum("mr,mr->m", y.conj(), y).real)
        return np.sqrt(np.einsum("mr,mr->m", y, y))

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bound of the floating-point error of ``eps = residual_norm(x, n)``, shape (n_mu,)."""
        if self.certificate is None:
            return np.full(x.shape[0], np.nan)
        return self.certificate.delta(x, eps)

    def norm_and_roundoff(self, x: NDArray, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """:meth:`residual_norm` and :meth:`roundoff` together; one compiled call for one real parameter."""
        kern = online_kernels.compiled() if x.shape[0] == 1 and x.dtype == np.float64 else None
        if kern is not None and self.certificate is not None:
            eps, fp = kern.orthonormal_norm(self._RT, x[0], self.certificate.weights, self.certificate.eps_factor)
            return np.array([eps]), np.array([fp])
        eps = self.residual_norm(x, n)
        return eps, self.roundoff(x, n, eps)

    def arrays(self) -> dict[str, NDArray]:
        """Arrays to save."""
        out = {"R": self.R}
        if self.certificate is not None:
            out.update(self.certificate.arrays("certificate_"))
        return out


def certify(problem, basis: NDArray, riesz: NDArray, psi: NDArray, R: NDArray,
            bounds: ComponentBounds | None = None) -> OrthonormalEstimator:
    """E5 with its round-off certificate measured from the truth-size factorization ``riesz ~ psi R``.

    ``bounds`` (:func:`~certrb.estimators.roundoff.component_bounds`) may be shared with other estimators.
    """
    bounds = component_bounds(problem, basis, riesz) if bounds is None else bounds
    return OrthonormalEstimator(R, factor_certificate(problem.inner_product, bounds.exact, riesz, psi, R,
                                                      bounds.defects, bounds.norms))


def build(data: OfflineData) -> OrthonormalEstimator:
    """Build E5 (with its certificate if ``data.certify``) from the shared offline data."""
    n_h = data.riesz.shape[0]
    empty = np.zeros((n_h, 0), dtype=data.riesz.dtype)
    psi, R = extend_factor(empty, np.zeros((0, 0), dtype=data.riesz.dtype), data.riesz,
                           data.problem.inner_product)  # type: ignore[attr-defined]
    return certify(data.problem, data.basis, data.riesz, psi, R) if data.certify else OrthonormalEstimator(R)

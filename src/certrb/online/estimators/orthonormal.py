"""E5 ``orthonormal`` online: ``eps = ||R x||_2`` with ``X^{-1} g = Psi R``, Psi X-orthonormal.

This is the estimator of Buhr, Engwer, Ohlberger & Rave (2014) used by pyMOR.
Its round-off floor is ~eps_mach relative to ``||f||_{V'}``. With a
:class:`~certrb.online.estimators.roundoff.FactorCertificate` attached,
:meth:`OrthonormalEstimator.roundoff` bounds the floating-point error of the
estimate (docs/roundoff.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .. import kernels
from .base import check_keys, upper_trapezoidal
from .roundoff import FactorCertificate

__all__ = ["OrthonormalEstimator"]


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
        kern = kernels.compiled() if x.shape[0] == 1 and x.dtype == np.float64 else None
        if kern is not None and self.certificate is not None:
            eps, fp = kern.orthonormal_norm(self._RT, x[0], self.certificate.weights, self.certificate.eps_factor)
            return np.array([eps]), np.array([fp])
        eps = self.residual_norm(x, n)
        return eps, self.roundoff(x, n, eps)

    def to_arrays(self) -> dict[str, NDArray]:
        """The arrays that define the estimator (for saving)."""
        out = {"R": self.R}
        if self.certificate is not None:
            out.update(self.certificate.to_arrays("certificate_"))
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray]) -> OrthonormalEstimator:
        """Inverse of :meth:`to_arrays`, checked (ShapeError, ValueError naming the array).

        ``R`` (r, K) finite and upper trapezoidal; its certificate as :meth:`FactorCertificate.from_arrays`.
        """
        check_keys(arrays, ("R", *FactorCertificate.keys("certificate_")))
        return cls(upper_trapezoidal(arrays, "R", None), FactorCertificate.from_arrays(arrays, "certificate_",
                                                                                        np.shape(arrays["R"])))

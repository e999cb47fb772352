"""E5 ``orthonormal``: ``eps = ||R x||_2`` with ``X^{-1} g = Psi R``, Psi X-orthonormal.

This is the estimator of Buhr, Engwer, Ohlberger & Rave (2014) used by pyMOR.
Its round-off floor is ~eps_mach relative to ``||f||_{V'}``. The factorization
is extended column block by column block as the basis grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..basis import qr_extend
from ..innerproduct import InnerProduct
from .base import OfflineData

__all__ = ["OrthonormalEstimator", "build", "extend_factor"]


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

    """

    R: NDArray
    name: str = "orthonormal"

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``||R[:, :K_n] x||_2`` for x (n_mu, K_n), shape (n_mu,)."""
        y = x @ self.R[:, : x.shape[1]].T
        return np.sqrt((y.conj() * y).real.sum(axis=1) if y.dtype.kind == "c" else (y * y).sum(axis=1))

    def arrays(self) -> dict[str, NDArray]:
        """Arrays to save."""
        return {"R": self.R}


def build(data: OfflineData) -> OrthonormalEstimator:
    """Build E5 from the shared offline data."""
    n_h = data.riesz.shape[0]
    empty = np.zeros((n_h, 0), dtype=data.riesz.dtype)
    _, R = extend_factor(empty, np.zeros((0, 0), dtype=data.riesz.dtype), data.riesz,
                         data.problem.inner_product)  # type: ignore[attr-defined]
    return OrthonormalEstimator(R)

"""Round-off certificates: computable bounds on the floating-point error of a residual norm.

The residual of a reduced solution is ``r(mu) = sum_k x_k(mu) g_k`` and its dual
norm is ``||sum_k x_k rho_k||_V`` with ``rho_k = X^{-1} g_k``. The ``orthonormal``
and EIM-based estimators store a factorization ``rho ~ Psi R`` (Psi nearly
X-orthonormal) and return ``eps_hat = fl(||fl(R x_hat)||_2)``. A
:class:`FactorCertificate` holds what it takes to bound the difference between
``eps_hat`` and the exact dual norm:

* ``defects[k] >= ||rho_k - Psi R[:, k]||_V``: the Riesz-solve residual of ``g_k``
  and the factorization defect, both measured in extended precision;
* ``norms[k] >= ||rho_k||_V``;
* ``orthogonality >= ||Psi^H X Psi - I||_2``;
* ``column_norms[k] = ||R[:, k]||_2`` (rounded up).

This module is the online half: :meth:`FactorCertificate.delta` adds a running
error bound of the arithmetic (unit round-off ``u = 2^-53``, ``gamma_n = n u / (1 - n u)``). The
proof and its assumptions are in ``docs/roundoff.md``; the offline measurement is
:mod:`certrb.offline.estimators.roundoff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ...errors import ShapeError
from .base import stored

__all__ = ["UNIT", "FactorCertificate", "gamma"]

UNIT = float(np.finfo(np.float64).eps) / 2
"""Unit round-off ``u`` of IEEE double precision."""


def gamma(n: int) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)`` (bounds the error of an n-term dot product)."""
    nu = n * UNIT
    if nu >= 0.5:
        raise ValueError(f"gamma_{n} is undefined in double precision")
    return nu / (1.0 - nu)


@dataclass(frozen=True, eq=False)
class FactorCertificate:
    """Offline bounds on the factorization ``rho ~ Psi R`` of K Riesz representatives.

    Attributes
    ----------
    defects : ndarray of float64, shape (K,)
        Upper bounds of ``||rho_k - Psi R[:, k]||_V``.
    norms : ndarray of float64, shape (K,)
        Upper bounds of ``||rho_k||_V``.
    orthogonality : float
        Upper bound of ``||Psi^H X Psi - I||_2``.
    column_norms : ndarray of float64, shape (K,)
        Upper bounds of ``||R[:, k]||_2``.
    rows : int
        Number of rows r of ``R``.

    """

    defects: NDArray[np.float64]
    norms: NDArray[np.float64]
    orthogonality: float
    column_norms: NDArray[np.float64]
    rows: int
    _eps_factor: float = field(init=False, repr=False)
    _weights: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # the constants of docs/roundoff.md, taken at the full K (valid for every nested k <= K)
        K = self.defects.size
        stretch = np.sqrt(1.0 + self.orthogonality)
        scale = 1.0 + gamma(K + 8)  # the evaluation of delta itself
        # the 2-norm, the Psi stretch, the final sum and division
        eps_factor = (stretch * (1.0 + gamma(2 * self.rows + 4)) - 1.0 + 4 * UNIT) * scale
        # factor defects, the rounding of x, and the product R x (|| |R| |x| ||_2 <= sum_k |x_k| ||R[:, k]||_2)
        weights = (self.defects + 4 * UNIT * self.norms + stretch * gamma(K + 2) * self.column_norms) * scale
        object.__setattr__(self, "_eps_factor", float(eps_factor))
        object.__setattr__(self, "_weights", weights)

    @property
    def weights(self) -> NDArray[np.float64]:
        """Per-component weights of :meth:`delta`, shape (K,)."""
        return self._weights

    @property
    def eps_factor(self) -> float:
        """Relative factor of :meth:`delta` on the computed norm."""
        return self._eps_factor

    def delta(self, x: NDArray, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bound of ``||sum_k x_k rho_k||_V - eps`` for ``eps = fl(||fl(R[:, :k] x)||_2)``.

        Parameters
        ----------
        x : ndarray, shape (n_mu, k), k <= K
            Residual coefficients as computed (each entry a product rounded once).
        eps : ndarray, shape (n_mu,)
            The computed norms.

        Returns
        -------
        delta : ndarray of float64, shape (n_mu,), non-negative

        """
        return self._eps_factor * eps + np.abs(x) @ self._weights[: x.shape[1]]

    def to_arrays(self, prefix: str) -> dict[str, NDArray]:
        """Arrays to save, keys prefixed by ``prefix``."""
        return {f"{prefix}defects": self.defects, f"{prefix}norms": self.norms,
                f"{prefix}orthogonality": np.asarray(self.orthogonality),
                f"{prefix}column_norms": self.column_norms, f"{prefix}rows": np.asarray(self.rows)}

    @staticmethod
    def keys(prefix: str) -> tuple[str, ...]:
        """The keys of :meth:`to_arrays` ``(prefix)``."""
        return tuple(f"{prefix}{key}" for key in ("defects", "norms", "orthogonality", "column_norms", "rows"))

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str,
                    shape: tuple[int, int]) -> FactorCertificate | None:
        """Inverse of :meth:`to_arrays`; None when ``arrays`` holds no certificate under ``prefix``.

        ``shape`` is that of the certified factor ``R`` (r, K): the arrays are checked against
        it (K entries each, ``rows == r``), float64, finite and non-negative (ShapeError, ValueError).
        """
        keys = cls.keys(prefix)
        if not any(key in arrays for key in keys):
            return None
        k = shape[1]
        defects, norms, columns = (stored(arrays, keys[i], "real", (k,), nonnegative=True) for i in (0, 1, 3))
        ortho = stored(arrays, keys[2], "real", (), nonnegative=True)
        rows = stored(arrays, keys[4], "int", ())
        if int(rows) != shape[0]:
            raise ShapeError(f"array {keys[4]!r} is {int(rows)}; the factor has {shape[0]} rows")
        return cls(defects, norms, float(ortho), columns, int(rows))

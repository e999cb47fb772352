"""The reduced solve: Galerkin systems ``sum_q theta_q A_q c = sum_p phi_p f_p`` for a batch.

:meth:`ReducedOperators.solve` is the one entry point, used by the reduced model, the
greedy's training sweeps and the estimators' offline builders alike. It picks the solver:

- real symmetric operators, with numba installed (extra ``fast``): the compiled Cholesky
  kernels of :mod:`certrb.online.kernels` (a whole batch with parameters innermost, or
  assembly, solve and residual coefficients of one parameter in one call); a parameter
  at which the reduced matrix is not positive definite falls back to LU;
- otherwise LAPACK's LU (``gesv`` for one parameter, numpy's stacked solve for a batch);
- operators stored in extended precision: :func:`certrb.online.precision.refined_solve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import get_lapack_funcs

from ..errors import ShapeError
from . import kernels
from .precision import extended_dtype, is_extended, refined_solve
from .residual import residual_coefficients

__all__ = ["ReducedOperators"]

_GESV: dict = {}  # LAPACK gesv per dtype character, looked up once


@dataclass(frozen=True, eq=False)
class ReducedOperators:
    """Reduced operator and right-hand-side terms of a model of size N.

    Attributes
    ----------
    A_N : ndarray, shape (Q_a, N, N)
        ``V^H A_q V``.
    f_N : ndarray, shape (Q_f, N)
        ``V^H f_p``.

    """

    A_N: NDArray
    f_N: NDArray
    _flat: dict = field(default_factory=dict, init=False, repr=False)
    _packed: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        N = self.A_N.shape[1] if self.A_N.ndim == 3 else -1
        if self.A_N.ndim != 3 or self.A_N.shape[2] != N:
            raise ShapeError(f"A_N must have shape (Q_a, N, N); got {self.A_N.shape}")
        if self.f_N.ndim != 2 or self.f_N.shape[1] != N:
            raise ShapeError(f"f_N must have shape (Q_f, {N}); got {self.f_N.shape}")

    @property
    def n_basis(self) -> int:
        """Reduced dimension N."""
        return self.A_N.shape[1]

    def solve(self, theta: NDArray, phi: NDArray, n: int) -> tuple[NDArray, NDArray]:
        """Batched Galerkin solves of the nested sub-model of size ``n``.

        Parameters
        ----------
        theta : ndarray, shape (n_mu, Q_a)
        phi : ndarray, shape (n_mu, Q_f)
        n : int
            Sub-model size, ``1 <= n <= N``.

        Returns
        -------
        c : ndarray, shape (n_mu, n)
            Reduced coefficients (extended precision for an extended-precision model).
        x : ndarray, shape (n_mu, Q_f + Q_a n)
            Residual coefficients (:func:`certrb.online.residual.residual_coefficients`).

        Raises
        ------
        numpy.linalg.LinAlgError
            If a reduced system is singular.

        """
        packed = self._symmetric_packed()
        if packed is not None and theta.dtype == np.float64 and phi.dtype == np.float64:
            out = _cholesky(packed, self.f_N, theta, phi, n)
            if out is not None:
                return out
        A_flat, f_sub = self._flat_operators(n)
        if is_extended(A_flat):
            ext = extended_dtype(A_flat, f_sub, theta, phi)
            theta, phi = theta.astype(ext), phi.astype(ext)
            c = refined_solve((theta @ A_flat).reshape(-1, n, n), phi @ f_sub)
        else:
            c = _lu((theta @ A_flat).reshape(-1, n, n), phi @ f_sub)
        return c, residual_coefficients(phi, theta, c)

    def _flat_operators(self, n: int) -> tuple[NDArray, NDArray]:
        """``A_N`` of sub-model n flattened to (Q_a, n*n) and ``f_N`` (Q_f, n), contiguous; cached."""
        ops = self._flat.get(n)
        if ops is None:
            q_a = self.A_N.shape[0]
            ops = (np.ascontiguousarray(self.A_N[:, :n, :n]).reshape(q_a, n * n), np.ascontiguousarray(self.f_N[:, :n]))
            self._flat[n] = ops
        return ops

    def _symmetric_packed(self) -> NDArray[np.float64] | None:
        """Packed symmetric ``A_N`` when the compiled Cholesky path applies, else None; cached."""
        if not self._packed:
            self._packed.append(None if kernels.compiled() is None else kernels.packed_symmetric(self.A_N))
        return self._packed[0]


def _cholesky(packed: NDArray[np.float64], f_N: NDArray, theta: NDArray, phi: NDArray, n: int
              ) -> tuple[NDArray, NDArray] | None:
    """The compiled Cholesky path; None (nothing solved) where some reduced matrix is not positive definite."""
    kern = kernels.compiled()
    assert kern is not None, "packed operators exist only with the compiled kernels"
    if theta.shape[0] == 1:
        c, x, ok = kern.cholesky_solve_one(packed, f_N, theta[0], phi[0], n)
        return (c[None, :], x[None, :]) if ok else None
    A = packed.T[: n * (n + 1) // 2] @ theta.T  # (n (n + 1) / 2, n_mu): parameters innermost
    f = f_N[:, :n].T @ phi.T
    if not kern.cholesky_solve_batch(A, f).all():
        return None
    c = np.ascontiguousarray(f.T)
    return c, residual_coefficients(phi, theta, c)


def _lu(A: NDArray, f: NDArray) -> NDArray:
    """LU solves of ``A`` (n_mu, n, n) with right-hand sides ``f`` (n_mu, n); one parameter straight to ``gesv``."""
    if A.shape[0] == 1:
        key = np.result_type(A, f).char  # a complex right-hand side of a real matrix needs the complex gesv
        gesv = _GESV.get(key) or _GESV.setdefault(key, get_lapack_funcs("gesv", (A, f)))
        *_, sol, info = gesv(A[0], f[0])
        if info != 0:
            raise np.linalg.LinAlgError("a reduced system is singular (is the problem stable here?)")
        return sol[None, :]
    try:
        return np.linalg.solve(A, f[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError as exc:
        raise np.linalg.LinAlgError("a reduced system is singular (is the problem stable here?)") from exc

"""Compiled online kernels for real symmetric reduced models (optional: needs numba).

numpy's stacked ``linalg.solve`` calls LAPACK once per matrix; for the 10-50 unknowns of a
reduced model the call and LAPACK's blocked code cost more than the arithmetic (about 5 us
per 31 x 31 system on a 2-core test machine, 3-4x the kernel below). :func:`cholesky_solve_batch`
solves a whole batch of small symmetric positive definite systems at once with the batch as
the innermost, contiguous axis, so every elimination step is one SIMD loop over parameters.
No numpy or scipy routine offers that layout, hence this module. :func:`cholesky_solve_one`
does assembly, factorization, substitution and residual coefficients of one parameter in one
call, and :func:`orthonormal_norm` the E5 residual norm with its round-off bound, so that a
single query makes a handful of calls instead of some forty numpy ones.

The kernels work on the symmetric part of the reduced operators, packed by rows of its lower
triangle (:func:`packed_symmetric`); the first ``n (n + 1) / 2`` packed entries of the size-N
model are those of its nested size-n sub-model. A system whose Cholesky factorization meets
a non-positive pivot (not positive definite at that parameter) is reported, and
:class:`~certrb.online.model.ReducedModel` then solves it with LAPACK's pivoted LU instead. Every
kernel is compiled once and cached on disk; without numba, :data:`AVAILABLE` is False and
the reduced model uses its numpy path (same results up to round-off).
"""

from __future__ import annotations

import functools
import importlib.util
from types import SimpleNamespace

import numpy as np
from numpy.typing import NDArray

__all__ = ["AVAILABLE", "cholesky_solve_batch", "cholesky_solve_one", "compiled", "orthonormal_norm",
           "packed_symmetric"]

AVAILABLE = importlib.util.find_spec("numba") is not None

_SKEW_TOL = 64 * float(np.finfo(np.float64).eps)  # relative skew part still treated as symmetric round-off


def packed_symmetric(A_N: NDArray) -> NDArray[np.float64] | None:
    """Symmetric parts of real reduced operators, lower triangles packed by rows.

    Parameters
    ----------
    A_N : ndarray, shape (Q_a, N, N)

    Returns
    -------
    packed : ndarray of float64, shape (Q_a, N (N + 1) / 2), C-contiguous, or None
        Column ``i (i + 1) / 2 + j`` holds entry (i, j), ``j <= i``, of ``(A_q + A_q^T) / 2``;
        None when ``A_N`` is not real or some ``A_q`` has a skew part above
        round-off (``max |A_q - A_q^T| > 64 eps max |A_q|``).

    """
    if A_N.dtype != np.float64 or A_N.ndim != 3 or A_N.shape[1] == 0:
        return None
    skew = np.abs(A_N - A_N.transpose(0, 2, 1)).max(axis=(1, 2))
    if (skew > _SKEW_TOL * np.abs(A_N).max(axis=(1, 2))).any():
        return None
    rows, cols = np.tril_indices(A_N.shape[1])
    sym = 0.5 * (A_N + A_N.transpose(0, 2, 1))
    return np.ascontiguousarray(sym[:, rows, cols])


def cholesky_solve_batch(A: NDArray, f: NDArray) -> NDArray:
    """Solve a batch of SPD systems in place, batch innermost.

    Parameters
    ----------
    A : ndarray of float64, shape (n (n + 1) / 2, B), C-contiguous
        Lower triangles packed by rows (layout of :func:`packed_symmetric`), one column
        per system; overwritten by the Cholesky factors.
    f : ndarray of float64, shape (n, B), C-contiguous
        Right-hand sides; overwritten by the solutions.

    Returns
    -------
    ok : ndarray of bool, shape (B,)
        False where a pivot was not positive (that column of ``f`` is then meaningless).

    """
    n, B = f.shape
    ok = np.ones(B, dtype=np.bool_)
    inv = np.empty(B)
    for j in range(n):  # left-looking: column j of L from the columns before it
        rj = j * (j + 1) // 2
        for k in range(j):
            for i in range(j, n):
                ri = i * (i + 1) // 2
                for b in range(B):
                    A[ri + j, b] -= A[ri + k, b] * A[rj + k, b]
        for b in range(B):
            d = A[rj + j, b]
            if d > 0.0:
                d = np.sqrt(d)
            else:
                ok[b] = False
                d = 1.0
            A[rj + j, b] = d
            inv[b] = 1.0 / d
        for i in range(j + 1, n):
            ri = i * (i + 1) // 2
            for b in range(B):
                A[ri + j, b] *= inv[b]
    for i in range(n):  # L y = f
        ri = i * (i + 1) // 2
        for k in range(i):
            for b in range(B):
                f[i, b] -= A[ri + k, b] * f[k, b]
        for b in range(B):
            f[i, b] /= A[ri + i, b]
    for i in range(n - 1, -1, -1):  # L^T c = y
        ri = i * (i + 1) // 2
        for k in range(i + 1, n):
            rk = k * (k + 1) // 2
            for b in range(B):
                f[i, b] -= A[rk + i, b] * f[k, b]
        for b in range(B):
            f[i, b] /= A[ri + i, b]
    return ok


def cholesky_solve_one(packed: NDArray, f_N: NDArray, theta: NDArray, phi: NDArray, n: int
                       ) -> tuple[NDArray, NDArray, bool]:
    """Assemble and solve the size-n sub-model at one parameter, and form its residual coefficients.

    Parameters
    ----------
    packed : ndarray of float64, shape (Q_a, N (N + 1) / 2)
        :func:`packed_symmetric` of ``A_N``.
    f_N : ndarray of float64, shape (Q_f, N)
    theta : ndarray of float64, shape (Q_a,)
    phi : ndarray of float64, shape (Q_f,)
    n : int
        Sub-model size, ``1 <= n <= N``.

    Returns
    -------
    c : ndarray of float64, shape (n,)
        Reduced coefficients.
    x : ndarray of float64, shape (Q_f + Q_a n,)
        Residual coefficients (ordering of :mod:`certrb.online.residual`).
    ok : bool
        False if a pivot was not positive (``c`` and ``x`` are then meaningless).

    """
    q_a, q_f = theta.size, phi.size
    p = n * (n + 1) // 2
    L = np.zeros(p)
    for q in range(q_a):
        t = theta[q]
        for e in range(p):
            L[e] += t * packed[q, e]
    c = np.zeros(n)
    for i in range(n):
        s = 0.0
        for q in range(q_f):
            s += phi[q] * f_N[q, i]
        c[i] = s
    x = np.empty(q_f + q_a * n)
    for i in range(n):  # row i of L (contiguous in the packing) from the rows above it
        ri = i * (i + 1) // 2
        for j in range(i + 1):
            rj = j * (j + 1) // 2
            s = L[ri + j]
            for k in range(j):
                s -= L[ri + k] * L[rj + k]
            if j < i:
                L[ri + j] = s / L[rj + j]
            elif s > 0.0:
                L[ri + i] = np.sqrt(s)
            else:
                return c, x, False
    for i in range(n):
        ri = i * (i + 1) // 2
        s = c[i]
        for k in range(i):
            s -= L[ri + k] * c[k]
        c[i] = s / L[ri + i]
    for i in range(n - 1, -1, -1):
        s = c[i]
        for k in range(i + 1, n):
            s -= L[k * (k + 1) // 2 + i] * c[k]
        c[i] = s / L[i * (i + 1) // 2 + i]
    for q in range(q_f):  # x = [phi, -theta c_1, .., -theta c_n] (certrb.online.residual)
        x[q] = phi[q]
    for i in range(n):
        for q in range(q_a):
            x[q_f + i * q_a + q] = -(theta[q] * c[i])
    return c, x, True


def orthonormal_norm(RT: NDArray, x: NDArray, weights: NDArray, eps_factor: float) -> tuple[float, float]:
    """E5's ``eps = ||R x||_2`` and its round-off bound for one parameter.

    Parameters
    ----------
    RT : ndarray of float64, shape (K', r)
        Transposed factor ``R^T`` (rows beyond ``x.size`` are ignored).
    x : ndarray of float64, shape (K,), K <= K'
    weights : ndarray of float64, shape (K',)
        Per-component weights of :class:`~certrb.online.estimators.roundoff.FactorCertificate`.
    eps_factor : float
        Its relative factor on ``eps``.

    Returns
    -------
    eps, delta : float
        The norm and the bound ``eps_factor * eps + sum_k |x_k| weights_k`` of its
        floating-point error (same operations as ``FactorCertificate.delta``).

    """
    K, r = x.size, RT.shape[1]
    y = np.zeros(r)
    fp = 0.0
    for k in range(K):
        xk = x[k]
        for j in range(min(k + 1, r)):  # R is upper trapezoidal: RT[k, j] = 0 for j > k
            y[j] += xk * RT[k, j]
        fp += abs(xk) * weights[k]
    s = 0.0
    for j in range(r):
        s += y[j] * y[j]
    eps = np.sqrt(s)
    return eps, eps_factor * eps + fp


@functools.cache
def compiled() -> SimpleNamespace | None:
    """The kernels compiled by numba (loaded from its disk cache after the first run), or None without numba."""
    if not AVAILABLE:
        return None
    import numba

    jit = numba.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")
    return SimpleNamespace(cholesky_solve_batch=jit(cholesky_solve_batch), cholesky_solve_one=jit(cholesky_solve_one),
                           orthonormal_norm=jit(orthonormal_norm))

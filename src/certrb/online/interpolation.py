"""Online empirical interpolation: coefficients ``lambda`` of a batch at the magic indices.

``B lambda = x[k]`` with ``B`` unit lower triangular (see :mod:`certrb.offline.eim`
for the greedies that build ``q_j``, ``k_j`` and ``B``). The stabilized variant
re-interpolates the remainder ``x - lambda Q`` and subtracts it while its max-norm
decreases.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

__all__ = ["interpolation_coefficients", "refine_remainder"]

_MAX_SWEEPS = 6


def interpolation_coefficients(
    vectors: NDArray, indices: NDArray, matrix: NDArray, x: NDArray, *, stabilized: bool
) -> NDArray:
    """Interpolation coefficients ``lambda`` of a batch ``x`` (n, K) -> (n, m).

    With ``stabilized`` the remainder ``x - lambda Q`` is re-interpolated and
    subtracted while its max-norm decreases (at most a few sweeps).
    """
    if indices.size == 0:
        return np.zeros((x.shape[0], 0), dtype=x.dtype)
    lam = _tri_solve(matrix, x[:, indices])
    if not stabilized:
        return lam
    _, d_lam = refine_remainder(vectors, indices, matrix, x - lam @ vectors)
    return lam + d_lam


def _tri_solve(matrix: NDArray, values: NDArray) -> NDArray:
    """Rows ``B^{-1} v`` for values (n, m) at the magic points, shape (n, m), C-contiguous.

    (A transposed, non-contiguous result makes the following products several times slower.)
    """
    return np.ascontiguousarray(sla.solve_triangular(matrix, values.T, lower=True, unit_diagonal=True).T)


def refine_remainder(vectors: NDArray, indices: NDArray, matrix: NDArray, rem: NDArray) -> tuple[NDArray, NDArray]:
    """Re-interpolate remainders (n, K) and subtract, row by row while their max-norm decreases.

    Returns
    -------
    rem : ndarray, shape (n, K)
        Refined remainders.
    d_lam : ndarray, shape (n, m)
        Total correction of the interpolation coefficients.

    """
    rem = rem.copy()
    total = np.zeros((rem.shape[0], indices.size), dtype=np.result_type(rem.dtype, vectors.dtype))
    norm = np.max(np.abs(rem), axis=1)
    for _ in range(_MAX_SWEEPS):
        d_lam = _tri_solve(matrix, rem[:, indices])
        new = rem - d_lam @ vectors
        new_norm = np.max(np.abs(new), axis=1)
        better = new_norm < norm
        if not np.any(better):
            break
        rem[better], norm[better] = new[better], new_norm[better]
        total[better] += d_lam[better]
    return rem, total

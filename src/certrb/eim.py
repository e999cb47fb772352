"""Empirical interpolation of vector families, plain and round-off stabilized.

A family of vectors ``x(mu)`` of length K (the "functions"; entries are the
"points") is approximated by ``I[x] = sum_j lambda_j q_j`` with ``lambda`` fixed
by interpolation at magic indices ``k_j``: ``B lambda = x[k]``, where
``B[i, j] = q_j[k_i]`` is unit lower triangular.

The stabilized variant computes every remainder iteratively: interpolate the
remainder again and subtract, until its norm stops shrinking. In exact
arithmetic both variants coincide; in floating point the stabilized one keeps
remainders at round-off level once the family's span is exhausted, so its
greedy stops instead of chasing noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

__all__ = ["EIMBasis", "eim_greedy", "interpolation_coefficients"]

_MAX_SWEEPS = 6


@dataclass(frozen=True, eq=False)
class EIMBasis:
    """Result of an EIM greedy.

    Attributes
    ----------
    vectors : ndarray, shape (m, K)
        Basis vectors ``q_j``, scaled to 1 at their magic index.
    indices : ndarray of int, shape (m,)
        Magic indices ``k_j``.
    matrix : ndarray, shape (m, m)
        Unit lower-triangular interpolation matrix ``B[i, j] = q_j[k_i]``.
    errors : ndarray, shape (m + 1,)
        Max-norm of the largest training remainder before each step and after the last.
    selected : ndarray of int, shape (m,)
        Index of the training vector chosen at each step.
    stabilized : bool
        Whether remainders are computed iteratively.

    """

    vectors: NDArray
    indices: NDArray[np.intp]
    matrix: NDArray
    errors: NDArray[np.float64]
    selected: NDArray[np.intp]
    stabilized: bool

    @property
    def size(self) -> int:
        """Number of terms m."""
        return self.indices.size


def interpolation_coefficients(
    vectors: NDArray, indices: NDArray, matrix: NDArray, x: NDArray, *, stabilized: bool
) -> NDArray:
    """Interpolation coefficients ``lambda`` of a batch ``x`` (n, K) -> (n, m).

    With ``stabilized`` the remainder ``x - lambda Q`` is re-interpolated and
    subtracted while its max-norm decreases (at most a few sweeps).
    """
    if indices.size == 0:
        return np.zeros((x.shape[0], 0), dtype=x.dtype)
    lam = sla.solve_triangular(matrix, x[:, indices].T, lower=True, unit_diagonal=True).T
    if not stabilized:
        return lam
    _, d_lam = _refine_remainder(vectors, indices, matrix, x - lam @ vectors)
    return lam + d_lam


def _refine_remainder(vectors: NDArray, indices: NDArray, matrix: NDArray, rem: NDArray) -> tuple[NDArray, NDArray]:
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
        d_lam = sla.solve_triangular(matrix, rem[:, indices].T, lower=True, unit_diagonal=True).T
        new = rem - d_lam @ vectors
        new_norm = np.max(np.abs(new), axis=1)
        better = new_norm < norm
        if not np.any(better):
            break
        rem[better], norm[better] = new[better], new_norm[better]
        total[better] += d_lam[better]
    return rem, total


def eim_greedy(
    family: NDArray, *, max_terms: int | None = None, rtol: float | None = None, stabilized: bool = False
) -> EIMBasis:
    """EIM greedy over a finite family of vectors.

    Parameters
    ----------
    family : ndarray, shape (n_train, K)
        Training vectors (real or complex).
    max_terms : int, optional
        Upper bound on m (default K).
    rtol : float, optional
        Stop when the largest max-norm remainder is at most ``rtol`` times the
        largest max-norm of the family. Default: ``10 * K * eps``.
    stabilized : bool
        Compute remainders iteratively (see module docstring).

    Returns
    -------
    EIMBasis

    """
    family = np.asarray(family)
    if family.ndim != 2 or family.shape[1] == 0:
        raise ValueError(f"family must have shape (n_train, K) with K >= 1; got {family.shape}")
    if not np.all(np.isfinite(family)):
        raise ValueError("family contains NaN or infinite values")
    k = family.shape[1]
    m_max = k if max_terms is None else min(int(max_terms), k)
    tol = (10 * k * np.finfo(float).eps if rtol is None else rtol) * float(np.max(np.abs(family), initial=0.0))
    vectors = np.zeros((0, k), dtype=family.dtype)
    indices = np.zeros(0, dtype=np.intp)
    matrix = np.zeros((0, 0), dtype=family.dtype)
    errors, selected = [], []
    rem = family.copy()
    while True:
        norms = np.max(np.abs(rem), axis=1)
        i = int(np.argmax(norms))
        errors.append(float(norms[i]))
        if indices.size >= m_max or norms[i] <= tol:
            break
        j = int(np.argmax(np.abs(rem[i])))
        if j in indices:  # remainder is noise concentrated on chosen points
            break
        q = rem[i] / rem[i, j]
        vectors = np.vstack([vectors, q])
        indices = np.append(indices, j)
        matrix = vectors[:, indices].T.copy()
        selected.append(i)
        rem -= rem[:, j:j + 1] * q  # Newton update: zero at the new magic index
        if stabilized:
            rem = _refine_remainder(vectors, indices, matrix, rem)[0]
    return EIMBasis(vectors, indices, matrix, np.asarray(errors), np.asarray(selected, dtype=np.intp), stabilized)

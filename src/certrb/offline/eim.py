"""Empirical interpolation of vector families: EIM, DEIM, symmetric and rectangular variants.

A family of vectors ``x(mu)`` of length K (the "functions"; entries are the
"points") is approximated by ``I[x] = sum_j lambda_j q_j`` with ``lambda`` fixed
by interpolation at magic indices ``k_j``: ``B lambda = x[k]``, where
``B[i, j] = q_j[k_i]`` is unit lower triangular.

The stabilized variant computes every remainder iteratively: interpolate the
remainder again and subtract, until its norm stops shrinking. In exact
arithmetic both variants coincide; in floating point the stabilized one keeps
remainders at round-off level once the family's span is exhausted, so its
greedy stops instead of chasing noise.

Variants (Casenave, Ern, Lelievre):

* :func:`eim_greedy` measures remainders in the max-norm, the l2-norm or the
  norm of a user inner product when it picks the next training vector; the
  magic index is always where the chosen remainder is largest in modulus.
* :func:`deim` builds the basis from the POD modes of a snapshot matrix
  (discrete EIM) and returns it in the same unit-lower-triangular form.
* :func:`symmetric_eim` interpolates a bivariate function sampled on a grid,
  ``I f(x, y) = f(x, Y) F(X, Y)^{-1} f(X, y)`` (cross approximation).
* :func:`remove_point` and :func:`interpolation_coefficients_ls` handle a
  different number of points and functions (least squares), e.g. after a
  broken sensor.

Every routine records the interpolation error on its training data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError
from ..online.interpolation import interpolation_coefficients, refine_remainder

__all__ = [
    "DEIMBasis",
    "EIMBasis",
    "RectangularEIM",
    "SymmetricEIM",
    "deim",
    "eim_greedy",
    "interpolation_coefficients_ls",
    "remove_point",
    "symmetric_eim",
]

_MAX_COND = 1e12  # square sub-systems worse than this are not used when dropping functions
_EPS = float(np.finfo(float).eps)


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
        Norm (see ``norm``) of the largest training remainder before each step and after the last.
    selected : ndarray of int, shape (m,)
        Index of the training vector chosen at each step.
    stabilized : bool
        Whether remainders are computed iteratively.
    norm : str
        Norm of the greedy step: ``"linf"``, ``"l2"`` or ``"inner"`` (a user inner product).

    """

    vectors: NDArray
    indices: NDArray[np.intp]
    matrix: NDArray
    errors: NDArray[np.float64]
    selected: NDArray[np.intp]
    stabilized: bool
    norm: str = "linf"

    @property
    def size(self) -> int:
        """Number of terms m."""
        return self.indices.size


@dataclass(frozen=True, eq=False, kw_only=True)
class DEIMBasis(EIMBasis):
    """Result of :func:`deim`: an :class:`EIMBasis` built from POD modes.

    ``vectors`` are the DEIM residuals of the POD modes (``q_j = u_j - I_{j-1}[u_j]``,
    scaled to 1 at ``k_j``): they span the same space as the first m modes, the
    interpolant equals the classical DEIM projector ``U (P^T U)^{-1} P^T``, and
    ``matrix`` is unit lower triangular as for EIM. ``selected[j] = j`` is the
    index of the POD mode behind ``q_j``; ``errors`` are max-norm remainders of
    the snapshots.

    Attributes
    ----------
    modes : ndarray, shape (m, K)
        Leading POD modes (orthonormal rows) of the snapshot matrix.
    singular_values : ndarray, shape (min(n_snap, K),)
        All singular values of the snapshot matrix, descending.

    """

    modes: NDArray
    singular_values: NDArray[np.float64]


# --- validation -----------------------------------------------------------------------------


def _check_matrix(a: ArrayLike, name: str, shape: str) -> NDArray:
    """A finite, numeric, 2-D, non-empty array, else ValueError naming ``name``."""
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"{name} must have shape {shape} with both sizes >= 1; got {arr.shape}")
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr if arr.dtype.kind in "fc" else arr.astype(float)


def _check_count(value: int | None, name: str, default: int) -> int:
    if value is None:
        return default
    if int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return min(int(value), default)


def _check_tol(value: float | None, name: str, default: float) -> float:
    if value is None:
        return default
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number; got {value!r}")
    return float(value)


def _norm_function(norm: str | ArrayLike, k: int) -> tuple[str, Callable[[NDArray], NDArray]]:
    """Label and row-wise norm ``(n, K) -> (n,)`` of the greedy step."""
    if isinstance(norm, str):
        if norm == "linf":
            return "linf", lambda r: np.max(np.abs(r), axis=1, initial=0.0)
        if norm == "l2":
            return "l2", lambda r: np.linalg.norm(r, axis=1)
        raise ValueError(f"norm must be 'linf', 'l2' or a (K, K) Hermitian positive definite matrix; got {norm!r}")
    m = np.asarray(norm)
    if m.shape != (k, k):
        raise ShapeError(f"norm matrix must have shape (K, K) = ({k}, {k}); got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("norm matrix contains NaN or infinite values")
    if np.max(np.abs(m - m.conj().T)) > 1e-12 * np.max(np.abs(m)):
        raise ValueError("norm matrix must be Hermitian")
    try:
        lower = np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        raise ValueError("norm matrix must be positive definite") from None
    lc = lower.conj()  # r^H M r = ||L^H r||^2; for rows: r^T conj(L)
    return "inner", lambda r: np.linalg.norm(r @ lc, axis=1)


# --- square interpolation -------------------------------------------------------------------


def _scaled(r: NDArray, j: int) -> NDArray:
    """``r / r[j]`` with exactly 1 at j (complex division may be off by an ulp)."""
    q = r / r[j]
    q[j] = 1.0
    return q


def eim_greedy(
    family: NDArray,
    *,
    max_terms: int | None = None,
    rtol: float | None = None,
    stabilized: bool = False,
    norm: str | ArrayLike = "linf",
) -> EIMBasis:
    """EIM greedy over a finite family of vectors.

    Parameters
    ----------
    family : ndarray, shape (n_train, K)
        Training vectors (real or complex).
    max_terms : int, optional
        Upper bound on m (default K).
    rtol : float, optional
        Stop when the largest remainder (in ``norm``) is at most ``rtol`` times the
        largest norm of a family member. Default: ``10 * K * eps``.
    stabilized : bool
        Compute remainders iteratively (see module docstring). The refinement
        sweeps always accept a sweep by the max-norm.
    norm : {"linf", "l2"} or ndarray, shape (K, K)
        Norm used to pick the training vector with the largest remainder:
        max-norm (default), Euclidean norm, or ``sqrt(r^H M r)`` for a Hermitian
        positive definite ``M``. The magic index is the entry of largest modulus
        of the chosen remainder in every case.

    Returns
    -------
    EIMBasis
        ``errors`` are measured in ``norm``.

    Raises
    ------
    ValueError
        ``family`` not 2-D, empty or non-finite; bad ``max_terms``, ``rtol`` or ``norm``.

    Examples
    --------
    >>> fam = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 2.0]])
    >>> b = eim_greedy(fam)
    >>> b.indices.tolist(), b.errors.tolist()
    ([2, 0], [2.0, 1.0, 0.0])

    """
    family = _check_matrix(family, "family", "(n_train, K)")
    k = family.shape[1]
    label, size = _norm_function(norm, k)
    m_max = _check_count(max_terms, "max_terms", k)
    tol = _check_tol(rtol, "rtol", 10 * k * _EPS) * float(np.max(size(family), initial=0.0))
    vectors = np.zeros((0, k), dtype=family.dtype)
    indices = np.zeros(0, dtype=np.intp)
    errors, selected = [], []
    rem = family.copy()
    while True:
        norms = size(rem)
        i = int(np.argmax(norms))
        errors.append(float(norms[i]))
        if indices.size >= m_max or norms[i] <= tol:
            break
        j = int(np.argmax(np.abs(rem[i])))
        if j in indices:  # remainder is noise concentrated on chosen points
            break
        vectors, indices = np.vstack([vectors, _scaled(rem[i], j)]), np.append(indices, j)
        selected.append(i)
        rem -= rem[:, j : j + 1] * vectors[-1]  # Newton update: zero at the new magic index
        if stabilized:
            rem = refine_remainder(vectors, indices, vectors[:, indices].T.copy(), rem)[0]
    matrix = vectors[:, indices].T.copy()
    return EIMBasis(vectors, indices, matrix, np.asarray(errors), np.asarray(selected, dtype=np.intp), stabilized,
                    label)


# --- DEIM -----------------------------------------------------------------------------------


def deim(
    snapshots: ArrayLike,
    *,
    n_terms: int | None = None,
    rtol: float | None = None,
    snapshot_axis: int = 1,
    stabilized: bool = False,
) -> DEIMBasis:
    """Discrete EIM: POD modes of a snapshot matrix and greedy index selection.

    The POD modes ``u_1, u_2, ..`` (right/left singular vectors, by decreasing
    singular value) are taken in order; index ``k_j`` is where the DEIM residual
    ``u_j - I_{j-1}[u_j]`` is largest in modulus.

    Parameters
    ----------
    snapshots : ndarray, shape (K, n_snap) or (n_snap, K)
        Snapshot matrix (real or complex); see ``snapshot_axis``.
    n_terms : int, optional
        Number of modes m (at most the numerical rank).
    rtol : float, optional
        Keep the modes with singular value ``> rtol * sigma_1``.
        Default ``max(K, n_snap) * eps`` (the numerical rank).
    snapshot_axis : {1, 0}
        1: snapshots are columns, shape (K, n_snap) (the DEIM convention);
        0: snapshots are rows, shape (n_snap, K) (the :func:`eim_greedy` convention).
    stabilized : bool
        Mark the basis as stabilized and compute the error history iteratively.

    Returns
    -------
    DEIMBasis
        ``errors[l]``: largest max-norm remainder of a snapshot with l terms, shape (m + 1,).

    Raises
    ------
    ValueError
        ``snapshots`` not 2-D, empty or non-finite; bad ``snapshot_axis``, ``n_terms`` or ``rtol``.

    """
    s_mat = _check_matrix(snapshots, "snapshots", "(K, n_snap) or (n_snap, K)")
    if snapshot_axis not in (0, 1):
        raise ValueError(f"snapshot_axis must be 0 (rows) or 1 (columns); got {snapshot_axis!r}")
    rows = s_mat.T if snapshot_axis == 1 else s_mat  # (n_snap, K)
    _, sigma, vh = np.linalg.svd(rows, full_matrices=False)
    cut = _check_tol(rtol, "rtol", max(rows.shape) * _EPS) * (sigma[0] if sigma.size else 0.0)
    rank = int(np.count_nonzero(sigma > cut)) if sigma[0] > 0 else 0
    m = _check_count(n_terms, "n_terms", rank)
    vectors, indices, errors = _deim_indices(vh[:m], rows, stabilized)
    matrix = vectors[:, indices].T.copy()
    selected = np.arange(indices.size, dtype=np.intp)
    return DEIMBasis(vectors, indices, matrix, errors, selected, stabilized, "linf",
                     modes=vh[: indices.size].copy(), singular_values=sigma)


def _deim_indices(modes: NDArray, rows: NDArray, stabilized: bool) -> tuple[NDArray, NDArray, NDArray]:
    """Greedy DEIM indices of modes (m, K); error history on snapshots rows (n_snap, K)."""
    k = modes.shape[1]
    vectors = np.zeros((0, k), dtype=np.result_type(modes.dtype, rows.dtype))
    indices = np.zeros(0, dtype=np.intp)
    rem_modes, rem = modes.copy(), rows.copy()
    errors = [float(np.max(np.abs(rem)))]
    for u in range(modes.shape[0]):
        j = int(np.argmax(np.abs(rem_modes[u])))
        if rem_modes[u, j] == 0 or j in indices:  # mode in the span already (round-off)
            break
        vectors, indices = np.vstack([vectors, _scaled(rem_modes[u], j)]), np.append(indices, j)
        rem_modes -= rem_modes[:, j : j + 1] * vectors[-1]
        rem -= rem[:, j : j + 1] * vectors[-1]
        if stabilized:
            matrix = vectors[:, indices].T.copy()
            rem_modes = refine_remainder(vectors, indices, matrix, rem_modes)[0]
            rem = refine_remainder(vectors, indices, matrix, rem)[0]
        errors.append(float(np.max(np.abs(rem))))
    return vectors, indices, np.asarray(errors)


# --- symmetric formulation ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SymmetricEIM:
    """Symmetric EIM of a bivariate function: ``I f(x, y) = f(x, Y) F(X, Y)^{-1} f(X, y)``.

    Attributes
    ----------
    rows : ndarray of int, shape (m,)
        Selected x-indices ``X``.
    cols : ndarray of int, shape (m,)
        Selected y-indices ``Y``.
    core : ndarray, shape (m, m)
        ``F(X, Y) = F[rows][:, cols]``.
    lower : ndarray, shape (m, m)
        Unit lower-triangular factor, ``core = lower @ upper`` (entries bounded by 1).
    upper : ndarray, shape (m, m)
        Upper-triangular factor; its diagonal holds the pivots.
    errors : ndarray, shape (m + 1,)
        Max-norm of the remainder ``F - I F`` on the grid before each step and after the last.

    """

    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    core: NDArray
    lower: NDArray
    upper: NDArray
    errors: NDArray[np.float64]

    @property
    def size(self) -> int:
        """Number of terms m."""
        return self.rows.size

    def interpolate(self, f_x_cols: ArrayLike, f_rows_y: ArrayLike) -> NDArray:
        """Evaluate ``I f`` at any points x, y (on or off the grid) from f's cross values.

        Only ``f(x, Y)`` (m values per x) and ``f(X, y)`` (m values per y) are needed,
        e.g. a new parameter y costs m evaluations of f.

        Parameters
        ----------
        f_x_cols : ndarray, shape (n_x, m)
            ``f(x, Y)`` at the new points x.
        f_rows_y : ndarray, shape (m, n_y)
            ``f(X, y)`` at the new points y.

        Returns
        -------
        ndarray, shape (n_x, n_y)
            ``f(x, Y) F(X, Y)^{-1} f(X, y)``.

        """
        a, b = np.asarray(f_x_cols), np.asarray(f_rows_y)
        m = self.size
        if a.ndim != 2 or a.shape[1] != m:
            raise ShapeError(f"f_x_cols must have shape (n_x, {m}); got {a.shape}")
        if b.ndim != 2 or b.shape[0] != m:
            raise ShapeError(f"f_rows_y must have shape ({m}, n_y); got {b.shape}")
        if m == 0:
            return np.zeros((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
        t = sla.solve_triangular(self.lower, b, lower=True, unit_diagonal=True)
        return a @ sla.solve_triangular(self.upper, t, lower=False)

    def approximate(self, grid_values: ArrayLike) -> NDArray:
        """Interpolant of a function sampled on the whole grid, (n_x, n_y) -> (n_x, n_y)."""
        f = np.asarray(grid_values)
        return self.interpolate(f[:, self.cols], f[self.rows, :])


def symmetric_eim(values: ArrayLike, *, max_terms: int | None = None, rtol: float | None = None) -> SymmetricEIM:
    """Symmetric EIM (cross approximation with full pivoting) of ``F[i, j] = f(x_i, y_j)``.

    Step m picks the entry of largest modulus of the remainder ``F - I_{m-1} F``;
    its row and column join ``X`` and ``Y``. The interpolant is exact on the
    selected rows and columns and reproduces functions of rank <= m exactly.

    Parameters
    ----------
    values : ndarray, shape (n_x, n_y)
        Samples of f on the grid (real or complex).
    max_terms : int, optional
        Upper bound on m (default ``min(n_x, n_y)``).
    rtol : float, optional
        Stop when the max-norm remainder is at most ``rtol * max|F|``.
        Default ``10 * max(n_x, n_y) * eps``.

    Returns
    -------
    SymmetricEIM

    Raises
    ------
    ValueError
        ``values`` not 2-D, empty or non-finite; bad ``max_terms`` or ``rtol``.

    Examples
    --------
    >>> x = np.linspace(0.0, 1.0, 5)
    >>> s = symmetric_eim(np.outer(x, x) + np.outer(x**2, np.ones(5)))
    >>> s.size, bool(s.errors[-1] < 1e-15)
    (2, True)

    """
    f = _check_matrix(values, "values", "(n_x, n_y)")
    m_max = _check_count(max_terms, "max_terms", min(f.shape))
    tol = _check_tol(rtol, "rtol", 10 * max(f.shape) * _EPS) * float(np.max(np.abs(f)))
    rem = f.copy()
    rows: list[int] = []
    cols: list[int] = []
    col_factors, row_factors, errors = [], [], []
    while True:
        i, j = np.unravel_index(int(np.argmax(np.abs(rem))), rem.shape)
        errors.append(float(np.abs(rem[i, j])))
        if len(rows) >= m_max or errors[-1] <= tol:
            break
        col_factors.append(rem[:, j] / rem[i, j])
        row_factors.append(rem[i, :].copy())
        rem -= np.outer(col_factors[-1], row_factors[-1])
        rows.append(int(i))
        cols.append(int(j))
    r, c = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    lower = np.array(col_factors, dtype=f.dtype).reshape(-1, f.shape[0])[:, r].T
    upper = np.array(row_factors, dtype=f.dtype).reshape(-1, f.shape[1])[:, c]
    return SymmetricEIM(r, c, f[np.ix_(r, c)], np.tril(lower), np.triu(upper), np.asarray(errors))


# --- rectangular extension ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RectangularEIM:
    """Least-squares interpolation with p points and n functions (n <= p for exactness).

    Attributes
    ----------
    vectors : ndarray, shape (n, K)
        Basis functions kept.
    indices : ndarray of int, shape (p,)
        Interpolation points.
    pseudo_inverse : ndarray, shape (n, p)
        ``pinv(vectors[:, indices].T)``: coefficients are ``x[:, indices] @ pseudo_inverse.T``.
    functions : ndarray of int, shape (n,)
        Positions of the kept functions in the basis this one was derived from.
    errors : ndarray, shape (2,)
        Max-norm remainder on the training family before and after the change.

    """

    vectors: NDArray
    indices: NDArray[np.intp]
    pseudo_inverse: NDArray
    functions: NDArray[np.intp]
    errors: NDArray[np.float64]

    @property
    def size(self) -> int:
        """Number of functions n."""
        return self.vectors.shape[0]

    def coefficients(self, x: ArrayLike) -> NDArray:
        """Coefficients of a batch ``x`` (n_x, K) -> (n_x, n)."""
        xa = _check_batch(x, "x", self.vectors.shape[1])
        return xa[:, self.indices] @ self.pseudo_inverse.T

    def interpolate(self, x: ArrayLike) -> NDArray:
        """Interpolant of a batch ``x`` (n_x, K) -> (n_x, K)."""
        return self.coefficients(x) @ self.vectors


def _check_batch(x: ArrayLike, name: str, k: int) -> NDArray:
    xa = np.asarray(x)
    if xa.ndim != 2 or xa.shape[1] != k:
        raise ShapeError(f"{name} must have shape (n, K) = (n, {k}); got {xa.shape}")
    if not np.all(np.isfinite(xa)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return xa


def interpolation_coefficients_ls(
    vectors: ArrayLike, points: ArrayLike, x: ArrayLike, *, rcond: float | None = None
) -> NDArray:
    """Least-squares interpolation coefficients with p points and n functions.

    Minimizes ``||lambda Q[:, P] - x[:, P]||_2`` per row; with n <= p points in
    general position the interpolant is exact on the span of the functions,
    with n > p it is the minimum-norm solution (it interpolates at the points).

    Parameters
    ----------
    vectors : ndarray, shape (n, K)
        Functions ``q_j``.
    points : ndarray of int, shape (p,)
        Distinct point indices in ``[0, K)``.
    x : ndarray, shape (n_x, K)
        Vectors to interpolate.
    rcond : float, optional
        Relative cut-off of small singular values (see :func:`numpy.linalg.pinv`).

    Returns
    -------
    ndarray, shape (n_x, n)

    Raises
    ------
    ValueError
        Inconsistent shapes, non-finite values, or bad ``points``.

    """
    q = _check_matrix(vectors, "vectors", "(n, K)")
    p = _check_points(points, q.shape[1])
    xa = _check_batch(x, "x", q.shape[1])
    return xa[:, p] @ _pinv(q[:, p].T, rcond).T


def _pinv(a: NDArray, rcond: float | None) -> NDArray:
    if a.size == 0:
        return np.zeros(a.shape[::-1], dtype=a.dtype)
    return np.linalg.pinv(a) if rcond is None else np.linalg.pinv(a, rcond=rcond)


def _check_points(points: ArrayLike, k: int) -> NDArray[np.intp]:
    p = np.asarray(points)
    if p.ndim != 1 or (p.size and p.dtype.kind not in "iu"):
        raise ValueError(f"points must be a 1-D integer array; got shape {p.shape}, dtype {p.dtype}")
    if p.size and (p.min() < 0 or p.max() >= k or np.unique(p).size != p.size):
        raise ValueError(f"points must be distinct indices in [0, {k})")
    return p.astype(np.intp)


def remove_point(
    basis: EIMBasis | RectangularEIM, j: int, family: ArrayLike, *, keep_functions: bool = False
) -> RectangularEIM:
    """Drop interpolation point ``basis.indices[j]`` (e.g. a broken sensor).

    With ``keep_functions=False`` (default) functions are dropped, one at a time,
    until there are as many as points; each time the one whose removal gives the
    smallest max-norm remainder on ``family`` among the well-conditioned choices.
    The result is a square, exact interpolation on the span it keeps. With
    ``keep_functions=True`` all n functions stay and the coefficients are the
    minimum-norm least-squares solution (it still interpolates at the p - 1
    remaining points, but is exact only on an (p - 1)-dimensional subspace).

    Parameters
    ----------
    basis : EIMBasis or RectangularEIM
        Interpolation to modify (chaining removes several points).
    j : int
        Position of the point to remove in ``basis.indices``.
    family : ndarray, shape (n_train, K)
        Training vectors on which the error is measured.
    keep_functions : bool
        Keep every function (least squares) instead of dropping some.

    Returns
    -------
    RectangularEIM
        ``errors = [before, after]`` on ``family``.

    Raises
    ------
    ValueError
        ``j`` out of range, ``family`` malformed.

    """
    fam = _check_matrix(family, "family", "(n_train, K)")
    k = basis.vectors.shape[1]
    if fam.shape[1] != k:
        raise ShapeError(f"family must have shape (n_train, K) = (n_train, {k}); got {fam.shape}")
    n_points = basis.indices.size
    if int(j) != j or not 0 <= j < n_points:
        raise ValueError(f"j must be an integer in [0, {n_points}); got {j!r}")
    before = _max_error(fam, _coefficients(basis, fam) @ basis.vectors)
    points = np.delete(basis.indices, int(j))
    funcs = np.arange(basis.vectors.shape[0], dtype=np.intp)
    while not keep_functions and funcs.size > points.size:
        funcs = _drop_best(basis.vectors, funcs, points, fam)
    q = basis.vectors[funcs]
    pinv = _pinv(q[:, points].T, None)
    after = _max_error(fam, fam[:, points] @ pinv.T @ q)
    return RectangularEIM(q, points, pinv, funcs, np.array([before, after]))


def _coefficients(basis: EIMBasis | RectangularEIM, x: NDArray) -> NDArray:
    if isinstance(basis, RectangularEIM):
        return basis.coefficients(x)
    return interpolation_coefficients(basis.vectors, basis.indices, basis.matrix, x, stabilized=basis.stabilized)


def _max_error(x: NDArray, approx: NDArray) -> float:
    return float(np.max(np.abs(x - approx), initial=0.0))


def _drop_best(vectors: NDArray, funcs: NDArray, points: NDArray, family: NDArray) -> NDArray:
    """Remove from ``funcs`` the function whose loss hurts least on ``family``.

    Candidates whose square point matrix has condition number above ``_MAX_COND``
    are ranked after the others, by condition number.
    """
    scores = []
    for i in range(funcs.size):
        q = vectors[np.delete(funcs, i)]
        a = q[:, points].T
        s = np.linalg.svd(a, compute_uv=False)
        cond = float(s[0] / s[-1]) if s.size and s[-1] > 0 else (1.0 if not s.size else np.inf)
        if cond > _MAX_COND:
            scores.append((1, cond))
        else:
            scores.append((0, _max_error(family, family[:, points] @ _pinv(a, None).T @ q)))
    return np.delete(funcs, min(range(funcs.size), key=scores.__getitem__))

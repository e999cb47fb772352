"""Nonintrusive matrix EIM (Casenave, Ern, Lelievre) for black-box operators and vectors.

A parameter-dependent matrix ``A(mu)`` is treated as a function of (entry, mu).
The greedy picks parameters ``mu_m`` and magic entries ``e_m = (i_m, j_m)`` so
that ``A(mu) ~ I_M[A](mu) = sum_m beta_m(mu) A(mu_m)``, where ``beta(mu)`` solves
the interpolation conditions ``I_M[A](mu)[e_l] = A(mu)[e_l]``, l = 1..M.

Offline (:func:`matrix_eim`) needs two callables: ``entry(mu, rows, cols)`` for
selected entries and ``matrix(mu)`` for whole snapshots. Step m

1. picks the training parameter whose interpolation error on a set of candidate
   entries is largest (max modulus), relative to the largest candidate entry;
2. forms the full residual ``A(mu_m) - I_{m-1}[A](mu_m)`` and takes its entry of
   largest modulus as the magic entry;
3. evaluates that entry for every training parameter (``entry``, one entry each).

Internally the interpolant uses the Newton basis ``q_m`` (residuals scaled to 1 at
their magic entry, zero at the earlier ones), so ``B[l, k] = q_k[e_l]`` is unit
lower triangular; ``q_k = sum_l T[l, k] A(mu_l)`` with ``T`` upper triangular, and
``beta = T B^{-1} a(mu)`` with ``a(mu)`` the M magic entries of ``A(mu)``. Online
(:meth:`MatrixEIM.coefficients`) only those M entries are evaluated, so the
method applies whenever single entries are cheap (boundary elements). Since
``beta_m(mu_l) = delta_ml``, the ``beta_m`` are Lagrange functions in the parameter.

:func:`vector_eim` does the same for right-hand sides ``f(mu)`` with
``entry(mu, rows)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError

__all__ = ["MatrixEIM", "matrix_eim", "vector_eim"]

_CONSISTENCY_RTOL = 1e-8  # entry(...) and matrix(...) must agree to this, relative to max |entry|
_CANDIDATE_MODES = ("auto", "pattern", "all", "random")

Index = tuple[NDArray[np.intp], ...]


@dataclass(frozen=True, eq=False)
class MatrixEIM:
    """Result of :func:`matrix_eim` or :func:`vector_eim`.

    Attributes
    ----------
    parameters : ndarray, shape (m, P) or (m,)
        Selected parameters ``mu_m`` (rows of ``train``).
    entries : ndarray of int, shape (m, 2) or (m, 1)
        Magic entries ``(i_m, j_m)`` (matrices) or ``(i_m,)`` (vectors).
    matrices : tuple of m matrices or vectors
        Snapshots ``A(mu_m)``: scipy.sparse CSR or dense (n_rows, n_cols) arrays,
        or (n,) vectors for :func:`vector_eim`.
    matrix : ndarray, shape (m, m)
        Unit lower-triangular interpolation matrix ``B[l, k] = q_k[e_l]``.
    transform : ndarray, shape (m, m)
        Upper triangular ``T`` with ``q_k = sum_l T[l, k] A(mu_l)``.
    errors : ndarray, shape (m + 1,)
        Max over ``train`` of the max-modulus candidate-entry error, relative to the
        largest candidate entry, before each step and after the last.
    selected : ndarray of int, shape (m,)
        Indices of the selected parameters in ``train``.
    entry : callable
        The ``entry`` callable, used online.
    kind : {"matrix", "vector"}
        Whether ``entry`` takes ``(mu, rows, cols)`` or ``(mu, rows)``.

    """

    parameters: NDArray
    entries: NDArray[np.intp]
    matrices: tuple[Any, ...]
    matrix: NDArray
    transform: NDArray
    errors: NDArray[np.float64]
    selected: NDArray[np.intp]
    entry: Callable[..., ArrayLike]
    kind: str

    @property
    def size(self) -> int:
        """Number of terms m."""
        return self.entries.shape[0]

    def magic_values(self, mus: ArrayLike) -> NDArray:
        """The m magic entries of ``A(mu)`` for a batch: (n_mu, P) or (n_mu,) -> (n_mu, m).

        One ``entry`` call per parameter, with exactly the m magic entries.
        """
        batch = _check_batch(mus, self.parameters)
        index = tuple(self.entries[:, d] for d in range(self.entries.shape[1]))
        if self.size == 0:
            return np.zeros((len(batch), 0))
        return np.stack([_call_entry(self.entry, mu, index) for mu in batch])

    def coefficients_from_values(self, values: ArrayLike) -> NDArray:
        """Coefficients ``beta`` from magic-entry values (n_mu, m) -> (n_mu, m)."""
        a = np.asarray(values)
        if a.ndim != 2 or a.shape[1] != self.size:
            raise ShapeError(f"values must have shape (n_mu, m) = (n_mu, {self.size}); got {a.shape}")
        if self.size == 0:
            return np.zeros(a.shape, dtype=a.dtype)
        lam = sla.solve_triangular(self.matrix, a.T, lower=True, unit_diagonal=True)
        return (self.transform @ lam).T

    def coefficients(self, mus: ArrayLike) -> NDArray:
        """Coefficients ``beta(mu)`` of a batch: (n_mu, P) or (n_mu,) -> (n_mu, m) (the online step)."""
        return self.coefficients_from_values(self.magic_values(mus))

    def approximate(self, mu: Any) -> Any:
        """``sum_m beta_m(mu) A(mu_m)`` for one parameter (an offline check)."""
        if self.size == 0:
            raise ValueError("the interpolant has no terms")
        beta = self.coefficients([mu])[0]
        out = beta[0] * self.matrices[0]
        for b, a in zip(beta[1:], self.matrices[1:], strict=True):
            out = out + b * a
        return out


# --- validation of user callables -----------------------------------------------------------


def _check_train(train: ArrayLike) -> NDArray:
    t = np.asarray(train)
    if t.ndim not in (1, 2) or t.shape[0] == 0 or (t.ndim == 2 and t.shape[1] == 0):
        raise ShapeError(f"train must have shape (n_train, P) or (n_train,) with sizes >= 1; got {t.shape}")
    if t.dtype.kind not in "biufc" or not np.all(np.isfinite(t)):
        raise ValueError("train must hold finite numbers")
    return t


def _check_batch(mus: ArrayLike, parameters: NDArray) -> NDArray:
    b = np.asarray(mus)
    if parameters.ndim == 2 and b.ndim == 1:
        b = b[None, :]
    if b.ndim != parameters.ndim or b.shape[1:] != parameters.shape[1:]:
        want = "(n_mu,)" if parameters.ndim == 1 else f"(n_mu, {parameters.shape[1]})"
        raise ShapeError(f"mus must have shape {want}; got {b.shape}")
    if b.dtype.kind not in "biufc" or not np.all(np.isfinite(b)):
        raise ValueError("mus must hold finite numbers")
    return b


def _call_entry(entry: Callable[..., ArrayLike], mu: Any, index: Index) -> NDArray:
    """``entry(mu, *index)``, checked: shape (n_entries,), numeric and finite."""
    n = index[0].size
    vals = np.asarray(entry(mu, *index))
    if vals.shape != (n,):
        raise ValueError(f"entry must return an array of shape (n_entries,) = ({n},); got {vals.shape}")
    if vals.dtype.kind not in "biufc":
        raise ValueError(f"entry must return numbers; got dtype {vals.dtype}")
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"entry returned NaN or infinite values at mu={mu!r}")
    return vals


def _call_full(full: Callable[[Any], Any], mu: Any, kind: str, shape: tuple[int, ...] | None) -> Any:
    """``matrix(mu)`` (CSR or dense 2-D) or ``vector(mu)`` (dense 1-D), checked."""
    name = "matrix" if kind == "matrix" else "vector"
    out = full(mu)
    if kind == "matrix" and sp.issparse(out):
        out = sp.csr_matrix(out)
        data = out.data
    else:
        out = np.asarray(out)
        if out.dtype.kind not in "biufc":
            raise ValueError(f"{name} must return numbers; got dtype {out.dtype}")
        data = out
    ndim = 2 if kind == "matrix" else 1
    if len(out.shape) != ndim or (shape is not None and out.shape != shape):
        want = shape if shape is not None else f"a {ndim}-D array"
        raise ValueError(f"{name} must return {want}; got shape {out.shape} at mu={mu!r}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{name} returned NaN or infinite values at mu={mu!r}")
    return out


def _values(a: Any, index: Index) -> NDArray:
    """Entries ``a[index]`` of a CSR or dense snapshot as a 1-D array."""
    return np.asarray(a[index]).ravel()


def _argmax_entry(a: Any) -> tuple[tuple[int, ...], complex]:
    """Position and value of the entry of largest modulus."""
    if sp.issparse(a):
        coo = a.tocoo()
        if coo.nnz == 0:
            return (0, 0), 0.0
        k = int(np.argmax(np.abs(coo.data)))
        return (int(coo.row[k]), int(coo.col[k])), coo.data[k]
    pos = np.unravel_index(int(np.argmax(np.abs(a))), a.shape)
    return tuple(int(p) for p in pos), a[pos]


# --- candidate entries ----------------------------------------------------------------------


def _candidates(spec: Any, first: Any, kind: str, n_random: int, rng: np.random.Generator) -> Index:
    """Candidate entries as a tuple of index arrays (one per dimension)."""
    shape = first.shape
    if isinstance(spec, str):
        if spec not in _CANDIDATE_MODES:
            raise ValueError(f"candidate_entries must be one of {_CANDIDATE_MODES} or index arrays; got {spec!r}")
        size = int(np.prod(shape))
        if spec == "auto":
            spec = "pattern" if sp.issparse(first) else ("all" if size <= n_random else "random")
        if spec == "pattern":
            idx = first.nonzero()
            return tuple(np.asarray(i, dtype=np.intp) for i in idx)
        flat = np.arange(size) if spec == "all" else np.sort(rng.choice(size, min(n_random, size), replace=False))
        return tuple(np.asarray(i, dtype=np.intp) for i in np.unravel_index(flat, shape))
    return _check_index(spec, shape, kind)


def _nonempty(cand: Index) -> Index:
    if cand[0].size == 0:
        raise ValueError("candidate_entries is empty (the first snapshot has no nonzero entry?)")
    return cand


def _check_index(spec: Any, shape: tuple[int, ...], kind: str) -> Index:
    want = "(rows, cols)" if kind == "matrix" else "(rows,)"
    arrays = tuple(np.asarray(a) for a in (spec if isinstance(spec, tuple | list) else (spec,)))
    if len(arrays) != len(shape) or any(a.ndim != 1 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"candidate_entries must be a tuple {want} of equal-length 1-D integer arrays")
    if arrays[0].size == 0 or any(a.dtype.kind not in "iu" for a in arrays):
        raise ValueError(f"candidate_entries must be a non-empty tuple {want} of integer arrays")
    if any(a.min() < 0 or a.max() >= n for a, n in zip(arrays, shape, strict=True)):
        raise ValueError(f"candidate_entries out of range for shape {shape}")
    return tuple(a.astype(np.intp) for a in arrays)


# --- the greedy -----------------------------------------------------------------------------


class _Greedy:
    """Mutable state of the greedy (internal)."""

    def __init__(self, entry: Callable[..., ArrayLike], full: Callable[[Any], Any], kind: str,
                 train: NDArray, cand: Index, first: Any) -> None:
        self.entry, self.full, self.kind, self.train, self.cand = entry, full, kind, train, cand
        self.shape = first.shape
        self.rem = np.stack([_call_entry(entry, mu, cand) for mu in train])  # (n_train, c)
        self.scale = float(np.max(np.abs(self.rem)))
        self.lam = np.zeros((train.shape[0], 0), dtype=self.rem.dtype)  # Newton coefficients
        self.q: list[Any] = []
        self.snapshots: list[Any] = []
        self.entries: list[tuple[int, ...]] = []
        self.selected: list[int] = []
        self.matrix = np.zeros((0, 0), dtype=self.rem.dtype)
        self.transform = np.zeros((0, 0), dtype=self.rem.dtype)
        self.errors = [self._error()]
        self._first = first

    def _error(self) -> float:
        return float(np.max(np.abs(self.rem))) / self.scale if self.scale > 0 else 0.0

    def _residual(self, t: int) -> tuple[Any, Any]:
        """Snapshot ``A(mu_t)`` and its full residual ``A(mu_t) - I[A](mu_t)``."""
        a = self._first if t == 0 else _call_full(self.full, self.train[t], self.kind, self.shape)
        res = a
        for c, q in zip(self.lam[t], self.q, strict=True):
            res = res - c * q
        return a, res

    def step(self) -> bool:
        """One greedy step; False when the greedy cannot continue."""
        t = int(np.argmax(np.max(np.abs(self.rem), axis=1)))
        if t in self.selected:
            return False
        a, res = self._residual(t)
        pos, val = _argmax_entry(res)
        if val == 0 or pos in self.entries:
            return False
        q = res / val
        index = tuple(np.array([p], dtype=np.intp) for p in pos)
        col = np.array([_call_entry(self.entry, mu, index)[0] for mu in self.train])
        qvals = np.array([_values(qk, index)[0] for qk in self.q], dtype=self.rem.dtype)
        rmag = col - self.lam @ qvals
        if abs(rmag[t] - val) > _CONSISTENCY_RTOL * self.scale:
            raise ValueError(f"entry and {self.kind} disagree at mu={self.train[t]!r}, entry {pos}: "
                             f"interpolation remainder {rmag[t]!r} from entry vs {val!r} from {self.kind}")
        self._append(t, a, q, pos, qvals, val)
        self.rem = self.rem - np.outer(rmag, _values(q, self.cand))
        self.lam = np.column_stack([self.lam, rmag])
        self.errors.append(self._error())
        return True

    def _append(self, t: int, a: Any, q: Any, pos: tuple[int, ...], qvals: NDArray, val: complex) -> None:
        m = len(self.q)
        dtype = np.result_type(self.matrix.dtype, qvals.dtype, np.asarray(val).dtype)
        b = np.zeros((m + 1, m + 1), dtype=dtype)
        b[:m, :m], b[m, :m], b[m, m] = self.matrix, qvals, 1.0
        tr = np.zeros((m + 1, m + 1), dtype=np.result_type(dtype, self.lam.dtype))
        tr[:m, :m] = self.transform
        tr[m, m] = 1.0
        tr[:, m] = (tr[:, m] - tr[:, :m] @ self.lam[t]) / val
        self.matrix, self.transform = b, tr
        self.q.append(q)
        self.snapshots.append(a)
        self.entries.append(pos)
        self.selected.append(t)


def _run(entry: Callable[..., ArrayLike], full: Callable[[Any], Any], kind: str, train: ArrayLike,
         candidate_entries: Any, tol: float, max_terms: int | None, n_random: int,
         rng: np.random.Generator | int | None) -> MatrixEIM:
    mus = _check_train(train)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite non-negative number; got {tol!r}")
    if max_terms is not None and (int(max_terms) != max_terms or max_terms < 0):
        raise ValueError(f"max_terms must be a non-negative integer; got {max_terms!r}")
    if int(n_random) != n_random or n_random < 1:
        raise ValueError(f"n_random must be a positive integer; got {n_random!r}")
    first = _call_full(full, mus[0], kind, None)
    cand = _nonempty(_candidates(candidate_entries, first, kind, int(n_random), np.random.default_rng(rng)))
    g = _Greedy(entry, full, kind, mus, cand, first)
    m_max = mus.shape[0] if max_terms is None else min(int(max_terms), mus.shape[0])
    while len(g.q) < m_max and g.errors[-1] > tol and g.step():
        pass
    entries = np.array(g.entries, dtype=np.intp).reshape(-1, len(g.shape))
    sel = np.array(g.selected, dtype=np.intp)
    return MatrixEIM(mus[sel], entries, tuple(g.snapshots), g.matrix, g.transform, np.asarray(g.errors), sel,
                     entry, kind)


def matrix_eim(
    entry: Callable[..., ArrayLike],
    matrix: Callable[[Any], Any],
    train: ArrayLike,
    *,
    candidate_entries: str | tuple[ArrayLike, ArrayLike] = "auto",
    tol: float = 1e-12,
    max_terms: int | None = None,
    n_random: int = 10_000,
    rng: np.random.Generator | int | None = None,
) -> MatrixEIM:
    """Nonintrusive matrix EIM of ``A(mu)`` (see the module docstring).

    Parameters
    ----------
    entry : callable
        ``entry(mu, rows, cols) -> values``, shape (n_entries,): the entries
        ``A(mu)[rows[k], cols[k]]`` (real or complex) for int arrays ``rows, cols``.
    matrix : callable
        ``matrix(mu) -> A(mu)``, scipy.sparse or dense, shape (n_rows, n_cols).
    train : ndarray, shape (n_train, P) or (n_train,)
        Training parameters; callables receive ``train[t]`` (a row, or a scalar).
    candidate_entries : {"auto", "pattern", "all", "random"} or (rows, cols)
        Entries on which training errors are measured: the stored entries of
        ``A(train[0])`` ("pattern"), every entry ("all"), ``n_random`` random
        entries ("random"), or explicit index arrays. "auto": "pattern" for a
        sparse first snapshot, else "all" up to ``n_random`` entries, else "random".
    tol : float
        Stop when the relative candidate error (``errors``) is at most ``tol``.
    max_terms : int, optional
        Upper bound on m (default ``n_train``).
    n_random : int
        Number of random candidate entries.
    rng : numpy.random.Generator, int or None
        Randomness for "random" candidates.

    Returns
    -------
    MatrixEIM

    Raises
    ------
    ValueError
        Malformed ``train`` or options; ``entry``/``matrix`` returning wrong shapes,
        non-numbers, NaN or infinite values, or disagreeing with each other.

    """
    return _run(entry, matrix, "matrix", train, candidate_entries, tol, max_terms, n_random, rng)


def vector_eim(
    entry: Callable[..., ArrayLike],
    vector: Callable[[Any], ArrayLike],
    train: ArrayLike,
    *,
    candidate_entries: str | tuple[ArrayLike] = "auto",
    tol: float = 1e-12,
    max_terms: int | None = None,
    n_random: int = 10_000,
    rng: np.random.Generator | int | None = None,
) -> MatrixEIM:
    """Nonintrusive EIM of a parameter-dependent vector ``f(mu)`` (e.g. a right-hand side).

    As :func:`matrix_eim` with ``entry(mu, rows) -> values`` (n_entries,) and
    ``vector(mu) -> f(mu)``, a dense (n,) array; ``candidate_entries`` may be
    ``(rows,)``; ``entries`` of the result have shape (m, 1).
    """
    return _run(entry, vector, "vector", train, candidate_entries, tol, max_terms, n_random, rng)

"""Online stage of non-affine terms interpolated by the matrix EIM, and their interpolation-error indicators.

A matrix or vector EIM (:func:`certrb.matrix_eim`, :func:`certrb.vector_eim`) makes a
black-box ``A(mu)`` affine, ``A_M(mu) = sum_{m < M} beta_m(mu) A(mu_m)``. Online, the
coefficients ``beta(mu) = T B^{-1} a(mu)`` need only the magic entries ``a(mu)`` of
``A(mu)``, the unit lower-triangular ``B`` and the upper triangular ``T``
(:class:`MagicEntries`, :class:`InterpolatedCoefficients`): no snapshot.

The interpolation error is estimated, not bounded, by the distance of the M-term
interpolant to a finer one of M' > M terms: :class:`InterpolationIndicator` for the
operator, ``||(A_M'(mu) - A_M(mu)) u_N(mu)||_{V'}``, :class:`RhsIndicator` for the
right-hand side, ``||f_M'(mu) - f_M(mu)||_{V'}``, and :class:`InterpolationBound`
for both (the ``interpolation`` of a :class:`~certrb.online.model.ReducedModel`).
Their builders are in :mod:`certrb.offline.nonaffine`.

Each is plain data: ``to_arrays()`` gives flat numeric arrays (nested objects under
key prefixes) and the classmethod ``from_arrays`` checks and rebuilds them bit for
bit. :data:`RECORDS` names the classes a model file stores this way, and
:data:`ENTRIES` the entry evaluators a stored :class:`MagicEntries` may hold (data
classes such as :class:`certrb.bem.entries.CombinedFieldBlock`, never a user's
callable): loading a model runs no code named by the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.linalg as sla
from numpy.typing import ArrayLike, NDArray

from ..bem.entries import CombinedFieldBlock, PlaneWaveBlock
from ..errors import ShapeError

__all__ = ["ENTRIES", "RECORDS", "InterpolatedCoefficients", "InterpolationBound", "InterpolationIndicator",
           "MagicEntries", "RhsIndicator", "coefficient_gap"]

ENTRIES: dict[str, Any] = {cls.kind: cls for cls in (CombinedFieldBlock, PlaneWaveBlock)}
"""Entry evaluators a stored :class:`MagicEntries` may hold: kind -> data class with ``arity`` (2 for
matrix entries, 1 for vector entries), ``to_arrays(prefix)``, classmethod ``from_arrays(arrays, prefix)``
and ``check_index(*index)``."""

_ENTRY = "entry/"  # key prefix of the entry evaluator's arrays, followed by its kind and "/"


@dataclass(frozen=True, eq=False)
class MagicEntries:
    """The online part of a matrix or vector EIM of M' terms (from :func:`certrb.offline.nonaffine.magic_entries`).

    Attributes
    ----------
    entry : callable
        ``entry(mu, rows, cols)`` (a matrix EIM) or ``entry(mu, rows)`` (a vector EIM)
        for one parameter ``mu`` (P,): the entries as an array of shape (n_entries,).
        Only a data evaluator of :data:`ENTRIES` can be stored (:meth:`to_arrays`).
    entries : ndarray of int, shape (M', 2) or (M', 1)
        The magic entries ``(i_m, j_m)`` or ``(i_m,)``.
    matrix : ndarray, shape (M', M')
        Unit lower-triangular interpolation matrix ``B``.
    transform : ndarray, shape (M', M')
        Upper triangular ``T`` of the Newton basis.
    """

    kind: ClassVar[str] = "magic-entries"
    entry: Callable[..., ArrayLike]
    entries: NDArray[np.intp]
    matrix: NDArray
    transform: NDArray

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """``entries``, ``matrix``, ``transform`` and the entry evaluator's arrays under ``entry/<kind>/``.

        Raises
        ------
        TypeError
            If ``entry`` is not one of the data evaluators of :data:`ENTRIES` (a callable
            is code, not data: it cannot be stored).
        """
        entry: Any = self.entry
        kind = str(getattr(type(entry), "kind", ""))
        if ENTRIES.get(kind) is not type(entry):
            raise TypeError(f"the entry evaluator of these magic entries is a {type(entry).__name__}, not one "
                            f"of the data evaluators {sorted(ENTRIES)}: a callable cannot be stored as data")
        return {prefix + "entries": self.entries.astype(np.int64), prefix + "matrix": self.matrix,
                prefix + "transform": self.transform, **entry.to_arrays(f"{prefix}{_ENTRY}{kind}/")}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> MagicEntries:
        """Rebuild from :meth:`to_arrays` ``(prefix)``, bit for bit.

        Raises
        ------
        ShapeError
            Naming the array: one missing, of the wrong shape or dtype, not finite, ``matrix``
            not unit lower-triangular, ``transform`` not upper triangular with a nonzero
            diagonal, or magic entries the entry evaluator cannot evaluate.
        """
        entries = _array(arrays, prefix + "entries", "iu", 2)
        size = entries.shape[0]
        if size == 0 or entries.shape[1] not in (1, 2) or entries.min() < 0:
            raise ShapeError(f"array {prefix}entries must have shape (M', 1) or (M', 2), M' >= 1, with "
                             f"non-negative indices; got {entries.shape}")
        matrix = _square(arrays, prefix + "matrix", size)
        transform = _square(arrays, prefix + "transform", size)
        if np.any(np.triu(matrix, 1)) or np.any(np.diag(matrix) != 1):
            raise ShapeError(f"array {prefix}matrix must be unit lower-triangular")
        if np.any(np.tril(transform, -1)) or not np.all(np.diag(transform)):
            raise ShapeError(f"array {prefix}transform must be upper triangular with a nonzero diagonal")
        index = entries.astype(np.intp)
        entry = _entry_from_arrays(arrays, prefix + _ENTRY)
        if entry.arity != entries.shape[1]:
            raise ShapeError(f"array {prefix}entries has {entries.shape[1]} column(s); its entry evaluator "
                             f"{entry.kind!r} takes {entry.arity} index array(s)")
        try:
            entry.check_index(*index.T)
        except ShapeError as exc:
            raise ShapeError(f"array {prefix}entries: {exc}") from None
        return cls(entry, index, matrix, transform)

    @property
    def size(self) -> int:
        """Number of terms M'."""
        return self.entries.shape[0]

    def values(self, mus: NDArray[np.float64]) -> NDArray:
        """The M' magic entries of ``A(mu)`` for a batch ``mus`` (n_mu, P), shape (n_mu, M').

        One ``entry`` call per parameter, with exactly the magic entries.

        Raises
        ------
        ShapeError
            If ``entry`` does not return an array of shape (M',).
        """
        index = tuple(self.entries[:, d] for d in range(self.entries.shape[1]))
        rows = [np.asarray(self.entry(mu, *index)) for mu in mus]
        for row in rows:
            if row.shape != (self.size,):
                raise ShapeError(f"entry must return an array of shape (n_entries,) = ({self.size},); "
                                 f"got {row.shape}")
        return np.stack(rows)


@dataclass(frozen=True, eq=False)
class InterpolatedCoefficients:
    """Coefficients ``beta(mus)`` (n_mu, terms) of the first ``terms`` terms of a matrix or vector EIM.

    The EIM is nested: its first ``terms`` terms form a valid interpolant with the
    leading blocks of the triangular interpolation matrix and transform. Only the
    magic entries of ``A(mu)`` are evaluated.

    Attributes
    ----------
    magic : MagicEntries
    terms : int
        M, at most ``magic.size``.
    """

    kind: ClassVar[str] = "interpolated-coefficients"
    magic: MagicEntries
    terms: int

    def __post_init__(self) -> None:
        if not 1 <= self.terms <= self.magic.size:
            raise ShapeError(f"terms must lie in [1, {self.magic.size}]; got {self.terms}")

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """``terms`` (0-d) and the magic entries' arrays under ``magic/`` (errors as :meth:`MagicEntries.to_arrays`)."""
        return {prefix + "terms": np.array(self.terms, dtype=np.int64), **self.magic.to_arrays(prefix + "magic/")}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> InterpolatedCoefficients:
        """Rebuild from :meth:`to_arrays` ``(prefix)`` (ShapeError naming the array if one is invalid)."""
        magic = MagicEntries.from_arrays(arrays, prefix + "magic/")
        return cls(magic, _count(arrays, prefix + "terms", 1, magic.size))

    def __call__(self, mus: NDArray[np.float64]) -> NDArray:
        """Coefficients for a batch ``mus`` (n_mu, P), shape (n_mu, terms)."""
        return self.from_values(self.magic.values(mus))

    def from_values(self, values: NDArray) -> NDArray:
        """Coefficients (n_mu, terms) from magic-entry values (n_mu, M'), ``M' >= terms`` (the first are used)."""
        m = self.terms
        lam = sla.solve_triangular(self.magic.matrix[:m, :m], values[:, :m].T, lower=True, unit_diagonal=True)
        return (self.magic.transform[:m, :m] @ lam).T


def coefficient_gap(coarse: InterpolatedCoefficients, fine: InterpolatedCoefficients,
                    mus: NDArray[np.float64]) -> NDArray:
    """``beta_fine(mu) - [beta_coarse(mu), 0]``, shape (n_mu, M'), from one evaluation of the magic entries.

    ``coarse`` and ``fine`` are two truncations (M < M' terms) of one EIM.
    """
    values = fine.magic.values(mus)
    gap = fine.from_values(values)
    gap[:, : coarse.terms] -= coarse.from_values(values)
    return gap


@dataclass(frozen=True, eq=False)
class InterpolationIndicator:
    """``||(A_M'(mu) - A_M(mu)) u_N(mu)||_{V'}``: indicator of the operator's interpolation error.

    Attributes
    ----------
    coarse, fine : InterpolatedCoefficients
        The M- and M'-term coefficient functions (M < M') of one matrix EIM.
    R : ndarray, shape (r, M' N)
        Factor with ``X^{-1} [A(mu_l) v_i]_{i, l} = Psi R`` (basis-vector-major, then
        term), ``Psi`` X-orthonormal.
    """

    kind: ClassVar[str] = "interpolation-indicator"
    coarse: InterpolatedCoefficients
    fine: InterpolatedCoefficients
    R: NDArray

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """``R``, ``coarse_terms``, ``fine_terms`` and the shared magic entries under ``magic/``.

        Raises
        ------
        ValueError
            If ``coarse`` and ``fine`` do not share one :class:`MagicEntries`.
        TypeError
            As :meth:`MagicEntries.to_arrays`.
        """
        return {prefix + "R": self.R, **_pair_to_arrays(self.coarse, self.fine, prefix)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> InterpolationIndicator:
        """Rebuild from :meth:`to_arrays` ``(prefix)`` (ShapeError naming the array if one is invalid).

        ``R`` must have ``N M'`` columns for some N >= 1.
        """
        coarse, fine = _pair_from_arrays(arrays, prefix)
        R = _array(arrays, prefix + "R", "fc", 2)
        if R.shape[1] == 0 or R.shape[1] % fine.terms:
            raise ShapeError(f"array {prefix}R must have N * M' = N * {fine.terms} columns; got {R.shape}")
        return cls(coarse, fine, R)

    def __call__(self, mus: NDArray[np.float64], c: NDArray) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, P) and reduced coefficients ``c`` (n_mu, n), shape (n_mu,)."""
        gap = coefficient_gap(self.coarse, self.fine, mus)
        x = (c[:, :, None] * gap[:, None, :]).reshape(c.shape[0], -1)
        y = x @ self.R[:, : x.shape[1]].T
        return np.sqrt((y.conj() * y).real.sum(axis=1))


@dataclass(frozen=True, eq=False)
class RhsIndicator:
    """``||f_M'(mu) - f_M(mu)||_{V'}``: indicator of the right-hand side's interpolation error.

    Attributes
    ----------
    coarse, fine : InterpolatedCoefficients
        The M- and M'-term coefficient functions (M < M') of one vector EIM.
    R : ndarray, shape (r, M')
        Factor with ``X^{-1} [f(mu_1) .. f(mu_M')] = Psi R``, ``Psi`` X-orthonormal.
    """

    kind: ClassVar[str] = "rhs-indicator"
    coarse: InterpolatedCoefficients
    fine: InterpolatedCoefficients
    R: NDArray

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """As :meth:`InterpolationIndicator.to_arrays`."""
        return {prefix + "R": self.R, **_pair_to_arrays(self.coarse, self.fine, prefix)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> RhsIndicator:
        """Rebuild from :meth:`to_arrays` ``(prefix)`` (ShapeError naming the array; ``R`` has M' columns)."""
        coarse, fine = _pair_from_arrays(arrays, prefix)
        R = _array(arrays, prefix + "R", "fc", 2)
        if R.shape[1] != fine.terms:
            raise ShapeError(f"array {prefix}R must have M' = {fine.terms} columns; got {R.shape}")
        return cls(coarse, fine, R)

    def __call__(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, P), shape (n_mu,)."""
        return np.linalg.norm(coefficient_gap(self.coarse, self.fine, mus) @ self.R.T, axis=1)


@dataclass(frozen=True, eq=False)
class InterpolationBound:
    """Operator plus right-hand-side interpolation indicators, the ``interpolation`` of a ReducedModel.

    Non-rigorous: each estimates the error of an M-term interpolant by its distance to
    the M'-term one. With ``r(mu) = f(mu) - A(mu) u_N`` the residual of the
    non-interpolated problem, ``||r(mu)||_{V'} <= eps(mu) + ||(A - A_M) u_N||_{V'} +
    ||f - f_M||_{V'}``, and the two last terms are replaced by the indicators (each
    evaluates the magic entries once per parameter).

    Attributes
    ----------
    operator : InterpolationIndicator
    rhs : RhsIndicator
    """

    kind: ClassVar[str] = "interpolation-bound"
    operator: InterpolationIndicator
    rhs: RhsIndicator

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """The two indicators' arrays under ``operator/`` and ``rhs/`` (errors as theirs)."""
        return {**self.operator.to_arrays(prefix + "operator/"), **self.rhs.to_arrays(prefix + "rhs/")}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> InterpolationBound:
        """Rebuild from :meth:`to_arrays` ``(prefix)`` (ShapeError naming the array if one is invalid)."""
        return cls(InterpolationIndicator.from_arrays(arrays, prefix + "operator/"),
                   RhsIndicator.from_arrays(arrays, prefix + "rhs/"))

    def __call__(self, mus: NDArray[np.float64], c: NDArray) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, P) and reduced coefficients ``c`` (n_mu, n), shape (n_mu,)."""
        return self.operator(mus, c) + self.rhs(mus)


RECORDS: dict[str, type] = {cls.kind: cls for cls in (InterpolatedCoefficients, InterpolationIndicator,
                                                       InterpolationBound)}
"""Objects a model file stores as data (coefficient functions, ``interpolation``): kind -> class."""


# --- checked arrays ---------------------------------------------------------------------------------


def _array(arrays: Mapping[str, NDArray], key: str, kinds: str, ndim: int) -> NDArray:
    """``arrays[key]``, checked: present, ``ndim``-D, dtype kind in ``kinds`` (64-bit float/complex), finite."""
    if key not in arrays:
        raise ShapeError(f"array {key} is missing")
    arr = np.asarray(arrays[key])
    if arr.ndim != ndim or arr.dtype.kind not in kinds or (arr.dtype.kind in "fc" and arr.dtype.itemsize < 8):
        raise ShapeError(f"array {key} must be a {ndim}-D array of dtype kind {kinds!r}; got {arr.dtype} {arr.shape}")
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise ShapeError(f"array {key} must be finite")
    return arr


def _square(arrays: Mapping[str, NDArray], key: str, size: int) -> NDArray:
    arr = _array(arrays, key, "fc", 2)
    if arr.shape != (size, size) or arr.dtype not in (np.float64, np.complex128):
        raise ShapeError(f"array {key} must be float64 or complex128 of shape ({size}, {size}); "
                         f"got {arr.dtype} {arr.shape}")
    return arr


def _count(arrays: Mapping[str, NDArray], key: str, low: int, high: int) -> int:
    """The 0-d integer ``arrays[key]``, checked to lie in ``[low, high]``."""
    value = int(_array(arrays, key, "iu", 0))
    if not low <= value <= high:
        raise ShapeError(f"array {key} must lie in [{low}, {high}]; got {value}")
    return value


def _entry_from_arrays(arrays: Mapping[str, NDArray], prefix: str) -> Any:
    """The entry evaluator stored under ``prefix + kind + "/"``, for exactly one kind of :data:`ENTRIES`."""
    kinds = {key[len(prefix):].partition("/")[0] for key in arrays if key.startswith(prefix)}
    if len(kinds) != 1 or not kinds <= ENTRIES.keys():
        raise ShapeError(f"arrays {prefix}<kind>/... must hold one entry evaluator of a kind in {sorted(ENTRIES)}; "
                         f"got kinds {sorted(kinds)}")
    kind = kinds.pop()
    return ENTRIES[kind].from_arrays(arrays, f"{prefix}{kind}/")


def _pair_to_arrays(coarse: InterpolatedCoefficients, fine: InterpolatedCoefficients,
                    prefix: str) -> dict[str, NDArray]:
    if coarse.magic is not fine.magic:
        raise ValueError("the coarse and fine coefficients of an indicator must share one MagicEntries to be stored")
    return {prefix + "coarse_terms": np.array(coarse.terms, dtype=np.int64),
            prefix + "fine_terms": np.array(fine.terms, dtype=np.int64), **fine.magic.to_arrays(prefix + "magic/")}


def _pair_from_arrays(arrays: Mapping[str, NDArray],
                      prefix: str) -> tuple[InterpolatedCoefficients, InterpolatedCoefficients]:
    """The M- and M'-term coefficients (M < M') sharing the magic entries stored under ``prefix + "magic/"``."""
    magic = MagicEntries.from_arrays(arrays, prefix + "magic/")
    fine = _count(arrays, prefix + "fine_terms", 2, magic.size)
    coarse = _count(arrays, prefix + "coarse_terms", 1, fine - 1)
    return InterpolatedCoefficients(magic, coarse), InterpolatedCoefficients(magic, fine)

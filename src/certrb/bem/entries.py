"""Entries of the combined-field operator and of the plane-wave load on a sub-mesh, stored as data.

The kernels (:mod:`certrb.bem.kernels`) compute an entry ``A(k)[i, j]`` from the
corners and vertex indices of the triangles ``T_i`` and ``T_j`` only, and a load
entry ``f(k)[i]`` from ``T_i`` only. So the magic entries of a matrix or vector
EIM of the sphere problem need only the triangles of their rows and columns:
:class:`CombinedFieldBlock` and :class:`PlaneWaveBlock` keep those triangles
(renumbered, with their vertices), the global index of each, and the incident
direction, and give the same bits as the whole mesh at a cost and a size
independent of it. Both are plain arrays (:meth:`to_arrays`, :meth:`from_arrays`),
so a reduced model holding them is stored as data. They are built by
:func:`restrict_mesh` (or ``restricted`` of the full evaluators in
:mod:`certrb.problems.scattering3d`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ParameterError, ShapeError

__all__ = ["CombinedFieldBlock", "PlaneWaveBlock", "SubMesh", "restrict_mesh", "wavenumber"]


def wavenumber(mu: ArrayLike) -> float:
    """The wavenumber of one parameter (a scalar or a row of shape (1,)), checked positive and finite.

    Raises
    ------
    ParameterError
        Unless ``mu`` is one positive finite number.
    """
    arr = np.asarray(mu, dtype=float).reshape(-1)
    if arr.size != 1 or not np.isfinite(arr[0]) or arr[0] <= 0:
        raise ParameterError(f"a parameter must be one positive finite wavenumber; got {mu!r}")
    return float(arr[0])


@dataclass(frozen=True, eq=False)
class SubMesh:
    """Some triangles of a mesh, renumbered, with the vertices they use.

    Attributes
    ----------
    ids : ndarray of int64, shape (n_s,)
        Strictly increasing indices of the triangles in the whole mesh.
    vertices : ndarray of float64, shape (n_v, 3)
        The vertices of these triangles.
    triangles : ndarray of int64, shape (n_s, 3)
        Their corners, indices into ``vertices``; two triangles share a corner here
        exactly when they do in the whole mesh.
    """

    ids: NDArray[np.int64]
    vertices: NDArray[np.float64]
    triangles: NDArray[np.int64]

    def local(self, index: ArrayLike) -> NDArray[np.int64]:
        """Positions in :attr:`ids` of global triangle indices ``index`` (n,), shape (n,).

        Raises
        ------
        ShapeError
            If an index is not a triangle of the sub-mesh.
        """
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        pos = np.minimum(np.searchsorted(self.ids, index), max(self.ids.size - 1, 0))
        if self.ids.size == 0 or np.any(self.ids[pos] != index):
            raise ShapeError(f"entries outside the sub-mesh: triangles {np.setdiff1d(index, self.ids).tolist()} "
                             f"are not among its {self.ids.size}")
        return pos

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """``ids``, ``vertices`` and ``triangles``, their keys prefixed by ``prefix``."""
        return {prefix + "ids": self.ids, prefix + "vertices": self.vertices, prefix + "triangles": self.triangles}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> SubMesh:
        """Rebuild a sub-mesh from :meth:`to_arrays` ``(prefix)``, checking every array.

        Raises
        ------
        ShapeError
            Naming the array, if one is missing, of the wrong shape or dtype, not finite,
            or indices are out of range (``ids`` not strictly increasing and non-negative,
            ``triangles`` not in ``[0, n_v)`` with distinct corners).
        """
        ids = _integers(arrays, prefix + "ids", 1)
        vertices = _floats(arrays, prefix + "vertices", (None, 3))
        triangles = _integers(arrays, prefix + "triangles", 2)
        if ids.size == 0 or ids[0] < 0 or np.any(np.diff(ids) <= 0):
            raise ShapeError(f"array {prefix}ids must be non-empty, non-negative and strictly increasing")
        if triangles.shape != (ids.size, 3) or triangles.min() < 0 or triangles.max() >= vertices.shape[0]:
            raise ShapeError(f"array {prefix}triangles must have shape ({ids.size}, 3) with indices in "
                             f"[0, {vertices.shape[0]}); got shape {triangles.shape}")
        s = np.sort(triangles, axis=1)
        if np.any(s[:, 1:] == s[:, :-1]):
            raise ShapeError(f"array {prefix}triangles must give each triangle three distinct corners")
        return cls(ids, vertices, triangles)


def restrict_mesh(vertices: NDArray[np.float64], triangles: NDArray[np.int64], index: ArrayLike) -> SubMesh:
    """The sub-mesh of the triangles ``index`` (any order, repeats allowed) of a mesh (n_v, 3), (n_t, 3).

    Raises
    ------
    ShapeError
        If an index is outside ``[0, n_t)``.
    """
    t = np.asarray(triangles, dtype=np.int64)
    ids = np.unique(np.asarray(index, dtype=np.int64).reshape(-1))
    if ids.size == 0 or ids[0] < 0 or ids[-1] >= t.shape[0]:
        raise ShapeError(f"triangle indices must be non-empty and lie in [0, {t.shape[0]})")
    used, corners = np.unique(t[ids], return_inverse=True)
    v = np.ascontiguousarray(np.asarray(vertices, dtype=np.float64)[used])
    return SubMesh(ids, v, np.ascontiguousarray(corners.reshape(-1, 3), dtype=np.int64))


@dataclass(frozen=True, eq=False)
class CombinedFieldBlock:
    """Entries of the combined-field matrix ``A(k)`` (``eta = k``) between triangles of a sub-mesh.

    Attributes
    ----------
    mesh : SubMesh
        The triangles of the rows and columns that can be evaluated.
    """

    kind: ClassVar[str] = "bem-combined-field"
    arity: ClassVar[int] = 2  # index arrays: rows, cols
    mesh: SubMesh

    def __call__(self, mu: ArrayLike, rows: ArrayLike, cols: ArrayLike) -> NDArray[np.complex128]:
        """Entries ``A(k)[rows[m], cols[m]]`` (global triangle indices), shape (n_entries,).

        The same bits as the whole mesh gives (:func:`certrb.bem.kernels.operator_entries`).

        Raises
        ------
        ShapeError
            If a row or column is not a triangle of the sub-mesh.
        ParameterError
            Unless ``mu`` is one positive wavenumber.
        """
        from .kernels import operator_entries

        r, c = self.mesh.local(rows), self.mesh.local(cols)
        if r.size != c.size:
            raise ShapeError(f"rows and cols must have the same length; got {r.size} and {c.size}")
        return operator_entries(self.mesh.vertices, self.mesh.triangles, wavenumber(mu), r, c, operator="combined")

    def check_index(self, rows: ArrayLike, cols: ArrayLike) -> None:
        """Raise ShapeError unless the entries ``(rows[m], cols[m])`` can be evaluated."""
        self.mesh.local(rows), self.mesh.local(cols)

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """The sub-mesh arrays (:meth:`SubMesh.to_arrays`)."""
        return self.mesh.to_arrays(prefix)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> CombinedFieldBlock:
        """Rebuild from :meth:`to_arrays` ``(prefix)`` (errors as :meth:`SubMesh.from_arrays`)."""
        return cls(SubMesh.from_arrays(arrays, prefix))


@dataclass(frozen=True, eq=False)
class PlaneWaveBlock:
    """Entries of the combined-field load ``f(k)`` of the plane wave ``exp(i k x . d)`` on a sub-mesh.

    Attributes
    ----------
    mesh : SubMesh
        The triangles whose entries can be evaluated.
    direction : ndarray of float64, shape (3,)
        Incident direction ``d`` (normalised by the kernel).
    """

    kind: ClassVar[str] = "bem-plane-wave"
    arity: ClassVar[int] = 1  # index arrays: rows
    mesh: SubMesh
    direction: NDArray[np.float64]

    def __call__(self, mu: ArrayLike, rows: ArrayLike) -> NDArray[np.complex128]:
        """Entries ``f(k)[rows]`` (global triangle indices), shape (n_entries,).

        The same bits as the whole mesh gives (:func:`certrb.bem.kernels.load_vector`).

        Raises
        ------
        ShapeError
            If a row is not a triangle of the sub-mesh.
        ParameterError
            Unless ``mu`` is one positive wavenumber.
        """
        from .kernels import load_vector

        triangles = self.mesh.triangles[self.mesh.local(rows)]
        return load_vector(self.mesh.vertices, triangles, wavenumber(mu), self.direction, formulation="combined")

    def check_index(self, rows: ArrayLike) -> None:
        """Raise ShapeError unless the entries ``rows`` can be evaluated."""
        self.mesh.local(rows)

    def to_arrays(self, prefix: str = "") -> dict[str, NDArray]:
        """The sub-mesh arrays and ``direction``."""
        return {**self.mesh.to_arrays(prefix), prefix + "direction": self.direction}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray], prefix: str = "") -> PlaneWaveBlock:
        """Rebuild from :meth:`to_arrays` ``(prefix)`` (errors as :meth:`SubMesh.from_arrays`; ``direction`` != 0)."""
        direction = _floats(arrays, prefix + "direction", (3,))
        if not np.any(direction):
            raise ShapeError(f"array {prefix}direction must be a nonzero 3-vector")
        return cls(SubMesh.from_arrays(arrays, prefix), direction)


def _array(arrays: Mapping[str, NDArray], key: str) -> NDArray:
    if key not in arrays:
        raise ShapeError(f"array {key!r} is missing")
    return np.asarray(arrays[key])


def _integers(arrays: Mapping[str, NDArray], key: str, ndim: int) -> NDArray[np.int64]:
    arr = _array(arrays, key)
    if arr.dtype.kind not in "iu" or arr.ndim != ndim:
        raise ShapeError(f"array {key!r} must be a {ndim}-D integer array; got {arr.ndim}-D {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _floats(arrays: Mapping[str, NDArray], key: str, shape: tuple[int | None, ...]) -> NDArray[np.float64]:
    arr = _array(arrays, key)
    if arr.dtype != np.float64 or arr.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(arr.shape, shape, strict=True)):
        raise ShapeError(f"array {key!r} must be float64 of shape {shape}; got {arr.dtype} {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ShapeError(f"array {key!r} must be finite")
    return np.ascontiguousarray(arr)

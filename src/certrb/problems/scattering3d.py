"""Plane wave scattered by the sound-soft unit sphere: a non-affine, complex, non-coercive truth model.

The Neumann trace ``phi = d u_tot / d n`` solves the combined-field equation
``(I/2 + K'(k) - i k V(k)) phi = d u_inc / d n - i k u_inc`` (:mod:`certrb.bem`),
discretized by Galerkin P0 on ``icosphere(level)``; the parameter is the wavenumber
``k`` in ``[k_min, k_max]``, which the mesh must resolve (:func:`certrb.bem.check_resolution`).

The operator and the right-hand side depend on ``k`` through the kernel
``exp(i k r) / (4 pi r)``: not affinely. They are made affine by the nonintrusive
matrix EIM (:func:`certrb.matrix_eim`, :func:`certrb.vector_eim`) from single
entries and full snapshots at the magic wavenumbers; online only the magic entries
of ``A(k)`` and ``f(k)`` are computed (on the few triangles involved, so their cost
does not grow with the mesh). Each EIM is run to a reference tolerance; the truth
:class:`~certrb.offline.problem.Problem` keeps the leading terms down to a coarser
tolerance, and the difference between the two interpolants is the (labelled,
non-rigorous) interpolation indicator added to the bound
(:class:`~certrb.online.nonaffine.InterpolationBound`, built by
:func:`certrb.offline.nonaffine.interpolation_bound`).

Inner product: the P0 mass matrix ``X = diag(|T_i|)``, the L2 norm on the surface.
The combined-field operator is of the second kind (identity plus compact) and
bounded below in L2, so L2 is its natural space; its inf-sup constant w.r.t. ``X``
is bounded below by the inf-sup successive constraint method (:class:`certrb.SCM`)
applied to the interpolated affine operator.

:func:`certrb.study.scattering_study` runs the whole reduced study (weak greedy over
``k``; bounds and true errors against the non-interpolated truth on random test
wavenumbers; matrix-EIM errors; online speed-up; comparison with the Mie series).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..bem import check_resolution, icosphere, mean_edge_length, relative_surface_error, triangle_areas
from ..bem.entries import CombinedFieldBlock, PlaneWaveBlock, restrict_mesh, wavenumber
from ..errors import CertRBError, ParameterError
from ..offline.matrix_eim import MatrixEIM, matrix_eim, vector_eim
from ..offline.nonaffine import eim_functional, eim_operator, interpolation_bound
from ..offline.problem import Problem
from ..offline.scm import SCM
from ..online.nonaffine import InterpolationBound
from ..online.parameters import ParameterSpace

__all__ = ["CombinedFieldEntries", "PlaneWaveLoad", "ResolutionError", "Scattering3D", "check_wavenumber_range",
           "largest_wavenumber", "scattering3d"]

log = logging.getLogger(__name__)


class ResolutionError(CertRBError, ValueError):
    """The mesh does not resolve the requested wavenumbers.

    Attributes
    ----------
    largest_wavenumber : float
        The largest wavenumber the mesh resolves.
    """

    def __init__(self, message: str, largest_wavenumber: float) -> None:
        super().__init__(message)
        self.largest_wavenumber = largest_wavenumber


def largest_wavenumber(level: int, *, per_wavelength: float = 6.0) -> float:
    """Largest ``k`` with ``per_wavelength`` mean edge lengths of ``icosphere(level)`` per wavelength."""
    return float(2 * np.pi / (per_wavelength * mean_edge_length(*icosphere(level))))


# --- the black-box operator and right-hand side ---------------------------------------------------


@dataclass(frozen=True, eq=False)
class CombinedFieldEntries:
    """The combined-field matrix ``A(k)`` as entries and as full matrices (one code path).

    Attributes
    ----------
    vertices : ndarray, shape (n_v, 3)
    triangles : ndarray of int, shape (n_t, 3)
    """

    vertices: NDArray[np.float64]
    triangles: NDArray[np.int64]

    def __call__(self, mu: ArrayLike, rows: NDArray[np.intp], cols: NDArray[np.intp]) -> NDArray[np.complex128]:
        """Entries ``A(k)[rows[m], cols[m]]``, shape (n_entries,), from the triangles involved only.

        The kernels compute each entry from the two triangles and their vertex indices,
        so restricting the mesh to the triangles involved (:meth:`restricted`) gives the
        same bits as :meth:`matrix`, at a cost independent of the mesh size.
        """
        return self.restricted(rows, cols)(mu, rows, cols)

    def restricted(self, rows: NDArray[np.intp], cols: NDArray[np.intp]) -> CombinedFieldBlock:
        """The entries between the triangles ``rows`` and ``cols`` (n_entries,), as data on their sub-mesh."""
        return CombinedFieldBlock(restrict_mesh(self.vertices, self.triangles, np.concatenate([rows, cols])))

    def matrix(self, mu: ArrayLike) -> NDArray[np.complex128]:
        """The full matrix ``A(k)``, shape (n_t, n_t)."""
        from ..bem.kernels import operator_matrix

        return operator_matrix(self.vertices, self.triangles, wavenumber(mu), operator="combined")


@dataclass(frozen=True, eq=False)
class PlaneWaveLoad:
    """The combined-field right-hand side ``f(k)`` of the plane wave, as entries and as vectors.

    Attributes
    ----------
    vertices : ndarray, shape (n_v, 3)
    triangles : ndarray of int, shape (n_t, 3)
    direction : ndarray, shape (3,)
        Incident direction.
    """

    vertices: NDArray[np.float64]
    triangles: NDArray[np.int64]
    direction: NDArray[np.float64]

    def __call__(self, mu: ArrayLike, rows: NDArray[np.intp]) -> NDArray[np.complex128]:
        """Entries ``f(k)[rows]``, shape (n_entries,) (the load of those triangles only, :meth:`restricted`)."""
        return self.restricted(rows)(mu, rows)

    def restricted(self, rows: NDArray[np.intp]) -> PlaneWaveBlock:
        """The entries ``rows`` (n_entries,), as data on the sub-mesh of their triangles."""
        return PlaneWaveBlock(restrict_mesh(self.vertices, self.triangles, rows), self.direction)

    def vector(self, mu: ArrayLike) -> NDArray[np.complex128]:
        """The full vector ``f(k)``, shape (n_t,)."""
        from ..bem.kernels import load_vector

        return load_vector(self.vertices, self.triangles, wavenumber(mu), self.direction, formulation="combined")


# --- the truth model ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Scattering3D:
    """The scattering truth model and what built it (returned by :func:`scattering3d`).

    Attributes
    ----------
    problem : Problem
        Interpolated affine truth: ``operator_terms`` terms of ``operator_eim``,
        ``rhs_terms`` terms of ``rhs_eim``, ``X`` the P0 mass matrix, inf-sup SCM stability.
    level : int
        Icosphere level.
    entries : CombinedFieldEntries
        The black-box operator.
    load : PlaneWaveLoad
        The black-box right-hand side.
    operator_eim, rhs_eim : MatrixEIM
        The interpolants run to the reference tolerance.
    operator_terms, rhs_terms : int
        Terms kept in ``problem`` (fewer than the EIMs hold).
    timings : dict
        Seconds spent in the EIMs and the SCM.
    """

    problem: Problem
    level: int
    entries: CombinedFieldEntries
    load: PlaneWaveLoad
    operator_eim: MatrixEIM
    rhs_eim: MatrixEIM
    operator_terms: int
    rhs_terms: int
    timings: dict

    @property
    def direction(self) -> NDArray[np.float64]:
        """Incident direction, shape (3,)."""
        return self.load.direction

    def assemble(self, k: float) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
        """Non-interpolated ``A(k)`` (n_t, n_t) and ``f(k)`` (n_t,), both complex."""
        return self.entries.matrix(k), self.load.vector(k)

    def interpolation_bound(self, basis: NDArray) -> InterpolationBound:
        """The interpolation indicator for a reduced basis ``(n_h, N)`` of this problem."""
        return interpolation_bound(self.problem, basis, self.operator_eim, self.operator_terms, self.rhs_eim,
                                   self.rhs_terms)

    def mie_error(self, k: float, phi: NDArray[np.complex128]) -> float:
        """Relative L2 surface error of ``phi`` (n_t,) against the Mie series at ``k``."""
        return relative_surface_error(self.level, k, phi, direction=self.direction)


def check_wavenumber_range(level: int, k_range: Sequence[float], *,
                           per_wavelength: float = 6.0) -> tuple[float, float]:
    """Validate a wavenumber range for ``icosphere(level)`` and return ``(k_min, k_max)``.

    Raises
    ------
    ParameterError
        If ``k_range`` is not two finite numbers with ``0 < k_min < k_max``.
    ResolutionError
        If the mesh does not resolve ``k_max`` (the message names the largest admissible ``k``).
    ValueError
        If ``level`` is not a non-negative integer.
    """
    try:
        k_min, k_max = (float(k) for k in k_range)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"k_range must be two numbers (k_min, k_max); got {k_range!r}") from exc
    if not (np.isfinite(k_min) and np.isfinite(k_max) and 0 < k_min < k_max):
        raise ParameterError(f"k_range must satisfy 0 < k_min < k_max, both finite; got {k_range!r}")
    largest = largest_wavenumber(level, per_wavelength=per_wavelength)  # ValueError for a bad level
    try:
        check_resolution(level, k_max, per_wavelength=per_wavelength)
    except ValueError as exc:
        raise ResolutionError(str(exc), largest) from exc
    return k_min, k_max


def _terms(errors: NDArray[np.float64], tol: float, name: str) -> int:
    """Fewest terms whose training error is at most ``tol``; at least one term must remain as reference."""
    below = np.flatnonzero(errors <= tol)
    if below.size == 0 or below[0] >= errors.size - 1:
        raise CertRBError(f"the {name} EIM has {errors.size - 1} terms with errors down to {errors[-1]:.1e}: "
                          f"it needs at least one term beyond eim_tol = {tol:g} (lower eim_tol or refine the "
                          f"EIM training set)")
    return max(int(below[0]), 1)


def scattering3d(
    level: int = 2,
    k_range: Sequence[float] = (1.0, 3.0),
    *,
    direction: ArrayLike = (0.0, 0.0, 1.0),
    eim_train: int = 41,
    eim_candidates: int = 10_000,
    eim_tol: float = 1e-11,
    reference_tol: float = 1e-14,
    scm_train: int = 201,
    scm_tol: float = 0.3,
    per_wavelength: float = 6.0,
) -> Scattering3D:
    """Build the interpolated truth model of sphere scattering over a wavenumber range.

    Parameters
    ----------
    level : int
        Icosphere level (``20 * 4**level`` triangles, the truth dimension n_h).
    k_range : (float, float)
        Wavenumber range ``(k_min, k_max)``, ``0 < k_min < k_max``, resolved by the mesh.
    direction : (3,) array_like
        Incident direction.
    eim_train : int
        Wavenumbers (uniform grid, ends included) of the matrix and vector EIM greedies.
    eim_candidates : int
        Entries (random, or all if fewer) on which the matrix EIM greedy measures its training error.
    eim_tol : float
        Relative EIM training error (max modulus over candidate entries) of the terms kept in the problem.
    reference_tol : float
        Tolerance of the EIM greedies; the terms beyond ``eim_tol`` form the reference of the indicator.
    scm_train : int
        Wavenumbers (uniform grid) of the inf-sup SCM.
    scm_tol : float
        Relative SCM gap on the training grid at which the SCM stops.
    per_wavelength : float
        Minimum number of mean edge lengths per wavelength at ``k_max``.

    Returns
    -------
    Scattering3D

    Raises
    ------
    ParameterError
        If ``k_range`` is not two finite numbers with ``0 < k_min < k_max``.
    ResolutionError
        If ``icosphere(level)`` does not resolve ``k_max`` (the message names the largest admissible ``k``).
    CertRBError
        If an EIM does not go beyond ``eim_tol`` (no reference terms for the indicator).
    """
    k_min, k_max = check_wavenumber_range(level, k_range, per_wavelength=per_wavelength)
    v, t = icosphere(level)
    d = np.asarray(direction, dtype=float)
    entries, load = CombinedFieldEntries(v, t), PlaneWaveLoad(v, t, d)
    space = ParameterSpace(["k"], [k_min], [k_max])
    grid = space.grid(eim_train)
    t0 = time.perf_counter()
    op_eim = matrix_eim(entries, entries.matrix, grid, tol=reference_tol, n_random=eim_candidates, rng=0)
    rhs_eim = vector_eim(load, load.vector, grid, tol=reference_tol)
    t1 = time.perf_counter()
    m_a, m_f = _terms(op_eim.errors, eim_tol, "operator"), _terms(rhs_eim.errors, eim_tol, "right-hand side")
    operator, rhs = eim_operator(op_eim, m_a), eim_functional(rhs_eim, m_f)
    X = sp.diags(triangle_areas(v, t)).tocsr()
    # the terms are dense BEM matrices: the dense eigensolvers, whatever n_h (the sparse path would factorize them)
    scm = SCM(operator, X, space.grid(scm_train), kind="inf-sup", tol=scm_tol, max_iter=scm_train,
              dense_limit=operator.size)
    timings = {"eim": t1 - t0, "scm": time.perf_counter() - t1}
    log.info("scattering3d: %d operator terms (+%d reference), %d rhs terms (+%d), %d SCM points", m_a,
             op_eim.size - m_a, m_f, rhs_eim.size - m_f, len(scm.points))
    problem = Problem(operator, rhs, X, space, stability=scm)
    return Scattering3D(problem, int(level), entries, load, op_eim, rhs_eim, m_a, m_f, timings)

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
:class:`~certrb.problem.Problem` keeps the leading terms down to a coarser
tolerance, and the difference between the two interpolants is the (labelled,
non-rigorous) interpolation indicator added to the bound
(:class:`InterpolationBound`, after :mod:`certrb.nonaffine`).

Inner product: the P0 mass matrix ``X = diag(|T_i|)``, the L2 norm on the surface.
The combined-field operator is of the second kind (identity plus compact) and
bounded below in L2, so L2 is its natural space; its inf-sup constant w.r.t. ``X``
is bounded below by the inf-sup successive constraint method (:class:`certrb.SCM`)
applied to the interpolated affine operator.

:func:`scattering_study` runs the whole reduced study (weak greedy over ``k``;
bounds and true errors against the non-interpolated truth on random test
wavenumbers; matrix-EIM errors; online speed-up; comparison with the Mie series).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..bem import check_resolution, icosphere, mean_edge_length, relative_surface_error, triangle_areas
from ..bem.mie import mie_neumann_trace
from ..errors import CertRBError, EstimatorError, ParameterError
from ..offline.affine import AffineFunctional, AffineOperator
from ..offline.basis import qr_extend
from ..offline.builder import OfflineBuilder
from ..offline.greedy import GreedyResult, weak_greedy
from ..offline.matrix_eim import MatrixEIM, matrix_eim, vector_eim
from ..offline.nonaffine import InterpolatedCoefficients, InterpolationIndicator, interpolation_indicator
from ..offline.problem import Problem
from ..offline.scm import SCM
from ..online.model import ReducedModel
from ..online.parameters import ParameterSpace

__all__ = ["STUDY_ESTIMATORS", "CombinedFieldEntries", "InterpolationBound", "PlaneWaveLoad", "ResolutionError",
           "RhsIndicator", "Scattering3D", "check_wavenumber_range", "coefficient_gap", "largest_wavenumber",
           "rhs_indicator", "scattering3d", "scattering_study"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
STUDY_ESTIMATORS = ("orthonormal", "expanded", "eim-stabilized", "eim", "point-basis")


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


def _wavenumber(mu: ArrayLike) -> float:
    """The wavenumber of one parameter (a scalar or a row of shape (1,)), checked positive and finite."""
    arr = np.asarray(mu, dtype=float).reshape(-1)
    if arr.size != 1 or not np.isfinite(arr[0]) or arr[0] <= 0:
        raise ParameterError(f"a parameter must be one positive finite wavenumber; got {mu!r}")
    return float(arr[0])


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
        so restricting the mesh to the triangles involved gives the same bits as
        :meth:`matrix`, at a cost independent of the mesh size.
        """
        from ..bem.kernels import operator_entries

        rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
        used, local = np.unique(np.concatenate([rows, cols]), return_inverse=True)
        return operator_entries(self.vertices, self.triangles[used], _wavenumber(mu), local[:rows.size],
                                local[rows.size:], operator="combined")

    def matrix(self, mu: ArrayLike) -> NDArray[np.complex128]:
        """The full matrix ``A(k)``, shape (n_t, n_t)."""
        from ..bem.kernels import operator_matrix

        return operator_matrix(self.vertices, self.triangles, _wavenumber(mu), operator="combined")


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
        """Entries ``f(k)[rows]``, shape (n_entries,) (the load of those triangles only)."""
        return self._load(mu, self.triangles[np.asarray(rows, dtype=np.intp)])

    def vector(self, mu: ArrayLike) -> NDArray[np.complex128]:
        """The full vector ``f(k)``, shape (n_t,)."""
        return self._load(mu, self.triangles)

    def _load(self, mu: ArrayLike, triangles: NDArray[np.int64]) -> NDArray[np.complex128]:
        from ..bem.kernels import load_vector

        return load_vector(self.vertices, triangles, _wavenumber(mu), self.direction, formulation="combined")


# --- the interpolation-error indicator of the right-hand side and of both together ----------------


def coefficient_gap(coarse: InterpolatedCoefficients, fine: InterpolatedCoefficients,
                    mus: NDArray[np.float64]) -> NDArray:
    """``beta_fine(mu) - [beta_coarse(mu), 0]``, shape (n_mu, M'), from one evaluation of the magic entries."""
    values = fine.eim.magic_values(mus)
    gap = fine.from_values(values)
    gap[:, : coarse.terms] -= coarse.from_values(values)
    return gap


@dataclass(frozen=True, eq=False)
class RhsIndicator:
    """``||f_M'(k) - f_M(k)||_{X'}``: indicator of the right-hand side's interpolation error.

    Attributes
    ----------
    coarse, fine : InterpolatedCoefficients
        The M- and M'-term coefficient functions (M < M') of one vector EIM.
    R : ndarray, shape (r, M')
        Factor with ``X^{-1} [f(k_1) .. f(k_M')] = Psi R``, ``Psi`` X-orthonormal.
    """

    coarse: InterpolatedCoefficients
    fine: InterpolatedCoefficients
    R: NDArray

    def __call__(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, 1), shape (n_mu,)."""
        return np.linalg.norm(coefficient_gap(self.coarse, self.fine, mus) @ self.R.T, axis=1)


def rhs_indicator(problem: Problem, eim: MatrixEIM, terms: int) -> RhsIndicator:
    """Build :class:`RhsIndicator` for a right-hand side with the first ``terms`` of ``eim`` (all as reference)."""
    f = np.column_stack(eim.matrices)
    rho = np.asarray(problem.inner_product.riesz(f), dtype=f.dtype)
    _, R, _ = qr_extend(np.zeros((f.shape[0], 0), dtype=rho.dtype), rho, problem.inner_product, rtol=1e-14)
    return RhsIndicator(InterpolatedCoefficients(eim, terms), InterpolatedCoefficients(eim, eim.size), R)


@dataclass(frozen=True, eq=False)
class InterpolationBound:
    """Operator plus right-hand-side interpolation indicators, the ``interpolation`` of a ReducedModel.

    Non-rigorous: each estimates the error of an M-term interpolant by its distance to
    the M'-term one. With ``r_k = f(k) - A(k) u_N`` the residual of the
    non-interpolated problem, ``||r_k||_{X'} <= eps(k) + ||(A - A_M) u_N||_{X'} +
    ||f - f_M||_{X'}``, and the two last terms are replaced by the indicators
    (:class:`certrb.nonaffine.InterpolationIndicator` and :class:`RhsIndicator`; each
    evaluates the magic entries once per parameter).
    """

    operator: InterpolationIndicator
    rhs: RhsIndicator

    def __call__(self, mus: NDArray[np.float64], c: NDArray) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, 1) and reduced coefficients ``c`` (n_mu, n), shape (n_mu,)."""
        gap = coefficient_gap(self.operator.coarse, self.operator.fine, mus)
        x = (c[:, :, None] * gap[:, None, :]).reshape(c.shape[0], -1)
        return np.linalg.norm(x @ self.operator.R[:, : x.shape[1]].T, axis=1) + self.rhs(mus)


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
        op = interpolation_indicator(self.problem, basis, self.operator_eim, self.operator_terms)
        return InterpolationBound(op, rhs_indicator(self.problem, self.rhs_eim, self.rhs_terms))

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
    operator = AffineOperator(list(op_eim.matrices[:m_a]), InterpolatedCoefficients(op_eim, m_a))
    rhs = AffineFunctional(list(rhs_eim.matrices[:m_f]), InterpolatedCoefficients(rhs_eim, m_f))
    X = sp.diags(triangle_areas(v, t)).tocsr()
    # the terms are dense BEM matrices: the dense eigensolvers, whatever n_h (the sparse path would factorize them)
    scm = SCM(operator, X, space.grid(scm_train), kind="inf-sup", tol=scm_tol, max_iter=scm_train,
              dense_limit=operator.size)
    timings = {"eim": t1 - t0, "scm": time.perf_counter() - t1}
    log.info("scattering3d: %d operator terms (+%d reference), %d rhs terms (+%d), %d SCM points", m_a,
             op_eim.size - m_a, m_f, rhs_eim.size - m_f, len(scm.points))
    problem = Problem(operator, rhs, X, space, stability=scm)
    return Scattering3D(problem, int(level), entries, load, op_eim, rhs_eim, m_a, m_f, timings)


# --- the study ------------------------------------------------------------------------------------


def _fresh_sample(space: ParameterSpace, n: int, rng: np.random.Generator,
                  exclude: NDArray[np.float64]) -> NDArray[np.float64]:
    """``n`` random wavenumbers (n, 1) none of which equals a row of ``exclude`` (m, 1)."""
    out = np.zeros((0, 1))
    while out.shape[0] < n:
        draw = space.sample(n - out.shape[0], rng=rng)
        out = np.concatenate([out, draw[~np.isin(draw[:, 0], exclude[:, 0])]])
    return out


def _interpolation_errors(eim: MatrixEIM, mu: NDArray[np.float64], exact: NDArray) -> NDArray[np.float64]:
    """Relative max-modulus error of the first m terms of ``eim`` at ``mu`` (1,), for m = 1..M, shape (M,)."""
    scale = np.max(np.abs(exact))
    values = eim.magic_values(mu[None, :])
    out = np.empty(eim.size)
    for m in range(1, eim.size + 1):
        beta = InterpolatedCoefficients(eim, m).from_values(values)[0]
        approx = sum((b * a for b, a in zip(beta, eim.matrices[:m], strict=True)), np.zeros_like(exact))
        out[m - 1] = np.max(np.abs(approx - exact)) / scale
    return out


def _inf_sup(A: NDArray[np.complex128], areas: NDArray[np.float64]) -> float:
    """``sigma_min(X^{-1/2} A X^{-1/2})`` for the diagonal ``X = diag(areas)``: the exact inf-sup constant."""
    w = np.sqrt(areas)
    return float(np.linalg.svd(A / w[:, None] / w[None, :], compute_uv=False)[-1])


@dataclass
class _Truths:
    """Non-interpolated truth data at the test wavenumbers."""

    phi: NDArray[np.complex128]  # (n_test, n_h)
    seconds: NDArray[np.float64]  # (n_test,) assembly + solve
    refinement: NDArray[np.float64]  # (n_test,) relative size of one extended-precision refinement step
    eim_errors: dict[str, NDArray[np.float64]]  # (n_test, M') per interpolant
    inf_sup: NDArray[np.float64] | None  # (n_test,) exact inf-sup constants


def _truths(model: Scattering3D, test: NDArray[np.float64], exact_inf_sup: bool, progress: Progress) -> _Truths:
    n_test, areas = test.shape[0], triangle_areas(model.entries.vertices, model.entries.triangles)
    phi = np.empty((n_test, model.problem.size), dtype=np.complex128)
    seconds, refinement, beta = np.empty(n_test), np.empty(n_test), np.empty(n_test)
    errors: dict[str, list] = {"operator": [], "rhs": []}
    for i, mu in enumerate(test):
        progress("truth solves (assembly + solve)", i, n_test)
        t0 = time.perf_counter()
        A, f = model.assemble(mu[0])
        phi[i] = np.linalg.solve(A, f)
        seconds[i] = time.perf_counter() - t0
        r = f.astype(np.clongdouble) - A.astype(np.clongdouble) @ phi[i].astype(np.clongdouble)
        du = np.linalg.solve(A, r.astype(np.complex128))
        refinement[i] = np.sqrt(np.sum(areas * np.abs(du) ** 2) / np.sum(areas * np.abs(phi[i]) ** 2))
        errors["operator"].append(_interpolation_errors(model.operator_eim, mu, A))
        errors["rhs"].append(_interpolation_errors(model.rhs_eim, mu, f))
        beta[i] = _inf_sup(A, areas) if exact_inf_sup else np.nan
    progress("truth solves (assembly + solve)", n_test, n_test)
    return _Truths(phi, seconds, refinement, {k: np.array(v) for k, v in errors.items()},
                   beta if exact_inf_sup else None)


def _models_at(builder: OfflineBuilder, name_list: Sequence[str], train: NDArray, seed: int, max_points: int,
               interpolation: InterpolationBound) -> dict[str, ReducedModel]:
    """Reduced models of the builder's current basis, one per estimator that can be built."""
    out = {}
    for name in name_list:
        try:
            m = builder.model((name,), train=train, rng=seed + builder.n_basis,
                              options={"point-basis": {"max_points": max_points}})
        except EstimatorError as exc:
            log.info("skipping %s at N=%d: %s", name, builder.n_basis, exc)
            continue
        out[name] = replace(m, interpolation=interpolation)
    return out


def _sweep(model: Scattering3D, basis: NDArray, test: NDArray, truths: _Truths, estimators: Sequence[str],
           train: NDArray, seed: int, max_points: int, progress: Progress) -> dict:
    """Bounds (absolute) per estimator and true errors for N = 1..N_max at the test wavenumbers."""
    problem = model.problem
    interpolation = model.interpolation_bound(basis)
    builder = OfflineBuilder(problem)
    sizes = list(range(1, basis.shape[1] + 1))
    out: dict = {"bound": {name: [] for name in estimators}, "residual_norm": {name: [] for name in estimators},
                 "interpolation": [], "true_error": [], "stability": problem.stability_lower_bound(test)}
    for n in sizes:
        progress("bounds and true errors per N", n - 1, len(sizes))
        builder.append_orthonormal(basis[:, n - 1:n])
        built = _models_at(builder, estimators, train, seed, max_points, interpolation)
        for name in estimators:
            res = built[name].evaluate(test) if name in built else None
            out["bound"][name].append(None if res is None else res.bound)
            out["residual_norm"][name].append(None if res is None else res.residual_norm)
        c, _ = builder.solve_reduced(test, n)
        out["true_error"].append(problem.inner_product.norms((truths.phi - c @ basis[:, :n].T).T))
        out["interpolation"].append(interpolation(test, c))
    progress("bounds and true errors per N", len(sizes), len(sizes))
    out["sizes"] = sizes
    return out


def _speedup(rom: ReducedModel, test: NDArray, truth_seconds: NDArray) -> dict:
    """Online time of one certified evaluation (default estimator, indicator, SCM) vs one truth solve."""
    rom.evaluate(test[:1])  # warm up
    online = np.empty(test.shape[0])
    for i in range(test.shape[0]):
        t0 = time.perf_counter()
        rom.evaluate(test[i:i + 1])
        online[i] = time.perf_counter() - t0
    truth, fast = float(np.median(truth_seconds)), float(np.median(online))
    return {"n": rom.n_basis, "estimator": rom.default_estimator, "truth_seconds": truth, "online_seconds": fast,
            "speedup": truth / fast}


def _surface_field(model: Scattering3D, k: float, truth: NDArray, rb: NDArray, n_angles: int = 181) -> dict:
    """Fields against the polar angle from the incident direction: per triangle and the Mie curve."""
    v, t = model.entries.vertices, model.entries.triangles
    c = v[t].mean(axis=1)
    d = model.direction / np.linalg.norm(model.direction)
    theta = np.arccos(np.clip((c / np.linalg.norm(c, axis=1, keepdims=True)) @ d, -1.0, 1.0))
    grid = np.linspace(0.0, np.pi, n_angles)
    mie = mie_neumann_trace(np.cos(grid), k)
    return {"k": k, "theta": theta.tolist(), "truth_abs": np.abs(truth).tolist(), "rb_abs": np.abs(rb).tolist(),
            "mie_theta": grid.tolist(), "mie_abs": np.abs(mie).tolist()}


def _rows(arrays: list) -> list:
    """(n_sizes, n_test) nested lists, None for estimators not built at some N and for non-finite values."""
    return [None if a is None else [float(x) if np.isfinite(x) else None for x in np.asarray(a, dtype=float)]
            for a in arrays]


def _greedy_record(result: GreedyResult) -> dict:
    return {"n": [s.n for s in result.history],
            "max_bound": [s.max_bound if np.isfinite(s.max_bound) else None for s in result.history],
            "k": [float(s.mu[0]) for s in result.history], "reason": result.reason,
            "seconds": float(sum(s.seconds for s in result.history))}


def _eim_record(eim: MatrixEIM, terms: int, test_errors: NDArray) -> dict:
    return {"terms": terms, "reference_terms": eim.size, "wavenumbers": eim.parameters[:, 0].tolist(),
            "train_error": eim.errors[1:].tolist(), "test_error": test_errors.max(axis=0).tolist()}


def _violations(bound: dict, true_error: NDArray, above: NDArray) -> tuple[dict, dict]:
    """Counts of (N, test k) pairs with bound < true error, above and below the truth floor, per estimator."""
    viol, below = {}, {}
    for name, rows in bound.items():
        b = np.array([np.full(true_error.shape[1], np.inf) if r is None else r for r in rows])
        fail = b < true_error
        viol[name], below[name] = int(np.sum(fail & above)), int(np.sum(fail & ~above))
    return viol, below


def _mie_record(model: Scattering3D, test: NDArray, truths: _Truths, rom: ReducedModel, i_star: int) -> dict:
    """Mie errors of the truth at every test wavenumber and of the reduced solution at ``test[i_star]``."""
    k_star, truth = float(test[i_star, 0]), truths.phi[i_star]
    res = rom.evaluate(test[i_star:i_star + 1])
    rb = np.asarray(rom.reconstruct(res.coefficients)[0], dtype=np.complex128)
    return {"wavenumbers": test[:, 0].tolist(),
            "truth": [model.mie_error(k, p) for k, p in zip(test[:, 0], truths.phi, strict=True)],
            "rb": {"k": k_star, "n": rom.n_basis, "rb": model.mie_error(k_star, rb),
                   "truth": model.mie_error(k_star, truth)},
            "field": _surface_field(model, k_star, truth, rb)}


def scattering_study(
    level: int = 2,
    k_range: Sequence[float] = (1.0, 3.0),
    *,
    n_train: int = 100,
    n_test: int = 20,
    max_basis: int = 25,
    tol: float = 1e-12,
    seed: int = 0,
    estimators: Sequence[str] = STUDY_ESTIMATORS,
    max_points: int = 1000,
    exact_inf_sup: bool | None = None,
    model_options: dict | None = None,
    progress: Progress | None = None,
) -> dict:
    """Run the reduced scattering study and return a JSON-ready dict.

    Offline: :func:`scattering3d`, then a weak greedy over ``n_train`` random
    wavenumbers driven by the ``orthonormal`` relative bound. Then, at ``n_test``
    random wavenumbers not in any training set, for N = 1..N_max and each estimator:
    the bound (residual estimate plus interpolation indicator, over the SCM lower
    bound) and the true error against the non-interpolated truth (assembly and dense
    solve at ``k`` itself); the matrix-EIM errors per number of terms; the online
    speed-up over a truth solve; and the Mie error of the truth at each test
    wavenumber and of the reduced solution at the test wavenumber nearest the middle
    of the range.

    Parameters
    ----------
    level : int
        Icosphere level.
    k_range : (float, float)
        Wavenumber range, resolved by the mesh.
    n_train, n_test : int
        Sizes of the random greedy training and test sets.
    max_basis : int
        Largest basis size.
    tol : float
        Relative greedy tolerance.
    seed : int
        Seed of the random training and test sets.
    estimators : sequence of str
        Estimators compared (``orthonormal`` first is the online default).
    max_points : int
        Largest point-basis size ``d`` that is built.
    exact_inf_sup : bool, optional
        Compute the exact inf-sup constant at the test wavenumbers (dense SVD);
        default: when ``n_h <= 2000``.
    model_options : dict, optional
        Keyword arguments of :func:`scattering3d`.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    dict
        ``problem``, ``settings``, ``sizes``, ``train_wavenumbers``, ``test_wavenumbers``; per N
        and test wavenumber (lists (n_sizes, n_test), relative to ``||u(k)||_X``): ``true_error``,
        ``bound[name]`` (None where not built), ``interpolation_indicator``;
        ``violations[name]`` (pairs with bound < true error where the true error is
        above ``truth_floor``) and ``violations_below_floor``; ``eim``
        (operator and rhs: terms, training and test error per number of terms);
        ``stability`` (SCM lower and exact inf-sup constants at the test wavenumbers);
        ``greedy``; ``speedup``; ``mie_relative_error`` (``truth`` per test
        wavenumber, ``rb`` at one of them, with the surface ``field``); ``timings``.

    Raises
    ------
    ParameterError, ResolutionError
        As :func:`scattering3d`.
    """
    progress = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    progress("truth model (EIM, SCM)", 0, 1)
    model = scattering3d(level, k_range, **(model_options or {}))
    progress("truth model (EIM, SCM)", 1, 1)
    problem, space = model.problem, model.problem.parameter_space
    rng = np.random.default_rng(seed)
    train = space.sample(n_train, rng=rng)
    test = _fresh_sample(space, n_test, rng, np.concatenate([train, model.operator_eim.parameters,
                                                             model.rhs_eim.parameters]))
    t1 = time.perf_counter()
    greedy = weak_greedy(problem, train, tol=tol, max_basis=max_basis, estimators=("orthonormal",),
                         callback=lambda s: progress("greedy", s.n, max_basis))
    progress("greedy", greedy.model.n_basis, greedy.model.n_basis)
    t2 = time.perf_counter()
    truths = _truths(model, test, problem.size <= 2000 if exact_inf_sup is None else exact_inf_sup, progress)
    t3 = time.perf_counter()
    basis = greedy.model.basis
    assert basis is not None  # weak_greedy keeps the basis
    sweep = _sweep(model, basis, test, truths, estimators, train[:200], seed, max_points, progress)
    t4 = time.perf_counter()
    rom = replace(greedy.model, interpolation=model.interpolation_bound(basis))
    i_star = int(np.argmin(np.abs(test[:, 0] - space.lower[0] / 2 - space.upper[0] / 2)))  # nearest the middle
    result = _summary(model, test, truths, sweep, greedy)
    result["train_wavenumbers"] = train[:, 0].tolist()
    result["speedup"] = _speedup(rom, test, truths.seconds)
    result["mie_relative_error"] = _mie_record(model, test, truths, rom, i_star)
    result["settings"] = {"n_train": n_train, "n_test": n_test, "max_basis": max_basis, "tol": tol, "seed": seed,
                          "estimators": list(estimators), "max_points": max_points, **(model_options or {})}
    result["timings"] = {**model.timings, "truth_model": t1 - t0, "greedy": t2 - t1, "truth_solves": t3 - t2,
                         "sweep": t4 - t3, "total": time.perf_counter() - t0}
    return result


def _summary(model: Scattering3D, test: NDArray, truths: _Truths, sweep: dict, greedy: GreedyResult) -> dict:
    problem = model.problem
    u_norm = problem.inner_product.norms(truths.phi.T)
    true_error = np.array(sweep["true_error"]) / u_norm
    floor = float(10 * np.max(truths.refinement))
    bound = {name: [None if r is None else r / u_norm for r in rows] for name, rows in sweep["bound"].items()}
    viol, below = _violations(bound, true_error, true_error > floor)
    space = problem.parameter_space
    return {
        "problem": {"name": "scattering3d", "level": model.level, "n_h": problem.size,
                    "mean_edge": mean_edge_length(model.entries.vertices, model.entries.triangles),
                    "k_range": [float(space.lower[0]), float(space.upper[0])], "direction": model.direction.tolist()},
        "sizes": sweep["sizes"],
        "test_wavenumbers": test[:, 0].tolist(),
        "true_error": _rows(list(true_error)),
        "bound": {name: _rows(rows) for name, rows in bound.items()},
        "interpolation_indicator": _rows(list(np.array(sweep["interpolation"]) / u_norm)),
        "truth_floor": floor,
        "violations": viol,
        "violations_below_floor": below,
        "eim": {"operator": _eim_record(model.operator_eim, model.operator_terms, truths.eim_errors["operator"]),
                "rhs": _eim_record(model.rhs_eim, model.rhs_terms, truths.eim_errors["rhs"])},
        "stability": {"scm_points": len(getattr(problem.stability, "points", ())),
                      "lower_bound": sweep["stability"].tolist(),
                      "exact": None if truths.inf_sup is None else truths.inf_sup.tolist()},
        "greedy": _greedy_record(greedy),
    }

"""The studies: every residual-norm estimator against a truth reference, for each basis size.

Both studies build a basis by weak greedy, then sweep N = 1..N_max with
:func:`sweep_estimators`: the basis vectors are appended one by one to an
:class:`~certrb.offline.builder.OfflineBuilder`, one reduced model is frozen per
estimator and evaluated on random test parameters, next to the reduced solution.

- :func:`roundoff_study` (affine problems, e.g. ``diffusion1d``): residual norms
  against the truth-space reference in extended precision (E0 extended), true
  errors, bounds and effectivities, floors.
- :func:`scattering_study` (the non-affine 3D sphere scattering of
  :func:`certrb.problems.scattering3d.scattering3d`): bounds with the interpolation
  indicator against the non-interpolated truth, matrix-EIM errors, online speed-up,
  comparison with the Mie series.

The results are JSON-ready dicts (schemas in each function).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from .bem import mean_edge_length, mie_neumann_trace, triangle_areas
from .errors import EstimatorError
from .io import save as save_model
from .offline.builder import OfflineBuilder
from .offline.estimators.truth import residual_norms
from .offline.greedy import STAGNATION, GreedyResult, weak_greedy
from .offline.matrix_eim import MatrixEIM
from .offline.nonaffine import magic_entries
from .offline.precomputation import EIM_SWEEPS, ONLINE_FLOPS, REDUCED_SOLVE_FLOPS, precomputation_counts
from .offline.problem import Problem
from .offline.truth import truth_residual_norm
from .online.estimators.eim import EIMEstimator
from .online.estimators.expanded import ExpandedEstimator
from .online.estimators.point_basis import PointBasisEstimator
from .online.estimators.point_basis_square import PointBasisSquareEstimator
from .online.evaluate import OnlineResult
from .online.model import ReducedModel
from .online.nonaffine import InterpolatedCoefficients
from .online.parameters import ParameterSpace
from .problems.scattering3d import Scattering3D, scattering3d

__all__ = ["SCATTERING_ESTIMATORS", "STUDY_ESTIMATORS", "SweepStep", "estimator_floor", "roundoff_study",
           "scattering_study", "sweep_estimators"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
TOLERANCE = 0.01  # relative deviation that counts as "accurate"
# E1-E5 of the method, and the 2012 formula as written (square system) beside its least-squares variant
STUDY_ESTIMATORS = ("expanded", "point-basis", "point-basis-square", "eim", "eim-stabilized", "orthonormal")
PER_N = ("point-basis", "point-basis-square", "eim", "eim-stabilized")  # rebuilt for each N
SQUARE_POINTS = 2000  # largest square system T (d x d, dense LU) the study builds
CERTIFIED = ("expanded", "orthonormal", "eim", "eim-stabilized")  # estimators with a round-off certificate
SCATTERING_ESTIMATORS = ("orthonormal", "expanded", "eim-stabilized", "eim", "point-basis")
STUDY_STAGNATION = None  # the round-off study drives its greedies down to their floors: no stagnation stop
STAGNATION_NOTE = ("off: the study drives each greedy down to its estimator's floor on purpose (the floors are what "
                   "it measures), so only the tolerance, the basis size cap or the span stops it")


def _quiet(stage: str, done: int, total: int) -> None:
    """The default progress callback: report nothing."""


# --- the sweep over N shared by the studies -------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SweepStep:
    """One basis size of :func:`sweep_estimators`.

    Attributes
    ----------
    n : int
        Basis size N.
    models : dict of str to ReducedModel
        One model per estimator that could be built at this N (its default), without basis.
    results : dict of str to OnlineResult
        Each model evaluated at the test parameters.
    coefficients : ndarray, shape (n_test, n)
        Reduced coefficients at the test parameters.
    residual : ndarray, shape (n_test, Q_f + Q_a n)
        Their residual coefficients.
    seconds : dict of str to float
        Offline wall time of this step: ``"basis"`` (appending the basis vector: its residual
        components and their Riesz representatives, shared by the estimators), and per
        estimator the time to freeze its model (its own offline build and certificate).
    """

    n: int
    models: dict[str, ReducedModel]
    results: dict[str, OnlineResult]
    coefficients: NDArray
    residual: NDArray
    seconds: dict[str, float] = field(default_factory=dict)


def _freeze(builder: OfflineBuilder, estimators: Sequence[str], train: NDArray, seed: int,
            interpolation: Callable[[NDArray, NDArray], NDArray] | None,
            seconds: dict[str, float]) -> dict[str, ReducedModel]:
    """One model per estimator that can be built, each from a fresh ``rng`` seeded ``seed + N``.

    The wall time of each freeze goes into ``seconds`` (by estimator name).
    """
    out = {}
    for name in estimators:
        builder.rng = np.random.default_rng(seed + builder.n_basis)
        t0 = time.perf_counter()
        try:
            model = builder.model(estimators=(name,), train=train, keep_basis=False)
        except EstimatorError as exc:
            log.info("skipping %s at N=%d: %s", name, builder.n_basis, exc)
            continue
        seconds[name] = time.perf_counter() - t0
        out[name] = model if interpolation is None else replace(model, interpolation=interpolation)
    return out


def sweep_estimators(
    builder: OfflineBuilder,
    basis: NDArray,
    estimators: Sequence[str],
    test: NDArray[np.float64],
    *,
    train: NDArray[np.float64],
    seed: int,
    interpolation: Callable[[NDArray, NDArray], NDArray] | None = None,
    progress: Progress = _quiet,
    stage: str = "estimators per N",
) -> Iterator[SweepStep]:
    """Grow ``builder`` by the basis vectors one at a time and yield, per N, models and results at ``test``.

    Parameters
    ----------
    builder : OfflineBuilder
        Empty; its options (e.g. ``point-basis`` ``max_points``) apply to every model.
    basis : ndarray, shape (n_h, N_max)
        X-orthonormal basis (e.g. a greedy model's).
    estimators : sequence of str
        One model per estimator and N; one that cannot be built at some N
        (:class:`~certrb.errors.EstimatorError`) is left out of that step.
    test : ndarray, shape (n_test, P)
        Test parameters.
    train : ndarray, shape (n_train, P)
        Training parameters of the interpolation-based estimators.
    seed : int
        Each model is frozen with ``builder.rng = default_rng(seed + N)``.
    interpolation : callable, optional
        Interpolation indicator attached to every model (non-affine problems).
    progress : callable
        ``progress(stage, done, total)``.
    stage : str
        Stage name passed to ``progress``.

    Yields
    ------
    SweepStep
        For N = 1..N_max.

    Raises
    ------
    ValueError
        If the builder is not empty.
    """
    if builder.n_basis:
        raise ValueError(f"the builder must be empty; it holds {builder.n_basis} basis vectors")
    problem = builder.problem
    theta, phi = problem.operator.theta(test), problem.rhs.theta(test)
    total = basis.shape[1]
    for n in range(1, total + 1):
        progress(stage, n - 1, total)
        t0 = time.perf_counter()
        builder.append_orthonormal(basis[:, n - 1:n])
        seconds = {"basis": time.perf_counter() - t0}
        models = _freeze(builder, estimators, train, seed, interpolation, seconds)
        results = {name: model.evaluate(test) for name, model in models.items()}
        c, x = builder.operators().solve(theta, phi, n)
        yield SweepStep(n, models, results, c, x, seconds)
    progress(stage, total, total)


def _nan_to_none(arr: NDArray) -> list:
    """Nested lists with NaN/inf replaced by None (valid JSON)."""
    a = np.asarray(arr, dtype=float)
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in a] if a.ndim == 2 else [
        None if not np.isfinite(v) else float(v) for v in a]


def _rows(arrays: list) -> list:
    """(n_sizes, n_test) nested lists, None for estimators not built at some N and for non-finite values."""
    return [None if a is None else _nan_to_none(a) for a in arrays]


def _filled(rows: list, width: int) -> NDArray[np.float64]:
    """Rows (n_sizes, width) of which some are None (not built) as an array, NaN there."""
    return np.array([np.full(width, np.nan) if r is None else r for r in rows], dtype=float)


def _greedy_record(result: GreedyResult) -> dict:
    return {
        "n": [s.n for s in result.history],
        "max_bound": [s.max_bound if np.isfinite(s.max_bound) else None for s in result.history],
        "reason": result.reason,
        "stop": result.stop,
        "n_basis": result.model.n_basis,
        "seconds": float(sum(s.seconds for s in result.history)),
    }


_COUNTS = ("truth_solves", "riesz_solves", "riesz_solves_certificate", "truth_residual_norms", "stored_floats",
           "online_flops", "terms")


def _new_precomputation(estimators: Sequence[str]) -> dict:
    """Empty per-N precomputation record (filled by :func:`_record_precomputation`)."""
    return {"shared_seconds": [], "per_n": {name: {key: [] for key in (*_COUNTS, "offline_seconds")}
                                            for name in estimators}}


def _record_precomputation(out: dict, step: SweepStep, problem: Problem, certified: bool) -> None:
    """Append this N's counts and offline seconds per estimator (None where not built)."""
    out["shared_seconds"].append(step.seconds["basis"])
    q_f, q_a = problem.rhs.n_terms, problem.operator.n_terms
    for name, rec in out["per_n"].items():
        model = step.models.get(name)
        counts = None if model is None else precomputation_counts(name, model.estimators[name], step.n, q_f, q_a,
                                                                   certified=certified and name in CERTIFIED)
        for key in _COUNTS:
            rec[key].append(None if counts is None else counts[key])
        rec["offline_seconds"].append(step.seconds.get(name))


def _precomputation_summary(record: dict, sizes: list[int], problem: Problem) -> dict:
    """The precomputation table of a study: formulas, definitions, per-N counts and the table at N_max."""
    per_n, last = record["per_n"], {}
    for name, rec in per_n.items():
        built = [i for i, v in enumerate(rec["riesz_solves"]) if v is not None]
        if built:
            i = built[-1]
            last[name] = {"n": sizes[i], **{key: rec[key][i] for key in (*_COUNTS, "offline_seconds")},
                          "offline_seconds_total": float(sum(v for v in rec["offline_seconds"] if v is not None))}
    return {
        "Q_a": problem.operator.n_terms, "Q_f": problem.rhs.n_terms, "sizes": sizes,
        "definitions": {
            "K": "Q_f + Q_a N residual components", "m": "EIM terms", "d'": "point-basis points",
            "r": "rows of the orthonormal factor R (rank of the Riesz representatives, <= K)",
            "truth_solves": "snapshots of the basis (N, the same for every estimator)",
            "riesz_solves": "X z = g right-hand sides of the estimator itself (each refined in extended precision)",
            "riesz_solves_certificate": "more right-hand sides for the round-off certificate (K; 2K + m for the EIM)",
            "truth_residual_norms": "residual dual norms evaluated in the truth space (d' for point-basis, m for "
                                    "the EIM)",
            "stored_floats": "floats the model file holds for the estimator (certificate included)",
            "online_flops": "per query: the reduced solve plus the estimator's formula",
            "offline_seconds": "freezing the estimator's model at this N (its build and certificate); "
                               "shared_seconds: appending the basis vector (components and their K Riesz "
                               "representatives, used by expanded, orthonormal and the certificates)",
        },
        "online_flops_formula": {"reduced_solve": REDUCED_SOLVE_FLOPS, **ONLINE_FLOPS},
        "eim_sweeps_counted": EIM_SWEEPS,
        "shared_seconds": record["shared_seconds"],
        "per_n": per_n,
        "at_n_max": last,
    }


# --- the round-off study ----------------------------------------------------------------------------


def estimator_floor(rel_residual: NDArray, deviation: NDArray, *, tol: float = TOLERANCE) -> tuple[float, bool]:
    """Smallest relative residual level above which an estimator is accurate.

    Parameters
    ----------
    rel_residual : ndarray, shape (n_points,)
        Reference residual norms divided by ``||f||_{V'}``.
    deviation : ndarray, shape (n_points,)
        Relative deviations ``|eps_est - eps_ref| / eps_ref`` (NaN = not computed).
    tol : float
        Accepted relative deviation.

    Returns
    -------
    floor : float
        The largest ``rel_residual`` among points whose deviation exceeds ``tol``:
        above it every point is accurate. If no point fails, the smallest
        ``rel_residual`` seen (the floor lies below it).
    reached : bool
        Whether some point failed (so the floor was observed, not bounded).

    """
    ok = np.isfinite(deviation)
    bad = ok & (deviation > tol)
    if np.any(bad):
        return float(np.max(rel_residual[bad])), True
    return float(np.min(rel_residual[ok])), False


def _run_greedies(problem: Problem, train: NDArray, drivers: Sequence[str], max_basis: int, tol: float, seed: int,
                  progress: Progress) -> dict[str, GreedyResult]:
    """One greedy per driver; the first one's model also carries ``orthonormal`` and ``expanded`` for the sweep."""
    results = {}
    for i, name in enumerate(drivers):
        attached = (name, "orthonormal", "expanded") if i == 0 else (name,)
        options = {name: {"nested": False}} if name in PER_N else None
        builder = OfflineBuilder(problem, tuple(dict.fromkeys(attached)), options=options, rng=seed + i)

        def step(s, name=name):
            progress(f"greedy ({name})", s.n, max_basis)

        results[name] = weak_greedy(builder, train, tol=tol, max_basis=max_basis, callback=step,
                                    stagnation=STUDY_STAGNATION)
        n_final = results[name].model.n_basis
        progress(f"greedy ({name})", n_final, n_final)
    return results


def roundoff_study(
    problem: Problem,
    *,
    n_train: int = 1000,
    n_test: int = 200,
    max_basis: int = 40,
    tol: float = 1e-14,
    seed: int = 0,
    max_points: int = 10000,
    square_points: int = SQUARE_POINTS,
    drivers: tuple[str, ...] = ("orthonormal", "expanded", "eim-stabilized"),
    progress: Progress | None = None,
) -> dict:
    """Compare every estimator with the truth reference for N = 1..N_max.

    Parameters
    ----------
    problem : Problem
    n_train, n_test : int
        Sizes of the random training and test sets.
    max_basis : int
        Largest basis size of the greedies.
    tol : float
        Relative greedy tolerance (below the floors, so the greedies show them).
    seed : int
        Seed of all random choices.
    max_points : int
        Largest ``d`` for which the point-basis estimator is built.
    square_points : int
        Largest square system ``T`` (``d x d``, dense LU) of ``point-basis-square``.
    drivers : tuple of str
        Estimators driving one greedy each; the basis of the first is studied.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    dict
        ``sizes`` (N values), ``n_components`` (K per N), ``rel_residual[name]``
        (per N, per test parameter: residual / ||f||_{V'} for ``truth-extended``,
        ``truth-double`` and each estimator; None where not built),
        ``deviation[name]`` (relative deviation from ``truth-extended``),
        ``true_error`` (relative, extended-precision truth), ``effectivity[name]``
        (bound / true error), ``floors`` and ``floors_reached`` (see
        :func:`estimator_floor`), ``violations[name]`` (estimate < true error where
        the residual is above the truth floor), ``certified_bound[name]`` (relative
        round-off-certified bounds of the estimators in ``CERTIFIED``, per N and test
        parameter) and ``certified_violations[name]`` (certified bound < true
        error, counted everywhere, the round-off regime included), ``point_basis`` (condition numbers
        and number of points per N), ``eim_terms``, ``expanded_negative`` (test parameters
        per N where the classical quadratic form ``x^H G x`` was negative),
        ``greedy[driver]`` histories (with the selected parameters ``mu``, the stop
        ``reason`` code and its plain words ``stop``), ``precomputation`` (per estimator
        and N: truth solves, Riesz solves, certificate Riesz solves, truth residual norms,
        stored floats, online flops per query, offline seconds; the flop formulas; the
        table at N_max; see :mod:`certrb.offline.precomputation`), ``timings``. The
        settings record ``greedy_stagnation`` (None: the greedies run without the
        stagnation stop, to show the floors) and why.

    """
    progress = progress or _quiet
    space = problem.parameter_space
    train = space.sample(n_train, rng=seed)
    test = space.sample(n_test, rng=seed + 1)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    greedies = _run_greedies(problem, train, drivers, max_basis, tol, seed, progress)
    timings["greedies"] = time.perf_counter() - t0
    main = greedies[drivers[0]].model
    sweep = _roundoff_sweep(problem, main, train, test, seed, max_points, square_points, progress)
    timings["sweep"] = time.perf_counter() - t0 - timings["greedies"]
    return _summarize(problem, sweep, greedies, timings, dict(n_train=n_train, n_test=n_test, max_basis=max_basis,
                                                                tol=tol, seed=seed, max_points=max_points,
                                                                greedy_stagnation=STUDY_STAGNATION,
                                                                greedy_stagnation_note=STAGNATION_NOTE))


def _roundoff_sweep(problem: Problem, model: ReducedModel, train: NDArray, test: NDArray, seed: int,
                    max_points: int, square_points: int, progress: Progress) -> dict:
    """Per N: truth references, the greedy model's nested estimates and true errors, the per-N estimators."""
    ip = problem.inner_product
    U = problem.solve(test, refine=2)
    names = ("truth-extended", "truth-double", *STUDY_ESTIMATORS)
    out: dict = {"sizes": list(range(1, model.n_basis + 1)),
                 "f_norm": np.asarray(ip.dual_norms(problem.rhs.assemble(test).T, refine=2), dtype=float),
                 "u_norm": np.asarray(ip.norms(np.asarray(U.T, dtype=problem.dtype))),
                 "residual": {name: [] for name in names}, "certified": {name: [] for name in CERTIFIED},
                 "true_error": [], "point_basis": {"condition": [], "points": []},
                 "point_basis_square": {"condition": [], "rank": [], "points": []},
                 "eim_terms": {"eim": [], "eim-stabilized": []}, "expanded_negative": [], "n_components": [],
                 "precomputation": _new_precomputation(STUDY_ESTIMATORS)}
    builder = OfflineBuilder(problem, STUDY_ESTIMATORS, options={"point-basis": {"max_points": max_points},
                                                                 "point-basis-square": {"max_points": square_points}})
    basis = model.basis
    assert basis is not None  # weak_greedy keeps the basis
    # every estimator is frozen per N (expanded and orthonormal too, for their offline counts and times);
    # the study's expanded and orthonormal values are the greedy model's nested ones
    for step in sweep_estimators(builder, basis, STUDY_ESTIMATORS, test, train=train[:200], seed=seed,
                                 progress=progress):
        c = _record_nested(out, problem, model, test, step.n)
        _record_per_n(out, step)
        _record_precomputation(out["precomputation"], step, problem, builder.certify)
        E = U - (c.astype(U.dtype) @ basis[:, :step.n].T.astype(U.dtype))
        out["true_error"].append(np.asarray(ip.norms(np.asarray(E.T, dtype=problem.dtype))) / out["u_norm"])
    out["stability"] = problem.stability_lower_bound(test)
    return out


def _record_nested(out: dict, problem: Problem, model: ReducedModel, test: NDArray, n: int) -> NDArray:
    """The truth references and the greedy model's estimates at its sub-model ``n``; its coefficients (n_test, n)."""
    res = out["residual"]
    res["truth-extended"].append(truth_residual_norm(problem, model, test, n=n, precision="extended"))
    res["truth-double"].append(truth_residual_norm(problem, model, test, n=n, precision="double"))
    for name in ("expanded", "orthonormal"):
        online = model.evaluate(test, estimator=name, n=n)
        res[name].append(online.residual_norm)
        out["certified"][name].append(online.bound)
    c, x = model.operators.solve(problem.operator.theta(test), problem.rhs.theta(test), n)
    expanded = model.estimators["expanded"]
    assert isinstance(expanded, ExpandedEstimator)
    out["expanded_negative"].append(int(np.sum(expanded.squared(x, n) < 0)))
    out["n_components"].append(int(x.shape[1]))
    return c


def _record_per_n(out: dict, step: SweepStep) -> None:
    """The estimators rebuilt at this N: residual norms, certified bounds, point-basis and EIM sizes."""
    for name in PER_N:
        online = step.results.get(name)
        out["residual"][name].append(None if online is None else online.residual_norm)
        if name in CERTIFIED:
            out["certified"][name].append(None if online is None else online.bound)
    pb = step.models.get("point-basis")
    est = None if pb is None else pb.estimators["point-basis"]
    assert est is None or isinstance(est, PointBasisEstimator)
    out["point_basis"]["condition"].append(None if est is None else est.condition)
    out["point_basis"]["points"].append(None if est is None else int(est.eps2.size))
    sq = step.models.get("point-basis-square")
    square = None if sq is None else sq.estimators["point-basis-square"]
    assert square is None or isinstance(square, PointBasisSquareEstimator)
    condition = None if square is None or not np.isfinite(square.condition) else square.condition  # inf: singular
    out["point_basis_square"]["condition"].append(condition)
    out["point_basis_square"]["rank"].append(None if square is None else square.rank)
    out["point_basis_square"]["points"].append(None if square is None else int(square.eps2.size))
    for name in ("eim", "eim-stabilized"):
        built = step.models.get(name)
        eim = None if built is None else built.estimators[name]
        assert eim is None or isinstance(eim, EIMEstimator)
        out["eim_terms"][name].append(None if eim is None else eim.n_terms)


def _summarize(problem: Problem, sweep: dict, greedies: dict[str, GreedyResult], timings: dict,
               settings: dict) -> dict:
    f_norm, res = sweep["f_norm"], sweep["residual"]
    ref = np.array(res["truth-extended"])  # (n_sizes, n_test)
    rel_ref = ref / f_norm
    true_err = np.array(sweep["true_error"])
    beta = sweep["stability"]
    rel_res, dev, eff, floors, reached, viol = {}, {}, {}, {}, {}, {}
    for name, rows in res.items():
        arr = _filled(rows, ref.shape[1])
        rel_res[name] = arr / f_norm
        if name == "truth-extended":
            continue
        dev[name] = np.abs(arr - ref) / ref
        floors[name], reached[name] = estimator_floor(rel_ref.ravel(), dev[name].ravel())
    truth_floor = floors["truth-double"]
    above = rel_ref > truth_floor
    for name in STUDY_ESTIMATORS:
        bound_rel = rel_res[name] * f_norm / beta / sweep["u_norm"]  # relative error bound
        eff[name] = bound_rel / true_err
        viol[name] = int(np.sum((bound_rel < true_err) & above))
    certified = {name: _filled(rows, ref.shape[1]) / sweep["u_norm"] for name, rows in sweep["certified"].items()}
    space = problem.parameter_space
    return {
        "problem": {"n_h": problem.size, "parameter_space": {
            "names": list(space.names), "lower": space.lower.tolist(), "upper": space.upper.tolist()}},
        "settings": settings,
        "sizes": sweep["sizes"],
        "n_components": sweep["n_components"],
        "rel_residual": {k: _nan_to_none(v) for k, v in rel_res.items()},
        "deviation": {k: _nan_to_none(v) for k, v in dev.items()},
        "true_error": _nan_to_none(true_err),
        "effectivity": {k: _nan_to_none(v) for k, v in eff.items()},
        "floors": floors,
        "floors_reached": reached,
        "violations": viol,
        "certified_bound": {k: _nan_to_none(v) for k, v in certified.items()},
        "certified_violations": {k: int(np.sum(v < true_err)) for k, v in certified.items()},
        "point_basis": sweep["point_basis"],
        "point_basis_square": sweep["point_basis_square"],
        "eim_terms": sweep["eim_terms"],
        "expanded_negative": sweep["expanded_negative"],
        "greedy": {k: {**_greedy_record(v), "mu": [s.mu.tolist() for s in v.history]} for k, v in greedies.items()},
        "precomputation": _precomputation_summary(sweep["precomputation"], sweep["sizes"], problem),
        "timings": timings,
    }


# --- the 3D scattering study ------------------------------------------------------------------------


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
    magic = magic_entries(eim)
    values = magic.values(mu[None, :])
    out = np.empty(eim.size)
    for m in range(1, eim.size + 1):
        beta = InterpolatedCoefficients(magic, m).from_values(values)[0]
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


def _scattering_sweep(model: Scattering3D, basis: NDArray, test: NDArray, truths: _Truths,
                      estimators: Sequence[str], train: NDArray, seed: int, max_points: int,
                      progress: Progress) -> dict:
    """Bounds (absolute) per estimator and true errors for N = 1..N_max at the test wavenumbers.

    Also the truth residual norms (E0, double and extended) of the interpolated affine
    problem the reduced model reduces, at the coefficients the estimators were evaluated
    at (``step.residual``, as :func:`certrb.truth_residual_norm` forms them), and
    ``||f_M(k)||_{V'}`` of its interpolated right-hand side.
    """
    problem = model.problem
    interpolation = model.interpolation_bound(basis)
    builder = OfflineBuilder(problem, estimators, options={"point-basis": {"max_points": max_points}})
    out: dict = {"bound": {name: [] for name in estimators}, "residual_norm": {name: [] for name in estimators},
                 "interpolation": [], "true_error": [], "stability": problem.stability_lower_bound(test),
                 "sizes": list(range(1, basis.shape[1] + 1)), "precomputation": _new_precomputation(estimators),
                 "reference": {"truth-extended": [], "truth-double": []},
                 "f_norm": np.asarray(problem.inner_product.dual_norms(problem.rhs.assemble(test).T, refine=2),
                                      dtype=float)}
    for step in sweep_estimators(builder, basis, estimators, test, train=train, seed=seed,
                                 interpolation=interpolation, progress=progress,
                                 stage="bounds and true errors per N"):
        _record_precomputation(out["precomputation"], step, problem, builder.certify)
        for name in estimators:
            res = step.results.get(name)
            out["bound"][name].append(None if res is None else res.bound)
            out["residual_norm"][name].append(None if res is None else res.residual_norm)
        c = step.coefficients
        out["true_error"].append(problem.inner_product.norms((truths.phi - c @ basis[:, :step.n].T).T))
        for precision in ("extended", "double"):  # E0 of the interpolated operator, term by term
            out["reference"][f"truth-{precision}"].append(residual_norms(problem, basis, step.residual,
                                                                          precision=precision))
        out["interpolation"].append(interpolation(test, c))
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
    estimators: Sequence[str] = SCATTERING_ESTIMATORS,
    max_points: int = 1000,
    exact_inf_sup: bool | None = None,
    model_options: dict | None = None,
    progress: Progress | None = None,
    save: str | os.PathLike[str] | None = None,
) -> dict:
    """Run the reduced scattering study and return a JSON-ready dict.

    Offline: :func:`certrb.problems.scattering3d.scattering3d`, then a weak greedy
    over ``n_train`` random wavenumbers driven by the ``orthonormal`` relative bound.
    Then, at ``n_test`` random wavenumbers not in any training set, for N = 1..N_max
    and each estimator: the bound (residual estimate plus interpolation indicator,
    over the SCM lower bound) and the true error against the non-interpolated truth
    (assembly and dense solve at ``k`` itself); the matrix-EIM errors per number of
    terms; the online speed-up over a truth solve; and the Mie error of the truth at
    each test wavenumber and of the reduced solution at the test wavenumber nearest
    the middle of the range.

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
        Keyword arguments of :func:`certrb.problems.scattering3d.scattering3d`.
    progress : callable, optional
        ``progress(stage, done, total)``.
    save : path, optional
        Model file (:func:`certrb.save`) of the final reduced model: N_max, the greedy's
        certified ``orthonormal`` estimator, the interpolation indicator, the SCM bound.

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
        ``greedy`` (with the selected wavenumbers ``k``, run with the default stagnation
        stop, recorded in ``settings``); ``precomputation`` (as :func:`roundoff_study`); ``speedup``;
        ``mie_relative_error`` (``truth`` per test wavenumber, ``rb`` at one of them,
        with the surface ``field``); ``timings``. The per-estimator floors against the truth
        residual of the interpolated operator (E0 extended of the affine problem, so that the
        interpolation error is separated; ``floor_reference``): ``rel_residual``, ``deviation``,
        ``floors``, ``floors_reached`` as in :func:`roundoff_study`, with the interpolation
        indicator on the same scale beside them (``indicator_rel_residual``).

    Raises
    ------
    ParameterError, ResolutionError
        As :func:`certrb.problems.scattering3d.scattering3d`.
    """
    progress = progress or _quiet
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
    greedy = weak_greedy(OfflineBuilder(problem, ("orthonormal",)), train, tol=tol, max_basis=max_basis,
                         callback=lambda s: progress("greedy", s.n, max_basis))
    progress("greedy", greedy.model.n_basis, greedy.model.n_basis)
    t2 = time.perf_counter()
    truths = _truths(model, test, problem.size <= 2000 if exact_inf_sup is None else exact_inf_sup, progress)
    t3 = time.perf_counter()
    basis = greedy.model.basis
    assert basis is not None  # weak_greedy keeps the basis
    sweep = _scattering_sweep(model, basis, test, truths, estimators, train[:200], seed, max_points, progress)
    t4 = time.perf_counter()
    rom = replace(greedy.model, interpolation=model.interpolation_bound(basis))
    if save is not None:
        save_model(rom, save)
    i_star = int(np.argmin(np.abs(test[:, 0] - space.lower[0] / 2 - space.upper[0] / 2)))  # nearest the middle
    result = _scattering_summary(model, test, truths, sweep, greedy)
    result["train_wavenumbers"] = train[:, 0].tolist()
    result["speedup"] = _speedup(rom, test, truths.seconds)
    result["mie_relative_error"] = _mie_record(model, test, truths, rom, i_star)
    result["settings"] = {"n_train": n_train, "n_test": n_test, "max_basis": max_basis, "tol": tol, "seed": seed,
                          "estimators": list(estimators), "max_points": max_points,
                          "greedy_stagnation": list(STAGNATION), **(model_options or {})}
    result["timings"] = {**model.timings, "truth_model": t1 - t0, "greedy": t2 - t1, "truth_solves": t3 - t2,
                         "sweep": t4 - t3, "total": time.perf_counter() - t0}
    return result


def _scattering_summary(model: Scattering3D, test: NDArray, truths: _Truths, sweep: dict,
                        greedy: GreedyResult) -> dict:
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
        "greedy": {**_greedy_record(greedy), "k": [float(s.mu[0]) for s in greedy.history]},
        "precomputation": _precomputation_summary(sweep["precomputation"], sweep["sizes"], problem),
        **_scattering_floors(sweep),
    }


FLOOR_REFERENCE = ("E0 of the interpolated operator: ||f_M(k) - A_M(k) u_N(k)||_{V'} of the affine problem the "
                   "reduced model reduces (the kept EIM terms), formed term by term in extended precision, over "
                   "||f_M(k)||_{V'}; the interpolation error is not in it (the indicator estimates it)")


def _scattering_floors(sweep: dict) -> dict:
    """Per-estimator floors against E0 extended of the interpolated operator, as in :func:`roundoff_study`.

    Returns the keys ``floor_reference`` (what the reference is), ``rel_residual[name]``
    (per N and test wavenumber, over ``||f_M||_{V'}``: ``truth-extended``, ``truth-double``
    and each estimator, None where not built), ``deviation[name]`` (relative deviation
    from ``truth-extended``), ``floors`` and ``floors_reached`` (:func:`estimator_floor`)
    and ``indicator_rel_residual`` (the interpolation indicator over ``||f_M||_{V'}``, on
    the same scale: per N its ``min`` and ``max`` over the test wavenumbers, and the ``rows``).
    """
    f_norm = sweep["f_norm"]
    ref = np.array(sweep["reference"]["truth-extended"])  # (n_sizes, n_test)
    rel_ref = ref / f_norm
    rel, dev, floors, reached = {"truth-extended": rel_ref}, {}, {}, {}
    for name, rows in {"truth-double": sweep["reference"]["truth-double"], **sweep["residual_norm"]}.items():
        arr = _filled(rows, ref.shape[1])
        rel[name] = arr / f_norm
        dev[name] = np.abs(arr - ref) / ref
        floors[name], reached[name] = estimator_floor(rel_ref.ravel(), dev[name].ravel())
    indicator = np.array(sweep["interpolation"]) / f_norm
    return {"floor_reference": FLOOR_REFERENCE,
            "rel_residual": {name: _rows(list(arr)) for name, arr in rel.items()},
            "deviation": {name: _rows(list(arr)) for name, arr in dev.items()},
            "floors": floors, "floors_reached": reached,
            "indicator_rel_residual": {"min": indicator.min(axis=1).tolist(), "max": indicator.max(axis=1).tolist(),
                                       "rows": _rows(list(indicator))}}

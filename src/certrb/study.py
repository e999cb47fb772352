"""The round-off study: every residual-norm estimator against the truth reference.

:func:`roundoff_study` builds reduced models of a problem by weak greedy, then,
for each basis size N, compares on random test parameters the residual norm of
every estimator with the truth-space reference computed in extended precision
(E0 extended), and records true errors, bounds and effectivities. The result is
a JSON-ready dict (schema in :func:`roundoff_study`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from .errors import EstimatorError
from .offline.greedy import GreedyResult, weak_greedy
from .offline.problem import Problem
from .offline.reduce import reduce
from .offline.truth import truth_residual_norm
from .online.estimators import ESTIMATOR_NAMES

__all__ = ["estimator_floor", "roundoff_study"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
TOLERANCE = 0.01  # relative deviation that counts as "accurate"
PER_N = ("point-basis", "eim", "eim-stabilized")  # rebuilt for each N
CERTIFIED = ("expanded", "orthonormal", "eim", "eim-stabilized")  # estimators with a round-off certificate


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


def _greedy_record(result: GreedyResult) -> dict:
    return {
        "n": [s.n for s in result.history],
        "max_bound": [s.max_bound if np.isfinite(s.max_bound) else None for s in result.history],
        "mu": [s.mu.tolist() for s in result.history],
        "reason": result.reason,
        "seconds": float(sum(s.seconds for s in result.history)),
    }


def _run_greedies(problem, train, drivers, max_basis, tol, seed, progress) -> dict[str, GreedyResult]:
    results = {}
    for i, name in enumerate(drivers):
        opts = {name: {"nested": False}} if name in PER_N else None

        def step(s, name=name):
            progress(f"greedy ({name})", s.n, max_basis)

        results[name] = weak_greedy(problem, train, tol=tol, max_basis=max_basis, estimator=name,
                                    estimators=("orthonormal", "expanded"), rng=seed + i, options=opts,
                                    callback=step)
        n_final = results[name].model.n_basis
        progress(f"greedy ({name})", n_final, n_final)
    return results


def _per_n_estimators(problem, basis, n, train, seed, max_points) -> dict:
    built = {}
    for name in PER_N:
        try:
            model = reduce(problem, basis[:, :n], estimators=(name,), train=train, rng=seed + n,
                           options={"point-basis": {"max_points": max_points}})
            built[name] = model
        except EstimatorError as exc:
            log.info("skipping %s at N=%d: %s", name, n, exc)
    return built


def roundoff_study(
    problem: Problem,
    *,
    n_train: int = 1000,
    n_test: int = 200,
    max_basis: int = 40,
    tol: float = 1e-14,
    seed: int = 0,
    max_points: int = 10000,
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
        and number of points per N), ``eim_terms``, ``expanded_negative``,
        ``greedy[driver]`` histories, ``timings``.

    """
    progress = progress or (lambda stage, done, total: None)
    space = problem.parameter_space
    train = space.sample(n_train, rng=seed)
    test = space.sample(n_test, rng=seed + 1)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    greedies = _run_greedies(problem, train, drivers, max_basis, tol, seed, progress)
    timings["greedies"] = time.perf_counter() - t0
    main = greedies[drivers[0]].model
    sweep = _sweep(problem, main, train, test, seed, max_points, progress)
    timings["sweep"] = time.perf_counter() - t0 - timings["greedies"]
    return _summarize(problem, sweep, greedies, timings, dict(n_train=n_train, n_test=n_test, max_basis=max_basis,
                                                                tol=tol, seed=seed, max_points=max_points))


def _sweep(problem, model, train, test, seed, max_points, progress) -> dict:
    ip = problem.inner_product
    f_norm = np.asarray(ip.dual_norms(problem.rhs.assemble(test).T, refine=2), dtype=float)
    U = problem.solve(test, refine=2)
    u_norm = np.asarray(ip.norms(np.asarray(U.T, dtype=problem.dtype)))
    basis = model.basis
    sizes = list(range(1, model.n_basis + 1))
    names = ("truth-extended", "truth-double", *ESTIMATOR_NAMES)
    res = {name: [] for name in names}
    certified: dict = {name: [] for name in CERTIFIED}
    out: dict = {"sizes": sizes, "f_norm": f_norm, "residual": res, "certified": certified, "true_error": [],
                 "stability": None,
                 "point_basis": {"condition": [], "points": []}, "eim_terms": {"eim": [], "eim-stabilized": []},
                 "expanded_negative": [], "n_components": []}
    train_small = train[: min(len(train), 200)]
    for n in sizes:
        progress("estimators per N", n - 1, len(sizes))
        res["truth-extended"].append(truth_residual_norm(problem, model, test, n=n, precision="extended"))
        res["truth-double"].append(truth_residual_norm(problem, model, test, n=n, precision="double"))
        for name in ("expanded", "orthonormal"):
            online = model.evaluate(test, estimator=name, n=n)
            res[name].append(online.residual_norm)
            if name in certified:
                certified[name].append(online.bound)
        x = model._solve(test, n)[1]
        out["expanded_negative"].append(int(np.sum(model.estimators["expanded"].squared(x, n) < 0)))
        out["n_components"].append(int(x.shape[1]))
        built = _per_n_estimators(problem, basis, n, train_small, seed, max_points)
        for name in PER_N:
            online = built[name].evaluate(test, estimator=name) if name in built else None
            res[name].append(None if online is None else online.residual_norm)
            if name in certified:
                certified[name].append(online.bound)
        pb = built.get("point-basis")
        out["point_basis"]["condition"].append(pb.estimators["point-basis"].condition if pb else None)
        out["point_basis"]["points"].append(int(pb.estimators["point-basis"].eps2.size) if pb else None)
        for name in ("eim", "eim-stabilized"):
            out["eim_terms"][name].append(built[name].estimators[name].n_terms)
        c = model._solve(test, n)[0]
        E = U - (c.astype(U.dtype) @ basis[:, :n].T.astype(U.dtype))
        out["true_error"].append(np.asarray(ip.norms(np.asarray(E.T, dtype=problem.dtype))) / u_norm)
    progress("estimators per N", len(sizes), len(sizes))
    out["stability"] = problem.stability_lower_bound(test)
    out["u_norm"] = u_norm
    return out


def _summarize(problem, sweep, greedies, timings, settings) -> dict:
    f_norm, res = sweep["f_norm"], sweep["residual"]
    ref = np.array(res["truth-extended"])  # (n_sizes, n_test)
    rel_ref = ref / f_norm
    true_err = np.array(sweep["true_error"])
    beta = sweep["stability"]
    rel_res, dev, eff, floors, reached, viol = {}, {}, {}, {}, {}, {}
    for name, rows in res.items():
        arr = np.array([np.full(ref.shape[1], np.nan) if r is None else r for r in rows])
        rel_res[name] = arr / f_norm
        if name == "truth-extended":
            continue
        dev[name] = np.abs(arr - ref) / ref
        floors[name], reached[name] = estimator_floor(rel_ref.ravel(), dev[name].ravel())
    truth_floor = floors["truth-double"]
    above = rel_ref > truth_floor
    for name in ESTIMATOR_NAMES:
        bound_rel = rel_res[name] * f_norm / beta / sweep["u_norm"]  # relative error bound
        eff[name] = bound_rel / true_err
        viol[name] = int(np.sum((bound_rel < true_err) & above))
    certified = {name: np.array(rows) / sweep["u_norm"] for name, rows in sweep["certified"].items()}
    return {
        "problem": {"n_h": problem.size, "parameter_space": {
            "names": list(problem.parameter_space.names), "lower": problem.parameter_space.lower.tolist(),
            "upper": problem.parameter_space.upper.tolist()}},
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
        "eim_terms": sweep["eim_terms"],
        "expanded_negative": sweep["expanded_negative"],
        "greedy": {k: _greedy_record(v) for k, v in greedies.items()},
        "timings": timings,
    }


def _nan_to_none(arr: NDArray) -> list:
    """Nested lists with NaN/inf replaced by None (valid JSON)."""
    a = np.asarray(arr, dtype=float)
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in a] if a.ndim == 2 else [
        None if not np.isfinite(v) else float(v) for v in a]

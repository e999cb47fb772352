"""certrb against pyMOR on the thermal block: greedy (offline) time and online queries/s.

Both libraries get the very same truth matrices (see ``pymor_models.py``; the
truth solutions are checked to agree to 1e-10), the same training set, the
same stable residual estimator (X-orthonormalized Riesz representatives, Buhr
et al. 2014: certrb's ``orthonormal``, pyMOR's ``CoerciveRBReductor``) and
the same min-theta coercivity bound, in one process:

* offline: ``certrb.weak_greedy(OfflineBuilder(problem, "orthonormal"), ..., relative=True)``
  against ``pymor.algorithms.greedy.rb_greedy`` to a tolerance, on the 2x2
  block; optionally (``--big``) both to a fixed N on the 3x3 block;
* online: solution + error bound per parameter, for a single query and a
  large batch, at several N. certrb: ``model.evaluate(mus, n=N)``; pyMOR
  (no batch API): ``rom.solve(mu)`` + ``rom.estimate_error(mu)`` per
  parameter, ``rom = reductor.reduce(N)``; large batches are timed on
  ``--pymor-queries`` parameters and reported per query.

Writes ``vs_pymor.json`` and ``vs_pymor.png`` to ``--out``::

    python benchmarks/vs_pymor.py --out benchmarks/results          # ~1.5 min; ~3.5 min with --big
    python benchmarks/vs_pymor.py --quick --out /tmp/bench          # smoke run, < 20 s
    python benchmarks/vs_pymor.py --offline-only --big              # the greedies only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from online import machine_info, summarize, time_cases
from pymor_models import PymorTwin, check_coefficients, check_truth, pymor_model, pymor_reductor

import certrb

TRUTH_RTOL = 1e-10

DEFAULTS: dict[str, Any] = {
    "n": 100, "grid": 5, "n_train": 0, "tol": 1e-12, "max_basis": 80, "sizes": [10, 20, 31],
    "batch_sizes": [1, 10_000], "pymor_queries": 200, "repeats": 5, "warmup": 1, "min_time": 0.05,
    "offline_repeats": 3, "big_n": 99, "big_basis": 70, "big_train": 625,
}
QUICK: dict[str, Any] = {
    "n": 10, "grid": 3, "n_train": 0, "tol": 1e-8, "max_basis": 8, "sizes": [2, 4, 6],
    "batch_sizes": [1, 1_000], "pymor_queries": 20, "repeats": 3, "warmup": 1, "min_time": 0.005,
    "offline_repeats": 1, "big_n": 9, "big_basis": 10, "big_train": 50,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones fall back to DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="smoke run: n=10, small N, few repeats")
    p.add_argument("--n", type=int, help=f"squares per side of the mesh (default {DEFAULTS['n']})")
    p.add_argument("--grid", type=int, help=f"training grid points per axis (default {DEFAULTS['grid']})")
    p.add_argument("--n-train", type=int, help="random training parameters instead of the grid (0: grid)")
    p.add_argument("--tol", type=float, help=f"greedy relative tolerance (default {DEFAULTS['tol']})")
    p.add_argument("--max-basis", type=int, help=f"greedy basis cap (default {DEFAULTS['max_basis']})")
    p.add_argument("--sizes", type=int, nargs="+", help=f"online N values (default {DEFAULTS['sizes']})")
    p.add_argument("--batch-sizes", type=int, nargs="+", help=f"batch sizes (default {DEFAULTS['batch_sizes']})")
    p.add_argument("--pymor-queries", type=int, help="parameters timed per pyMOR batch (reported per query)")
    p.add_argument("--repeats", type=int, help=f"timed online repeats (default {DEFAULTS['repeats']})")
    p.add_argument("--warmup", type=int, help="untimed warm-up calls per online case")
    p.add_argument("--min-time", type=float, help="least seconds per online repeat")
    p.add_argument("--offline-repeats", type=int, help="greedy runs per library on the 2x2 block")
    p.add_argument("--big", action="store_true", help="also run the 3x3 block greedies to a fixed N")
    p.add_argument("--offline-only", action="store_true", help="time the greedies only (no online cases)")
    p.add_argument("--big-n", type=int, help="mesh of the 3x3 block (a multiple of 3)")
    p.add_argument("--big-basis", type=int, help="fixed N of the 3x3 greedies (tol 0)")
    p.add_argument("--big-train", type=int, help="random training parameters of the 3x3 block")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.repeats, args.offline_repeats, args.pymor_queries, *args.batch_sizes, *args.sizes) < 1:
        p.error("repeats, sizes, batch sizes and --pymor-queries must be positive")
    return args


def make_problem(blocks: tuple[int, int], n: int) -> tuple[certrb.Problem, float]:
    """Thermal block problem and its build seconds (assembly + X factorization + min-theta)."""
    from certrb.problems import thermal_block

    t0 = time.perf_counter()
    problem = thermal_block(blocks=blocks, n=n, mu_range=(0.1, 1.0))
    return problem, time.perf_counter() - t0


def training_set(problem: certrb.Problem, grid: int, n_train: int, seed: int) -> NDArray[np.float64]:
    """The grid (``n_train == 0``) or ``n_train`` random parameters."""
    if n_train > 0:
        return problem.parameter_space.sample(n_train, rng=seed)
    return problem.parameter_space.grid(grid)


def x_factor_seconds(problem: certrb.Problem) -> float:
    """Seconds to factorize X as certrb does (in Problem construction, outside the greedy)."""
    t0 = time.perf_counter()
    certrb.InnerProduct(problem.inner_product.matrix)
    return time.perf_counter() - t0


def run_certrb_greedy(problem: certrb.Problem, train: NDArray, tol: float, max_basis: int, *, certify: bool = True
                      ) -> tuple[certrb.GreedyResult, float]:
    """One certrb greedy with the truth factorization cache emptied first; (result, seconds).

    ``certify=False`` skips the round-off certificate of the final model (pyMOR has none).
    """
    problem._cache.clear()  # no truth factorizations left over from an earlier run
    t0 = time.perf_counter()
    builder = certrb.OfflineBuilder(problem, "orthonormal", certify=certify)
    result = certrb.weak_greedy(builder, train, tol=tol, max_basis=max_basis, relative=True)
    return result, time.perf_counter() - t0


def run_pymor_greedy(problem: certrb.Problem, train: NDArray, tol: float, max_basis: int
                     ) -> tuple[PymorTwin, Any, dict, float]:
    """One pyMOR rb_greedy on a fresh twin (so no factorization is cached); (twin, reductor, data, seconds)."""
    from pymor.algorithms.greedy import rb_greedy

    twin = pymor_model(problem)
    reductor = pymor_reductor(twin)
    mus = [twin.mu(row) for row in train]
    t0 = time.perf_counter()
    data = rb_greedy(twin.fom, reductor, mus, rtol=tol if tol > 0 else None, max_extensions=max_basis)
    return twin, reductor, data, time.perf_counter() - t0


def pymor_relative_bounds(twin: PymorTwin, rom: Any, train: NDArray) -> NDArray[np.float64]:
    """certrb's relative bound ``Delta / ||u_N||_X`` for a pyMOR ROM (X-orthonormal basis), shape (n_train,)."""
    out = np.empty(train.shape[0])
    for i, row in enumerate(train):
        mu = twin.mu(row)
        c = rom.solve(mu).to_numpy()[:, 0]
        out[i] = float(rom.estimate_error(mu)[0]) / max(float(np.linalg.norm(c)), np.finfo(float).tiny)
    return out


def offline(problem: certrb.Problem, train: NDArray, tol: float, max_basis: int, repeats: int
            ) -> tuple[dict[str, Any], certrb.GreedyResult, tuple[PymorTwin, Any]]:
    """Greedy wall times of both libraries (medians over ``repeats`` alternating runs)."""
    c_times, u_times, p_times = [], [], []
    for _ in range(repeats):
        greedy, sec = run_certrb_greedy(problem, train, tol, max_basis)
        c_times.append(sec)
        u_times.append(run_certrb_greedy(problem, train, tol, max_basis, certify=False)[1])
        twin, reductor, data, sec = run_pymor_greedy(problem, train, tol, max_basis)
        p_times.append(sec)
    rel_c = greedy.model.evaluate(train).relative_bound
    rel_p = pymor_relative_bounds(twin, data["rom"], train)
    x_s = x_factor_seconds(problem)
    c_med, u_med, p_med = statistics.median(c_times), statistics.median(u_times), statistics.median(p_times)
    record = {
        "n_h": problem.size, "n_train": int(train.shape[0]), "tol": tol, "max_basis": max_basis,
        "certrb": {"seconds": c_times, "median_s": c_med, "n_basis": greedy.model.n_basis,
                   "reason": greedy.reason, "final_max_bound": float(greedy.max_bounds[-1]),
                   "max_relative_bound_train": float(np.max(rel_c)), "x_factor_s": x_s,
                   "step_s": [s.seconds for s in greedy.history],
                   "outside_steps_s": c_times[-1] - sum(s.seconds for s in greedy.history),
                   "uncertified_seconds": u_times, "uncertified_median_s": u_med},
        "pymor": {"seconds": p_times, "median_s": p_med, "n_basis": len(reductor.bases["RB"]),
                  "extensions": int(data["extensions"]), "final_max_err": float(data["max_errs"][-1]),
                  "final_rel_to_first": float(data["max_errs"][-1] / data["max_errs"][0]),
                  "max_relative_bound_train": float(np.max(rel_p))},
        "speedup": p_med / c_med,
        "speedup_uncertified": p_med / u_med,
        "speedup_with_x_factor": p_med / (c_med + x_s),
    }
    return record, greedy, (twin, reductor)


def solution_and_bound(model: certrb.ReducedModel) -> certrb.ReducedModel:
    """The model without its output, so that evaluate computes what the pyMOR twin does."""
    return dataclasses.replace(model, output=None)


def pymor_query(rom: Any, mus: list) -> Callable[[], None]:
    """All of ``mus`` through ``rom.solve`` + ``rom.estimate_error``, one at a time."""
    def run() -> None:
        for mu in mus:
            rom.solve(mu)
            rom.estimate_error(mu)
    return run


def pymor_compute(rom: Any, mus: list) -> Callable[[], None]:
    """Same through one ``rom.compute(solution=True, solution_error_estimate=True)`` per parameter."""
    def run() -> None:
        for mu in mus:
            rom.compute(solution=True, solution_error_estimate=True, mu=mu)
    return run


def online(model: certrb.ReducedModel, twin: PymorTwin, reductor: Any, sizes: list[int],
           args: argparse.Namespace) -> dict[str, Any]:
    """Queries/s of both libraries per N and batch, ratios certrb / pyMOR."""
    rng = np.random.default_rng(args.seed + 1)
    queries = {b: model.parameter_space.sample(b, rng=rng) for b in args.batch_sizes}
    cases: dict[tuple[str, int, int], Callable[[], object]] = {}
    counts: dict[tuple[str, int, int], int] = {}
    agree = {}
    for n in sizes:
        rom = reductor.reduce(n)
        for b, mus in queries.items():
            sub = [twin.mu(row) for row in mus[: min(b, args.pymor_queries)]]
            cases["certrb", n, b] = lambda mus=mus, n=n: model.evaluate(mus, n=n)
            cases["pymor", n, b] = pymor_query(rom, sub)
            cases["pymor_compute", n, b] = pymor_compute(rom, sub)
            counts["certrb", n, b] = b
            counts["pymor", n, b] = counts["pymor_compute", n, b] = len(sub)
        probe = queries[args.batch_sizes[0]][:1]
        mine = float(model.evaluate(probe, n=n).bound[0])
        theirs = float(rom.estimate_error(twin.mu(probe[0]))[0])
        agree[str(n)] = abs(mine - theirs) / theirs
    times = time_cases(cases, args)  # type: ignore[arg-type]
    results: dict[str, Any] = {}
    for (lib, n, b), t in times.items():
        per_query = [s / counts[lib, n, b] for s in t]
        case = summarize(per_query, 1)  # seconds per query
        case.update(batch=b, timed_queries=counts[lib, n, b])
        results.setdefault(lib, {}).setdefault(str(n), {})[str(b)] = case
    ratios = {str(n): {str(b): results["certrb"][str(n)][str(b)]["queries_per_s"]
                       / results["pymor"][str(n)][str(b)]["queries_per_s"] for b in args.batch_sizes}
              for n in sizes}
    return {"results": results, "ratio_certrb_over_pymor": ratios, "bound_rel_diff_at_probe": agree}


def big_case(args: argparse.Namespace) -> dict[str, Any]:
    """3x3 block, both greedies to a fixed N (tol 0), one run each."""
    problem, build_s = make_problem((3, 3), args.big_n)
    train = problem.parameter_space.sample(args.big_train, rng=args.seed)
    record, _, _ = offline(problem, train, 0.0, args.big_basis, 1)
    record["build_s"] = build_s
    return record


def plot(record: dict[str, Any], path: Path) -> None:
    """Left: online queries/s per N (log); right: greedy seconds per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if record["online"] is None:
        fig, bx = plt.subplots(figsize=(5, 4.5), layout="constrained")
    else:
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained", width_ratios=[3, 2])
        plot_online(record, ax)
    cases = [("2x2", record["offline"])] + ([("3x3", record["big"])] if record.get("big") else [])
    for j, lib in enumerate(("certrb", "pymor")):
        secs = [c[lib]["median_s"] for _, c in cases]
        bx.bar(np.arange(len(cases)) + (j - 0.5) * 0.4, secs, 0.4, label=lib)
    bx.set_xticks(np.arange(len(cases)), [f"{name}\nN = {c['certrb']['n_basis']} / {c['pymor']['n_basis']}"
                                          for name, c in cases])
    bx.set_ylabel("greedy wall time [s]")
    bx.set_title("offline (weak greedy)")
    bx.grid(axis="y", alpha=0.3)
    bx.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_online(record: dict[str, Any], ax: Any) -> None:
    """Online queries/s per N and batch (log scale) on the axes ``ax``."""
    res = record["online"]["results"]
    sizes = list(res["certrb"])
    batches = list(res["certrb"][sizes[0]])
    series = [(lib, b) for lib in ("certrb", "pymor") for b in batches]
    width = 0.8 / len(series)
    for j, (lib, b) in enumerate(series):
        qps = [res[lib][n][b]["queries_per_s"] for n in sizes]
        ax.bar(np.arange(len(sizes)) + (j - (len(series) - 1) / 2) * width, qps, width, label=f"{lib}, batch {b}")
    ax.set_xticks(np.arange(len(sizes)), [f"N = {n}" for n in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("queries / s (solution + bound)")
    ax.set_title(f"online, thermal block 2x2, n_h = {record['offline']['n_h']}")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)


def report(record: dict[str, Any]) -> str:
    """Plain-text summary."""
    off = record["offline"]
    lines = [f"offline 2x2: certrb {off['certrb']['median_s']:.3g} s (N={off['certrb']['n_basis']}), "
             f"without round-off certificate {off['certrb']['uncertified_median_s']:.3g} s, "
             f"pyMOR {off['pymor']['median_s']:.3g} s (N={off['pymor']['n_basis']}), speedup {off['speedup']:.2f} "
             f"({off['speedup_uncertified']:.2f} without certificate)"]
    if record.get("big"):
        big = record["big"]
        lines.append(f"offline 3x3: certrb {big['certrb']['median_s']:.3g} s (N={big['certrb']['n_basis']}), "
                     f"pyMOR {big['pymor']['median_s']:.3g} s (N={big['pymor']['n_basis']}), "
                     f"speedup {big['speedup']:.2f} ({big['speedup_uncertified']:.2f} without certificate)")
    if record["online"] is None:
        return "\n".join(lines)
    res = record["online"]["results"]
    for n, by_batch in record["online"]["ratio_certrb_over_pymor"].items():
        for b, ratio in by_batch.items():
            lines.append(f"online N={n:>3} batch {b:>6}: certrb {res['certrb'][n][b]['queries_per_s']:10.4g} q/s, "
                         f"pyMOR {res['pymor'][n][b]['queries_per_s']:8.4g} q/s, ratio {ratio:8.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write vs_pymor.json / vs_pymor.png."""
    t_start = time.perf_counter()
    load_start = list(os.getloadavg())
    args = parse_args(argv)
    import pymor
    from pymor.core.logger import set_log_levels

    set_log_levels({"pymor": "WARN"})
    problem, build_s = make_problem((2, 2), args.n)
    probe = problem.parameter_space.sample(3, rng=args.seed + 2)
    twin = pymor_model(problem)
    truth_diff, coef_diff = check_truth(problem, twin, probe), check_coefficients(problem, twin, probe)
    if not truth_diff < TRUTH_RTOL or not coef_diff <= 1e-14:
        raise RuntimeError(f"pyMOR twin differs: truth {truth_diff:.2e}, coefficients {coef_diff:.2e}")
    train = training_set(problem, args.grid, args.n_train, args.seed)
    off, greedy, (twin, reductor) = offline(problem, train, args.tol, args.max_basis, args.offline_repeats)
    n_max = min(greedy.model.n_basis, len(reductor.bases["RB"]))
    sizes = sorted({min(n, n_max) for n in args.sizes})
    record: dict[str, Any] = {
        "benchmark": "vs_pymor",
        "machine": {**machine_info(), "pymor": pymor.__version__},
        "parameters": {k: getattr(args, k) for k in (*DEFAULTS, "seed", "quick", "big", "offline_only")},
        "problem": {"name": "thermal_block", "blocks": [2, 2], "n": args.n, "n_h": problem.size,
                    "build_s": build_s, "pymor_twin": twin.info()},
        "truth_check": {"max_rel_diff": truth_diff, "max_coefficient_diff": coef_diff, "rtol": TRUTH_RTOL,
                        "n_mu": int(probe.shape[0])},
        "offline": off,
        "online": None if args.offline_only else {
            "sizes": sizes, **online(solution_and_bound(greedy.model), twin, reductor, sizes, args)},
        "big": big_case(args) if args.big else None,
        "notes": [
            "certrb tol is on max bound/||u_N||_X; pyMOR rtol on max_err/max_err(N=0) (its definition); "
            "max_relative_bound_train evaluates certrb's definition for both final models",
            "certrb factorizes X when the Problem is built (x_factor_s, outside its greedy time); pyMOR "
            "factorizes X lazily inside its greedy: speedup_with_x_factor adds it to certrb's time",
            "certrb outside_steps_s (last run): greedy time not spent in its steps: setup and freezing the "
            "final model (estimator data such as round-off certificates)",
            "certrb uncertified_*: the same greedy with certify=False (no round-off certificate, which pyMOR "
            "does not compute either); speedup uses the default, certified run",
            "pyMOR has no batch API: its batch cases loop over timed_queries parameters, per-query times",
            "pymor_compute: rom.compute(solution=True, solution_error_estimate=True), which solves once",
            "certrb online: model.evaluate without the thermal block's output (the pyMOR twin has none)",
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(record, args.out / "vs_pymor.png")
    record["wall_s"] = time.perf_counter() - t_start
    record["load_avg"] = {"start": load_start, "end": list(os.getloadavg())}  # others' work skews timings
    (args.out / "vs_pymor.json").write_text(json.dumps(record, indent=2) + "\n")
    print(report(record))
    print(f"total {record['wall_s']:.1f} s; wrote {args.out / 'vs_pymor.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

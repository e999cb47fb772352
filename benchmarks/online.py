"""Online throughput of ``ReducedModel.evaluate``, per residual-norm estimator.

Builds a greedy model of ``certrb.problems.diffusion1d`` with every estimator
attached, then times ``model.evaluate(mus, estimator=name)`` (reduced solve +
residual norm + bound) for a single parameter and for a large batch. The plain
reduced solve ``model.solve(mus)`` is timed in the same run as the baseline.

Writes ``online.json`` (machine, parameters, timings) and ``online.png`` (bar
chart of queries per second) to ``--out``::

    python benchmarks/online.py --out benchmarks/results
    python benchmarks/online.py --quick --out /tmp/bench   # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import certrb
from certrb.problems import diffusion1d

BASELINE = "solve"

DEFAULTS: dict[str, Any] = {
    "n_elements": 500, "n_basis": 20, "n_train": 1000, "repeats": 7, "warmup": 1,
    "min_time": 0.05, "batch_sizes": [1, 10_000],
}
QUICK: dict[str, Any] = {
    "n_elements": 50, "n_basis": 3, "n_train": 100, "repeats": 3, "warmup": 1,
    "min_time": 0.005, "batch_sizes": [1, 1_000],
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset sizes fall back to DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="short smoke run (small mesh, small N, few repeats)")
    p.add_argument("--n-elements", type=int, help=f"truth mesh size (default {DEFAULTS['n_elements']})")
    p.add_argument("--n-basis", type=int, help=f"reduced dimension N (default {DEFAULTS['n_basis']})")
    p.add_argument("--n-train", type=int, help=f"greedy training set size (default {DEFAULTS['n_train']})")
    p.add_argument("--repeats", type=int, help=f"timed repeats per case (default {DEFAULTS['repeats']})")
    p.add_argument("--warmup", type=int, help=f"untimed warm-up calls per case (default {DEFAULTS['warmup']})")
    p.add_argument("--min-time", type=float, help="least seconds per repeat; fast calls are looped "
                   f"(default {DEFAULTS['min_time']})")
    p.add_argument("--batch-sizes", type=int, nargs="+", help=f"batch sizes (default {DEFAULTS['batch_sizes']})")
    p.add_argument("--seed", type=int, default=0, help="seed for training and query parameters")
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.repeats < 1 or args.warmup < 0 or min(args.batch_sizes) < 1:
        p.error("--repeats and --batch-sizes must be positive, --warmup non-negative")
    return args


def machine_info() -> dict[str, Any]:
    """Platform, library versions, CPU count and BLAS threading settings."""
    info: dict[str, Any] = {
        "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
        "python": platform.python_version(), "numpy": np.__version__, "certrb": certrb.__version__,
        "cpu_count": os.cpu_count(),
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                        if k in os.environ},
    }
    try:
        import scipy

        info["scipy"] = scipy.__version__
        info["blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name")
    except Exception:  # informational only
        pass
    return info


def build_model(args: argparse.Namespace) -> tuple[certrb.Problem, certrb.GreedyResult, float]:
    """Greedy model of size ``args.n_basis`` with all estimators attached; returns (problem, result, seconds)."""
    problem = diffusion1d(args.n_elements)
    train = problem.parameter_space.sample(args.n_train, rng=args.seed)
    k = 1 + 3 * args.n_basis  # Q_f + Q_a N for diffusion1d
    options = {"point-basis": {"max_points": max(3000, k * (k + 1) // 2)}}
    t0 = time.perf_counter()
    builder = certrb.OfflineBuilder(problem, certrb.ESTIMATOR_NAMES, default="orthonormal", rng=args.seed,
                                    options=options)
    result = certrb.weak_greedy(builder, train, tol=0.0, max_basis=args.n_basis)
    return problem, result, time.perf_counter() - t0


def calls_per_repeat(fn: Callable[[], object], min_time: float) -> int:
    """Smallest power of ten of calls that takes at least ``min_time`` seconds."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - t0 >= min_time or number >= 10**6:
            return number
        number *= 10


def seconds_per_call(fn: Callable[[], object], number: int) -> float:
    """Mean wall time of ``number`` back-to-back calls of ``fn``."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def time_cases(cases: dict[tuple[str, int], Callable[[], object]], args: argparse.Namespace
               ) -> dict[tuple[str, int], list[float]]:
    """Seconds per call of every case, ``args.repeats`` times each.

    Every case is warmed up and calibrated first; the repeats then run
    round-robin over the cases, so that drift of the machine (frequency,
    neighbours) spreads over all of them instead of biasing the ones timed first.
    """
    numbers = {}
    for key, fn in cases.items():
        for _ in range(args.warmup):
            fn()
        numbers[key] = calls_per_repeat(fn, args.min_time)
    times: dict[tuple[str, int], list[float]] = {key: [] for key in cases}
    for _ in range(args.repeats):
        for key, fn in cases.items():
            times[key].append(seconds_per_call(fn, numbers[key]))
    return times


def summarize(times: list[float], batch: int) -> dict[str, Any]:
    """Median, min, max seconds per call and queries/s = batch / median."""
    median = statistics.median(times)
    return {"batch": batch, "median_s": median, "min_s": min(times), "max_s": max(times),
            "repeats": len(times), "queries_per_s": batch / median}


def run_timings(model: certrb.ReducedModel, queries: dict[int, NDArray], args: argparse.Namespace
                ) -> dict[str, dict[str, dict[str, Any]]]:
    """Timings keyed ``[method][str(batch)]``; method is BASELINE or an estimator name.

    Estimator entries carry ``ratio_to_solve`` = their median / the baseline's median.
    """
    cases: dict[tuple[str, int], Callable[[], object]] = {}
    for batch, mus in queries.items():
        cases[BASELINE, batch] = lambda mus=mus: model.solve(mus)
        for name in certrb.ESTIMATOR_NAMES:
            cases[name, batch] = lambda mus=mus, name=name: model.evaluate(mus, estimator=name)
    times = time_cases(cases, args)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for (method, batch), t in times.items():
        results.setdefault(method, {})[str(batch)] = summarize(t, batch)
    for name in certrb.ESTIMATOR_NAMES:
        for b, case in results[name].items():
            case["ratio_to_solve"] = case["median_s"] / results[BASELINE][b]["median_s"]
    return results


def plot(results: dict[str, dict[str, dict[str, Any]]], path: Path, title: str) -> None:
    """Grouped bar chart (log y) of queries/s per method, one bar per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [*certrb.ESTIMATOR_NAMES, BASELINE]
    batches = list(results[BASELINE])
    width = 0.8 / len(batches)
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for j, batch in enumerate(batches):
        qps = [results[m][batch]["queries_per_s"] for m in methods]
        ax.bar(np.arange(len(methods)) + (j - (len(batches) - 1) / 2) * width, qps, width, label=f"batch {batch}")
    ax.set_xticks(np.arange(len(methods)), [*certrb.ESTIMATOR_NAMES, f"{BASELINE}\n(baseline)"])
    ax.set_yscale("log")
    ax.set_ylabel("queries / s")
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(record: dict[str, Any]) -> str:
    """Plain-text table of queries/s and ratio to the baseline."""
    results = record["results"]
    batches = list(results[BASELINE])
    head = f"{'method':<16}" + "".join(f"{'q/s @' + b:>16}{'x solve':>9}" for b in batches)
    lines = [head]
    for method, cases in results.items():
        row = f"{method:<16}"
        for b in batches:
            row += f"{cases[b]['queries_per_s']:>16.4g}{cases[b].get('ratio_to_solve', 1.0):>9.2f}"
        lines.append(row)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write online.json and online.png."""
    t_start = time.perf_counter()
    args = parse_args(argv)
    problem, greedy, build_s = build_model(args)
    model = greedy.model
    rng = np.random.default_rng(args.seed + 1)
    queries = {b: model.parameter_space.sample(b, rng=rng) for b in args.batch_sizes}
    results = run_timings(model, queries, args)
    record = {
        "benchmark": "online",
        "machine": machine_info(),
        "parameters": {k: getattr(args, k) for k in (*DEFAULTS, "seed", "quick")},
        "model": {"problem": "diffusion1d", "n_h": problem.size, "n_basis": model.n_basis,
                  "greedy_reason": greedy.reason, "final_max_bound": float(greedy.max_bounds[-1]),
                  "build_s": build_s},
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"ReducedModel.evaluate, diffusion1d n_h={problem.size}, N={model.n_basis}"
    plot(results, args.out / "online.png", title)
    record["wall_s"] = time.perf_counter() - t_start
    (args.out / "online.json").write_text(json.dumps(record, indent=2) + "\n")
    print(report(record))
    print(f"model build {build_s:.2f} s, total {record['wall_s']:.2f} s; wrote {args.out / 'online.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

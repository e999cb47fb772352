"""Online cost against the truth dimension n_h: it should not depend on it.

Builds thermal block models (2x2 blocks, the same N and Q_a = 4, Q_f = 1) on
meshes of about 1e3, 1e4, 1e5 and 1e6 unknowns and times
``model.evaluate(mus)`` (reduced solve + ``orthonormal`` residual norm + bound
+ output) for a single parameter and a large batch. The spread
``max / min - 1`` of the median online time across the meshes is the figure of
merit (0 for a perfectly n_h-independent online stage).

Each model comes from ``certrb.weak_greedy`` to a fixed N (tol 0) on a small
random training set, or, above ``--greedy-max-nh`` unknowns, from
``certrb.reduce`` on N truth snapshots at random parameters, solved by a
sparse LU with a symmetric ordering (``problem.solve``'s default ordering
takes minutes per solve at 1e6 unknowns); the JSON says which. Writes
``scaling.json`` and ``scaling.png`` to ``--out``::

    python benchmarks/scaling.py --out benchmarks/results        # ~2 min, 5.6 GB peak (the 1e6 mesh)
    python benchmarks/scaling.py --quick --out /tmp/bench        # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from online import machine_info, summarize, time_cases

import certrb
from certrb.problems import thermal_block

DEFAULTS: dict[str, Any] = {
    "meshes": [22, 70, 224, 708], "n_basis": 10, "n_train": 100, "greedy_max_nh": 200_000,
    "batch_sizes": [1, 10_000], "repeats": 7, "warmup": 1, "min_time": 0.05,
}
QUICK: dict[str, Any] = {
    "meshes": [4, 8, 16], "n_basis": 3, "n_train": 20, "greedy_max_nh": 200,
    "batch_sizes": [1, 1_000], "repeats": 3, "warmup": 1, "min_time": 0.005,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones fall back to DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny meshes, N = 3")
    p.add_argument("--meshes", type=int, nargs="+", help="squares per side (even); n_h = (n-1)^2 + n^2 "
                   f"(default {DEFAULTS['meshes']}: ~1e3, 1e4, 1e5, 1e6)")
    p.add_argument("--n-basis", type=int, help=f"reduced dimension N (default {DEFAULTS['n_basis']})")
    p.add_argument("--n-train", type=int, help=f"greedy training set size (default {DEFAULTS['n_train']})")
    p.add_argument("--greedy-max-nh", type=int, help="largest n_h built by the greedy; larger meshes use "
                   f"certrb.reduce on N snapshots (default {DEFAULTS['greedy_max_nh']})")
    p.add_argument("--batch-sizes", type=int, nargs="+", help=f"batch sizes (default {DEFAULTS['batch_sizes']})")
    p.add_argument("--repeats", type=int, help=f"timed repeats per case (default {DEFAULTS['repeats']})")
    p.add_argument("--warmup", type=int, help="untimed warm-up calls per case")
    p.add_argument("--min-time", type=float, help="least seconds per repeat")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.repeats, args.n_basis, args.n_train, *args.batch_sizes) < 1:
        p.error("--repeats, --n-basis, --n-train and --batch-sizes must be positive")
    if any(m < 2 or m % 2 for m in args.meshes):
        p.error("--meshes must be even integers >= 2 (2x2 blocks must align with the mesh)")
    return args


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


SNAPSHOT_SOLVER = "scipy splu, MMD_AT_PLUS_A ordering, SymmetricMode, no pivoting (A(mu) is SPD)"


def symmetric_snapshots(problem: certrb.Problem, mus: NDArray[np.float64]) -> tuple[NDArray, float]:
    """Truth snapshots (n_h, n_mu), one factorization alive at a time, and their largest relative residual.

    ``problem.solve`` keeps its last 8 factorizations, gigabytes each at
    n_h = 1e6; here each is dropped after its solve. Without pivoting
    (``diag_pivot_thresh=0``) the factorization is exact for these SPD matrices.
    """
    import scipy.sparse.linalg as spla

    theta, f = problem.operator.theta(mus), problem.rhs.assemble(mus)
    out = np.empty((problem.size, mus.shape[0]))
    worst = 0.0
    for i in range(mus.shape[0]):
        A = problem.operator.assemble(theta[i])
        lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        out[:, i] = lu.solve(f[i])
        del lu
        rel = float(np.linalg.norm(A @ out[:, i] - f[i]) / np.linalg.norm(f[i]))
        if not np.isfinite(rel):
            raise RuntimeError(f"snapshot {i} is not finite (relative residual {rel})")
        worst = max(worst, rel)
    return out, worst


def build(n: int, args: argparse.Namespace) -> tuple[certrb.ReducedModel, dict[str, Any]]:
    """Model of size N on the n x n mesh (basis dropped) and how it was built."""
    t0 = time.perf_counter()
    problem = thermal_block((2, 2), n=n)
    problem_s = time.perf_counter() - t0
    info: dict[str, Any] = {"n": n, "n_h": problem.size, "problem_s": problem_s}
    t0 = time.perf_counter()
    if problem.size <= args.greedy_max_nh:
        train = problem.parameter_space.sample(args.n_train, rng=args.seed)
        greedy = certrb.weak_greedy(certrb.OfflineBuilder(problem, "orthonormal"), train, tol=0.0,
                                    max_basis=args.n_basis)
        model = greedy.model
        info.update(builder="weak_greedy", n_train=args.n_train, greedy_reason=greedy.reason,
                    final_max_bound=float(greedy.max_bounds[-1]), step_s=[s.seconds for s in greedy.history])
    else:
        mus = problem.parameter_space.sample(args.n_basis, rng=args.seed)
        t1 = time.perf_counter()
        snapshots, residual = symmetric_snapshots(problem, mus)
        info["snapshots_s"] = time.perf_counter() - t1
        model = certrb.reduce(certrb.OfflineBuilder(problem, "orthonormal"), snapshots, keep_basis=False)
        info.update(builder="reduce(snapshots)", n_snapshots=args.n_basis, snapshot_solver=SNAPSHOT_SOLVER,
                    snapshot_max_rel_residual=residual)
    info.update(build_s=time.perf_counter() - t0, n_basis=model.n_basis, peak_rss_mib=peak_rss_mib())
    check = model.evaluate(problem.parameter_space.sample(100, rng=args.seed + 2)).relative_bound
    if not np.all(np.isfinite(check)):
        raise RuntimeError(f"the model on the {n} x {n} mesh gives non-finite bounds")
    info["max_relative_bound_100"] = float(np.max(check))
    del problem
    gc.collect()
    return dataclasses.replace(model, basis=None), info


def spread(values: list[float]) -> float:
    """``max / min - 1``."""
    return max(values) / min(values) - 1.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build every model, then time all (mesh, batch) cases round-robin."""
    models, infos = {}, {}
    for n in args.meshes:
        models[n], infos[str(n)] = build(n, args)
        print(f"n={n:5d} n_h={infos[str(n)]['n_h']:8d} N={models[n].n_basis} built in "
              f"{infos[str(n)]['build_s']:.1f} s ({infos[str(n)]['builder']})", flush=True)
    rng = np.random.default_rng(args.seed + 1)
    space = models[args.meshes[0]].parameter_space
    queries = {b: space.sample(b, rng=rng) for b in args.batch_sizes}
    cases: dict[tuple[int, int], Callable[[], object]] = {
        (n, b): (lambda m=models[n], q=q: m.evaluate(q)) for n in args.meshes for b, q in queries.items()
    }
    times = time_cases(cases, args)  # type: ignore[arg-type]
    results: dict[str, dict[str, Any]] = {}
    for (n, b), t in times.items():
        results.setdefault(str(n), {})[str(b)] = summarize(t, b)
    spreads = {str(b): spread([results[str(n)][str(b)]["median_s"] for n in args.meshes]) for b in args.batch_sizes}
    return {"models": infos, "results": results, "spread": spreads}


def plot(record: dict[str, Any], path: Path) -> None:
    """Median online seconds per query against n_h (log-log), one line per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, results = record["models"], record["results"]
    meshes = list(models)
    n_h = [models[m]["n_h"] for m in meshes]
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for b in record["parameters"]["batch_sizes"]:
        per_query = [results[m][str(b)]["median_s"] / b for m in meshes]
        ax.loglog(n_h, per_query, "o-", label=f"batch {b} (spread {record['spread'][str(b)]:.0%})")
    ax.set_xlabel("truth dimension n_h")
    ax.set_ylabel("online seconds per query")
    ax.set_title(f"model.evaluate, thermal block 2x2, N = {record['parameters']['n_basis']}")
    ax.grid(which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scaling study and write scaling.json / scaling.png."""
    t_start = time.perf_counter()
    load_start = list(os.getloadavg())
    args = parse_args(argv)
    out = run(args)
    record = {
        "benchmark": "scaling",
        "machine": machine_info(),
        "parameters": {k: getattr(args, k) for k in (*DEFAULTS, "seed", "quick")},
        **out,
        "peak_rss_mib": peak_rss_mib(),
        "notes": ["spread = max / min - 1 of the median online time over the meshes, per batch size",
                  "evaluate includes the output and its bound (thermal_block has an output)"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(record, args.out / "scaling.png")
    record["wall_s"] = time.perf_counter() - t_start
    record["load_avg"] = {"start": load_start, "end": list(os.getloadavg())}  # others' work skews timings
    (args.out / "scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    for m, info in record["models"].items():
        row = "  ".join(f"batch {b}: {out['results'][m][b]['queries_per_s']:.4g} q/s" for b in out["results"][m])
        print(f"n_h={info['n_h']:>8}  {row}")
    print("spread (max/min - 1): " + ", ".join(f"batch {b}: {s:.1%}" for b, s in out["spread"].items()))
    print(f"total {record['wall_s']:.1f} s, peak RSS {record['peak_rss_mib']:.0f} MiB; "
          f"wrote {args.out / 'scaling.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

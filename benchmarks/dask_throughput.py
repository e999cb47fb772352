"""Truth snapshot throughput (solves/s) of ``certrb.parallel.ParallelMap`` on every backend.

Solves the 2x2 thermal block at batches of random parameters through
:func:`certrb.solve_snapshots` on

* ``serial``: in this process;
* ``processes-2``: a local process pool with 2 workers;
* ``dask-1`` and ``dask-2``: a ``dask.distributed.LocalCluster`` with 1 and 2
  single-threaded worker processes.

The problem (its matrices) is shipped to the workers once per backend, by a
warm-up map that is timed separately (``first_map_s``, which includes each
worker rebuilding the problem and factorizing X); the cluster or pool start is
timed as ``startup_s``. Then ``--repeats`` batches of ``--n-solves`` fresh
parameters (never seen before, so no cached factorization is reused) are timed
per backend, round-robin over the backends. Every batch is checked to equal the
serial result bit for bit.

Writes ``dask_throughput.json`` and ``dask_throughput.png`` to ``--out``::

    python benchmarks/dask_throughput.py --out benchmarks/results        # ~1 min
    python benchmarks/dask_throughput.py --quick --out /tmp/bench        # smoke run, ~15 s
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from online import machine_info

import certrb
from certrb.offline.snapshots import solve_snapshots
from certrb.parallel import ParallelMap, local_cluster

DEFAULTS: dict[str, Any] = {"n": 100, "n_solves": 48, "chunk_size": 4, "repeats": 3}
QUICK: dict[str, Any] = {"n": 10, "n_solves": 8, "chunk_size": 2, "repeats": 2}
BACKENDS = ("serial", "processes-2", "dask-1", "dask-2")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones fall back to DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="smoke run: n=10 mesh, 8 solves, 2 repeats")
    p.add_argument("--n", type=int, help=f"squares per side of the mesh (default {DEFAULTS['n']})")
    p.add_argument("--n-solves", type=int, help=f"parameters per timed batch (default {DEFAULTS['n_solves']})")
    p.add_argument("--chunk-size", type=int, help=f"parameters per task (default {DEFAULTS['chunk_size']})")
    p.add_argument("--repeats", type=int, help=f"timed batches per backend (default {DEFAULTS['repeats']})")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="backends to time")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.n_solves, args.chunk_size, args.repeats) < 1:
        p.error("--n-solves, --chunk-size and --repeats must be positive")
    if "serial" not in args.backends:
        args.backends = ["serial", *args.backends]  # the reference of the bit-for-bit check
    return args


def open_backend(name: str, chunk_size: int, stack: ExitStack) -> ParallelMap:
    """A ParallelMap for ``name``; pools and clusters are closed when ``stack`` unwinds."""
    if name == "serial":
        return stack.enter_context(ParallelMap(chunk_size=chunk_size))
    if name.startswith("processes-"):
        return stack.enter_context(ParallelMap(int(name.split("-")[1]), chunk_size=chunk_size))
    from distributed import Client

    cluster = stack.enter_context(local_cluster(int(name.split("-")[1])))
    client = stack.enter_context(Client(cluster, set_as_default=False))
    return stack.enter_context(ParallelMap(client=client, chunk_size=chunk_size))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start every backend, warm it up, then time the batches round-robin."""
    from certrb.problems import thermal_block

    problem = thermal_block(blocks=(2, 2), n=args.n, mu_range=(0.1, 1.0))
    rng = np.random.default_rng(args.seed)
    warmup = problem.parameter_space.sample(len(args.backends) * 2 * args.chunk_size, rng=rng)
    batches = [problem.parameter_space.sample(args.n_solves, rng=rng) for _ in range(args.repeats)]
    cases: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        maps = {}
        for name in args.backends:
            t0 = time.perf_counter()
            maps[name] = open_backend(name, args.chunk_size, stack)
            t1 = time.perf_counter()
            solve_snapshots(problem, warmup, parallel=maps[name])  # ships the problem once
            cases[name] = {"startup_s": t1 - t0, "first_map_s": time.perf_counter() - t1, "seconds": []}
        reference: list[NDArray] = []
        for r, mus in enumerate(batches):
            for name in args.backends:  # round-robin: machine drift spreads over all backends
                t0 = time.perf_counter()
                U = solve_snapshots(problem, mus, parallel=maps[name])
                cases[name]["seconds"].append(time.perf_counter() - t0)
                if name == "serial":
                    reference.append(U)
                elif not np.array_equal(U, reference[r]):
                    raise RuntimeError(f"{name} differs from the serial snapshots")
    serial = statistics.median(cases["serial"]["seconds"])
    for case in cases.values():
        median = statistics.median(case["seconds"])
        case.update(median_s=median, min_s=min(case["seconds"]), max_s=max(case["seconds"]),
                    solves_per_s=args.n_solves / median, speedup=serial / median, identical_to_serial=True)
    return {"problem": {"name": "thermal_block", "blocks": [2, 2], "n": args.n, "n_h": problem.size},
            "results": cases}


def plot(record: dict[str, Any], path: Path) -> None:
    """Solves/s per backend, annotated with the speedup over serial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = record["results"]
    names = list(res)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    bars = ax.bar(names, [res[n]["solves_per_s"] for n in names], color="tab:blue")
    for bar, name in zip(bars, names, strict=True):
        ax.annotate(f"{res[name]['speedup']:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom")
    ax.set_ylabel("truth solves / s")
    ax.set_title(f"snapshot throughput, thermal block 2x2, n_h = {record['problem']['n_h']}, "
                 f"chunk {record['parameters']['chunk_size']}")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(record: dict[str, Any]) -> str:
    """Plain-text summary."""
    return "\n".join(f"{name:12s} {c['solves_per_s']:8.2f} solves/s  speedup {c['speedup']:5.2f}  "
                     f"start {c['startup_s']:5.2f} s  first map {c['first_map_s']:5.2f} s"
                     for name, c in record["results"].items())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write dask_throughput.json / dask_throughput.png."""
    t_start = time.perf_counter()
    load_start = list(os.getloadavg())
    args = parse_args(argv)
    record: dict[str, Any] = {
        "benchmark": "dask_throughput",
        "machine": machine_info(),
        "parameters": {k: getattr(args, k) for k in (*DEFAULTS, "backends", "seed", "quick")},
        **run(args),
        "notes": ["startup_s: creating the pool or LocalCluster (pools start their processes lazily, "
                  "so for them the start is part of first_map_s)",
                  "first_map_s: the warm-up map, which ships the problem and lets each worker rebuild it",
                  "seconds: timed batches of fresh parameters; solves_per_s = n_solves / median",
                  f"certrb {certrb.__version__}"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(record, args.out / "dask_throughput.png")
    record["wall_s"] = time.perf_counter() - t_start
    record["load_avg"] = {"start": load_start, "end": list(os.getloadavg())}  # others' work skews timings
    (args.out / "dask_throughput.json").write_text(json.dumps(record, indent=2) + "\n")
    print(report(record))
    print(f"total {record['wall_s']:.1f} s; wrote {args.out / 'dask_throughput.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

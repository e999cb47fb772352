"""Where the greedy stops: certrb with and without its stagnation stop against pyMOR's rb_greedy, tol 0.

The 2x2 thermal block (``certrb.problems.thermal_block``, pyMOR's mesh), both libraries run to
tolerance 0 on the same training set (a grid, and random parameters), the same matrices, X
and min-theta constant (``pymor_models.py``). Reported per run: final N, stop reason, the
largest relative bound over the training set, and the largest relative true error over random
test parameters (truth solves in double; both libraries' reduced solutions judged alike).
Writes ``greedy_stop.json``::

    python benchmarks/greedy_stop.py --out benchmarks/results     # a few minutes (n = 100)
    python benchmarks/greedy_stop.py --quick --out /tmp/bench     # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from online import machine_info
from pymor_models import pymor_model, pymor_reductor

import certrb
from certrb.offline.greedy import STAGNATION
from certrb.problems import thermal_block


def relative_errors(problem: certrb.Problem, basis: np.ndarray, coefficients: np.ndarray, truth: np.ndarray
                    ) -> np.ndarray:
    """``||u - V c||_X / ||u||_X`` per test parameter, shape (n_test,)."""
    X = problem.inner_product.matrix
    diff = truth - coefficients @ basis.T
    return np.sqrt(np.einsum("mh,hm->m", diff, X @ diff.T) / np.einsum("mh,hm->m", truth, X @ truth.T))


def run(problem: certrb.Problem, train: np.ndarray, test: np.ndarray, truth: np.ndarray, max_basis: int
        ) -> dict[str, Any]:
    """pyMOR's greedy, certrb's with the stagnation stop (default) and without it."""
    from pymor.algorithms.greedy import rb_greedy

    out: dict[str, Any] = {}
    twin = pymor_model(problem)
    reductor = pymor_reductor(twin)
    t0 = time.perf_counter()
    data = rb_greedy(twin.fom, reductor, [twin.mu(r) for r in train], rtol=None, max_extensions=max_basis)
    seconds = time.perf_counter() - t0
    rom, basis = data["rom"], reductor.bases["RB"].to_numpy()
    basis = basis if basis.shape[0] == problem.size else basis.T
    coeffs = np.array([rom.solve(twin.mu(r)).to_numpy().ravel() for r in test])
    rel = [float(rom.estimate_error(twin.mu(r))[0]) / max(float(np.linalg.norm(rom.solve(twin.mu(r)).to_numpy())),
                                                          1e-300) for r in train]
    out["pymor"] = {"n_basis": int(basis.shape[1]), "seconds": seconds, "max_relative_bound_train": max(rel),
                    "max_relative_error_test": float(relative_errors(problem, basis, coeffs, truth).max())}
    for name, stagnation in (("certrb", STAGNATION), ("certrb_no_stagnation", None)):
        t0 = time.perf_counter()
        greedy = certrb.weak_greedy(certrb.OfflineBuilder(problem, "orthonormal"), train, tol=0.0,
                                    max_basis=max_basis, relative=True, stagnation=stagnation)
        seconds = time.perf_counter() - t0
        model = greedy.model
        res = model.evaluate(test)
        out[name] = {"n_basis": model.n_basis, "reason": greedy.reason, "stop": greedy.stop, "seconds": seconds,
                     "max_relative_bound_train": float(model.evaluate(train).relative_bound.max()),
                     "max_relative_error_test": float(relative_errors(problem, model.basis, res.coefficients,
                                                                      truth).max())}
    return out


def main() -> int:
    """Run both training sets and write greedy_stop.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--quick", action="store_true", help="n = 10, small sets")
    p.add_argument("--n", type=int, default=100, help="squares per side of the mesh")
    p.add_argument("--max-basis", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.quick:
        args.n, args.max_basis = 10, 20
    from pymor.core.logger import set_log_levels

    set_log_levels({"pymor": "WARN"})
    t_start = time.perf_counter()
    problem = thermal_block((2, 2), n=args.n, mu_range=(0.1, 1.0))
    space = problem.parameter_space
    test = space.sample(20 if args.quick else 100, rng=args.seed + 1)
    truth = problem.solve(test)
    sets = {"grid": space.grid(3 if args.quick else 5), "random": space.sample(50 if args.quick else 1000,
                                                                                 rng=args.seed)}
    record = {"benchmark": "greedy_stop", "machine": machine_info(), "n_h": problem.size,
              "parameters": {"n": args.n, "max_basis": args.max_basis, "quick": args.quick,
                             "stagnation": list(STAGNATION)},
              "runs": {name: {"n_train": int(train.shape[0]), **run(problem, train, test, truth, args.max_basis)}
                       for name, train in sets.items()}}
    record["wall_s"] = time.perf_counter() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "greedy_stop.json").write_text(json.dumps(record, indent=1) + "\n")
    for name, rec in record["runs"].items():
        line = ", ".join(f"{k}: N = {v['n_basis']}, bound {v['max_relative_bound_train']:.2e}, "
                         f"error {v['max_relative_error_test']:.2e}" for k, v in rec.items() if isinstance(v, dict))
        print(f"{name} ({rec['n_train']} train): {line}")
    print(f"total {record['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())

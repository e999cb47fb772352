"""E3 ``eim`` against E4 ``eim-stabilized`` on the non-symmetric advection2d problem, per basis size N.

A weak greedy (``orthonormal`` bound) builds a basis of ``advection2d`` until it stagnates
near the round-off floor. Then, for every N = 1..N_max, both EIM variants are built with
two stopping rules of their EIM greedy over the residual coefficients ``x(mu)``:

- ``generic``: the generic EIM default, stop when the largest max-norm remainder is
  ``10 K eps`` times the largest coefficient (the library's default until this benchmark);
- ``eps``: stop at ``eps`` (machine epsilon) times the largest coefficient, the default of the
  E3/E4 builders now (``certrb.offline.estimators.eim.RTOL``).

Per N and per (variant, rule) it reports the number of EIM terms m (of K), the condition
number of the interpolation matrix B, the largest greedy remainder, the largest test
remainder ``max |x - lambda Q| / max |x|``, the largest truth residual of that remainder
(extended precision, relative to ``||f||_{V'}``), and the largest relative deviation of the
estimate from E0 in extended precision; the same deviation for ``orthonormal`` (E5) and for
E0 in double precision. Floors as in ``certrb.study.estimator_floor`` (largest reference
relative residual at which the deviation exceeds 1%). Writes ``stabilized_eim.json`` and
``stabilized_eim.png`` to ``--out``::

    python benchmarks/stabilized_eim.py --out benchmarks/results
    python benchmarks/stabilized_eim.py --quick --out /tmp/bench   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import certrb
from certrb import OfflineBuilder
from certrb.offline.estimators.truth import residual_norms
from certrb.offline.greedy import weak_greedy
from certrb.online.estimators.eim import EIMEstimator
from certrb.problems import advection2d
from certrb.study import estimator_floor

DEFAULTS: dict[str, Any] = {"n": 24, "n_train": 300, "n_test": 40, "max_basis": 60, "n_eim_train": 200}
QUICK: dict[str, Any] = {"n": 6, "n_train": 40, "n_test": 6, "max_basis": 8, "n_eim_train": 30}
VARIANTS = ("eim", "eim-stabilized")
EPS = float(np.finfo(float).eps)
RULES = {"generic": lambda k: 10 * k * EPS, "eps": lambda k: EPS}
DEFINITIONS = {
    "m": "number of EIM terms kept (of K = Q_f + Q_a N components)",
    "cond_B": "2-norm condition number of the unit lower-triangular interpolation matrix B",
    "greedy_remainder": "largest max-norm remainder of the EIM greedy's training family after the last term",
    "test_remainder": "max over test mu of max_k |x_k - (lambda Q)_k| / max_k |x_k|",
    "remainder_residual": "max over test mu of ||sum_k delta_k g_k||_{V'} / ||f||_{V'} (extended precision)",
    "deviation": "max over test mu of |eps_est - eps_E0ext| / eps_E0ext",
    "floor": "largest eps_E0ext / ||f||_{V'} over (N, test mu) with deviation > 1% (see certrb.study.estimator_floor)",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset sizes fall back to DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--seed", type=int, default=0)
    for key in DEFAULTS:
        p.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def machine_info() -> dict[str, Any]:
    """Platform, library versions and BLAS thread settings."""
    import scipy

    return {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "certrb": certrb.__version__, "cpu_count": os.cpu_count(),
            "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}}


def eim_record(est: EIMEstimator, problem: certrb.Problem, basis: NDArray, x: NDArray, ref: NDArray,
               f_norm: NDArray) -> dict[str, Any]:
    """The diagnostics of one EIM estimator at one N (see DEFINITIONS); ``deviation`` per test point."""
    n = basis.shape[1]
    eps = est.residual_norm(x, n)
    lam = est._coefficients(x)[1]
    rem = x - lam @ est.vectors
    rem_res = residual_norms(problem, basis, rem, precision="extended") / f_norm
    return {"m": est.n_terms, "cond_B": float(np.linalg.cond(est.matrix)), "greedy_remainder": float(est.errors[-1]),
            "test_remainder": float(np.max(np.abs(rem).max(axis=1) / np.abs(x).max(axis=1))),
            "remainder_residual": float(np.max(rem_res)), "deviation": np.abs(eps - ref) / ref}


def sweep(problem: certrb.Problem, basis: NDArray, train: NDArray, test: NDArray, seed: int) -> dict[str, Any]:
    """Per N: reference residuals, E0 double and E5 deviations, the EIM records of every (variant, rule)."""
    f_norm = np.asarray(problem.inner_product.dual_norms(problem.rhs.assemble(test).T, refine=2), dtype=float)
    builder = OfflineBuilder(problem, ("orthonormal", *VARIANTS))
    theta, phi = problem.operator.theta(test), problem.rhs.theta(test)
    out: dict[str, Any] = {"sizes": [], "n_components": [], "rel_residual": [], "deviation": {}, "eim": {}}
    devs: dict[str, list] = {"truth-double": [], "orthonormal": []}
    for n in range(1, basis.shape[1] + 1):
        builder.append_orthonormal(basis[:, n - 1:n])
        x = builder.operators().solve(theta, phi, n)[1]
        ref = residual_norms(problem, builder.basis, x, precision="extended")
        devs["truth-double"].append(np.abs(residual_norms(problem, builder.basis, x) - ref) / ref)
        devs["orthonormal"].append(np.abs(builder.estimator("orthonormal").residual_norm(x, n) - ref) / ref)
        k = x.shape[1]
        for rule, rtol in RULES.items():
            for name in VARIANTS:
                builder.options = {name: {"rtol": rtol(k)}}
                builder.rng = np.random.default_rng(seed + n)
                est = builder.estimator(name, train=train)
                assert isinstance(est, EIMEstimator)
                rec = eim_record(est, problem, builder.basis, x, ref, f_norm)
                out["eim"].setdefault(f"{name}/{rule}", []).append(rec)
        out["sizes"].append(n)
        out["n_components"].append(k)
        out["rel_residual"].append(ref / f_norm)
    out["deviation"] = devs
    return out


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Floors and per-N curves (JSON-ready)."""
    rel = np.array(raw["rel_residual"])
    curves: dict[str, Any] = {"median_rel_residual": np.median(rel, axis=1).tolist()}
    floors: dict[str, Any] = {}
    for name, rows in raw["deviation"].items():
        dev = np.array(rows)
        curves[f"deviation/{name}"] = dev.max(axis=1).tolist()
        floors[name] = estimator_floor(rel.ravel(), dev.ravel())
    per_n: dict[str, Any] = {}
    for key, recs in raw["eim"].items():
        dev = np.array([r["deviation"] for r in recs])
        floors[key] = estimator_floor(rel.ravel(), dev.ravel())
        per_n[key] = {f: [r[f] for r in recs] for f in ("m", "cond_B", "greedy_remainder", "test_remainder",
                                                        "remainder_residual")}
        per_n[key]["deviation"] = dev.max(axis=1).tolist()
    truth = floors["truth-double"][0]
    return {"sizes": raw["sizes"], "n_components": raw["n_components"], "curves": curves, "per_n": per_n,
            "floors": {k: {"floor": v[0], "reached": v[1], "over_truth_double": v[0] / truth}
                       for k, v in floors.items()},
            "stabilization_changes": {rule: any(
                per_n[f"eim/{rule}"]["m"][i] != per_n[f"eim-stabilized/{rule}"]["m"][i]
                or per_n[f"eim/{rule}"]["deviation"][i] != per_n[f"eim-stabilized/{rule}"]["deviation"][i]
                for i in range(len(raw["sizes"]))) for rule in RULES}}


def plot(record: dict[str, Any], path: Path) -> None:
    """Deviations per N (left), EIM terms and cond(B) per N (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = record["results"]
    n = res["sizes"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax1.semilogy(n, res["curves"]["median_rel_residual"], "k-", label="median eps/||f|| (E0 ext)")
    for name in ("truth-double", "orthonormal"):
        ax1.semilogy(n, np.maximum(res["curves"][f"deviation/{name}"], 1e-17), "--", label=name)
    for key, rec in res["per_n"].items():
        ax1.semilogy(n, np.maximum(rec["deviation"], 1e-17), "o-" if "stabilized" in key else "x:", ms=3, label=key)
    ax1.set(xlabel="N", ylabel="max relative deviation from E0 extended", title="advection2d")
    ax1.legend(fontsize=7)
    for key, rec in res["per_n"].items():
        ax2.plot(n, np.array(rec["m"]) / np.array(res["n_components"]), label=f"m/K {key}")
        ax2.plot(n, np.log10(rec["cond_B"]), ":", label=f"log10 cond(B) {key}")
    ax2.set(xlabel="N", title="EIM terms and conditioning")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the basis, sweep N, write JSON + PNG."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    problem = advection2d(args.n, n_scm_train=40 if args.quick else 200)
    space = problem.parameter_space
    train, test = space.sample(args.n_train, rng=args.seed), space.sample(args.n_test, rng=args.seed + 1)
    greedy = weak_greedy(OfflineBuilder(problem, ("orthonormal",), rng=args.seed), train, tol=1e-15,
                         max_basis=args.max_basis)
    basis = greedy.model.basis
    assert basis is not None
    raw = sweep(problem, basis, train[: args.n_eim_train], test, args.seed)
    record: dict[str, Any] = {
        "benchmark": "stabilized_eim", "machine": machine_info(),
        "parameters": {**{k: getattr(args, k) for k in DEFAULTS}, "quick": args.quick, "seed": args.seed,
                       "n_h": problem.size, "rules": {"generic": "10 K eps", "eps": "eps"}},
        "definitions": DEFINITIONS, "greedy_reason": greedy.reason, "results": summarize(raw),
    }
    record["wall_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stabilized_eim.json").write_text(json.dumps(record, indent=1))
    plot(record, args.out / "stabilized_eim.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

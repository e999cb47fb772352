"""Ill-conditioned inner products: greedy floors and certified stability on the H1 family ``X = K + w M``.

The family of ``tests/certification/illconditioned.py`` (1D P1 diffusion with natural
boundary conditions, cond(X) ~ 4 / (w h^2), dyadic meshes) at mass weights 1, 1e-6, 1e-10.
Per case: two weak greedies to 1e-13 driven by ``orthonormal`` (E5) and by ``eim``, with
certrb's own certified ``MinTheta`` as the stability bound; their floors (smallest over N
of the largest relative true error over the test parameters) against the truth solved in
50 digits with the exact affine sum; violations of every ``rigorous`` bound at every N; the
worst certified E5 effectivity where the error is 100x above the floor; and the range of
certrb's ``MinTheta`` and ``SCM`` lower bounds, each checked against the exact constant by
a 60-digit LDL^T of ``A(mu) - beta_LB X`` (proven ``alpha(mu) >= 1`` here).

Writes ``illconditioned.json`` and ``illconditioned.png`` to ``--out``::

    python benchmarks/illconditioned.py --out benchmarks/results   # about a minute
    python benchmarks/illconditioned.py --quick --out /tmp/bench   # smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import mpmath
import numpy as np
from online import machine_info

import certrb

ROOT = Path(__file__).resolve().parents[1]
CASES = [(1.0, 256), (1.0, 1024), (1e-6, 256), (1e-6, 1024), (1e-10, 8), (1e-10, 16)]
QUICK_CASES = [(1e-6, 64), (1e-10, 8)]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"certification_{name}", ROOT / "tests" / "certification"
                                                  / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def psd_exact(problem: certrb.Problem, mu: np.ndarray, s: float) -> bool:
    """``A(mu) - s X >= 0`` decided by a 60-digit LDL^T of the tridiagonal exact affine sum."""
    terms = [*zip(problem.operator.theta(mu[None])[0], problem.operator.terms, strict=True),
             (-s, problem.inner_product.matrix)]
    with mpmath.workdps(60):
        n = problem.size
        diag = [mpmath.fsum(mpmath.mpf(float(c)) * mpmath.mpf(float(a.diagonal()[i])) for c, a in terms)
                for i in range(n)]
        low = [mpmath.fsum(mpmath.mpf(float(c)) * mpmath.mpf(float(a.diagonal(-1)[i])) for c, a in terms)
               for i in range(n - 1)]
        pivot = diag[0]
        for i in range(1, n):
            if pivot <= 0:
                return False
            pivot = diag[i] - low[i - 1] ** 2 / pivot
        return bool(pivot >= 0)


def stability_record(family: ModuleType, weight: float, n: int, mus: np.ndarray) -> dict[str, Any]:
    """certrb's MinTheta and SCM lower bounds at ``mus``: range, seconds, and the exact check."""
    out: dict[str, Any] = {}
    for kind in ("min-theta", "scm"):
        t0 = time.perf_counter()
        try:
            problem = family.h1_diffusion(n, weight, kind)
        except certrb.StabilityError as exc:
            out[kind] = {"error": str(exc)}
            continue
        lower = problem.stability_lower_bound(mus)
        seconds = time.perf_counter() - t0
        check = mus[: min(8, mus.shape[0])]
        below = all(psd_exact(problem, mu, float(v)) for mu, v in zip(check, lower, strict=False))
        out[kind] = {"certified": bool(problem.stability.certified), "min": float(lower.min()),
                     "max": float(lower.max()), "seconds": seconds, "checked": int(check.shape[0]),
                     "all_below_exact": below}
    return out


def run_case(family: ModuleType, refmod: ModuleType, weight: float, n: int, args: argparse.Namespace
             ) -> dict[str, Any]:
    """Greedies, floors, violations and stability bounds of one (weight, elements) case."""
    t0 = time.perf_counter()
    problem = family.h1_diffusion(n, weight, "min-theta")
    train = problem.parameter_space.sample(args.n_train, rng=args.seed)
    mus = problem.parameter_space.sample(args.n_mu, rng=args.seed + 1)
    ref = refmod.truth_reference(problem, mus, solutions=family.exact_solutions(problem, mus))
    rec: dict[str, Any] = {"elements": n, "weight": weight, "n_h": problem.size,
                           "cond_X": family.condition_number(problem) if problem.size <= 2048 else None}
    floors = {}
    for driver in ("orthonormal", "eim"):
        names = ("orthonormal", "eim", "expanded") if driver == "orthonormal" else ("eim",)
        builder = certrb.OfflineBuilder(problem, names, snapshot_refine=2, rng=args.seed)
        greedy = certrb.weak_greedy(builder, train, tol=1e-13, max_basis=args.max_basis, stagnation=None)
        cert = refmod.certify(problem, greedy.model, mus, reference=ref)
        curve = [t.max_relative_error for t in cert.tallies if t.estimator == driver]
        floors[driver] = min(curve)
        rec[driver] = {"n_basis": greedy.model.n_basis, "reason": greedy.reason, "max_relative_error": curve,
                       "violations": cert.violations(rigorous_only=True),
                       "rigorous": {e: all(t.rigorous for t in cert.tallies if t.estimator == e) for e in names}}
        if driver == "orthonormal":
            rec[driver]["worst_effectivity_above_floor"] = max(
                (t.effectivity["q1"] for t in cert.tallies if t.estimator == "orthonormal"
                 and t.median_relative_error > 100 * floors[driver]), default=None)
    rec["floors"] = floors
    rec["stability"] = stability_record(family, weight, n, mus)
    rec["seconds"] = time.perf_counter() - t0
    return rec


def plot(record: dict[str, Any], path: Path) -> None:
    """Largest relative true error per N for both greedies, one panel per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = record["cases"]
    fig, axes = plt.subplots(1, len(cases), figsize=(3.2 * len(cases), 3.2), layout="constrained", squeeze=False)
    for ax, rec in zip(axes[0], cases, strict=True):
        for driver in ("orthonormal", "eim"):
            curve = rec[driver]["max_relative_error"]
            ax.semilogy(range(1, len(curve) + 1), curve, marker="o", ms=2, label=f"{driver}-driven")
        ax.set_title(f"w = {rec['weight']:g}, {rec['elements']} el.", fontsize=9)
        ax.set_xlabel("N")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("max relative true error")
    axes[0, 0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case and write illconditioned.json / illconditioned.png."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--quick", action="store_true", help="smoke run: two small cases")
    p.add_argument("--n-train", type=int, default=100)
    p.add_argument("--n-mu", type=int, default=30)
    p.add_argument("--max-basis", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    family, refmod = _load("illconditioned"), _load("reference")
    cases = QUICK_CASES if args.quick else CASES
    record: dict[str, Any] = {
        "benchmark": "illconditioned", "machine": machine_info(),
        "parameters": {"quick": args.quick, "n_train": args.n_train, "n_mu": args.n_mu,
                       "max_basis": args.max_basis, "seed": args.seed},
        "cases": [run_case(family, refmod, w, n, args) for w, n in cases],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(record, args.out / "illconditioned.png")
    record["wall_s"] = time.perf_counter() - t0
    (args.out / "illconditioned.json").write_text(json.dumps(record, indent=1) + "\n")
    for rec in record["cases"]:
        st = rec["stability"]
        print(f"w={rec['weight']:g} el={rec['elements']} cond={rec['cond_X'] or float('nan'):.1e} "
              f"floors E5 {rec['floors']['orthonormal']:.2e} eim {rec['floors']['eim']:.2e} "
              f"viol {rec['orthonormal']['violations']} {rec['eim']['violations']} "
              f"eff {rec['orthonormal']['worst_effectivity_above_floor']} "
              f"mintheta {st['min-theta']} scm {st['scm']}")
    print(f"total {record['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())

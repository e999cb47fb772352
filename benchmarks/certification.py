"""Certification counts: how often an error bound falls below the true error, per N, certrb and pyMOR.

For the 2x2 thermal block, the 1D diffusion problem and the ill-conditioned H1 family
(``tests/certification/illconditioned.py``: X = K + w M with w = 1, 1e-6, 1e-10, cond(X)
up to ~1e13, certrb's own certified ``MinTheta`` as the stability bound), a certrb weak greedy
runs down to the truth floor (until the next snapshot is in the span). Every
nested sub-model n = 1 .. N is then evaluated at random test parameters and
compared with the true error ``||u - u_N||_X``, where ``u`` is the truth
solution refined in extended precision and the difference is formed in
extended precision (the reference of ``tests/certification/reference.py``,
loaded from there so that the suite and this benchmark count the same thing).

Counted per N, a violation being ``not bound >= true error``:

* ``certrb_rigorous``: ``OnlineResult.bound`` of the ``orthonormal`` estimator
  (``(eps_hat + delta_fp) / beta_LB``, rounded up);
* ``certrb_estimate``: its plain ``estimate`` ``eps_hat / beta_LB``;
* ``pymor_stable``: pyMOR's ``CoerciveRBReductor`` (orthonormalized residual,
  Buhr et al. 2014) and ``pymor_classical``: ``SimpleCoerciveRBReductor``
  (the expanded Gram form), both on the same matrices, the same X-orthonormal
  basis and the same min-theta coercivity bound (``pymor_models.py``), each
  judged with its own reduced coefficients. Without pyMOR these columns are
  absent and the JSON says why.

Further certrb estimators (default ``eim-stabilized``, ``expanded``) are counted
alongside, with effectivity quantiles (``bound / error``) for every series.

Writes ``certification.json`` and ``certification.png`` to ``--out``::

    python benchmarks/certification.py --out benchmarks/results     # a few minutes
    python benchmarks/certification.py --quick --out /tmp/bench     # smoke run, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from online import machine_info

import certrb

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "certification" / "reference.py"
ILLCONDITIONED = ROOT / "tests" / "certification" / "illconditioned.py"
# X = K + w M, cond(X) ~ 4 / (w h^2): (weight, most elements) such that X is certified definite in double;
# the element counts are rounded down to powers of two (dyadic meshes: the stiffness terms are stored exactly
# diagonally dominant, so certrb's MinTheta certifies them; see tests/certification/illconditioned.py)
H1_WEIGHTS = {"h1_w1": (1.0, 2**20), "h1_w1e-6": (1e-6, 2**20), "h1_w1e-10": (1e-10, 16)}
PROBLEMS = ("thermal_block", "diffusion1d", *H1_WEIGHTS)
MAIN_ESTIMATOR = "orthonormal"
SERIES = ("certrb_rigorous", "certrb_estimate", "pymor_stable", "pymor_classical")

DEFAULTS: dict[str, Any] = {
    "n": 100, "n_elements": 500, "h1_elements": 256, "n_train": 1000, "n_mu": 200, "max_basis": 60,
    "estimators": ["eim-stabilized", "expanded"],
}
QUICK: dict[str, Any] = {
    "n": 10, "n_elements": 100, "h1_elements": 64, "n_train": 100, "n_mu": 40, "max_basis": 20,
    "estimators": ["expanded"],
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones fall back to DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="smoke run: small meshes, few parameters")
    p.add_argument("--n", type=int, help=f"squares per side of the thermal block mesh (default {DEFAULTS['n']})")
    p.add_argument("--n-elements", type=int, help=f"elements of the 1D problem (default {DEFAULTS['n_elements']})")
    p.add_argument("--h1-elements", type=int,
                   help=f"elements of the ill-conditioned H1 problems (default {DEFAULTS['h1_elements']})")
    p.add_argument("--n-train", type=int, help=f"greedy training parameters (default {DEFAULTS['n_train']})")
    p.add_argument("--n-mu", type=int, help=f"test parameters per N (default {DEFAULTS['n_mu']})")
    p.add_argument("--max-basis", type=int, help=f"greedy basis cap (default {DEFAULTS['max_basis']})")
    p.add_argument("--estimators", nargs="*", help="certrb estimators counted besides 'orthonormal'")
    p.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    p.add_argument("--no-pymor", action="store_true", help="skip pyMOR even when it is installed")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.n_train, args.n_mu, args.max_basis) < 1:
        p.error("--n-train, --n-mu and --max-basis must be positive")
    return args


def load_reference(path: Path = REFERENCE, name: str = "certification_reference") -> ModuleType:
    """A module of the certification suite (by default its reference), imported from its file."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def make_problem(name: str, args: argparse.Namespace) -> certrb.Problem:
    """The named study problem at the requested size."""
    from certrb.problems import diffusion1d, thermal_block

    if name == "thermal_block":
        return thermal_block((2, 2), n=args.n, mu_range=(0.1, 1.0))
    if name in H1_WEIGHTS:
        family = load_reference(ILLCONDITIONED, "certification_illconditioned")
        weight, most = H1_WEIGHTS[name]
        return family.h1_diffusion(2 ** int(np.log2(min(args.h1_elements, most))), weight)
    return diffusion1d(args.n_elements)


def pymor_status(args: argparse.Namespace) -> dict[str, Any]:
    """Whether pyMOR runs here: ``available``, ``version`` and, if absent, ``reason``."""
    if args.no_pymor:
        return {"available": False, "version": None, "reason": "--no-pymor"}
    try:
        import pymor
    except ImportError as exc:
        return {"available": False, "version": None, "reason": f"pyMOR is not installed ({exc})"}
    from pymor.core.logger import set_log_levels

    set_log_levels({"pymor": "WARN"})
    return {"available": True, "version": pymor.__version__}


def pymor_series(problem: certrb.Problem, model: certrb.ReducedModel, ref: Any, sizes: list[int],
                 refmod: ModuleType) -> dict[str, list[Any]]:
    """Tallies of pyMOR's stable and classical estimators on certrb's basis, per n."""
    from pymor.reductors.coercive import CoerciveRBReductor, SimpleCoerciveRBReductor
    from pymor_models import pymor_model

    twin = pymor_model(problem)
    basis = twin.fom.solution_space.from_numpy(model.basis)
    mus = [twin.mu(row) for row in ref.mus]
    out: dict[str, list[Any]] = {}
    for kind, cls in (("pymor_stable", CoerciveRBReductor), ("pymor_classical", SimpleCoerciveRBReductor)):
        reductor = cls(twin.fom, RB=basis, product=twin.fom.h1_0_semi_product,
                       coercivity_estimator=twin.coercivity)
        out[kind] = []
        for n in sizes:
            rom = reductor.reduce(n)
            coeffs = np.array([rom.solve(mu).to_numpy()[:, 0] for mu in mus])
            est = np.array([float(rom.estimate_error(mu)[0]) for mu in mus])
            err = refmod.reference_errors(model.basis, coeffs, ref, problem)
            out[kind].append(refmod.tally(kind, n, est, est, err, ref.norms, ref.mus, rigorous=False))
    return out


def run_problem(name: str, args: argparse.Namespace, refmod: ModuleType, pymor: dict[str, Any]) -> dict[str, Any]:
    """Greedy, certification and (optionally) pyMOR counts for one problem."""
    t0 = time.perf_counter()
    problem = make_problem(name, args)
    space = problem.parameter_space
    names = [MAIN_ESTIMATOR, *[e for e in args.estimators if e != MAIN_ESTIMATOR]]
    ill = name in H1_WEIGHTS  # refined snapshots and an exact truth: cond(X) up to ~1e13
    builder = certrb.OfflineBuilder(problem, tuple(names), rng=args.seed, snapshot_refine=2 if ill else None)
    greedy = certrb.weak_greedy(builder, space.sample(args.n_train, rng=args.seed), tol=0.0, stagnation=None,
                                max_basis=args.max_basis)
    model = greedy.model
    greedy_s = time.perf_counter() - t0
    mus = space.sample(args.n_mu, rng=args.seed + 1)
    if ill:  # refined solves stall at ~1e-12 relative here: the tridiagonal truth solved in 50 digits instead
        family = load_reference(ILLCONDITIONED, "certification_illconditioned")
        ref = refmod.truth_reference(problem, mus, solutions=family.exact_solutions(problem, mus))
    else:
        ref = refmod.truth_reference(problem, mus, refine=2)
    sizes = list(range(1, model.n_basis + 1))
    cert = refmod.certify(problem, model, mus, estimators=names, sizes=sizes, reference=ref)
    by_name: dict[str, list[Any]] = {e: [t for t in cert.tallies if t.estimator == e] for e in names}
    main = by_name[MAIN_ESTIMATOR]
    table: dict[str, Any] = {"n": sizes, "certrb_rigorous": [t.bound_violations for t in main],
                             "certrb_estimate": [t.estimate_violations for t in main]}
    series: dict[str, list[Any]] = {"certrb_rigorous": main}
    if pymor["available"]:
        theirs = pymor_series(problem, model, ref, sizes, refmod)
        for kind, tallies in theirs.items():
            table[kind] = [t.bound_violations for t in tallies]
            series[kind] = tallies
    return {
        "n_h": problem.size, "n_basis": model.n_basis, "greedy_reason": greedy.reason, "greedy_s": greedy_s,
        "n_train": args.n_train, "n_mu": int(mus.shape[0]), "truth_floor_double": cert.double_error,
        "relative_error": {"max": [t.max_relative_error for t in main],
                           "median": [t.median_relative_error for t in main]},
        "table": table,
        "totals": {k: int(sum(v)) for k, v in table.items() if k != "n"},
        "effectivity_min": {k: [t.effectivity["q0"] for t in v] for k, v in series.items()},
        "certrb": {e: [dataclasses.asdict(t) for t in v] for e, v in by_name.items()},
        "pymor": {k: [dataclasses.asdict(t) for t in v] for k, v in series.items() if k.startswith("pymor")},
        "seconds": time.perf_counter() - t0,
    }


def plot(record: dict[str, Any], path: Path) -> None:
    """Per problem: violations per N (top) and the smallest effectivity per N (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = record["problems"]
    fig, axes = plt.subplots(2, len(probs), figsize=(6 * len(probs), 7), layout="constrained", squeeze=False)
    for j, (name, rec) in enumerate(probs.items()):
        top, bottom = axes[0, j], axes[1, j]
        n = rec["table"]["n"]
        for key in SERIES:
            if key in rec["table"]:
                top.plot(n, np.asarray(rec["table"][key]) / rec["n_mu"], marker="o", ms=3, label=key)
        for key, values in rec["effectivity_min"].items():
            bottom.semilogy(n, np.maximum(values, 1e-3), marker="o", ms=3, label=key)
        top.set_title(f"{name}, n_h = {rec['n_h']}, {rec['n_mu']} parameters per N")
        top.set_ylabel("fraction with bound < true error")
        bottom.axhline(1.0, color="k", lw=0.8)
        bottom.set_ylabel("smallest effectivity bound / error (clipped at 1e-3)")
        for ax in (top, bottom):
            ax.set_xlabel("N")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(record: dict[str, Any]) -> str:
    """Plain-text table of violations per N."""
    lines = []
    for name, rec in record["problems"].items():
        keys = [k for k in SERIES if k in rec["table"]]
        lines.append(f"{name} (n_h = {rec['n_h']}, N = {rec['n_basis']}, {rec['n_mu']} parameters, "
                     f"greedy: {rec['greedy_reason']})")
        lines.append(f"{'N':>4} {'max rel err':>11} " + " ".join(f"{k:>16}" for k in keys))
        for i, n in enumerate(rec["table"]["n"]):
            row = " ".join(f"{rec['table'][k][i]:>16d}" for k in keys)
            lines.append(f"{n:>4} {rec['relative_error']['max'][i]:>11.2e} {row}")
    if not record["pymor"]["available"]:
        lines.append(f"pyMOR absent: {record['pymor']['reason']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the counts and write certification.json / certification.png."""
    t_start = time.perf_counter()
    args = parse_args(argv)
    refmod = load_reference()
    pymor = pymor_status(args)
    record: dict[str, Any] = {
        "benchmark": "certification",
        "machine": {**machine_info(), "pymor": pymor["version"]},
        "parameters": {k: getattr(args, k) for k in (*DEFAULTS, "problems", "seed", "quick")},
        "pymor": pymor,
        "problems": {name: run_problem(name, args, refmod, pymor) for name in args.problems},
        "notes": [
            "violation: not bound >= ||u - u_N||_X, u refined in extended precision, difference in extended",
            "certrb_rigorous / certrb_estimate: bound / estimate of the 'orthonormal' estimator",
            "pyMOR: same matrices, same X-orthonormal basis (certrb's greedy), same min-theta coercivity bound; "
            "each library's own reduced coefficients are judged",
            "effectivity quantiles: keys q<quantile> of bound / error (inf where the error is 0)",
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(record, args.out / "certification.png")
    record["wall_s"] = time.perf_counter() - t_start
    (args.out / "certification.json").write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    print(report(record))
    print(f"total {record['wall_s']:.1f} s; wrote {args.out / 'certification.json'}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())

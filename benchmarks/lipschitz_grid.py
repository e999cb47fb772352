"""Lipschitz grid stability bound against the inf-sup SCM it is built from: online cost and tightness.

1D Helmholtz (``certrb.dictionary_study.helmholtz_problem``'s setting: impedance condition,
wavenumber-weighted norm ``X = K + k_ref^2 M``), its inf-sup SCM, and Lipschitz grids over the
SCM for several targets. Reported, all from one run: offline seconds and nodes of each grid, the
online seconds per parameter of the SCM (one linear program each) and of each grid, batched (one
call) and single (one call per parameter), their ratios, and the lower bounds against the exact
inf-sup constant (dense SVDs of ``L^-1 A(k) L^-H``) on test wavenumbers: violations (must be 0),
smallest and median ratios. Writes ``lipschitz_grid.json`` and ``lipschitz_grid.png``::

    python benchmarks/lipschitz_grid.py --out benchmarks/results     # about two minutes
    python benchmarks/lipschitz_grid.py --quick --out /tmp/bench     # smoke run
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
import scipy.linalg as sla
from online import machine_info

import certrb
from certrb.offline.scm import SCM
from certrb.online.stability import stability_certificate
from certrb.problems.helmholtz1d import helmholtz1d


def exact_beta(problem: certrb.Problem, ks: np.ndarray) -> np.ndarray:
    """Inf-sup constants ``sigma_min(L^-1 A(k) L^-H)``, ``X = L L^H``, by dense SVDs; shape (n,)."""
    L = np.linalg.cholesky(problem.inner_product.matrix.toarray())
    out = np.empty(ks.shape[0])
    for i, t in enumerate(problem.operator.theta(ks)):
        A = problem.operator.assemble(t).toarray()
        W = sla.solve_triangular(L, sla.solve_triangular(L, A, lower=True).conj().T, lower=True).conj().T
        out[i] = sla.svdvals(W)[-1]
    return out


def per_query(func: Any, ks: np.ndarray, n_single: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds per parameter of ``func``: one batched call, and one call per parameter."""
    batched = single = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        func(ks)
        t1 = time.perf_counter()
        for i in range(n_single):
            func(ks[i:i + 1])
        t2 = time.perf_counter()
        batched, single = min(batched, (t1 - t0) / ks.shape[0]), min(single, (t2 - t1) / n_single)
    return {"batched": batched, "single": single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--quick", action="store_true", help="a small problem (smoke run)")
    args = parser.parse_args()
    quick = args.quick
    n_elements, k_max, k_ref = (40, 8.0, 4.0) if quick else (100, 40.0, 20.0)
    scm_train, scm_iter = (60, 40) if quick else (300, 120)
    targets = (0.5, 0.8) if quick else (0.5, 0.75, 0.9)
    n_test, n_single, repeats = (201, 20, 2) if quick else (2001, 200, 3)

    plain = helmholtz1d(n_elements, (1.0, k_max), stability=lambda m: np.ones(m.shape[0]))
    stiffness, mass, _ = plain.operator.terms
    X = (stiffness + k_ref**2 * mass).tocsr()
    t0 = time.perf_counter()
    scm = SCM(plain.operator, X, plain.parameter_space.grid(scm_train), kind="inf-sup", max_iter=scm_iter)
    scm_seconds = time.perf_counter() - t0
    problem = certrb.Problem(plain.operator, plain.rhs, X, plain.parameter_space, stability=scm)
    ks = np.linspace(1.0, k_max, n_test)[:, None]
    exact = exact_beta(problem, ks)
    scm_values = scm(ks)
    bounds: dict[str, Any] = {"SCM": scm}
    records: dict[str, Any] = {"SCM": {"offline_seconds": scm_seconds, "n_points": scm.n_points}}
    values: dict[str, np.ndarray] = {"SCM": scm_values}
    for target in targets:
        t0 = time.perf_counter()
        grid = certrb.lipschitz_grid(problem, target=target)
        name = f"grid {target:g}"
        bounds[name], values[name] = grid, grid(ks)
        records[name] = {"offline_seconds": time.perf_counter() - t0, "nodes": int(grid.values.size),
                         "quality": grid.quality, "certificate": stability_certificate(grid),
                         "gamma": grid.gamma.tolist(),
                         "max_ratio_to_scm": float(np.max(values[name] / scm_values))}
    for name, bound in bounds.items():
        ratio = values[name] / exact
        records[name].update(online_seconds=per_query(bound, ks, n_single, repeats),
                             violations=int(np.sum(values[name] > exact)), min_ratio_to_exact=float(ratio.min()),
                             median_ratio_to_exact=float(np.median(ratio)))
    for name in bounds:
        records[name]["online_ratio_to_scm"] = {mode: records[name]["online_seconds"][mode]
                                                / records["SCM"]["online_seconds"][mode]
                                                for mode in ("batched", "single")}
    record = {"benchmark": "lipschitz_grid", "machine": machine_info(), "load_before": list(os.getloadavg()),
              "parameters": {"n_elements": n_elements, "k_range": [1.0, k_max], "k_ref": k_ref,
                             "scm_train": scm_train, "scm_iter": scm_iter, "n_test": n_test, "n_single": n_single,
                             "repeats": repeats, "quick": quick},
              "bounds": records}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lipschitz_grid.json").write_text(json.dumps(record, indent=1))
    plot(ks[:, 0], exact, values, records, args.out / "lipschitz_grid.png")
    for name, rec in records.items():
        t = rec["online_seconds"]
        print(f"{name:10s} online {t['batched'] * 1e6:9.2f} us batched, {t['single'] * 1e6:9.1f} us single; "
              f"violations {rec['violations']}, lower / exact >= {rec['min_ratio_to_exact']:.3f}", file=sys.stderr)


def plot(ks: np.ndarray, exact: np.ndarray, values: dict[str, np.ndarray], records: dict, path: Path) -> None:
    """Lower bounds against the exact constant, and online seconds per parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    axes[0].plot(ks, exact, "k", lw=2, label="exact beta(k)")
    for name, v in values.items():
        axes[0].plot(ks, v, lw=1, label=name)
    axes[0].set(xlabel="k", ylabel="inf-sup constant and lower bounds", yscale="log")
    axes[0].legend(fontsize=8)
    names = list(records)
    x = np.arange(len(names))
    for shift, mode in ((-0.2, "batched"), (0.2, "single")):
        axes[1].bar(x + shift, [records[n]["online_seconds"][mode] * 1e6 for n in names], 0.4, label=mode)
    axes[1].set_xticks(x, names)
    axes[1].set(ylabel="microseconds per parameter", yscale="log")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

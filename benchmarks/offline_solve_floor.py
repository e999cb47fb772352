"""How each estimator's floor follows the accuracy of the offline truth solves.

Every offline solve with the inner-product matrix ``X`` (the Riesz representatives of
the residual components, the EIM residuals' representatives, the truth residual norms
of ``point-basis``) goes through ``InnerProduct.riesz``. Here a subclass returns
``z + eta ||z||_V xi`` for each computed ``z = X^{-1} g``, with ``xi`` a random vector
of unit ``V`` norm (fresh for every column): a solver of relative accuracy ``eta``.
For ``eta`` from 1e-6 down to 1e-15 (and 0, the unperturbed solves) the estimators are
rebuilt on the same ``diffusion1d`` basis at several ``N`` and compared with the
unperturbed extended-precision truth residual norm E0 at test parameters. The floor is
the one of the study (:func:`certrb.study.estimator_floor`: the largest relative
residual ``eps_E0 / ||f||_{V'}`` at which the relative deviation exceeds 1%);
``truth-perturbed`` is E0 computed with the perturbed solves. Analysis predicts floors
``~ eta`` for the formulas that combine small quantities (``orthonormal``, ``eim``,
``point-basis``) and ``~ max(sqrt(eta), sqrt(u))`` for ``expanded``. Writes
``offline_solve_floor.json`` and ``offline_solve_floor.png`` to ``--out``::

    python benchmarks/offline_solve_floor.py --out benchmarks/results
    python benchmarks/offline_solve_floor.py --quick --out /tmp/bench   # smoke run, seconds
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

import certrb
from certrb.offline_floor import DEFINITIONS, ESTIMATORS, FULL, QUICK, offline_solve_sweep
from certrb.problems import diffusion1d


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="short smoke run (small mesh, three etas)")
    p.add_argument("--seed", type=int, default=0, help="seed of the parameters and perturbations")
    return p.parse_args(argv)


def machine_info() -> dict[str, Any]:
    """Platform, library versions and BLAS thread settings."""
    import scipy

    return {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "certrb": certrb.__version__, "cpu_count": os.cpu_count(),
            "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}}


def plot(record: dict[str, Any], path: Path) -> None:
    """Floor and largest deviation against eta, one line per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in record["result"]["runs"] if r["eta"] > 0]
    etas = [r["eta"] for r in runs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in (*ESTIMATORS, "truth-perturbed"):
        floors = [r["estimators"][name]["floor"] for r in runs]
        reached = [r["estimators"][name]["floor_reached"] for r in runs]
        line = axes[0].loglog(etas, floors, "-", label=name)[0]
        missed = [(e, f) for e, f, h in zip(etas, floors, reached, strict=True) if not h]
        axes[0].loglog([m[0] for m in missed], [m[1] for m in missed], "v", color=line.get_color())
        axes[1].loglog(etas, [r["estimators"][name]["max_deviation"] for r in runs], "-o", ms=3, label=name)
    labels = ("floor (eps / ||f||, deviation > 1%)", "largest relative deviation")
    for ax, ylabel in zip(axes, labels, strict=True):
        ax.loglog(etas, etas, "k:", lw=0.8, label="eta")
        ax.loglog(etas, np.sqrt(etas), "k--", lw=0.8, label="sqrt(eta)")
        ax.set_xlabel("offline solve accuracy eta")
        ax.set_ylabel(ylabel)
        ax.invert_xaxis()
    axes[0].set_title("floors (triangles: not reached, bound)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep and write JSON + PNG."""
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    record: dict[str, Any] = {"benchmark": "offline_solve_floor", "machine": machine_info(),
                              "parameters": {**settings, "quick": args.quick, "seed": args.seed,
                                             "problem": "diffusion1d", "estimators": list(ESTIMATORS)},
                              "definitions": DEFINITIONS,
                              "result": offline_solve_sweep(diffusion1d(settings["n_elements"]), settings, args.seed)}
    record["wall_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "offline_solve_floor.json").write_text(json.dumps(record, indent=1))
    plot(record, args.out / "offline_solve_floor.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

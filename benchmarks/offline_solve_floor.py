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
from numpy.typing import NDArray

import certrb
from certrb import OfflineBuilder, Problem
from certrb.offline.innerproduct import InnerProduct
from certrb.problems import diffusion1d
from certrb.study import TOLERANCE, estimator_floor

ESTIMATORS = ("expanded", "point-basis", "point-basis-square", "eim", "eim-stabilized", "orthonormal")
FULL: dict[str, Any] = {"n_elements": 200, "n_train": 300, "n_test": 30, "sizes": [6, 10, 14, 18],
                        "etas": [10.0**-k for k in range(6, 16)]}
QUICK: dict[str, Any] = {"n_elements": 60, "n_train": 100, "n_test": 12, "sizes": [3, 6, 9],
                         "etas": [1e-6, 1e-10, 1e-14]}
DEFINITIONS = {
    "eta": "relative accuracy of every offline X-solve: X^{-1} g is returned as z + eta ||z||_V xi, ||xi||_V = 1",
    "deviation": "|eps_estimator - eps_E0| / eps_E0, E0 in extended precision with unperturbed solves",
    "floor": f"largest eps_E0 / ||f||_V' among test points (all sizes) with deviation > {TOLERANCE:g}; "
             "if none fails, the smallest level seen (floor_reached false)",
    "max_deviation": "largest deviation over all test points and sizes",
    "slope": "least-squares slope of log10(value) against log10(eta), value = floor or max_deviation, over "
             "the etas > 0 where the value exceeds twice its value with exact solves (eta = 0): where the "
             "perturbation, not the estimator's own round-off, sets it; null with fewer than two such etas",
}


class PerturbedInnerProduct(InnerProduct):
    """An inner product whose solves are exact up to a controlled relative error ``eta``.

    Parameters
    ----------
    matrix : sparse matrix, shape (n_h, n_h)
        The Gram matrix ``X``.
    eta : float
        Relative error of every solve in the ``V`` norm (0: unperturbed).
    seed : int
        Seed of the random directions.

    """

    def __init__(self, matrix, eta: float, seed: int) -> None:
        super().__init__(matrix)
        object.__setattr__(self, "eta", float(eta))
        object.__setattr__(self, "rng", np.random.default_rng(seed))

    def riesz(self, g: NDArray, *, refine: int = 0) -> NDArray:
        """``X^{-1} g + eta ||X^{-1} g||_V xi`` per column, same shape and dtype as the exact solve."""
        z = super().riesz(g, refine=refine)
        if self.eta == 0.0:
            return z
        cols = z.reshape(z.shape[0], -1)
        wide = np.complex128 if np.iscomplexobj(cols) else np.float64
        xi = self.rng.standard_normal(cols.shape)
        if wide is np.complex128:
            xi = xi + 1j * self.rng.standard_normal(cols.shape)
        xi = xi / self.norms(xi)
        step = xi * (self.eta * self.norms(np.asarray(cols, dtype=wide)))
        return (cols + step.astype(cols.dtype)).reshape(z.shape)


def perturbed(problem: Problem, eta: float, seed: int) -> Problem:
    """The same truth problem whose offline X-solves have relative accuracy ``eta``."""
    ip = PerturbedInnerProduct(problem.inner_product.matrix, eta, seed)
    return Problem(problem.operator, problem.rhs, ip, problem.parameter_space, stability=problem.stability,
                   output=problem.output)


def slope(etas: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of log10(values) against log10(etas) (None with fewer than two points)."""
    if len(etas) < 2:
        return None
    return float(np.polyfit(np.log10(etas), np.log10(values), 1)[0])


def sweep(problem: Problem, basis: NDArray, test: NDArray, ref: dict[int, NDArray], f_norm: NDArray, eta: float,
          sizes: Sequence[int], seed: int) -> dict[str, Any]:
    """Floors of every estimator (and of E0 with the perturbed solves) for one ``eta``."""
    pp = perturbed(problem, eta, seed)
    levels, devs = [], {name: [] for name in (*ESTIMATORS, "truth-perturbed")}
    conditions = []
    for n in sizes:
        builder = OfflineBuilder(pp, ESTIMATORS, certify=False, rng=seed + n,
                                 options={"point-basis-square": {"max_points": 10**5}})
        model = certrb.reduce(builder, basis[:, :n])
        levels.append(ref[n] / f_norm)
        for name in ESTIMATORS:
            est = model.evaluate(test, estimator=name).residual_norm
            devs[name].append(np.abs(est - ref[n]) / ref[n])
        direct = certrb.truth_residual_norm(pp, model, test, precision="double")
        devs["truth-perturbed"].append(np.abs(direct - ref[n]) / ref[n])
        conditions.append(model.estimators["point-basis-square"].condition)
    level = np.concatenate(levels)
    out: dict[str, Any] = {"eta": eta, "cond_T_square": conditions, "estimators": {}}
    for name, rows in devs.items():
        dev = np.concatenate(rows)
        floor, reached = estimator_floor(level, dev)
        out["estimators"][name] = {"floor": floor, "floor_reached": reached, "max_deviation": float(np.max(dev)),
                                   "max_deviation_per_n": [float(np.max(r)) for r in rows]}
    return out


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


def run(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """The greedy basis, the references, and one sweep per eta (0 first); floors and slopes."""
    problem = diffusion1d(settings["n_elements"])
    space = problem.parameter_space
    train, test = space.sample(settings["n_train"], rng=seed), space.sample(settings["n_test"], rng=seed + 1)
    sizes = settings["sizes"]
    greedy = certrb.weak_greedy(OfflineBuilder(problem, ("orthonormal",), certify=False, rng=seed), train,
                                tol=0.0, max_basis=max(sizes))
    basis = greedy.model.basis
    assert basis is not None
    f_norm = np.asarray(problem.inner_product.dual_norms(problem.rhs.assemble(test).T, refine=2), dtype=float)
    ref = {n: certrb.truth_residual_norm(problem, greedy.model, test, n=n, precision="extended") for n in sizes}
    runs = [sweep(problem, basis, test, ref, f_norm, eta, sizes, seed) for eta in (0.0, *settings["etas"])]
    slopes: dict[str, dict[str, float | None]] = {}
    for name in (*ESTIMATORS, "truth-perturbed"):
        slopes[name] = {}
        for key in ("floor", "max_deviation"):
            exact = runs[0]["estimators"][name][key]
            hit = [(r["eta"], r["estimators"][name][key]) for r in runs[1:] if r["estimators"][name][key] > 2 * exact]
            slopes[name][key] = slope([h[0] for h in hit], [h[1] for h in hit])
    return {"n_h": problem.size, "relative_residual_range": [float(np.min(ref[max(sizes)] / f_norm)),
                                                             float(np.max(ref[min(sizes)] / f_norm))],
            "runs": runs, "slopes": slopes}


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
                              "definitions": DEFINITIONS, "result": run(settings, args.seed)}
    record["wall_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "offline_solve_floor.json").write_text(json.dumps(record, indent=1))
    plot(record, args.out / "offline_solve_floor.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

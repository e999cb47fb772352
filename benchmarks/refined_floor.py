"""How far refined truth solves lower the truth floor and the reduced-basis floor.

Three offline/online pipelines are compared on ``diffusion1d(4000)`` and on the
2x2 thermal block, each with its own weak greedy driven by the ``orthonormal``
relative bound:

- ``double``: snapshots and Riesz representatives solved in double precision
  (``refine=0``), basis, reduced operators and reduced solves in double;
- ``refined``: snapshots and Riesz representatives refined in extended precision
  (``refine=2``), then stored, projected and solved in double (what the library
  does today with ``refine``);
- ``extended``: refined as above, and the basis, the residual components, their
  Riesz representatives, the reduced operators and the online reduced solve
  (refined with residuals in extended precision) all kept in numpy.longdouble:
  ``OfflineBuilder(precision="extended")``, what ``certrb.weak_greedy`` and
  ``certrb.reduce`` build from such a builder.

Every pipeline's offline state is a :class:`certrb.OfflineBuilder`; the greedy
loop is written out here so that no parameter is picked twice. The
extended-precision diagnostics (projections, reconstruction, best approximation)
are in ``extended_tools.py``.

Every error is measured against a reference computed in extended precision
(``Problem.solve(refine=4)``; its own residual is reported). Writes
``refined_floor.json`` and ``refined_floor.png`` to ``--out``::

    python benchmarks/refined_floor.py --out benchmarks/results
    python benchmarks/refined_floor.py --quick --out /tmp/bench   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from extended_tools import best_approximation_error, project_functional, project_operator, reconstruct
from numpy.typing import NDArray

import certrb
from certrb import OfflineBuilder, Problem
from certrb.offline.estimators.truth import residual_norms
from certrb.online.precision import extended_dtype
from certrb.online.solve import ReducedOperators
from certrb.problems import diffusion1d, thermal_block

REF_REFINE = 4
PIPELINES: dict[str, dict[str, Any]] = {
    "double": {"snapshot_refine": 0, "riesz_refine": 0, "extended": False},
    "refined": {"snapshot_refine": 2, "riesz_refine": 2, "extended": False},
    "extended": {"snapshot_refine": 2, "riesz_refine": 2, "extended": True},
}
DEFAULTS: dict[str, Any] = {"n_elements": 4000, "block_n": 100, "n_train": 300, "n_test": 40, "max_basis": 60}
QUICK: dict[str, Any] = {"n_elements": 400, "block_n": 10, "n_train": 30, "n_test": 5, "max_basis": 8}
DEFINITIONS = {
    "truth_relative_residual": "max over test mu of ||f(mu) - A(mu) u~(mu)||_{X^-1} / ||f(mu)||_{X^-1}, the "
                               "residual formed in extended precision and its Riesz solve refined",
    "truth_relative_error": "max over test mu of ||u_ref(mu) - u~(mu)||_X / ||u_ref(mu)||_X, difference in "
                            "extended precision, u_ref = Problem.solve(refine=4)",
    "rb_error_floor": "min over N of the max over test mu of ||u_ref(mu) - V c_N(mu)||_X / ||u_ref(mu)||_X "
                      "(reconstruction and difference in extended precision)",
    "rb_bound_floor_truth_extended": "min over N of the max over test mu of eps_E0(mu) / (beta_LB(mu) ||c_N(mu)||), "
                                     "eps_E0 = truth residual norm of V c_N formed in extended precision",
    "rb_bound_floor_orthonormal": "min over N of the max over test mu of eps_E5(mu) / (beta_LB(mu) ||c_N(mu)||), "
                                  "eps_E5 = ||R x(mu)||_2 of the orthonormal estimator",
    "ratio": "floor of the double pipeline / floor of the refined (or extended) pipeline",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset sizes fall back to DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument("--quick", action="store_true", help="short smoke run (small meshes, small N)")
    p.add_argument("--n-elements", type=int, help=f"1D elements (default {DEFAULTS['n_elements']})")
    p.add_argument("--block-n", type=int, help=f"thermal block cells per side (default {DEFAULTS['block_n']})")
    p.add_argument("--n-train", type=int, help=f"greedy training parameters (default {DEFAULTS['n_train']})")
    p.add_argument("--n-test", type=int, help=f"test parameters (default {DEFAULTS['n_test']})")
    p.add_argument("--max-basis", type=int, help=f"largest N (default {DEFAULTS['max_basis']})")
    p.add_argument("--problems", nargs="+", choices=("diffusion1d", "thermal_block"),
                   default=["diffusion1d", "thermal_block"])
    p.add_argument("--seed", type=int, default=0, help="seed of the training and test parameters")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.n_train, args.n_test, args.max_basis) < 1:
        p.error("--n-train, --n-test and --max-basis must be positive")
    return args


def machine_info() -> dict[str, Any]:
    """Platform, library versions, extended-precision format and BLAS thread settings."""
    import scipy

    return {
        "platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "certrb": certrb.__version__, "cpu_count": os.cpu_count(),
        "longdouble_eps": float(np.finfo(np.longdouble).eps), "double_eps": float(np.finfo(np.float64).eps),
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ},
    }


# ---------------------------------------------------------------- truth floor

def relative_residuals(problem: Problem, mus: NDArray, U: NDArray) -> NDArray:
    """``||f - A u||_{X^-1} / ||f||_{X^-1}`` in extended precision for rows of U (n_mu, n_h); (n_mu,)."""
    theta, F = problem.operator.theta(mus), problem.rhs.assemble(mus)
    R = np.stack([problem.residual_extended(theta[i], F[i], U[i]) for i in range(mus.shape[0])], axis=1)
    ip = problem.inner_product
    fe = F.T.astype(extended_dtype(F))
    return np.asarray(ip.dual_norms(R, refine=2) / ip.dual_norms(fe, refine=2), dtype=float)


def x_norms(problem: Problem, U: NDArray) -> NDArray:
    """X-norms of the rows of U (n_mu, n_h) in U's precision, as float64 (n_mu,)."""
    return np.asarray(problem.inner_product.norms(U.T), dtype=float)


def truth_floor(problem: Problem, mus: NDArray, U_ref: NDArray) -> dict[str, Any]:
    """Truth floors of double (refine=0) and refined (refine=2) solves, and the reference's residual."""
    ref_norm = x_norms(problem, U_ref)
    alpha = problem.stability_lower_bound(mus)
    out: dict[str, Any] = {}
    for name, refine in (("double", 0), ("refined", 2)):
        U = problem.solve(mus, refine=refine)
        err = x_norms(problem, U_ref - U.astype(U_ref.dtype)) / ref_norm
        out[name] = {"refine": refine, "relative_residual": float(relative_residuals(problem, mus, U).max()),
                     "relative_error": float(err.max())}
    res = relative_residuals(problem, mus, U_ref)
    f_norm = np.asarray(problem.inner_product.dual_norms(problem.rhs.assemble(mus).T), dtype=float)
    out["reference"] = {"refine": REF_REFINE, "relative_residual": float(res.max()),
                        "relative_error_bound": float((res * f_norm / (alpha * ref_norm)).max())}
    for key in ("relative_residual", "relative_error"):
        out[f"ratio_{key}"] = out["double"][key] / out["refined"][key]
    return out


# ---------------------------------------------------------------- reduced models

def builder(problem: Problem, config: dict[str, Any]) -> OfflineBuilder:
    """The library's offline state with the precision settings of one pipeline.

    ``OfflineBuilder(refine=riesz_refine, snapshot_refine=..., precision=...)``: float64 state
    (``double``, ``refined``: refined Riesz solves of components ``A_q v`` formed in extended
    precision), or numpy.longdouble state throughout, with extended-precision projections and
    refined reduced solves (``extended``).
    """
    precision = "extended" if config["extended"] else "double"
    return OfflineBuilder(problem, "orthonormal", precision=precision, refine=config["riesz_refine"],
                          snapshot_refine=config["snapshot_refine"])


def reduced_solve(off: OfflineBuilder, mus: NDArray, n: int) -> tuple[NDArray, NDArray]:
    """Reduced coefficients (n_mu, n) and residual coefficients (n_mu, K_n) of the builder's size-n model."""
    problem = off.problem
    return off.operators().solve(problem.operator.theta(mus), problem.rhs.theta(mus), n)


def orthonormal(off: OfflineBuilder, x: NDArray, n: int) -> NDArray:
    """``orthonormal`` estimator ``||R x||_2`` for x (n_mu, K_n), as float64 (n_mu,)."""
    return np.asarray(off.estimator("orthonormal", certify=False).residual_norm(x, n), dtype=float)


def relative_bounds(off: OfflineBuilder, mus: NDArray, beta: NDArray, n: int) -> NDArray:
    """``orthonormal`` bound / (beta ||c||), shape (n_mu,)."""
    c, x = reduced_solve(off, mus, n)  # refined in extended precision when extended
    return orthonormal(off, x, n) / (beta * np.asarray(np.linalg.norm(c, axis=1), dtype=float))


def greedy(problem: Problem, train: NDArray, max_basis: int, config: dict[str, Any]) -> tuple[OfflineBuilder, list]:
    """Weak greedy on the ``orthonormal`` relative bound with the precision settings of one pipeline.

    Unlike :func:`certrb.weak_greedy` it starts at the first training parameter and never picks a
    parameter twice, so that every pipeline runs until ``max_basis`` even at round-off level.
    """
    off = builder(problem, config)
    beta = problem.stability_lower_bound(train)
    bounds = np.zeros(train.shape[0])
    bounds[0] = 1.0
    chosen: list = []
    while off.n_basis < max_basis and np.any(bounds > -np.inf):
        i = int(np.argmax(bounds))
        bounds[i] = -np.inf  # never pick a parameter twice, not even one rejected as in the span
        if off.add_snapshots_at(train[i:i + 1]) == 0:  # solved with snapshot_refine, cast to the working precision
            continue
        chosen.append(train[i].tolist())
        left = np.isfinite(bounds)
        bounds[left] = relative_bounds(off, train[left], beta[left], off.n_basis)
    return off, chosen


def rb_curves(off: OfflineBuilder, mus: NDArray, U_ref: NDArray) -> dict[str, list[float]]:
    """Max over ``mus`` of the relative true error and relative bounds (E0 extended, E5), per N = 1..N_max."""
    problem = off.problem
    beta, ref_norm = problem.stability_lower_bound(mus), x_norms(problem, U_ref)
    curves: dict[str, list[float]] = {"error": [], "bound_truth_extended": [], "bound_orthonormal": []}
    for n in range(1, off.n_basis + 1):
        c, x = reduced_solve(off, mus, n)  # refined in extended precision when extended
        scale = beta * np.asarray(np.linalg.norm(c, axis=1), dtype=float)
        err = x_norms(problem, U_ref - reconstruct(off.basis, c)) / ref_norm
        e0 = residual_norms(problem, off.basis, x, precision="extended")
        curves["error"].append(float(err.max()))
        curves["bound_truth_extended"].append(float((e0 / scale).max()))
        curves["bound_orthonormal"].append(float((orthonormal(off, x, n) / scale).max()))
    return curves


def floors(curves: dict[str, list[float]]) -> dict[str, Any]:
    """Floor = min over N of each curve, with the N where it is reached."""
    out = {}
    for key, values in curves.items():
        i = int(np.argmin(values))
        out[key] = {"floor": values[i], "at_n": i + 1}
    return out


# ---------------------------------------------------------------- where the digits go

def _max_rel(a: NDArray, b: NDArray) -> float:
    """``max|a - b| / max|b|`` (entrywise), as float."""
    return float(np.max(np.abs(np.asarray(a - b, dtype=complex))) / np.max(np.abs(np.asarray(b, dtype=complex))))


def _rel_rows(a: NDArray, b: NDArray, scale: NDArray) -> float:
    """``max_m ||a_m - b_m||_2 / scale_m`` over rows, as float."""
    return float((np.asarray(np.linalg.norm(a - b, axis=1), dtype=float) / scale).max())


def diagnostics(off: OfflineBuilder, mus: NDArray, U_ref: NDArray) -> dict[str, float]:
    """Where a double basis V (n_h, N) loses digits: each step against its extended counterpart.

    Relative sizes, max over ``mus``: the projections ``V^H A_q V`` and ``V^H f_p`` computed in
    double (entrywise, relative to the largest entry); the reduced coefficients of a plain double
    solve vs a refined one (same double ``A_N``) and of double vs extended projections (both
    refined); ``cond(A_N(mu))``; the reconstruction ``V c`` in double vs extended (X-norm); the
    true error with extended projections and refined solves on this double basis; the best
    approximation of the reference in span(V); the X-norm error of merely rounding the reference
    to double; and the X-orthonormality defect of V.
    """
    problem, V = off.problem, off.basis
    n, ext = V.shape[1], extended_dtype(V, U_ref)
    A_ext = project_operator(problem.operator.terms, V)
    f_ext = project_functional(problem.rhs.terms, V)
    theta, phi = problem.operator.theta(mus), problem.rhs.theta(mus)
    c_dd = reduced_solve(off, mus, n)[0].astype(ext)  # double projection, double solve
    # operators stored in extended precision: reduced solves refined with extended-precision residuals
    c_dr = ReducedOperators(off.A_N.astype(ext), off.f_N.astype(ext)).solve(theta, phi, n)[0]  # double projection
    c_er = ReducedOperators(A_ext, f_ext).solve(theta, phi, n)[0]  # extended projection
    cn = np.asarray(np.linalg.norm(c_er, axis=1), dtype=float)
    ref_norm = x_norms(problem, U_ref)
    A_mu = np.einsum("mq,qij->mij", theta, np.asarray(A_ext, dtype=problem.dtype))
    recon_double = (np.asarray(c_er, dtype=problem.dtype) @ V.T).astype(ext)
    best = best_approximation_error(problem.inner_product, V, U_ref)
    gram = problem.inner_product.gram(V.astype(ext))
    return {
        "n": n,
        "A_N_projection_relative": _max_rel(off.A_N.astype(ext), A_ext),
        "f_N_projection_relative": _max_rel(off.f_N.astype(ext), f_ext),
        "max_cond_A_N": float(np.linalg.cond(A_mu).max()),
        "reduced_solve_double_vs_refined": _rel_rows(c_dd, c_dr, cn),
        "reduced_solve_double_vs_extended_projection": _rel_rows(c_dr, c_er, cn),
        "reconstruction_double_vs_extended": float(
            (x_norms(problem, recon_double - reconstruct(V, c_er)) / ref_norm).max()),
        "error_with_extended_online": float(
            (x_norms(problem, U_ref - reconstruct(V, c_er)) / ref_norm).max()),
        "basis_best_approximation": float((np.asarray(best, dtype=float) / ref_norm).max()),
        "reference_rounded_to_double": float(
            (x_norms(problem, U_ref - U_ref.astype(problem.dtype).astype(ext)) / ref_norm).max()),
        "basis_orthonormality_defect": float(np.max(np.abs(np.asarray(gram, dtype=complex) - np.eye(n)))),
    }


# ---------------------------------------------------------------- driver

def study(name: str, problem: Problem, args: argparse.Namespace) -> dict[str, Any]:
    """Truth floors, RB curves and floors of every pipeline, ratios and diagnostics for one problem."""
    rng = np.random.default_rng(args.seed)
    train = problem.parameter_space.sample(args.n_train, rng=rng)
    test = problem.parameter_space.sample(args.n_test, rng=rng)
    U_ref = problem.solve(test, refine=REF_REFINE)
    record: dict[str, Any] = {"n_h": problem.size, "truth_floor": truth_floor(problem, test, U_ref), "pipelines": {}}
    builders = {}
    for pipe, config in PIPELINES.items():
        t0 = time.perf_counter()
        off, chosen = greedy(problem, train, args.max_basis, config)
        curves = rb_curves(off, test, U_ref)
        builders[pipe] = off
        best = best_approximation_error(problem.inner_product, off.basis, U_ref)
        record["pipelines"][pipe] = {
            **config, "n_basis": off.n_basis, "greedy_parameters": chosen, "curves": curves,
            "floors": floors(curves),
            "best_approximation": float((np.asarray(best, dtype=float) / x_norms(problem, U_ref)).max()),
            "seconds": time.perf_counter() - t0}
        print(f"{name} {pipe}: {record['pipelines'][pipe]['floors']}", file=sys.stderr)
    record["ratios"] = {
        f"double/{pipe}": {key: record["pipelines"]["double"]["floors"][key]["floor"] / f["floor"]
                           for key, f in record["pipelines"][pipe]["floors"].items()}
        for pipe in ("refined", "extended")}
    record["diagnostics_refined_basis"] = diagnostics(builders["refined"], test, U_ref)
    return record


def plot(record: dict[str, Any], path: Path) -> None:
    """True error and bounds vs N, one panel per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = record["problems"]
    fig, axes = plt.subplots(1, len(probs), figsize=(6 * len(probs), 4.5), squeeze=False)
    colors = {"double": "C3", "refined": "C1", "extended": "C0"}
    styles = {"error": "-", "bound_truth_extended": "--", "bound_orthonormal": ":"}
    for ax, (name, rec) in zip(axes[0], probs.items(), strict=True):
        for pipe, p in rec["pipelines"].items():
            for key, style in styles.items():
                v = p["curves"][key]
                ax.semilogy(range(1, len(v) + 1), v, style, color=colors[pipe], label=f"{pipe}: {key}")
        for pipe, ls in (("double", "-."), ("refined", (0, (1, 3)))):
            ax.axhline(rec["truth_floor"][pipe]["relative_error"], color="k", ls=ls, lw=0.8,
                       label=f"truth error, {pipe} solve")
        ax.set(title=f"{name} (n_h = {rec['n_h']})", xlabel="N", ylabel="max relative error / bound")
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the studies and write JSON + PNG."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    makers = {"diffusion1d": lambda: diffusion1d(args.n_elements),
              "thermal_block": lambda: thermal_block((2, 2), n=args.block_n)}
    record: dict[str, Any] = {
        "benchmark": "refined_floor", "machine": machine_info(),
        "parameters": {**{k: getattr(args, k) for k in DEFAULTS}, "quick": args.quick, "seed": args.seed,
                       "reference_refine": REF_REFINE, "pipelines": PIPELINES},
        "definitions": DEFINITIONS,
        "problems": {name: study(name, makers[name](), args) for name in args.problems},
    }
    record["wall_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "refined_floor.json").write_text(json.dumps(record, indent=1))
    plot(record, args.out / "refined_floor.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

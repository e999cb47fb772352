"""The dictionary study: local certified models against one global model on two problems.

Problems: a 2D advection-diffusion-reaction problem whose transport direction (an angle) and
Peclet number (up to 1e3) are the parameters (boundary layers that move with the parameters: one
global space is inefficient), and the 1D Helmholtz problem (certified by the inf-sup SCM).
Reports per problem, from one run: the global basis size against the local ones at the same
tolerance, the a priori criterion's predicted sizes against the measured ones, online time per
query (batched and single, with the stability bound and with it given: the same stability cost
on both sides) of the global model and of each selection rule, offline times, the sizes and
projection errors of sine and Euclidean clusterings per cluster count, and the certified-bound
violations against the truth (docs/dictionary.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .offline.clustering import METHODS, cluster, gram, projection_errors, sizes_for_tolerance, strong_greedy_size
from .offline.dictionary import build_dictionary
from .offline.greedy import weak_greedy
from .offline.problem import Problem
from .offline.snapshots import solve_snapshots
from .offline.truth import true_error
from .online.dictionary import SELECTIONS
from .online.evaluate import evaluate_batch

__all__ = ["DEFAULTS", "PROBLEMS", "PecletFloor", "advection_problem", "dictionary_studies", "dictionary_study",
           "helmholtz_problem", "plot_dictionary_study"]

Progress = Callable[[str, int, int], None]

PROBLEMS = ("advection2d", "helmholtz1d")
"""The study's problems, in the order they run."""

DEFAULTS: dict[str, dict[str, Any]] = {
    "advection2d": {"tol": 1e-4, "max_basis": 300, "n_train": 500, "max_clusters": 12},
    "helmholtz1d": {"tol": 1e-5, "max_basis": 60, "n_train": 300, "max_clusters": 16},
}
"""Per problem: tolerance, largest basis size, training set size and largest cluster count tried."""

_EPS = float(np.finfo(np.float64).eps)


def helmholtz_problem(n_elements: int = 100, k_max: float = 40.0, *, k_ref: float = 20.0, scm_train: int = 300,
                      scm_iter: int = 120, grid_target: float = 0.75) -> Problem:
    """1D Helmholtz on ``k in [1, k_max]`` in the wavenumber-weighted norm, certified by an inf-sup SCM.

    The problem of :func:`certrb.problems.helmholtz1d` with the inner product
    ``X = K + k_ref^2 M`` (``||v||^2 = |v|_1^2 + k_ref^2 ||v||_0^2``) instead of the H1 one:
    in the H1 norm ``beta(k)`` falls like ``1.6 / k`` and the SCM's lower bounds
    (``scm_train`` grid points, at most ``scm_iter`` SCM points) reach zero above about
    ``k = 20``; in this norm they stay positive up to ``k = 40`` (docs/dictionary.md).
    Online, the SCM's values on a grid of wavenumbers, lowered by the certified Lipschitz
    continuity of ``beta`` (:func:`certrb.offline.lipschitz.lipschitz_grid`, refined until it
    keeps ``grid_target`` of the SCM bound), replace its linear program.
    """
    from .offline.lipschitz import lipschitz_grid
    from .offline.scm import SCM
    from .problems.helmholtz1d import helmholtz1d

    if not k_ref > 0:
        raise ValueError(f"k_ref must be positive; got {k_ref!r}")
    plain = helmholtz1d(n_elements, (1.0, k_max), stability=lambda m: np.ones(m.shape[0]))
    stiffness, mass, _ = plain.operator.terms
    X = (stiffness + k_ref**2 * mass).tocsr()
    scm = SCM(plain.operator, X, plain.parameter_space.grid(scm_train), kind="inf-sup", max_iter=scm_iter)
    with_scm = Problem(plain.operator, plain.rhs, X, plain.parameter_space, stability=scm, output=plain.output)
    return Problem(plain.operator, plain.rhs, with_scm.inner_product, plain.parameter_space,
                   stability=lipschitz_grid(with_scm, target=grid_target), output=plain.output)


@dataclass(frozen=True)
class PecletFloor:
    """Coercivity lower bound ``alpha(pe, angle) >= scale * min(1 / pe, reaction)`` of :func:`advection_problem`.

    The Hermitian part of ``A(mu)`` is ``K / pe + reaction M`` (the advection terms are stored
    exactly skew), which is ``>= min(1 / pe, reaction) (K + M)``; ``scale`` is certified with
    ``K + M - scale X >= 0`` for the stored ``X`` (:func:`certrb.offline.stability.certified_lower`).
    The value is rounded down past the division, the minimum and the product.
    """

    scale: float
    reaction: float

    def __call__(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        """Lower bounds at ``mus`` (n_mu, 2), shape (n_mu,) of float64."""
        return self.scale * np.minimum(1.0 / mus[:, 0], self.reaction) * (1 - 4 * _EPS)


def advection_problem(n: int = 24, pe_max: float = 1e3, angle_max: float = 2 * math.pi, *,
                      reaction: float = 1.0) -> Problem:
    """Advection-diffusion-reaction on the unit square with transport direction and Peclet number as parameters.

    ``-(1 / pe) lap u + (cos(angle), sin(angle)) . grad u + reaction u = 1``, ``u = 0`` on the
    boundary; P1 elements on the ``n x n`` mesh of :func:`certrb.problems.thermal_block.cross_mesh`;
    ``pe in [1, pe_max]`` (log scale), ``angle in [0, angle_max]``; ``X = K + M`` (H1); stability by
    :class:`PecletFloor` (closed form: no online linear program).

    Returns
    -------
    Problem
        Real, non-symmetric, Q_a = 4, Q_f = 1, parameters ``("pe", "angle")``.

    """
    import skfem
    from skfem.helpers import dot, grad

    from .interop.skfem import Dirichlet
    from .offline.affine import AffineFunctional, AffineOperator
    from .offline.stability import certified_lower
    from .online.parameters import ParameterSpace
    from .problems.thermal_block import cross_mesh

    if not pe_max >= 1 or not angle_max > 0 or not reaction > 0:
        raise ValueError(f"need pe_max >= 1, angle_max > 0 and reaction > 0; got {pe_max!r}, {angle_max!r}, "
                         f"{reaction!r}")
    dirichlet = Dirichlet(skfem.Basis(cross_mesh(int(n)), skfem.ElementTriP1()))
    K, Bx, By, M = dirichlet.matrices([skfem.BilinearForm(lambda u, v, w: dot(grad(u), grad(v))),
                                       skfem.BilinearForm(lambda u, v, w: u.grad[0] * v),
                                       skfem.BilinearForm(lambda u, v, w: u.grad[1] * v),
                                       skfem.BilinearForm(lambda u, v, w: u * v)])
    K, M = ((K + K.T) * 0.5).tocsr(), ((M + M.T) * 0.5).tocsr()
    Bx, By = ((Bx - Bx.T) * 0.5).tocsr(), ((By - By.T) * 0.5).tocsr()  # exactly skew: no coercive part
    X = (K + M).tocsr()
    scale, _ = certified_lower([(1.0, K), (1.0, M)], X, 1.0)
    space = ParameterSpace(["pe", "angle"], [1.0, 0.0], [float(pe_max), float(angle_max)], scale=["log", "linear"])
    operator = AffineOperator([K, Bx, By, M], ["1 / pe", "cos(angle)", "sin(angle)", repr(float(reaction))])
    load = dirichlet.vectors([skfem.LinearForm(lambda v, w: 1.0 * v)])
    return Problem(operator.bind(space.names), AffineFunctional(load, ["1"]), X, space,
                   stability=PecletFloor(scale, float(reaction)), output=AffineFunctional(load, ["1"]))


Evaluator = Callable[[NDArray[np.float64], NDArray[np.float64] | None], object]


def _timings(evaluators: dict[str, Evaluator], mus: NDArray[np.float64], beta: NDArray[np.float64],
             n_single: int, repeats: int) -> dict[str, dict[str, float]]:
    """Seconds per query of each ``evaluator(mus, beta)``, batched (one call) and single (one call per parameter).

    ``beta`` is the stability at ``mus`` for the evaluators that take it given (ignored otherwise);
    the single queries are the first ``n_single`` parameters. The
    evaluators are timed in turn within each repeat (so that a slow spell of a shared machine hits
    them alike), and the best of ``repeats`` is kept.
    """
    best = {name: {"batched": math.inf, "single": math.inf} for name in evaluators}
    few, few_beta = mus[:n_single], beta[:n_single]
    for _ in range(repeats):
        for name, func in evaluators.items():
            t0 = time.perf_counter()
            func(mus, beta)
            t1 = time.perf_counter()
            for i in range(few.shape[0]):
                func(few[i:i + 1], few_beta[i:i + 1])
            t2 = time.perf_counter()
            best[name]["batched"] = min(best[name]["batched"], (t1 - t0) / mus.shape[0])
            best[name]["single"] = min(best[name]["single"], (t2 - t1) / few.shape[0])
    return best


def _evaluators(problem: Problem, model: Any, dictionary: Any) -> dict[str, Evaluator]:
    """Global model and every rule, with their stability evaluated (``name``) or given (``name/given``)."""
    space, est = problem.parameter_space, model.estimators[model.default_estimator]
    out: dict[str, Evaluator] = {
        "stability": lambda m, b: problem.stability(space.validate(m)),
        "global": lambda m, b: model.evaluate(m),
        "global/given": lambda m, b: evaluate_batch(model, space.validate(m), model.n_basis, est, stability=b),
    }
    for rule in SELECTIONS:
        out[rule] = partial(_select, dictionary, rule, False)
        out[f"{rule}/given"] = partial(_select, dictionary, rule, True)
    return out


def _select(dictionary: Any, rule: str, given: bool, m: NDArray[np.float64], b: NDArray[np.float64]) -> object:
    """``dictionary.evaluate`` with ``rule``, the stability ``b`` passed if ``given``."""
    return dictionary.evaluate(m, selection=rule, stability=b if given else None)


def _clustering_comparison(G: NDArray, mus: NDArray, problem: Problem, counts: Sequence[int], n_global: int,
                           tol: float, max_basis: int, seed: int) -> dict:
    """Largest local POD size reaching ``tol`` and worst projection error, per method and cluster count k.

    The errors are relative X-projection errors of the cluster's snapshots onto its first
    ``ceil(n_global / k)`` POD modes (an even split of the global size).
    """
    counts = [k for k in counts if k <= mus.shape[0]]
    modes = [max(1, math.ceil(n_global / k)) for k in counts]
    out: dict[str, Any] = {"counts": counts, "n_modes": modes}
    for method in METHODS:
        worst, largest = [], []
        for k, n in zip(counts, modes, strict=True):
            cl = cluster(method, k, mus, problem.parameter_space, G, np.random.default_rng(seed))
            blocks = [G[np.ix_(m, m)] for m in map(cl.members, range(cl.n_clusters))]
            worst.append(float(max(projection_errors(b, [n]).max() for b in blocks)))
            largest.append(int(max(sizes_for_tolerance(b, tol, max_basis) for b in blocks)))
        out[method] = {"worst_projection_error": worst, "largest_size": largest}
    return out


def _violations(problem: Problem, dictionary: Any, result: Any, test: NDArray) -> tuple[int, float]:
    """Certified bounds below the true error, and the largest true relative error, of a dictionary result."""
    errors = np.empty(test.shape[0])
    norms = np.empty(test.shape[0])
    for j in np.unique(result.model):
        rows = np.flatnonzero(result.model == j)
        errors[rows], norms[rows] = true_error(problem, dictionary.models[j], test[rows])
    return int(np.sum(result.bound < errors)), float(np.max(errors / norms))


def _sine_below_euclidean(comparison: dict, key: str) -> list[bool]:
    """Per count: the sine clustering's value of ``key`` below the better of the two Euclidean ones."""
    euclid = np.minimum(comparison["euclidean-parameters"][key], comparison["euclidean-snapshots"][key])
    return [bool(s < e) for s, e in zip(comparison["sine"][key], euclid, strict=True)]


def dictionary_study(problem: Problem, *, tol: float, max_basis: int, n_train: int = 300, n_test: int = 100,
                     n_clusters: int | str = "auto", max_clusters: int = 12,
                     counts: Sequence[int] = (2, 4, 6, 8, 12), n_batch: int = 2000, n_single: int = 200,
                     repeats: int = 7, seed: int = 0, progress: Progress | None = None) -> dict:
    """Run the study on one problem; returns a JSON-ready dict (see the module docstring).

    Parameters
    ----------
    problem : Problem
    tol : float
        Relative tolerance of the global and of every local greedy.
    max_basis : int
        Largest basis size (global and local).
    n_train, n_test : int
        Random training parameters (clustering and greedies) and test parameters.
    n_clusters : int or "auto"
        Local models; ``"auto"`` uses the a priori criterion over ``1 .. max_clusters``.
    counts : sequence of int
        Cluster counts of the sine / Euclidean comparison.
    n_batch, n_single : int
        Random parameters timed in one batch, and one by one (the first ``n_single`` of them).
    repeats : int
        Timings are the best of ``repeats``.
    seed : int
    progress : callable, optional
        ``progress(stage, done, total)``.

    """
    report = progress or (lambda stage, done, total: None)
    rng = np.random.default_rng(seed)
    space = problem.parameter_space
    train, test = space.sample(n_train, rng=rng), space.sample(n_test, rng=rng)
    batch = space.sample(n_batch, rng=rng)
    stages = 5
    report("dictionary study", 0, stages)
    t0 = time.perf_counter()
    S = solve_snapshots(problem, train)
    G = gram(S, problem.inner_product)
    snapshot_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    glob = weak_greedy(problem, train, tol=tol, max_basis=max_basis)
    global_seconds = time.perf_counter() - t0
    report("dictionary study", 1, stages)
    built: list = []
    t0 = time.perf_counter()
    dictionary = build_dictionary(problem, train, n_clusters=n_clusters, max_clusters=max_clusters, tol=tol,
                                  max_basis=max_basis, rng=seed, snapshots=S, report=built)
    dictionary_seconds = time.perf_counter() - t0 + snapshot_seconds
    info = built[0]
    report("dictionary study", 2, stages)
    n_global, local = glob.model.n_basis, dictionary.n_basis
    predicted_global = strong_greedy_size(G, tol, max_basis)
    pod_local = [sizes_for_tolerance(G[np.ix_(m, m)], tol, max_basis) for m in info.train_sets]
    beta = np.asarray(problem.stability(batch), dtype=np.float64)
    timing = _timings(_evaluators(problem, glob.model, dictionary), batch, beta, n_single, repeats)
    report("dictionary study", 3, stages)
    g_res = glob.model.evaluate(test)
    g_err, g_norm = true_error(problem, glob.model, test)
    violations = {"global": int(np.sum(g_res.bound < g_err))}
    worst_error = {"global": float(np.max(g_err / g_norm))}
    worst_bound = {"global": float(g_res.relative_bound.max())}
    within = {"global": float(np.mean(g_res.relative_bound <= tol))}
    for rule in SELECTIONS:
        res = dictionary.evaluate(test, selection=rule)
        violations[rule], worst_error[rule] = _violations(problem, dictionary, res, test)
        worst_bound[rule] = float(res.relative_bound.max())
        within[rule] = float(np.mean(res.relative_bound <= tol))
    report("dictionary study", 4, stages)
    comparison = _clustering_comparison(G, train, problem, counts, predicted_global, tol, max_basis, seed)
    report("dictionary study", 5, stages)
    ratio: dict[str, dict[str, float]] = {}
    for mode in ("batched", "single"):
        ratio[mode] = {rule: timing[rule][mode] / timing["global"][mode] for rule in SELECTIONS}
        ratio[f"{mode}_stability_given"] = {rule: timing[f"{rule}/given"][mode] / timing["global/given"][mode]
                                            for rule in SELECTIONS}
    size_error = [abs(int(p) - int(m)) / int(m) for p, m in zip(info.prediction.sizes, local, strict=True)]
    global_size_error = abs(predicted_global - n_global) / n_global
    return {
        "problem": {"n_h": problem.size, "parameter_space": repr(space), "dtype": str(problem.dtype),
                    "n_train": n_train, "n_test": n_test, "n_batch": n_batch, "tol": tol, "max_basis": max_basis,
                    "seed": seed},
        "sizes": {"global": n_global, "global_reason": glob.reason, "local": local.tolist(),
                  "local_reasons": info.reasons, "n_clusters": len(dictionary.models),
                  "centers": dictionary.centers.tolist()},
        "prediction": {"global": predicted_global, "local": info.prediction.sizes.tolist(),
                       "pod_global": sizes_for_tolerance(G, tol, max_basis), "pod_local": pod_local,
                       "relative_error_local": size_error, "relative_error_global": global_size_error,
                       "online_cost": {str(k): p.online_cost for k, p in info.predictions.items()},
                       "offline_cost": {str(k): p.offline_cost for k, p in info.predictions.items()}},
        "online_seconds_per_query": timing,
        "online_ratio_to_global": ratio,
        "offline_seconds": {"snapshots": snapshot_seconds, "global_greedy": global_seconds,
                            "dictionary": dictionary_seconds, "dictionary_parts": info.seconds},
        "violations": violations, "worst_true_relative_error": worst_error, "worst_relative_bound": worst_bound,
        "test_fraction_within_tol": within,
        "clustering": comparison,
        "targets": {
            "largest_local_at_most_half_global": bool(local.max() <= n_global / 2),
            "online_nearest_then_bound_below_global": {mode: bool(r["nearest-then-bound"] < 1)
                                                       for mode, r in ratio.items()},
            "predicted_sizes_within_30_percent": bool(max(size_error) <= 0.3 and global_size_error <= 0.3),
            "sine_below_euclidean": {key: _sine_below_euclidean(comparison, key)
                                     for key in ("largest_size", "worst_projection_error")},
            "no_violations": bool(sum(violations.values()) == 0),
        },
    }


def dictionary_studies(problems: Sequence[str] = PROBLEMS, *, n_elements: int = 100, k_max: float = 40.0,
                       grid: int = 24, pe_max: float = 1e3, angle_max: float = math.pi / 2,
                       **options: Any) -> dict:
    """:func:`dictionary_study` on each named problem at its :data:`DEFAULTS`; ``{name: results}``.

    ``n_elements`` and ``k_max`` shape :func:`helmholtz_problem`; ``grid``, ``pe_max`` and
    ``angle_max`` :func:`advection_problem`; ``options`` go to :func:`dictionary_study` and
    replace the :data:`DEFAULTS` of every problem. Each result also holds the seconds spent
    building the problem (for Helmholtz, mostly its SCM).
    """
    unknown = [name for name in problems if name not in PROBLEMS]
    if unknown or not problems:
        raise ValueError(f"unknown problems {unknown!r}; known: {PROBLEMS}")
    out = {}
    for name in problems:
        t0 = time.perf_counter()
        problem = (helmholtz_problem(n_elements, k_max) if name == "helmholtz1d"
                   else advection_problem(grid, pe_max, angle_max))
        seconds = time.perf_counter() - t0
        settings = {**DEFAULTS[name], **options}
        results = dictionary_study(problem, **settings)
        results["problem"].update(name=name, setup_seconds=seconds)
        out[name] = results
    return out


def plot_dictionary_study(results: dict, path: Path, title: str = "dictionary") -> None:
    """Four panels: largest local size and worst projection error per cluster count, sizes, online times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    comp = results["clustering"]
    for method in METHODS:
        axes[0].plot(comp["counts"], comp[method]["largest_size"], "o-", label=method)
        axes[1].semilogy(comp["counts"], comp[method]["worst_projection_error"], "o-", label=method)
    axes[0].set(xlabel="clusters", ylabel=f"largest local POD size for tol = {results['problem']['tol']:g}")
    axes[1].set(xlabel="clusters", ylabel="worst relative projection error (ceil(N_global / k) modes)")
    axes[0].legend(fontsize=8)
    sizes, pred = results["sizes"], results["prediction"]
    idx = np.arange(len(sizes["local"]))
    axes[2].bar(idx - 0.2, sizes["local"], 0.4, label="local, measured")
    axes[2].bar(idx + 0.2, pred["local"], 0.4, label="local, predicted")
    axes[2].axhline(sizes["global"], color="k", label=f"global N = {sizes['global']}")
    axes[2].axhline(pred["global"], color="k", ls="--", label=f"global predicted = {pred['global']}")
    axes[2].set(xlabel="local model", ylabel="basis size N")
    axes[2].legend(fontsize=8)
    timing = results["online_seconds_per_query"]
    names = ["global", *SELECTIONS]
    x = np.arange(len(names))
    for shift, (mode, suffix) in zip((-0.3, -0.1, 0.1, 0.3), [(m, s) for m in ("batched", "single")
                                                                 for s in ("", "/given")], strict=True):
        label = f"{mode}, stability {'given' if suffix else 'evaluated'}"
        axes[3].bar(x + shift, [timing[n + suffix][mode] * 1e6 for n in names], 0.2, label=label)
    axes[3].set_xticks(x, names, rotation=15, fontsize=8)
    axes[3].set(ylabel="microseconds per query", yscale="log")
    axes[3].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

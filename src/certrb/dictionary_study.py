"""The dictionary study: local certified models against one global model on the 1D Helmholtz problem.

Reports, from one run: the global basis size against the local ones at the same tolerance, the
a priori criterion's predicted sizes against the measured ones, online time per query (batched
and single) of the global model and of each selection rule, offline times, the worst projection
errors of sine and Euclidean clusterings per cluster count, and the certified-bound violations
against the truth (docs/dictionary.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .offline.clustering import METHODS, cluster, gram, projection_errors, sizes_for_tolerance
from .offline.dictionary import build_dictionary
from .offline.greedy import weak_greedy
from .offline.problem import Problem
from .offline.snapshots import solve_snapshots
from .offline.truth import true_error
from .online.dictionary import SELECTIONS

__all__ = ["dictionary_study", "helmholtz_problem", "plot_dictionary_study"]

Progress = Callable[[str, int, int], None]


def helmholtz_problem(n_elements: int = 100, k_max: float = 20.0, *, scm_train: int = 300,
                      scm_iter: int = 120) -> Problem:
    """1D Helmholtz on ``k in [1, k_max]`` with an inf-sup SCM of ``scm_train`` grid points, ``scm_iter`` steps."""
    from .offline.scm import SCM
    from .problems.helmholtz1d import helmholtz1d

    plain = helmholtz1d(n_elements, (1.0, k_max), stability=lambda m: np.ones(m.shape[0]))
    scm = SCM(plain.operator, plain.inner_product, plain.parameter_space.grid(scm_train), kind="inf-sup",
              max_iter=scm_iter)
    return helmholtz1d(n_elements, (1.0, k_max), stability=scm)


def _best_time(func: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def _per_query(evaluate: Callable[[NDArray], object], mus: NDArray, n_single: int, repeats: int) -> dict:
    """Seconds per query, batched (one call) and single (one call per parameter)."""
    batched = _best_time(lambda: evaluate(mus), repeats) / mus.shape[0]
    few = mus[:n_single]
    single = _best_time(lambda: [evaluate(few[i:i + 1]) for i in range(few.shape[0])], repeats) / few.shape[0]
    return {"batched": batched, "single": single}


def _clustering_comparison(G: NDArray, mus: NDArray, problem: Problem, counts: Sequence[int], n_modes: int,
                           tol: float, max_basis: int, seed: int) -> dict:
    """Worst relative projection error on ``n_modes`` local POD modes, and the largest local size for ``tol``."""
    out: dict[str, Any] = {"counts": list(counts), "n_modes": n_modes}
    for method in METHODS:
        worst, largest = [], []
        for k in counts:
            cl = cluster(method, k, mus, problem.parameter_space, G, np.random.default_rng(seed))
            blocks = [G[np.ix_(m, m)] for m in map(cl.members, range(cl.n_clusters))]
            worst.append(float(max(projection_errors(b, [n_modes]).max() for b in blocks)))
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


def dictionary_study(problem: Problem | None = None, *, n_elements: int = 100, k_max: float = 20.0,
                     n_train: int = 300, n_test: int = 100, tol: float = 1e-6,
                     max_basis: int = 60, n_clusters: int | str = "auto", max_clusters: int = 8,
                     counts: Sequence[int] = (2, 4, 6, 8), n_single: int = 20, repeats: int = 3, seed: int = 0,
                     progress: Progress | None = None) -> dict:
    """Run the study; returns a JSON-ready dict (see the module docstring).

    Parameters
    ----------
    problem : Problem, optional
        Default: :func:`helmholtz_problem` with ``n_elements`` and ``k_max`` (inf-sup SCM, timed).
    n_train, n_test : int
        Random training parameters (clustering and greedies) and test parameters.
    tol : float
        Relative tolerance of the global and of every local greedy.
    max_basis : int
        Largest basis size (global and local).
    n_clusters : int or "auto"
        Local models; ``"auto"`` uses the a priori criterion over ``1 .. max_clusters``.
    counts : sequence of int
        Cluster counts of the sine / Euclidean comparison.
    n_single, repeats : int
        Parameters timed one by one; timings are the best of ``repeats``.
    seed : int
    progress : callable, optional
        ``progress(stage, done, total)``.

    """
    report = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    problem_seconds = None
    if problem is None:
        problem = helmholtz_problem(n_elements, k_max)
        problem_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    space = problem.parameter_space
    train, test = space.sample(n_train, rng=rng), space.sample(n_test, rng=rng)
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
    predicted_global = sizes_for_tolerance(G, tol, max_basis)
    timing = {"global": _per_query(glob.model.evaluate, test, n_single, repeats),
              "stability_only": _per_query(problem.stability, test, n_single, repeats)}
    for rule in SELECTIONS:
        timing[rule] = _per_query(partial(dictionary.evaluate, selection=rule), test, n_single, repeats)
    report("dictionary study", 3, stages)
    g_res = glob.model.evaluate(test)
    g_err, g_norm = true_error(problem, glob.model, test)
    violations = {"global": int(np.sum(g_res.bound < g_err))}
    worst_error = {"global": float(np.max(g_err / g_norm))}
    worst_bound = {"global": float(g_res.relative_bound.max())}
    for rule in SELECTIONS:
        res = dictionary.evaluate(test, selection=rule)
        violations[rule], worst_error[rule] = _violations(problem, dictionary, res, test)
        worst_bound[rule] = float(res.relative_bound.max())
    report("dictionary study", 4, stages)
    n_modes = max(1, math.ceil(predicted_global / 2))
    comparison = _clustering_comparison(G, train, problem, counts, n_modes, tol, max_basis, seed)
    report("dictionary study", 5, stages)
    ratio = {rule: timing[rule]["batched"] / timing["global"]["batched"] for rule in SELECTIONS}
    single_ratio = {rule: timing[rule]["single"] / timing["global"]["single"] for rule in SELECTIONS}
    scm = timing["stability_only"]["batched"]
    reduced_ratio = {rule: (timing[rule]["batched"] - scm) / (timing["global"]["batched"] - scm)
                     for rule in SELECTIONS}
    size_error = [abs(int(p) - int(m)) / int(m) for p, m in zip(info.prediction.sizes, local, strict=True)]
    global_size_error = abs(predicted_global - n_global) / n_global
    sine = comparison["sine"]["worst_projection_error"]
    euclid = [min(a, b) for a, b in zip(comparison["euclidean-parameters"]["worst_projection_error"],
                                        comparison["euclidean-snapshots"]["worst_projection_error"], strict=True)]
    return {
        "problem": {"n_h": problem.size, "parameter_space": repr(space), "dtype": str(problem.dtype),
                    "n_train": n_train, "n_test": n_test, "tol": tol, "max_basis": max_basis, "seed": seed},
        "sizes": {"global": n_global, "global_reason": glob.reason, "local": local.tolist(),
                  "local_reasons": info.reasons, "n_clusters": len(dictionary.models),
                  "centers": dictionary.centers.tolist()},
        "prediction": {"global": predicted_global, "local": info.prediction.sizes.tolist(),
                       "relative_error_local": size_error, "relative_error_global": global_size_error,
                       "online_cost": {str(k): p.online_cost for k, p in info.predictions.items()},
                       "offline_cost": {str(k): p.offline_cost for k, p in info.predictions.items()}},
        "online_seconds_per_query": timing,
        "online_ratio_to_global": {"batched": ratio, "single": single_ratio,
                                   "batched_without_stability": reduced_ratio},
        "offline_seconds": {"problem_and_scm": problem_seconds, "snapshots": snapshot_seconds,
                            "global_greedy": global_seconds, "dictionary": dictionary_seconds,
                            "dictionary_parts": info.seconds},
        "violations": violations, "worst_true_relative_error": worst_error, "worst_relative_bound": worst_bound,
        "clustering": comparison,
        "targets": {
            "largest_local_at_most_half_global": bool(local.max() <= n_global / 2),
            "online_nearest_then_bound_below_global": bool(ratio["nearest-then-bound"] < 1),
            "predicted_sizes_within_30_percent": bool(max(size_error) <= 0.3 and global_size_error <= 0.3),
            "sine_worst_projection_below_euclidean": [bool(s < e) for s, e in zip(sine, euclid, strict=True)],
            "no_violations": bool(sum(violations.values()) == 0),
        },
    }


def plot_dictionary_study(results: dict, path: Path, title: str = "dictionary") -> None:
    """Three panels: worst projection errors per cluster count, sizes (measured and predicted), online times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    comp = results["clustering"]
    for method in METHODS:
        axes[0].semilogy(comp["counts"], comp[method]["worst_projection_error"], "o-", label=method)
    axes[0].set(xlabel="clusters", ylabel=f"worst relative projection error ({comp['n_modes']} local modes)")
    axes[0].legend()
    sizes, pred = results["sizes"], results["prediction"]
    idx = np.arange(len(sizes["local"]))
    axes[1].bar(idx - 0.2, sizes["local"], 0.4, label="local, measured")
    axes[1].bar(idx + 0.2, pred["local"], 0.4, label="local, predicted")
    axes[1].axhline(sizes["global"], color="k", label=f"global N = {sizes['global']}")
    axes[1].axhline(pred["global"], color="k", ls="--", label=f"global predicted = {pred['global']}")
    axes[1].set(xlabel="local model", ylabel="basis size N")
    axes[1].legend(fontsize=8)
    timing = results["online_seconds_per_query"]
    names = ["global", *SELECTIONS]
    x = np.arange(len(names))
    axes[2].bar(x - 0.2, [timing[n]["batched"] * 1e6 for n in names], 0.4, label="batched")
    axes[2].bar(x + 0.2, [timing[n]["single"] * 1e6 for n in names], 0.4, label="single")
    axes[2].set_xticks(x, names, rotation=15, fontsize=8)
    axes[2].set(ylabel="microseconds per query")
    axes[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

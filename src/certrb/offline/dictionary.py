"""Building a dictionary of local certified reduced models: cluster the snapshots, one weak greedy per cluster.

:func:`build_dictionary` solves the truth at the training parameters, clusters them
(:mod:`certrb.offline.clustering`), and runs :func:`certrb.weak_greedy` on each cluster's
training parameters, widened by the training parameters whose nearest center is that
cluster's (so that the parameter-space rules pick, on the training set, a model trained there).
The local greedies run through a :class:`certrb.ParallelMap` (one task per cluster), with the
same result on every backend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError
from ..online.dictionary import Dictionary, check_selection
from ..online.model import ReducedModel
from ..parallel import ParallelMap
from .clustering import METHODS, Clustering, Prediction, cluster, gram, predict
from .greedy import weak_greedy
from .problem import Problem
from .snapshots import solve_snapshots

__all__ = ["BuildReport", "build_dictionary", "choose_clusters", "training_sets"]

@dataclass(frozen=True)
class BuildReport:
    """What :func:`build_dictionary` did.

    Attributes
    ----------
    clustering : Clustering
    prediction : Prediction
        The a priori criterion for the clustering used.
    predictions : dict int -> Prediction
        Every cluster count tried by ``n_clusters="auto"`` (only the one used otherwise).
    train_sets : list of ndarray of intp
        Indices of each local model's training parameters.
    reasons : list of str
        Each local greedy's stop reason.
    seconds : dict str -> float
        Wall times: ``snapshots``, ``clustering``, ``greedies``.

    """

    clustering: Clustering
    prediction: Prediction
    predictions: dict[int, Prediction]
    train_sets: list[NDArray[np.intp]]
    reasons: list[str]
    seconds: dict[str, float]


@dataclass(frozen=True)
class _Local:
    """Everything one local greedy needs (shipped once to the workers)."""

    problem: Problem
    train: NDArray[np.float64]
    sets: tuple[NDArray[np.intp], ...]
    seeds: NDArray[np.int64]
    tol: float
    max_basis: int
    options: dict


def _greedy_chunk(local: _Local, chunk: NDArray[np.float64]) -> list[tuple[ReducedModel, str]]:
    """The local models of the cluster indices in ``chunk`` (k, 1)."""
    from .builder import OfflineBuilder

    out = []
    for c in chunk[:, 0].astype(int):
        builder = OfflineBuilder(local.problem, rng=int(local.seeds[c]), **local.options)
        result = weak_greedy(builder, local.train[local.sets[c]], tol=local.tol, max_basis=local.max_basis)
        out.append((result.model, result.reason))
    return out


def _with_stability(model: ReducedModel, stability: Any) -> ReducedModel:
    """The same model evaluated with ``stability`` (the problem's own, after a trip through a worker)."""
    return ReducedModel(model.parameter_space, model.operator_coefficients, model.rhs_coefficients, model.A_N,
                        model.f_N, stability, model.estimators, model.default_estimator, model.output, model.basis,
                        model.interpolation, model.reconstruction_weights)


def training_sets(clustering: Clustering, space: Any, mus: NDArray[np.float64]) -> list[NDArray[np.intp]]:
    """Training parameters of each local greedy: the cluster's members and those whose nearest center is its.

    Parameters
    ----------
    clustering : Clustering
        A clustering of ``mus``.
    space : ParameterSpace
    mus : ndarray of float64, shape (n_s, P)

    Returns
    -------
    list of ndarray of intp
        Sorted indices into ``mus``, one array per cluster.

    """
    u, c = space.to_unit(mus), space.to_unit(clustering.centers)
    near = np.argmin(((u[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
    return [np.flatnonzero((clustering.labels == k) | (near == k)) for k in range(clustering.n_clusters)]


def choose_clusters(G: NDArray, mus: NDArray[np.float64], problem: Problem, candidates: range, *, tol: float,
                    max_basis: int, method: str, n_candidates: int, offline_budget: float | None,
                    rng: np.random.Generator) -> tuple[Clustering, Prediction, dict[int, Prediction]]:
    """The clustering whose predicted online cost is smallest under the offline budget (ties: fewer clusters).

    Every count in ``candidates`` is clustered with ``method`` and scored by
    :func:`certrb.offline.clustering.predict`; a budget of None admits every count. If no count fits
    the budget, the one with the smallest predicted offline cost is taken.
    """
    q_a, q_f = problem.operator.n_terms, problem.rhs.n_terms
    tried: dict[int, tuple[Clustering, Prediction]] = {}
    for k in candidates:
        if k > mus.shape[0]:
            break
        cl = cluster(method, k, mus, problem.parameter_space, G, rng)
        tried[k] = (cl, predict(G, cl, tol, max_basis, q_a=q_a, q_f=q_f, n_candidates=n_candidates,
                                train_sets=training_sets(cl, problem.parameter_space, mus)))
    fits = [k for k, (_, p) in tried.items() if offline_budget is None or p.offline_cost <= offline_budget]
    if fits:
        best = min(fits, key=lambda k: (tried[k][1].online_cost, k))
    else:
        best = min(tried, key=lambda k: (tried[k][1].offline_cost, k))
    return tried[best][0], tried[best][1], {k: p for k, (_, p) in tried.items()}


def build_dictionary(problem: Problem, train: ArrayLike, *, n_clusters: int | str, tol: float, max_basis: int,
                     dissimilarity: str = "sine", selection: str = "nearest-then-bound", rng: Any = None,
                     n_candidates: int = 2, max_clusters: int = 8, offline_budget: float | None = None,
                     snapshots: NDArray | None = None, parallel: ParallelMap | None = None,
                     options: dict | None = None, report: list | None = None) -> Dictionary:
    """A dictionary of local certified reduced models, one per cluster of the solution manifold.

    Parameters
    ----------
    problem : Problem
    train : array_like, shape (n_train, P)
        Training parameters: clustered through their truth solutions, then split among the greedies.
    n_clusters : int or "auto"
        Number of local models; ``"auto"`` takes the count in ``1 .. max_clusters`` whose predicted
        online cost is smallest under ``offline_budget`` (the a priori criterion).
    tol : float
        Relative tolerance of every local greedy (largest training bound / ``||u_N||_V``).
    max_basis : int
        Largest local basis size.
    dissimilarity : str
        ``"sine"`` (k-medoids), ``"euclidean-parameters"`` or ``"euclidean-snapshots"`` (k-means).
    selection : str
        Default online rule: ``"nearest"``, ``"bound"`` or ``"nearest-then-bound"``.
    rng : Generator, int or None
        Randomness of the clustering and of the builders; the result is a function of it.
    n_candidates : int
        Models compared by ``"nearest-then-bound"`` (capped at the number of clusters).
    max_clusters : int
        Largest count tried by ``"auto"``.
    offline_budget : float, optional
        Predicted truth solves allowed to ``"auto"`` (clustering snapshots plus, per basis vector,
        one snapshot and ``Q_a`` Riesz solves).
    snapshots : ndarray, shape (n_train, n_h), optional
        Truth solutions at ``train`` (solved here through ``parallel`` otherwise).
    parallel : ParallelMap, optional
        Backend of the snapshot solves and of the local greedies (``chunk_size`` clusters per task;
        the models do not depend on it). Serial with one cluster per task by default.
    options : dict, optional
        Keyword arguments of each local :class:`certrb.OfflineBuilder` (``estimators``, ``certify``, ...).
    report : list, optional
        If given, a :class:`BuildReport` is appended to it.

    Returns
    -------
    Dictionary

    Raises
    ------
    ValueError
        On an unknown dissimilarity or selection rule, a bad cluster count or tolerance.
    ShapeError
        If ``snapshots`` does not match ``train`` and the problem.
    ParameterError
        If ``train`` lies outside the parameter domain.

    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem; got {type(problem).__name__}")
    mus = problem.parameter_space.validate(train, name="train")
    if dissimilarity not in METHODS:
        raise ValueError(f"unknown dissimilarity {dissimilarity!r}; known: {METHODS}")
    check_selection(selection)
    if not tol >= 0:
        raise ValueError(f"tol must be non-negative; got {tol!r}")
    if isinstance(n_clusters, str):
        if n_clusters != "auto":
            raise ValueError(f"n_clusters must be a positive integer or 'auto'; got {n_clusters!r}")
    elif int(n_clusters) != n_clusters or not 1 <= n_clusters <= mus.shape[0]:
        raise ValueError(f"n_clusters must be an integer in [1, {mus.shape[0]}] or 'auto'; got {n_clusters!r}")
    gen = np.random.default_rng(rng)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    S = solve_snapshots(problem, mus, parallel=parallel) if snapshots is None else np.asarray(snapshots)
    if S.shape != (mus.shape[0], problem.size):
        raise ShapeError(f"snapshots must have shape ({mus.shape[0]}, {problem.size}); got {S.shape}")
    seconds["snapshots"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    G = gram(S, problem.inner_product)
    counts = range(1, int(max_clusters) + 1) if n_clusters == "auto" else range(int(n_clusters), int(n_clusters) + 1)
    k_rule = {"nearest": 1, "bound": mus.shape[0], "nearest-then-bound": int(n_candidates)}[selection]
    clustering, prediction, predictions = choose_clusters(G, mus, problem, counts, tol=tol, max_basis=max_basis,
                                              method=dissimilarity, n_candidates=k_rule,
                                              offline_budget=offline_budget, rng=gen)
    sets = tuple(training_sets(clustering, problem.parameter_space, mus))
    seeds = gen.integers(2**62, size=clustering.n_clusters)
    seconds["clustering"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    local = _Local(problem, mus, sets, seeds, float(tol), int(max_basis), dict(options or {}))
    pm = parallel if parallel is not None else ParallelMap(chunk_size=1)
    index = np.arange(clustering.n_clusters, dtype=float)[:, None]
    built = [item for part in pm.map(_greedy_chunk, local, index) for item in part]
    seconds["greedies"] = time.perf_counter() - t0
    models = [_with_stability(m, problem.stability) for m, _ in built]
    if report is not None:
        report.append(BuildReport(clustering, prediction, predictions, list(sets), [r for _, r in built], seconds))
    return Dictionary(models, clustering.centers, selection, min(int(n_candidates), len(models)))

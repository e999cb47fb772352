"""Clustering of the solution manifold from truth snapshots, and the a priori efficiency criterion.

Dissimilarities come from the snapshots' Gram matrix ``G = S^H X S`` in the problem's inner
product X (snapshots as rows of ``S^T``, shape (n_s, n_h)). The sine dissimilarity
``d(u, v) = sqrt(1 - |(u, v)_X|^2 / (||u||_X^2 ||v||_X^2))`` is the relative X-distance of ``u``
from the line through ``v``, so a k-medoids clustering with it minimizes the sum of the
one-dimensional relative projection errors onto the medoids (docs/dictionary.md). Euclidean
k-means on the scaled parameters and on the snapshots (in X) are the baselines.

The a priori criterion predicts the size a local model needs for a tolerance as the size of
the *strong* greedy on the model's training snapshots (a pivoted Cholesky factorization of their
Gram matrix, stopped when the worst relative projection error is within the tolerance): the
weak greedy that builds the model is that algorithm with the error replaced by its bound. The
online and offline costs follow from the sizes. POD sizes (:func:`sizes_for_tolerance`, the
papers' widths) serve the comparison of clusterings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import ShapeError
from ..online.parameters import ParameterSpace
from .innerproduct import InnerProduct

__all__ = ["METHODS", "Clustering", "Prediction", "cluster", "gram", "kmeans", "kmedoids", "predict",
           "projection_errors", "query_cost", "sine_dissimilarity", "sizes_for_tolerance", "strong_greedy_size"]

METHODS = ("sine", "euclidean-parameters", "euclidean-snapshots")
"""Clustering methods: k-medoids on the sine dissimilarity, k-means on scaled parameters or on snapshots."""


@dataclass(frozen=True)
class Clustering:
    """A partition of the training set.

    Attributes
    ----------
    labels : ndarray of intp, shape (n_s,)
        Cluster of each training parameter, in ``0 .. n_clusters - 1``; every cluster is non-empty.
    centers : ndarray of float64, shape (n_clusters, P)
        A representative parameter per cluster: the medoid's parameter (k-medoids), or the
        parameter of the snapshot nearest to the centroid (k-means).
    method : str
        One of :data:`METHODS`.

    """

    labels: NDArray[np.intp]
    centers: NDArray[np.float64]
    method: str

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return self.centers.shape[0]

    def members(self, c: int) -> NDArray[np.intp]:
        """Indices of the training parameters of cluster ``c``, shape (n_c,)."""
        return np.flatnonzero(self.labels == c)


def gram(snapshots: NDArray, inner_product: InnerProduct) -> NDArray:
    """Hermitian Gram matrix ``G_ij = (u_i, u_j)_X`` of snapshots (n_s, n_h); shape (n_s, n_s), their dtype."""
    S = np.asarray(snapshots)
    if S.ndim != 2 or S.shape[1] != inner_product.size:
        raise ShapeError(f"snapshots must have shape (n_s, {inner_product.size}); got {S.shape}")
    G = inner_product.gram(S.T)
    return (G + G.conj().T) / 2


def sine_dissimilarity(G: NDArray) -> NDArray[np.float64]:
    """Sine dissimilarities ``sqrt(1 - |G_ij|^2 / (G_ii G_jj))`` from a Gram matrix (n_s, n_s); float64, same shape.

    Raises
    ------
    ShapeError
        If ``G`` is not square or a snapshot has zero norm.
    """
    G = np.asarray(G)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ShapeError(f"the Gram matrix must be square; got shape {G.shape}")
    norms2 = G.diagonal().real.astype(np.float64)
    if not (norms2 > 0).all():
        raise ShapeError("the sine dissimilarity needs non-zero snapshots")
    cos2 = np.abs(G) ** 2 / np.outer(norms2, norms2)
    d = np.sqrt(np.clip(1.0 - cos2, 0.0, 1.0))
    np.fill_diagonal(d, 0.0)
    return (d + d.T) / 2


def _snapshot_coordinates(G: NDArray) -> NDArray[np.float64]:
    """Real coordinates Z (n_s, 2 r) with ``||z_i - z_j||_2 = ||u_i - u_j||_X``, from ``G = W L W^H``."""
    w, W = np.linalg.eigh(G)
    keep = w > max(float(w[-1]), 0.0) * 1e-14
    Z = W[:, keep] * np.sqrt(w[keep])
    return np.hstack([Z.real, Z.imag]) if np.iscomplexobj(Z) else Z


def kmedoids(dissimilarity: NDArray[np.float64], n_clusters: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """FasterPAM k-medoids (``kmedoids`` package, one thread, BUILD start) on a dissimilarity matrix.

    Returns the medoid indices, shape (n_clusters,), sorted.
    """
    try:
        import kmedoids as km
    except ImportError as exc:
        raise ImportError("the sine clustering needs the kmedoids package: pip install kmedoids") from exc
    result = km.fasterpam(np.ascontiguousarray(dissimilarity), int(n_clusters), init="build",
                          random_state=int(rng.integers(2**31)), n_cpu=1)
    return np.sort(np.asarray(result.medoids, dtype=np.intp))


def kmeans(points: NDArray[np.float64], n_clusters: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """Euclidean k-means (``scipy.cluster.vq.kmeans2``, k-means++ start) of points (n, d); labels (n,)."""
    from scipy.cluster.vq import kmeans2

    _, labels = kmeans2(points, int(n_clusters), minit="++", seed=rng)
    return np.asarray(labels, dtype=np.intp)


def _compact(labels: NDArray[np.intp]) -> NDArray[np.intp]:
    """Labels renumbered ``0 .. k - 1`` in order of first occurrence of their smallest member (no empty cluster)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.intp)


def cluster(method: str, n_clusters: int, mus: NDArray[np.float64], space: ParameterSpace, G: NDArray,
            rng: np.random.Generator) -> Clustering:
    """Cluster the training set ``mus`` (n_s, P) with snapshot Gram matrix ``G`` (n_s, n_s).

    Parameters
    ----------
    method : str
        ``"sine"`` (k-medoids on :func:`sine_dissimilarity`), ``"euclidean-parameters"`` (k-means on
        the parameters scaled to the unit box) or ``"euclidean-snapshots"`` (k-means on the snapshots in X).
    n_clusters : int
        ``1 <= n_clusters <= n_s``.
    mus : ndarray of float64, shape (n_s, P)
    space : ParameterSpace
    G : ndarray, shape (n_s, n_s)
        :func:`gram` of the snapshots at ``mus``.
    rng : numpy.random.Generator

    Returns
    -------
    Clustering
        k-means may leave clusters empty; they are dropped, so ``n_clusters`` can come out smaller.

    Raises
    ------
    ValueError
        On an unknown method or a cluster count outside ``[1, n_s]``.

    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; known: {METHODS}")
    n = mus.shape[0]
    if int(n_clusters) != n_clusters or not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be an integer in [1, {n}] (the training set size); got {n_clusters!r}")
    if G.shape != (n, n):
        raise ShapeError(f"the Gram matrix must have shape ({n}, {n}); got {G.shape}")
    if method == "sine":
        d = sine_dissimilarity(G)
        medoids = kmedoids(d, n_clusters, rng)
        labels = np.argmin(d[:, medoids], axis=1).astype(np.intp)
        labels[medoids] = np.arange(medoids.size)
        return Clustering(labels, mus[medoids].copy(), method)
    points = space.to_unit(mus) if method == "euclidean-parameters" else _snapshot_coordinates(G)
    labels = _compact(kmeans(points, n_clusters, rng)) if n_clusters > 1 else np.zeros(n, dtype=np.intp)
    centers = []
    for c in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == c)
        centroid = points[idx].mean(axis=0)
        centers.append(mus[idx[np.argmin(((points[idx] - centroid) ** 2).sum(axis=1))]])
    return Clustering(labels, np.array(centers), method)


def projection_errors(G: NDArray, sizes: Sequence[int] | NDArray[np.intp]) -> NDArray[np.float64]:
    """Relative X-projection errors of the snapshots onto their own first POD modes.

    With ``G = W diag(l) W^H`` (l descending), the error of snapshot ``j`` projected on the first
    ``n`` POD modes is ``sqrt(sum_{k > n} l_k |W_jk|^2) / sqrt(G_jj)`` (no cancellation).

    Parameters
    ----------
    G : ndarray, shape (m, m)
        Gram matrix of the cluster's snapshots.
    sizes : sequence of int
        POD sizes ``n >= 0``.

    Returns
    -------
    errors : ndarray of float64, shape (len(sizes), m)

    """
    w, W = np.linalg.eigh(G)
    w, W = np.clip(w[::-1], 0.0, None), W[:, ::-1]
    weighted = np.abs(W) ** 2 * w  # (m, m): contribution of mode k to snapshot j
    tails = np.cumsum(weighted[:, ::-1], axis=1)[:, ::-1]  # tails[:, k] = sum over modes >= k
    tails = np.hstack([tails, np.zeros((G.shape[0], 1))])
    idx = np.minimum(np.asarray(sizes, dtype=np.intp), G.shape[0])
    return np.sqrt(tails[:, idx].T / G.diagonal().real)


def sizes_for_tolerance(G: NDArray, tol: float, max_size: int) -> int:
    """Smallest POD size whose worst relative projection error over the snapshots of ``G`` is ``<= tol``.

    Capped at ``max_size`` (returned when no size up to it reaches ``tol``).
    """
    cap = min(int(max_size), G.shape[0])
    worst = projection_errors(G, np.arange(cap + 1)).max(axis=1)
    hit = np.flatnonzero(worst <= tol)
    return int(hit[0]) if hit.size else int(max_size)


def strong_greedy_size(G: NDArray, tol: float, max_size: int) -> int:
    """Size at which the strong greedy on the snapshots of ``G`` reaches a worst relative error ``<= tol``.

    The strong greedy adds, at each step, the snapshot worst approximated (relative X-error)
    by the span of those already chosen; on the Gram matrix ``G`` (m, m) this is a pivoted
    Cholesky factorization ``G ~ L L^H`` whose residual diagonal ``d_j`` is the squared error
    of snapshot ``j``. Capped at ``max_size`` (returned when no size up to it reaches ``tol``).
    """
    norms = G.diagonal().real.copy()
    if not (norms > 0).all():
        raise ShapeError("the Gram matrix needs non-zero snapshots (a positive diagonal)")
    m = G.shape[0]
    cap = min(int(max_size), m)
    L = np.zeros((m, cap), dtype=G.dtype)
    d = norms.copy()
    for n in range(cap + 1):
        rel = np.clip(d, 0.0, None) / norms
        if np.sqrt(rel.max()) <= tol:
            return n
        if n == cap:
            break
        j = int(np.argmax(rel))
        if not d[j] > 0:  # the factorization lost the remaining digits
            break
        column = (G[:, j] - L[:, :n] @ L[j, :n].conj()) / np.sqrt(d[j])
        L[:, n] = column
        d = d - np.abs(column) ** 2
        d[j] = 0.0
    return int(max_size)


@dataclass(frozen=True)
class Prediction:
    """The a priori criterion for one clustering.

    Attributes
    ----------
    sizes : ndarray of intp, shape (n_clusters,)
        Predicted basis size of each local model.
    online_cost : float
        Predicted flops of one query: ``n_candidates`` local models of the largest size
        (``N^3 / 3`` for the reduced LU, ``K^2`` with ``K = Q_f + Q_a N`` for the residual norm)
        plus the selection (``n_clusters P``).
    offline_cost : float
        Predicted truth solves: the snapshots of the clustering, and per basis vector one
        snapshot and ``Q_a`` Riesz solves.

    """

    sizes: NDArray[np.intp]
    online_cost: float
    offline_cost: float


def query_cost(n: int, q_a: int, q_f: int) -> float:
    """Predicted flops of one reduced query of size ``n``: ``n^3 / 3 + (q_f + q_a n)^2``."""
    return n**3 / 3 + float(q_f + q_a * n) ** 2


def predict(G: NDArray, clustering: Clustering, tol: float, max_basis: int, *, q_a: int, q_f: int,
            n_candidates: int, train_sets: Sequence[NDArray[np.intp]] | None = None) -> Prediction:
    """The a priori criterion: predicted local sizes and costs of a clustering (see :class:`Prediction`).

    Parameters
    ----------
    G : ndarray, shape (n_s, n_s)
        Gram matrix of all training snapshots.
    clustering : Clustering
    tol : float
        Relative tolerance of the local models.
    max_basis : int
        Largest basis size.
    q_a, q_f : int
        Affine terms of the operator and the right-hand side.
    n_candidates : int
        Local models evaluated per query (1 for nearest, all for bound).
    train_sets : sequence of ndarray of intp, optional
        Snapshot indices each local model is trained on, one per cluster (the cluster's members
        by default); the size of a model is predicted on its own training set.

    """
    sets = [clustering.members(c) for c in range(clustering.n_clusters)] if train_sets is None else train_sets
    if len(sets) != clustering.n_clusters:
        raise ShapeError(f"train_sets must hold one index set per cluster ({clustering.n_clusters}); got {len(sets)}")
    sizes = np.array([strong_greedy_size(G[np.ix_(m, m)], tol, max_basis) for m in sets], dtype=np.intp)
    k = min(int(n_candidates), clustering.n_clusters)
    online = k * query_cost(int(sizes.max()), q_a, q_f)
    if clustering.n_clusters > 1:
        online += clustering.n_clusters * clustering.centers.shape[1]
    offline = G.shape[0] * (clustering.n_clusters > 1) + float(sizes.sum()) * (1 + q_a)
    return Prediction(sizes, float(online), offline)

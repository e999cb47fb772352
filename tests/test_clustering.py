"""Clustering of snapshots: sine dissimilarity, k-medoids / k-means, projection errors, the a priori criterion."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from certrb import InnerProduct, ParameterSpace, ShapeError
from certrb.offline.clustering import (
    METHODS,
    cluster,
    gram,
    predict,
    projection_errors,
    query_cost,
    sine_dissimilarity,
    sizes_for_tolerance,
    strong_greedy_size,
)

pytest.importorskip("kmedoids")


@pytest.fixture(scope="module")
def inner() -> InnerProduct:
    rng = np.random.default_rng(0)
    B = rng.standard_normal((12, 12))
    return InnerProduct(sp.csr_matrix(B @ B.T + 12 * np.eye(12)))


def _two_families(rng: np.random.Generator, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Snapshots near two orthogonal directions (with random complex scalings), parameters in [0, 1]."""
    mus = ((np.arange(n) + 0.5) / n)[:, None]
    base = np.where(mus[:, 0] < 0.5, 0, 5)
    S = 1e-3 * rng.standard_normal((n, 12)) + 0j
    S[np.arange(n), base] += 1.0
    S *= (rng.standard_normal(n) + 1j * rng.standard_normal(n))[:, None]
    return mus, S


def test_sine_dissimilarity_is_the_relative_distance_from_the_line(inner):
    rng = np.random.default_rng(1)
    U = rng.standard_normal((5, 12)) + 1j * rng.standard_normal((5, 12))
    d = sine_dissimilarity(gram(U, inner))
    X = inner.matrix.toarray()
    for i in range(5):
        for j in range(5):
            u, v = U[i], U[j]
            c = (v.conj() @ X @ u) / (v.conj() @ X @ v)  # X-projection of u on span{v}
            r = u - c * v
            expected = np.sqrt((r.conj() @ X @ r).real / (u.conj() @ X @ u).real)
            assert d[i, j] == pytest.approx(expected, abs=1e-7)
    assert np.array_equal(d, d.T)
    assert np.all(np.diag(d) == 0)
    assert d.max() <= 1
    scaled = sine_dissimilarity(gram(U * (2 - 3j), inner))  # invariant under scalings
    np.testing.assert_allclose(scaled, d, atol=1e-7)


def test_gram_and_dissimilarity_refuse_bad_input(inner):
    with pytest.raises(ShapeError, match="snapshots"):
        gram(np.ones((3, 5)), inner)
    with pytest.raises(ShapeError, match="non-zero"):
        sine_dissimilarity(np.diag([1.0, 0.0]))
    with pytest.raises(ShapeError, match="square"):
        sine_dissimilarity(np.ones((2, 3)))


def test_projection_errors_match_explicit_pod_projections(inner):
    rng = np.random.default_rng(2)
    U = rng.standard_normal((8, 12))
    G = gram(U, inner)
    errors = projection_errors(G, [0, 2, 8])
    X = inner.matrix.toarray()
    w, W = np.linalg.eigh(G)
    modes = (U.T @ W[:, ::-1][:, :2]) / np.sqrt(w[::-1][:2])  # X-orthonormal POD modes (n_h, 2)
    for j, u in enumerate(U):
        r = u - modes @ (modes.T @ X @ u)
        assert errors[1, j] == pytest.approx(np.sqrt(r @ X @ r / (u @ X @ u)), rel=1e-8)
    np.testing.assert_allclose(errors[0], 1.0)
    assert errors[2].max() < 1e-6


def test_sizes_for_tolerance_reads_the_rank(inner):
    rng = np.random.default_rng(3)
    U = rng.standard_normal((10, 3)) @ rng.standard_normal((3, 12))  # rank 3
    G = gram(U, inner)
    assert sizes_for_tolerance(G, 1e-6, 10) == 3
    assert sizes_for_tolerance(G, 1e-6, 2) == 2  # capped
    assert sizes_for_tolerance(G, 2.0, 10) == 0


def _explicit_strong_greedy(U, X, tol):
    """Strong greedy by explicit X-projections: add the worst approximated snapshot until all are within tol."""
    chosen: list[int] = []
    while True:
        if chosen:
            B = U[chosen].T
            P = B @ np.linalg.solve(B.T @ X @ B, B.T @ X)
            R = U.T - P @ U.T
        else:
            R = U.T
        rel = np.sqrt(np.einsum("ij,ik,kj->j", R, X, R) / np.einsum("ij,ik,kj->j", U.T, X, U.T))
        if rel.max() <= tol:
            return len(chosen), rel
        chosen.append(int(np.argmax(rel)))


def test_strong_greedy_size_matches_explicit_projections(inner):
    rng = np.random.default_rng(5)
    U = rng.standard_normal((12, 12)) * np.logspace(0, -6, 12)[None, :]  # decaying, full rank
    U = U @ rng.standard_normal((12, 12))
    G = gram(U, inner)
    X = inner.matrix.toarray()
    for tol in (0.5, 1e-2, 1e-4):
        n, _ = _explicit_strong_greedy(U, X, tol)
        assert strong_greedy_size(G, tol, 12) == n
    assert strong_greedy_size(G, 1e-4, 2) == 2  # capped
    low = rng.standard_normal((9, 3)) @ rng.standard_normal((3, 12))  # rank 3
    assert strong_greedy_size(gram(low, inner), 1e-6, 9) == 3
    assert strong_greedy_size(G, 2.0, 12) == 0
    with pytest.raises(ShapeError, match="positive diagonal"):
        strong_greedy_size(np.diag([1.0, 0.0]), 0.1, 2)


@pytest.mark.parametrize("method", METHODS)
def test_clustering_separates_two_families_and_is_deterministic(inner, method):
    rng = np.random.default_rng(4)
    mus, S = _two_families(rng)
    space = ParameterSpace(["t"], [0.0], [1.0])
    G = gram(S, inner)
    a = cluster(method, 2, mus, space, G, np.random.default_rng(7))
    b = cluster(method, 2, mus, space, G, np.random.default_rng(7))
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.centers, b.centers)
    truth = (mus[:, 0] >= 0.5).astype(int)
    if method != "euclidean-snapshots":  # the random scalings, not the directions, dominate Euclidean distances
        assert np.array_equal(a.labels, truth) or np.array_equal(a.labels, 1 - truth)
    assert a.n_clusters == 2
    assert all(a.members(c).size for c in range(2))
    assert set(map(float, a.centers[:, 0])) <= set(map(float, mus[:, 0]))


def test_sine_clustering_beats_parameter_kmeans_on_a_manifold_not_ordered_by_parameter(inner):
    rng = np.random.default_rng(5)
    mus = np.sort(rng.random(30))[:, None]
    family = (np.floor(mus[:, 0] * 6) % 2).astype(int)  # alternating families along the parameter
    S = 1e-3 * rng.standard_normal((30, 12))
    S[np.arange(30), 3 * family] += 1 + mus[:, 0]
    space, G = ParameterSpace(["t"], [0.0], [1.0]), gram(S, inner)

    def worst(method: str) -> float:
        cl = cluster(method, 2, mus, space, G, np.random.default_rng(0))
        return max(projection_errors(G[np.ix_(m, m)], [1]).max() for m in map(cl.members, range(2)))

    assert worst("sine") < 1e-2 < worst("euclidean-parameters")


def test_cluster_refuses_bad_arguments(inner):
    mus, S = _two_families(np.random.default_rng(6), 6)
    space, G = ParameterSpace(["t"], [0.0], [1.0]), gram(S, inner)
    with pytest.raises(ValueError, match="unknown clustering method"):
        cluster("cosine", 2, mus, space, G, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_clusters"):
        cluster("sine", 7, mus, space, G, np.random.default_rng(0))
    with pytest.raises(ShapeError, match="Gram"):
        cluster("sine", 2, mus, space, G[:5, :5], np.random.default_rng(0))


def test_prediction_costs_follow_the_predicted_sizes(inner):
    mus, S = _two_families(np.random.default_rng(8))
    space, G = ParameterSpace(["t"], [0.0], [1.0]), gram(S, inner)
    one = predict(G, cluster("sine", 1, mus, space, G, np.random.default_rng(0)), 1e-2, 12, q_a=2, q_f=1,
                  n_candidates=1)
    two = predict(G, cluster("sine", 2, mus, space, G, np.random.default_rng(0)), 1e-2, 12, q_a=2, q_f=1,
                  n_candidates=1)
    assert one.sizes.tolist() == [2]
    assert two.sizes.tolist() == [1, 1]
    assert one.online_cost == query_cost(2, 2, 1)
    assert two.online_cost == query_cost(1, 2, 1) + 2 * 1
    assert one.offline_cost == 2 * 3
    assert two.offline_cost == 20 + 2 * 3


def test_prediction_reads_each_models_own_training_set(inner):
    mus, S = _two_families(np.random.default_rng(8))
    space, G = ParameterSpace(["t"], [0.0], [1.0]), gram(S, inner)
    cl = cluster("sine", 2, mus, space, G, np.random.default_rng(0))
    members = [cl.members(c) for c in range(2)]
    own = predict(G, cl, 1e-2, 12, q_a=2, q_f=1, n_candidates=1, train_sets=members)
    assert own.sizes.tolist() == predict(G, cl, 1e-2, 12, q_a=2, q_f=1, n_candidates=1).sizes.tolist()
    widened = predict(G, cl, 1e-2, 12, q_a=2, q_f=1, n_candidates=1,
                      train_sets=[np.union1d(members[0], members[1][:1]), members[1]])
    assert widened.sizes.tolist() == [2, 1]  # one snapshot of the other family needs a second mode
    assert widened.online_cost == query_cost(2, 2, 1) + 2
    with pytest.raises(ShapeError, match="one index set per cluster"):
        predict(G, cl, 1e-2, 12, q_a=2, q_f=1, n_candidates=1, train_sets=members[:1])

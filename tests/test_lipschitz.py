"""Lipschitz grid stability bounds: continuity constants, the grid, online evaluation, files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

import certrb
from certrb import LipschitzBound, continuity_constants, lipschitz_grid
from certrb.errors import ModelFileError, ShapeError, StabilityError
from certrb.offline.scm import SCM
from certrb.online.stability import stability_certificate
from certrb.problems.helmholtz1d import helmholtz1d
from conftest import p1_matrices


def _whitened(A, X):
    L = np.linalg.cholesky(X.toarray())
    return sla.solve_triangular(L, sla.solve_triangular(L, A.toarray(), lower=True).conj().T, lower=True).conj().T


def exact_beta(problem, mus):
    """Inf-sup constants sigma_min(L^-1 A(mu) L^-H), X = L L^H, by dense SVDs."""
    X = problem.inner_product.matrix
    return np.array([np.linalg.svd(_whitened(problem.operator.assemble(t), X), compute_uv=False)[-1]
                     for t in problem.operator.theta(mus)])


@pytest.fixture(scope="module")
def helmholtz():
    """1D Helmholtz, k in [1, 8], 40 elements, X = K + 16 M, certified by an inf-sup SCM."""
    plain = helmholtz1d(40, (1.0, 8.0), stability=lambda m: np.ones(m.shape[0]))
    K, M, _ = plain.operator.terms
    X = (K + 16 * M).tocsr()
    scm = SCM(plain.operator, X, plain.parameter_space.grid(60), kind="inf-sup", max_iter=40)
    return certrb.Problem(plain.operator, plain.rhs, X, plain.parameter_space, stability=scm)


@pytest.fixture(scope="module")
def grid(helmholtz):
    return lipschitz_grid(helmholtz, target=0.8)


def test_continuity_constants_bound_the_term_norms_tightly():
    K, M, _, x = p1_matrices(30)
    X = (K + M).tocsr()
    C = sp.diags(x.ravel()[: K.shape[0] - 1], 1, shape=K.shape)  # non-symmetric: a skew and a symmetric part
    terms = [K, M, (C - C.T).tocsr(), (C + 2j * M).tocsr()]
    gamma = continuity_constants(terms, X)
    exact = np.array([np.linalg.norm(_whitened(A, X), 2) for A in terms])
    assert np.all(gamma >= exact)
    assert np.all(gamma <= 2.0 * exact)  # a split into Hermitian and skew parts loses at most a factor 2
    assert gamma[0] == pytest.approx(exact[0], rel=1e-6)
    assert gamma[1] == pytest.approx(exact[1], rel=1e-6)


def test_the_sparse_estimate_gives_the_same_certified_constants(monkeypatch):
    import certrb.offline.lipschitz as lipschitz

    K, M, _, x = p1_matrices(30)
    X = (K + M).tocsr()
    C = sp.diags(x.ravel()[: K.shape[0] - 1], 1, shape=K.shape)
    terms = [M, (C + 2j * M).tocsr()]
    dense = continuity_constants(terms, X)
    monkeypatch.setattr(lipschitz, "_DENSE", 5)  # Lanczos on every term
    sparse = continuity_constants(terms, X)
    exact = np.array([np.linalg.norm(_whitened(A, X), 2) for A in terms])
    assert np.all(sparse >= exact)
    np.testing.assert_allclose(sparse, dense, rtol=1e-4)


def test_a_zero_term_has_zero_constant():
    K, M, _, _ = p1_matrices(10)
    assert continuity_constants([sp.csr_matrix(K.shape)], (K + M).tocsr())[0] == 0.0


def test_grid_bound_is_certified_below_the_exact_constant(helmholtz, grid):
    ks = np.linspace(1.0, 8.0, 301)[:, None]
    lower, exact, source = grid(ks), exact_beta(helmholtz, ks), helmholtz.stability(ks)
    assert np.all(lower > 0)
    assert np.all(lower <= exact)
    assert np.all(lower <= source * (1 + 1e-12))  # never above its source
    assert np.min(lower / source) >= 0.75
    assert grid.quality >= 0.8
    assert grid.certified
    assert stability_certificate(grid) == "Lipschitz grid (certified)"


def test_refinement_stops_at_max_nodes(helmholtz):
    coarse = lipschitz_grid(helmholtz, nodes=5, target=0.99, max_nodes=9)
    assert coarse.values.shape == (9,)
    assert coarse.quality < 0.99


def test_assumed_source_gives_an_uncertified_bound(helmholtz):
    bound = lipschitz_grid(helmholtz, source=lambda m: 0.5 * helmholtz.stability(m), nodes=65, target=0.0)
    assert not bound.certified
    assert stability_certificate(bound) == "Lipschitz grid (assumed)"


def test_two_parameter_coercive_grid():
    K, M, _, _ = p1_matrices(20)
    space = certrb.ParameterSpace(["a", "b"], [0.1, 0.0], [10.0, 5.0], scale=["log", "linear"])
    problem = certrb.Problem(certrb.AffineOperator([K, M], ["a", "b"]).bind(space.names),
                             certrb.AffineFunctional([np.ones(K.shape[0])], ["1"]), K, space,
                             stability=lambda m: m[:, 0].copy())  # alpha(a, b) >= a in the K-norm
    bound = lipschitz_grid(problem, nodes=(9, 5), target=0.5)
    mus = space.sample(300, rng=0)
    X = K.toarray()
    alpha = np.array([sla.eigh((a * K + b * M).toarray(), X, eigvals_only=True)[0] for a, b in mus])
    values = bound(mus)
    assert np.all(values > 0)
    assert np.all(values <= alpha)
    assert bound.values.ndim == 2
    assert bound.quality >= 0.5


def test_not_positive_raises_with_the_parameter(helmholtz, grid):
    sparse = LipschitzBound(grid.coefficients, grid.space, grid.values[::64].copy(), grid.theta[::64], grid.gamma)
    with pytest.raises(StabilityError, match="not positive at mu"):
        sparse(np.array([[6.9]]))


def test_invalid_data_is_rejected(grid):
    args = (grid.coefficients, grid.space)
    with pytest.raises(ShapeError):
        LipschitzBound(*args, grid.values, grid.theta[:-1], grid.gamma)
    with pytest.raises(ShapeError):
        LipschitzBound(*args, grid.values[:1], grid.theta[:1], grid.gamma)
    with pytest.raises(ValueError, match="positive"):
        LipschitzBound(*args, -grid.values, grid.theta, grid.gamma)
    with pytest.raises(ValueError, match="non-negative"):
        LipschitzBound(*args, grid.values, grid.theta, -grid.gamma)
    with pytest.raises(ValueError, match="source"):
        lipschitz_grid(certrb.Problem(grid_problem_operator(), certrb.AffineFunctional([np.ones(3)], ["1"]),
                                      sp.identity(3, format="csr"), certrb.ParameterSpace(["a"], [1.0], [2.0]),
                                      stability=lambda m: -np.ones(m.shape[0])))


def grid_problem_operator():
    return certrb.AffineOperator([sp.identity(3, format="csr")], ["a"]).bind(["a"])


def test_model_file_round_trip(helmholtz, grid, tmp_path):
    problem = certrb.Problem(helmholtz.operator, helmholtz.rhs, helmholtz.inner_product.matrix,
                             helmholtz.parameter_space, stability=grid)
    model = certrb.weak_greedy(problem, problem.parameter_space.sample(40, rng=1), tol=1e-6, max_basis=10).model
    path = tmp_path / "lipschitz.h5"
    certrb.save(model, path)
    with pytest.raises(ModelFileError, match="trusted"):  # the coefficients are an import path: not followed
        certrb.load(path)
    loaded = certrb.load(path, trusted=True)
    assert isinstance(loaded.stability, LipschitzBound)
    ks = np.linspace(1.0, 8.0, 50)[:, None]
    np.testing.assert_array_equal(loaded.stability(ks), grid(ks))
    assert loaded.stability.certified
    assert loaded.stability.quality == grid.quality
    assert np.array_equal(loaded.evaluate(ks).bound, model.evaluate(ks).bound)

    from certrb import io
    from certrb.io.checksum import checksum
    from certrb.io.read import read_model
    from certrb.io.write import write_atomic

    for key, change in (("stability/values", lambda v: -v), ("stability/gamma", lambda v: v[:-1]),
                        ("stability/theta", lambda v: v[:-1])):
        data, attrs = read_model(io._h5py(), str(path))
        data[key] = change(data[key])
        attrs["checksum"] = checksum(data, attrs)
        bad = tmp_path / "crafted.h5"
        write_atomic(io._h5py(), str(bad), data, attrs)
        with pytest.raises(ModelFileError, match="stability"):
            certrb.load(bad, trusted=True)


def test_a_dictionary_shares_one_grid_bound_after_loading(helmholtz, grid, tmp_path):
    problem = certrb.Problem(helmholtz.operator, helmholtz.rhs, helmholtz.inner_product.matrix,
                             helmholtz.parameter_space, stability=grid)
    train = problem.parameter_space.sample(40, rng=2)
    dictionary = certrb.build_dictionary(problem, train, n_clusters=2, tol=1e-5, max_basis=10, rng=0)
    path = tmp_path / "dictionary.h5"
    certrb.save_dictionary(dictionary, path)
    loaded = certrb.load_dictionary(path, trusted=True)
    first, second = (m.stability for m in loaded.models)
    assert first is second
    assert isinstance(first, LipschitzBound)
    ks = np.linspace(1.0, 8.0, 30)[:, None]
    np.testing.assert_array_equal(loaded.evaluate(ks).bound, dictionary.evaluate(ks).bound)

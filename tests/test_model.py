"""ReducedModel: Galerkin solves, bounds, outputs, nesting, input checks."""

import numpy as np
import pytest

import certrb
from certrb import ParameterError, ShapeError


def test_galerkin_orthogonality(small_problem, small_greedy):
    model = small_greedy.model
    mus = small_problem.parameter_space.sample(5, rng=1)
    c = model.solve(mus)
    V = model.basis
    theta = small_problem.operator.theta(mus)
    F = small_problem.rhs.assemble(mus)
    for i in range(len(mus)):
        A = small_problem.operator.assemble(theta[i])
        r = F[i] - A @ (V @ c[i])
        assert np.max(np.abs(V.T @ r)) <= 1e-10 * np.linalg.norm(F[i])


def test_basis_is_orthonormal(small_problem, small_greedy):
    V = small_greedy.model.basis
    assert np.max(np.abs(small_problem.inner_product.gram(V) - np.eye(V.shape[1]))) < 1e-12


def test_bound_is_above_true_error(small_problem, small_greedy):
    model = small_greedy.model
    mus = small_problem.parameter_space.sample(60, rng=2)
    for n in range(1, model.n_basis + 1):
        err, _norm = certrb.true_error(small_problem, model, mus, n=n)
        res = model.evaluate(mus, n=n)
        assert np.all(res.bound >= err), n
        assert np.allclose(res.relative_bound, res.bound / np.linalg.norm(res.coefficients, axis=1))


def test_output_and_output_bound(small_problem, small_greedy):
    model = small_greedy.model
    mus = small_problem.parameter_space.sample(20, rng=3)
    res = model.evaluate(mus, n=3)
    U = small_problem.solve(mus)
    L = small_problem.output.assemble(mus)
    s_true = np.einsum("mh,mh->m", L.conj(), U)
    s_rb = np.einsum("mh,mh->m", L.conj(), model.reconstruct(res.coefficients))
    assert np.allclose(res.output, s_rb, rtol=1e-10)
    assert np.all(np.abs(s_true - res.output) <= res.output_bound)


def test_solve_and_evaluate_share_the_operators_solve(small_problem, small_greedy):
    model = small_greedy.model
    mus = small_problem.parameter_space.sample(6, rng=7)
    theta, phi = small_problem.operator.theta(mus), small_problem.rhs.theta(mus)
    for n in (2, model.n_basis):
        c, _ = model.operators.solve(theta, phi, n)
        assert np.array_equal(model.solve(mus, n=n), c)
        assert np.array_equal(model.evaluate(mus, n=n).coefficients, c)
    # the nested sub-model is the Galerkin model of the first n basis vectors
    sub = certrb.reduce(small_problem, model.basis[:, :3])
    assert np.allclose(sub.solve(mus), model.solve(mus, n=3), rtol=1e-12, atol=1e-14)


def test_reconstruct_nested(small_problem, small_greedy):
    model = small_greedy.model
    res = model.evaluate(small_problem.parameter_space.sample(3, rng=5), n=2)
    assert res.coefficients.shape == (3, 2)
    assert res.n == 2
    U = model.reconstruct(res.coefficients)
    assert U.shape == (3, small_problem.size)
    assert np.allclose(U, res.coefficients @ model.basis[:, :2].T)
    with pytest.raises(ShapeError):
        model.reconstruct(np.ones((2, model.n_basis + 1)))


@pytest.mark.parametrize("n", [0, -1, 1.5, 10**6])
def test_bad_sub_model_size(small_greedy, n):
    with pytest.raises(ShapeError, match="n must be"):
        small_greedy.model.evaluate([1.0, 1.0], n=n)


@pytest.mark.parametrize(
    "mus",
    [[[1.0, np.nan]], [[-1.0, 2.0]], [[1.0, 600.0]], [[1.0, 2.0, 3.0]], np.ones((2, 2, 2)), "a"],
)
def test_bad_parameters(small_greedy, mus):
    with pytest.raises(ParameterError):
        small_greedy.model.evaluate(mus)


def test_online_only_model_cannot_reconstruct(small_problem, small_greedy):
    model = certrb.reduce(small_problem, small_greedy.model.basis, keep_basis=False)
    assert model.basis is None
    with pytest.raises(ShapeError, match="without its basis"):
        model.reconstruct(np.ones((1, model.n_basis)))
    assert model.evaluate([1.0, 2.0]).bound.shape == (1,)

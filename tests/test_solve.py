"""ReducedOperators.solve: the compiled Cholesky, LU and extended-precision paths agree; singular systems raise."""

import dataclasses

import numpy as np
import pytest

import certrb
from certrb import OfflineBuilder, ShapeError
from certrb.online import kernels
from certrb.online.estimators.orthonormal import OrthonormalEstimator
from certrb.online.residual import residual_coefficients
from certrb.online.solve import ReducedOperators

needs_numba = pytest.mark.skipif(kernels.compiled() is None, reason="numba (extra 'fast') is not installed")
needs_long_double = pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-17,
                                       reason="numpy.longdouble is not wider than float64 here")


def lu_only(monkeypatch):
    """Solve as without numba from here on (every new ReducedOperators takes the LAPACK path)."""
    monkeypatch.setattr(kernels, "compiled", lambda: None)


def dense_reference(A_N, f_N, theta, phi, n):
    """``c`` (n_mu, n) from dense double LAPACK solves of the assembled systems."""
    A = np.einsum("mq,qij->mij", theta, A_N[:, :n, :n])
    return np.linalg.solve(A, (phi @ f_N[:, :n])[:, :, None])[:, :, 0]


@pytest.fixture(scope="module")
def batch(small_problem):
    mus = small_problem.parameter_space.sample(40, rng=21)
    return small_problem.operator.theta(mus), small_problem.rhs.theta(mus)


@pytest.fixture(scope="module")
def extended_operators(small_problem, small_greedy):
    """``V^T A_q V`` and ``V^T f_p`` of the greedy basis, formed and stored in numpy.longdouble."""
    builder = OfflineBuilder(small_problem, precision="extended")
    builder.append_orthonormal(small_greedy.model.basis)
    return builder.A_N, builder.f_N


@pytest.mark.parametrize("n", [1, 4, 8])
@pytest.mark.parametrize("rows", [slice(None), slice(7, 8)], ids=["batch", "one"])
def test_lu_path_solves_the_galerkin_system(small_greedy, batch, monkeypatch, n, rows):
    model = small_greedy.model
    theta, phi = batch[0][rows], batch[1][rows]
    lu_only(monkeypatch)
    c, x = ReducedOperators(model.A_N, model.f_N).solve(theta, phi, n)
    ref = dense_reference(model.A_N, model.f_N, theta, phi, n)
    assert c.shape == (theta.shape[0], n)
    assert np.allclose(c, ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max())
    assert np.array_equal(x, residual_coefficients(phi, theta, c))


@needs_numba
@pytest.mark.parametrize("n", [1, 4, 8])
@pytest.mark.parametrize("rows", [slice(None), slice(7, 8)], ids=["batch", "one"])
def test_cholesky_path_agrees_with_lu(small_greedy, batch, monkeypatch, counting, n, rows):
    model = small_greedy.model
    theta, phi = batch[0][rows], batch[1][rows]
    c, x = ReducedOperators(model.A_N, model.f_N).solve(theta, phi, n)
    kernel = "cholesky_solve_one" if theta.shape[0] == 1 else "cholesky_solve_batch"
    assert counting.calls == [(kernel, True)]  # diffusion1d is symmetric: the compiled path is taken
    lu_only(monkeypatch)
    c_lu, x_lu = ReducedOperators(model.A_N, model.f_N).solve(theta, phi, n)
    assert np.allclose(c, c_lu, rtol=1e-10, atol=1e-12 * np.abs(c_lu).max())
    assert x.shape == x_lu.shape
    assert np.array_equal(x, residual_coefficients(phi, theta, c))  # the same ordering, the same operations


@needs_long_double
@pytest.mark.parametrize("rows", [slice(None), slice(7, 8)], ids=["batch", "one"])
def test_extended_path_agrees_and_solves_in_extended_precision(small_greedy, batch, extended_operators, counting,
                                                               rows):
    model = small_greedy.model
    theta, phi = batch[0][rows], batch[1][rows]
    A_ext, f_ext = extended_operators
    c, x = ReducedOperators(A_ext, f_ext).solve(theta, phi, model.n_basis)
    assert not counting.calls  # longdouble operators never take the compiled path
    assert c.dtype == x.dtype == np.longdouble
    # the extended residual of the reduced system is far below double round-off
    t, p = theta.astype(np.longdouble), phi.astype(np.longdouble)
    r = p @ f_ext - np.einsum("mq,qij,mj->mi", t, A_ext, c)
    assert np.max(np.abs(r)) < 1e-18 * np.max(np.abs(p @ f_ext))
    assert np.array_equal(x, residual_coefficients(p, t, c))
    ref = dense_reference(model.A_N, model.f_N, theta, phi, model.n_basis)
    assert np.allclose(np.asarray(c, dtype=float), ref, rtol=1e-10, atol=1e-12)


@needs_long_double
def test_extended_model_solves_through_the_extended_path(small_problem, small_greedy, extended_operators):
    """A model whose reduced operators are stored in longdouble solves (and evaluates) in extended precision."""
    A_ext, f_ext = extended_operators
    ext = dataclasses.replace(small_greedy.model, A_N=A_ext, f_N=f_ext)
    mus = small_problem.parameter_space.sample(5, rng=3)
    c = ext.solve(mus)
    assert c.dtype == np.longdouble
    theta, phi = small_problem.operator.theta(mus), small_problem.rhs.theta(mus)
    assert np.array_equal(c, ext.operators.solve(theta, phi, ext.n_basis)[0])
    assert ext.evaluate(mus).bound.shape == (5,)


def test_complex_operators_take_the_lu_path(complex_problem, counting):
    V = complex_problem.solve(complex_problem.parameter_space.sample(4, rng=5)).T
    model = certrb.reduce(complex_problem, V)
    mus = complex_problem.parameter_space.sample(9, rng=6)
    theta, phi = complex_problem.operator.theta(mus), complex_problem.rhs.theta(mus)
    for rows in (slice(None), slice(2, 3)):
        c, x = model.operators.solve(theta[rows], phi[rows], 4)
        ref = dense_reference(model.A_N, model.f_N, theta[rows], phi[rows], 4)
        assert c.dtype == np.complex128
        assert np.allclose(c, ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max())
        assert np.array_equal(x, residual_coefficients(phi[rows], theta[rows], c))
    assert not counting.calls


def test_real_operators_with_complex_rhs_coefficients():
    A_N = np.array([np.eye(3), np.diag([1.0, 2.0, 3.0])])
    A_N[0, 0, 1] = 0.3  # not symmetric
    f_N = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]])
    theta, phi = np.array([[1.0, 0.5], [1.0, 2.0]]), np.array([[1.0, 2.0j], [1.0, -1.0j]])
    ops = ReducedOperators(A_N, f_N)
    ref = dense_reference(A_N, f_N, theta, phi, 3)
    assert np.allclose(ops.solve(theta, phi, 3)[0], ref, rtol=1e-14)
    for i in range(2):
        c, x = ops.solve(theta[i:i + 1], phi[i:i + 1], 3)
        assert np.allclose(c, ref[i:i + 1], rtol=1e-14)
        assert np.array_equal(x, residual_coefficients(phi[i:i + 1], theta[i:i + 1], c))


@needs_numba
def test_indefinite_parameter_falls_back_to_lu(counting):
    """A symmetric model whose reduced matrix is indefinite at some parameters still solves them."""
    n = 4
    space = certrb.ParameterSpace(["k"], [0.0], [3.0])
    A_N = np.array([np.eye(n), -np.diag(np.arange(1.0, n + 1))])
    f_N = np.ones((1, n))
    model = certrb.ReducedModel(space, lambda m: np.column_stack([np.full(len(m), 10.0), m[:, 0]]),
                                lambda m: np.ones((len(m), 1)), A_N, f_N, lambda m: np.ones(len(m)),
                                {"orthonormal": OrthonormalEstimator(np.eye(1 + 2 * n))}, "orthonormal")
    mus = np.array([[0.5], [2.9], [3.0]])  # 10 - 3 k < 0 for the last diagonal entry at k = 2.9 and 3
    ref = 1.0 / (10.0 - mus * np.arange(1.0, n + 1))
    assert np.allclose(model.solve(mus), ref, rtol=1e-14)
    assert np.allclose(model.evaluate(mus[1]).coefficients, ref[1], rtol=1e-14)
    # the compiled Cholesky was tried and reported the indefinite systems
    assert counting.calls == [("cholesky_solve_batch", False), ("cholesky_solve_one", False)]


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.longdouble])
@pytest.mark.parametrize("n_mu", [1, 3])
@pytest.mark.parametrize("compiled", [True, False], ids=["default", "without-numba"])
def test_singular_system_raises(dtype, n_mu, compiled, monkeypatch):
    if not compiled:
        lu_only(monkeypatch)
    # A(theta) = theta_1 I + theta_2 diag(0, 1, 0): singular at theta = (1, -1)
    ops = ReducedOperators(np.array([np.eye(3), np.diag([0.0, 1.0, 0.0])]).astype(dtype), np.ones((1, 3), dtype))
    theta = np.column_stack([np.ones(n_mu), np.linspace(-1.0, -0.5, n_mu)])  # the first row is singular
    phi = np.ones((n_mu, 1))
    with pytest.raises(np.linalg.LinAlgError):
        ops.solve(theta, phi, 3)
    # a regular parameter still solves, and so does a sub-model that avoids the singular direction
    c, _ = ops.solve(np.array([[1.0, -0.5]]), phi[:1], 3)
    assert np.allclose(np.asarray(c, dtype=complex), [[1.0, 2.0, 1.0]], rtol=1e-15)
    assert np.allclose(np.asarray(ops.solve(theta, phi, 1)[0], dtype=complex), 1.0, rtol=1e-15)


@pytest.mark.parametrize(
    ("A_N", "f_N", "match"),
    [
        (np.ones((2, 3, 4)), np.ones((1, 3)), r"A_N must have shape \(Q_a, N, N\)"),
        (np.ones((3, 3)), np.ones((1, 3)), r"A_N must have shape \(Q_a, N, N\)"),
        (np.ones((2, 3, 3)), np.ones((1, 4)), r"f_N must have shape \(Q_f, 3\)"),
        (np.ones((2, 3, 3)), np.ones(3), r"f_N must have shape \(Q_f, 3\)"),
    ],
)
def test_operator_shapes_are_checked(A_N, f_N, match):
    with pytest.raises(ShapeError, match=match):
        ReducedOperators(A_N, f_N)

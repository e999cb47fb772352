"""Stability lower bounds: min-theta against dense coercivity constants, and coercivity_constant."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

from certrb import AffineFunctional, AffineOperator, MinTheta, ParameterSpace, Problem, StabilityError
from certrb.offline.stability import coercivity_constant
from certrb.online.stability import MinThetaBound
from certrb.problems import diffusion1d
from conftest import complex_phi, complex_theta, p1_matrices


def _certified(value, exact, rtol=1e-4):
    """A certified lower bound: never above the (dense, accurate to ~1e-13) reference, and close to it."""
    return exact * (1 - rtol) <= value <= exact * (1 + 1e-12)


def _dense_alpha(A, X):
    """min_v Re(v^H A v) / v^H X v via a dense generalized Hermitian eigenproblem."""
    A, X = A.toarray(), X.toarray()
    H = (A + A.conj().T) / 2
    return float(sla.eigh(H, X, eigvals_only=True)[0])


@pytest.fixture(scope="module")
def d60():
    return diffusion1d(60)


def _with_reference(problem, mu_ref, alpha_ref=None):
    return Problem(
        problem.operator,
        problem.rhs,
        problem.inner_product,
        problem.parameter_space,
        stability=MinTheta(mu_ref, alpha_ref=alpha_ref),
        output=problem.output,
    )


def _exact_alphas(problem, mus):
    theta = problem.operator.theta(mus)
    X = problem.inner_product.matrix
    return np.array([_dense_alpha(problem.operator.assemble(t), X) for t in theta])


# --- min-theta ----------------------------------------------------------------------------


def test_min_theta_default_reference_is_lower_bound(d60):
    mus = np.vstack([d60.parameter_space.sample(60, rng=0), d60.parameter_space.grid(3)])
    lb = d60.stability_lower_bound(mus)
    exact = _exact_alphas(d60, mus)
    assert np.all(lb <= exact * (1 + 1e-12))
    # equality at mu_ref = (0, 0): A(0) = K = X
    np.testing.assert_allclose(d60.stability_lower_bound([0.0, 0.0]), 1.0)
    np.testing.assert_allclose(_exact_alphas(d60, np.zeros((1, 2))), 1.0, rtol=1e-10)


@pytest.mark.parametrize("mu_ref", [(10.0, 250.0), (2.0, 400.0), (20.0, 500.0)])
def test_min_theta_generic_reference(d60, mu_ref):
    problem = _with_reference(d60, mu_ref)
    bound = problem.stability
    assert isinstance(bound, MinThetaBound)
    mus = d60.parameter_space.sample(60, rng=1)
    lb = problem.stability_lower_bound(mus)
    exact = _exact_alphas(d60, mus)
    assert np.all(lb > 0)
    assert np.all(lb <= exact * (1 + 1e-10))
    # near-equality at mu_ref: alpha_ref is a certified lower bound of the true coercivity constant there
    ref = np.array([mu_ref])
    exact_ref = _exact_alphas(d60, ref)[0]
    assert bound.certified
    assert exact_ref * (1 - 1e-6) <= bound.alpha_ref <= exact_ref
    np.testing.assert_allclose(problem.stability_lower_bound(ref), exact_ref, rtol=1e-6)
    # the explicit formula alpha_ref * min_q theta_q(mu) / theta_q(mu_ref), up to the terms' certified shifts
    theta = d60.operator.theta(mus)
    theta_ref = d60.operator.theta(ref)[0]
    np.testing.assert_allclose(lb, exact_ref * np.min(theta / theta_ref, axis=1), rtol=1e-6)


def test_min_theta_zero_ratio_rejected(d60):
    # with theta_1(mu_ref) > 0 a parameter with mu_1 = 0 gets the (valid but useless) bound 0
    problem = _with_reference(d60, (10.0, 250.0))
    np.testing.assert_allclose(problem.stability(np.array([[0.0, 100.0]])), [0.0])
    with pytest.raises(StabilityError, match="positive"):
        problem.stability_lower_bound([[0.0, 100.0]])


def test_min_theta_given_alpha_ref(d60):
    problem = _with_reference(d60, (0.0, 0.0), alpha_ref=0.5)
    np.testing.assert_allclose(problem.stability_lower_bound([[3.0, 3.0]]), 0.5)


@pytest.mark.parametrize("alpha_ref", [0.0, -1.0, float("nan")])
def test_min_theta_non_positive_alpha_ref(d60, alpha_ref):
    with pytest.raises(StabilityError, match="not positive"):
        _with_reference(d60, (0.0, 0.0), alpha_ref=alpha_ref)


def test_min_theta_non_coercive_reference():
    K, M, F, _ = p1_matrices(40)
    space = ParameterSpace(["s"], [0.0], [30.0])
    op = AffineOperator([K, M], lambda m: np.column_stack([np.ones(m.shape[0]), -m[:, 0]]))
    # theta_1 < 0 away from s = 0: rejected when bound
    with pytest.raises(StabilityError, match="non-negative"):
        Problem(op, AffineFunctional([F], lambda m: np.ones((m.shape[0], 1))), K, space, stability=MinTheta([25.0]))
    # at s = 0 theta = (1, 0) binds, but online theta_1 < 0 is refused
    p = Problem(op, AffineFunctional([F], lambda m: np.ones((m.shape[0], 1))), K, space, stability=MinTheta([0.0]))
    with pytest.raises(StabilityError, match="non-negative"):
        p.stability_lower_bound([[1.0]])


def test_min_theta_computed_alpha_non_positive():
    K, M, F, _ = p1_matrices(40)
    space = ParameterSpace(["s"], [0.0], [1.0])
    # a single term K - 30 M (indefinite: pi^2 < 30) with coefficient 1: the precondition check refuses it
    op = AffineOperator([K - 30.0 * M], lambda m: np.ones((m.shape[0], 1)))
    with pytest.raises(StabilityError, match="term 0 is not certified"):
        Problem(op, AffineFunctional([F], lambda m: np.ones((m.shape[0], 1))), K, space, stability=MinTheta([0.5]))


def test_min_theta_complex_coefficients():
    K, M, F, x = p1_matrices(30)
    space = ParameterSpace(["mu1", "mu2"], [0.0, 0.0], [10.0, 50.0])
    op = AffineOperator([K, M], complex_theta)
    rhs = AffineFunctional([F, x * F], complex_phi)
    with pytest.raises(StabilityError, match="real operator coefficients"):
        Problem(op, rhs, K, space, stability=MinTheta([1.0, 1.0]))
    # complex dtype with zero imaginary part at the reference binds; complex online values do not
    p = Problem(op, rhs, K, space, stability=MinTheta([1.0, 0.0]))
    np.testing.assert_allclose(p.stability_lower_bound([[2.0, 0.0]]), p.stability.alpha_ref)
    with pytest.raises(StabilityError, match="real operator coefficients"):
        p.stability_lower_bound([[2.0, 3.0]])


def test_min_theta_bound_direct_call():
    bound = MinThetaBound(lambda m: np.column_stack([np.ones(m.shape[0]), m[:, 0]]), np.array([1.0, 2.0]), 3.0)
    np.testing.assert_allclose(bound(np.array([[1.0], [4.0], [2.0]])), [1.5, 3.0, 3.0])


# --- coercivity_constant ------------------------------------------------------------------


@pytest.fixture(scope="module")
def p1_small():
    return p1_matrices(80)


def test_coercivity_constant_dense_path(p1_small):
    K, M, _, _ = p1_small
    for A in (K, K + 50.0 * M, 2.0 * K + sp.diags(np.linspace(0, 1, K.shape[0]))):
        assert _certified(coercivity_constant(A, K), _dense_alpha(A, K))
    assert _certified(coercivity_constant(K, K), 1.0)
    # against M: the smallest Dirichlet eigenvalue ~ pi^2
    assert abs(coercivity_constant(K, M) - np.pi**2) < 0.01


def test_coercivity_constant_non_symmetric_uses_hermitian_part(p1_small):
    K, M, _, _ = p1_small
    n = K.shape[0]
    skew = sp.diags([np.ones(n - 1), -np.ones(n - 1)], [1, -1]) * 5.0  # Re(v^H S v) = 0
    assert _certified(coercivity_constant(K + skew, K), 1.0)
    assert _certified(coercivity_constant(K + 1j * M, K), 1.0)


def test_coercivity_constant_indefinite_dense(p1_small):
    K, M, _, _ = p1_small
    A = K - 3.0 * np.pi**2 * M
    assert _dense_alpha(A, K) < -1.5
    with pytest.raises(StabilityError, match="not coercive"):
        coercivity_constant(A, K)


@pytest.fixture(scope="module")
def p1_large():
    return p1_matrices(401)  # 400 unknowns: the eigsh path


def test_coercivity_constant_eigsh_path(p1_large):
    K, M, _, _ = p1_large
    n = K.shape[0]
    assert n >= 400
    for A in (K + 200.0 * M, K + sp.diags(np.linspace(0.0, 100.0, n))):
        assert _certified(coercivity_constant(A, M), _dense_alpha(A, M))
    assert _certified(coercivity_constant(K, M), _dense_alpha(K, M))


def test_coercivity_constant_eigsh_path_complex(p1_large):
    K, M, _, _ = p1_large
    n = K.shape[0]
    S = sp.diags([np.ones(n - 1), -np.ones(n - 1)], [1, -1])  # real skew: 1j * S is Hermitian
    A = K + 30.0 * M + 1j * (S + K)
    assert _certified(coercivity_constant(A, M), _dense_alpha(A, M))


def test_coercivity_constant_eigsh_path_clustered(p1_large):
    # A = K + 20 M against X = K: generalized eigenvalues 1 + 20 / lambda_j cluster at the bottom
    # (the typical case A(mu) = X + positive terms, e.g. diffusion1d with mu_ref = (0, 20))
    K, M, _, _ = p1_large
    A = K + 20.0 * M
    assert _certified(coercivity_constant(A, K), _dense_alpha(A, K))


def test_coercivity_constant_eigsh_path_indefinite(p1_large):
    # generalized eigenvalues of (K - 3 pi^2 M, K) are ~ 1 - 3 / j^2: -2, 0.25, 0.67, ...
    # the coercivity constant is the smallest (-2), not the one closest to 0 (0.25)
    K, M, _, _ = p1_large
    A = K - 3.0 * np.pi**2 * M
    with pytest.raises(StabilityError, match="not coercive"):
        coercivity_constant(A, K)

"""Problem: truth solves, extended-precision refinement, factorization cache, validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.linalg import spsolve

from certrb import (
    AffineFunctional,
    AffineOperator,
    InnerProduct,
    MinTheta,
    ParameterError,
    ParameterSpace,
    Problem,
    ShapeError,
    StabilityError,
)
from certrb.problems import diffusion1d
from conftest import make_complex_problem, p1_matrices, unit_stability


def _ones(mus):
    return np.ones((mus.shape[0], 1))


def _theta2(mus):
    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0]])


@pytest.fixture(scope="module")
def mats():
    return p1_matrices(30)


@pytest.fixture(scope="module")
def space1():
    return ParameterSpace(["mu"], [0.0], [10.0])


def _make(mats, space1, **kw):
    K, M, F, _ = mats
    args = {
        "operator": AffineOperator([K, M], _theta2),
        "rhs": AffineFunctional([F], _ones),
        "inner_product": K,
        "parameter_space": space1,
        "stability": unit_stability,
    }
    args.update(kw)
    return Problem(**args)


def _ext_residual(problem, mu, u):
    """Componentwise-scaled residual max|f - A u| / max(sum_q |theta_q| |A_q| |u| + |f|), in long double."""
    m = problem.parameter_space.validate(mu)
    theta = problem.operator.theta(m)[0]
    f = problem.rhs.assemble(m)[0]
    ext = np.clongdouble if np.iscomplexobj(u) or np.iscomplexobj(theta) or np.iscomplexobj(f) else np.longdouble
    ue = u.astype(ext)
    r = f.astype(ext)
    scale = np.abs(f).astype(np.longdouble)
    for t, a in zip(theta, problem.operator.terms, strict=True):
        r = r - ext(t) * (a.astype(ext) @ ue)
        scale = scale + abs(t) * (abs(a).astype(np.longdouble) @ np.abs(ue))
    return float(np.max(np.abs(r)) / np.max(scale))


# --- basic properties ---------------------------------------------------------------------


def test_properties(small_problem):
    assert small_problem.size == 79
    assert small_problem.dtype == np.float64
    assert isinstance(small_problem.inner_product, InnerProduct)
    assert small_problem.output is not None


def test_inner_product_instance_accepted(mats, space1):
    ip = InnerProduct(mats[0])
    p = _make(mats, space1, inner_product=ip)
    assert p.inner_product is ip


# --- solve --------------------------------------------------------------------------------


def test_solve_satisfies_equation(small_problem):
    mus = small_problem.parameter_space.sample(5, rng=0)
    U = small_problem.solve(mus)
    assert U.shape == (5, small_problem.size)
    assert U.dtype == np.float64
    theta = small_problem.operator.theta(mus)
    F = small_problem.rhs.assemble(mus)
    for i in range(5):
        A = small_problem.operator.assemble(theta[i])
        assert np.linalg.norm(A @ U[i] - F[i]) <= 1e-12 * np.linalg.norm(F[i])
        assert _ext_residual(small_problem, mus[i], U[i]) < 1e-14


def test_solve_single_parameter_promoted(small_problem):
    U = small_problem.solve([3.0, 100.0])
    assert U.shape == (1, small_problem.size)
    np.testing.assert_allclose(U, small_problem.solve(np.array([[3.0, 100.0]])))


def test_solve_analytic_limit(mats, space1):
    # -u'' = 1 on (0,1) with P1 elements is nodally exact: u = x (1 - x) / 2
    p = _make(mats, space1)
    x = mats[3]
    u = p.solve([0.0])[0]
    np.testing.assert_allclose(u, x * (1 - x) / 2, atol=1e-13)


def test_solve_outside_domain(small_problem):
    with pytest.raises(ParameterError, match="outside"):
        small_problem.solve([[1.0, 1000.0]])


def test_solve_refine_extended(small_problem):
    mus = np.array([[20.0, 500.0], [0.5, 1.0]])
    U0 = small_problem.solve(mus)
    U2 = small_problem.solve(mus, refine=2)
    assert U2.dtype == np.longdouble
    assert U2.shape == U0.shape
    for i in range(2):
        r0 = _ext_residual(small_problem, mus[i], U0[i])
        r2 = _ext_residual(small_problem, mus[i], U2[i])
        assert r2 < 0.1 * r0
        assert r2 < 1e-17
    np.testing.assert_allclose(U2.astype(float), U0, rtol=1e-12)


def test_residual_extended_block(small_problem):
    mu = np.array([[5.0, 50.0]])
    theta = small_problem.operator.theta(mu)[0]
    f = small_problem.rhs.assemble(mu)[0]
    U = np.column_stack([small_problem.solve(mu)[0], np.zeros(small_problem.size)])
    R = small_problem.residual_extended(theta, f, U)
    assert R.shape == U.shape
    assert R.dtype == np.longdouble
    np.testing.assert_allclose(R[:, 1].astype(float), f)  # zero guess: residual is f
    assert np.max(np.abs(R[:, 0])) < 1e-12 * np.max(np.abs(f))


def test_complex_problem_solve(complex_problem):
    mus = complex_problem.parameter_space.sample(4, rng=1)
    U = complex_problem.solve(mus)
    assert U.dtype == np.complex128
    theta = complex_problem.operator.theta(mus)
    F = complex_problem.rhs.assemble(mus)
    for i in range(4):
        A = complex_problem.operator.assemble(theta[i])
        assert np.linalg.norm(A @ U[i] - F[i]) <= 1e-12 * np.linalg.norm(F[i])
        np.testing.assert_allclose(U[i], np.linalg.solve(A.toarray(), F[i]), rtol=1e-10, atol=1e-14)
        assert np.max(np.abs(U[i].imag)) > 1e-6  # genuinely complex
    U2 = complex_problem.solve(mus, refine=1)
    assert U2.dtype == np.clongdouble
    for i in range(4):
        assert _ext_residual(complex_problem, mus[i], U2[i]) <= _ext_residual(complex_problem, mus[i], U[i])


def test_complex_rhs_coefficients_with_real_operator(mats, space1):
    # real operator, real theta, complex phi: the solution must be complex, not the real part
    K, M, F, _ = mats
    p = _make(mats, space1, rhs=AffineFunctional([F], lambda m: 1.0 + 1j * m[:, :1]))
    U = p.solve([2.0])
    u_real = p.solve([0.0])[0]  # phi = 1
    assert np.iscomplexobj(U)
    np.testing.assert_allclose(U[0], (1 + 2j) * np.linalg.solve((K + 2.0 * M).toarray(), F), rtol=1e-10)
    np.testing.assert_allclose(u_real, np.linalg.solve(K.toarray(), F), rtol=1e-10)


# --- factorization cache ------------------------------------------------------------------


@pytest.fixture
def counting_splu(monkeypatch):
    """Record every sparse LU factorization: (factorized matrix, permc_spec), in call order."""
    calls = []
    original = spla.splu

    def wrapper(A, *args, **kwargs):
        calls.append((sp.csc_matrix(A, copy=True), kwargs.get("permc_spec")))
        return original(A, *args, **kwargs)

    monkeypatch.setattr(spla, "splu", wrapper)
    return calls


@pytest.fixture
def fresh_problem():
    return diffusion1d(40)


def test_cache_reuses_factorization(fresh_problem, counting_splu):
    mu = np.array([[2.0, 30.0]])
    u1 = fresh_problem.solve(mu)
    assert len(counting_splu) == 1
    u2 = fresh_problem.solve(mu)
    assert len(counting_splu) == 1
    np.testing.assert_array_equal(u1, u2)
    fresh_problem.solve(mu, refine=1)
    assert len(counting_splu) == 1
    fresh_problem.solve([[2.0, 31.0]])
    assert len(counting_splu) == 2


def test_cache_repeated_in_batch(fresh_problem, counting_splu):
    fresh_problem.solve([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0], [1.0, 1.0]])
    assert len(counting_splu) == 2


def test_cache_evicts_least_recently_used(fresh_problem, counting_splu):
    mus = np.column_stack([np.arange(9.0), np.zeros(9)])
    fresh_problem.solve(mus[:8])
    assert len(counting_splu) == 8
    fresh_problem.solve(mus[:1])  # hit; mus[0] becomes most recent
    assert len(counting_splu) == 8
    fresh_problem.solve(mus[8:9])  # evicts mus[1], the least recently used
    assert len(counting_splu) == 9
    fresh_problem.solve(mus[:1])
    assert len(counting_splu) == 9
    fresh_problem.solve(mus[1:2])
    assert len(counting_splu) == 10


# --- validation ---------------------------------------------------------------------------


def test_rhs_size_mismatch(mats, space1):
    with pytest.raises(ShapeError, match="rhs has size 30"):
        _make(mats, space1, rhs=AffineFunctional([np.ones(30)], _ones))


def test_inner_product_size_mismatch(mats, space1):
    with pytest.raises(ShapeError, match="inner_product has size"):
        _make(mats, space1, inner_product=sp.eye(31))


def test_output_size_mismatch(mats, space1):
    with pytest.raises(ShapeError, match="output"):
        _make(mats, space1, output=AffineFunctional([np.ones(5)], _ones))


def test_output_matching_accepted(mats, space1):
    p = _make(mats, space1, output=AffineFunctional([mats[2]], _ones))
    assert p.output.size == p.size


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("operator", "A"),
        ("operator", sp.eye(29)),
        ("rhs", np.ones(29)),
        ("parameter_space", ([0.0], [1.0])),
        ("stability", None),
        ("stability", 1.0),
        ("output", np.ones(29)),
    ],
)
def test_wrong_types(mats, space1, key, value):
    with pytest.raises(TypeError):
        _make(mats, space1, **{key: value})


def test_inner_product_not_spd(mats, space1):
    with pytest.raises(ValueError, match="positive definite"):
        _make(mats, space1, inner_product=-mats[0])


def test_min_theta_reference_outside_domain(mats, space1):
    with pytest.raises(ParameterError, match=r"MinTheta\.mu_ref"):
        _make(mats, space1, stability=MinTheta([11.0]))


# --- stability_lower_bound ----------------------------------------------------------------


def test_stability_lower_bound_ok(mats, space1):
    p = _make(mats, space1, stability=lambda m: 0.5 + m[:, 0])
    np.testing.assert_allclose(p.stability_lower_bound([[0.0], [2.0]]), [0.5, 2.5])
    assert p.stability_lower_bound([1.0]).shape == (1,)


@pytest.mark.parametrize(
    ("func", "match"),
    [
        (lambda m: np.ones((m.shape[0], 1)), "shape"),
        (lambda m: np.ones(m.shape[0] + 1), "shape"),
        (lambda m: 1.0, "shape"),
        (lambda m: -np.ones(m.shape[0]), "positive"),
        (lambda m: np.zeros(m.shape[0]), "positive"),
        (lambda m: np.full(m.shape[0], np.nan), "finite"),
        (lambda m: np.full(m.shape[0], np.inf), "finite"),
    ],
)
def test_bad_stability_output(mats, space1, func, match):
    p = _make(mats, space1, stability=func)
    with pytest.raises(StabilityError, match=match):
        p.stability_lower_bound([[1.0], [2.0]])


def test_stability_lower_bound_validates_parameters(small_problem):
    with pytest.raises(ParameterError):
        small_problem.stability_lower_bound([[-1.0, 0.0]])


def test_min_theta_is_bound_at_construction(small_problem):
    # diffusion1d: mu_ref = 0 where A = X, alpha = 1, and theta_0 = 1 is the only active term
    mus = small_problem.parameter_space.sample(10, rng=0)
    np.testing.assert_allclose(small_problem.stability_lower_bound(mus), 1.0)


def test_complex_problem_from_conftest_is_consistent():
    p = make_complex_problem(20)
    assert p.size == 19
    np.testing.assert_allclose(p.stability_lower_bound([[1.0, 1.0]]), [1.0])


# --- fill-reducing ordering shared with X ---------------------------------------------------


def _same_matrix(a, b) -> bool:
    return a.shape == b.shape and abs(sp.csc_matrix(a) - sp.csc_matrix(b)).max() == 0


def test_ordering_of_x_reused_when_patterns_fit(mats, space1, counting_splu):
    problem = _make(mats, space1)  # K and M are tridiagonal, like X = K
    counting_splu.clear()  # the factorization of X
    mu = np.array([[3.0]])
    u = problem.solve(mu)[0]
    A = problem.operator.assemble(problem.operator.theta(mu)[0])
    p = problem.inner_product.ordering
    # A(mu) is factorized in X's fill-reducing ordering, which is not recomputed
    (factorized, permc_spec), = counting_splu
    assert permc_spec == "NATURAL"
    assert _same_matrix(factorized, sp.csr_matrix(A)[p][:, p])
    assert not np.array_equal(p, np.arange(problem.size))  # a genuine reordering
    reference = spsolve(sp.csc_matrix(A), problem.rhs.assemble(mu)[0])
    np.testing.assert_allclose(u, reference, rtol=1e-12)


def test_ordering_falls_back_when_x_pattern_is_smaller(mats, space1, counting_splu):
    K, M, F, _ = mats
    wide = sp.diags([np.full(K.shape[0] - 2, 1e-3)] * 2, [-2, 2], shape=K.shape)  # outside X's pattern
    problem = _make(mats, space1, operator=AffineOperator([K + wide, M], _theta2))
    counting_splu.clear()  # the factorization of X
    mu = np.array([[3.0]])
    u = problem.solve(mu)[0]
    A = problem.operator.assemble(problem.operator.theta(mu)[0])
    # A(mu) is factorized as it is, with its own fill-reducing ordering
    (factorized, permc_spec), = counting_splu
    assert permc_spec != "NATURAL"
    assert _same_matrix(factorized, A)
    np.testing.assert_allclose(A @ u, F, rtol=1e-10, atol=1e-14)

"""A non-affine problem reduced through the matrix EIM, with the interpolation error in the bound."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import certrb
from certrb.errors import ShapeError
from certrb.offline.nonaffine import (
    eim_functional,
    eim_operator,
    interpolation_bound,
    interpolation_indicator,
    magic_entries,
    rhs_indicator,
)
from certrb.online.nonaffine import InterpolatedCoefficients

N_EL = 60


def _mesh():
    x = np.linspace(0.0, 1.0, N_EL + 1)
    return x, np.diff(x)


def reaction_matrix(mu):
    """Lumped P1 mass matrix weighted by g(x; mu) = 50 / (1 + mu x)^2 on the interior nodes."""
    x, h = _mesh()
    weights = 0.5 * (np.concatenate([h, [0.0]]) + np.concatenate([[0.0], h]))
    g = 50.0 / (1.0 + float(np.ravel(mu)[0]) * x) ** 2
    return sp.diags((weights * g)[1:-1]).tocsr()


def reaction_entries(mu, rows, cols):
    return np.asarray(reaction_matrix(mu)[rows, cols]).ravel()


def stiffness():
    _, h = _mesh()
    main = 1 / h[:-1] + 1 / h[1:]
    off = -1 / h[1:-1]
    return sp.diags([off, main, off], [-1, 0, 1]).tocsr()


def unit_stability(mus):
    return np.ones(mus.shape[0])


def one(mus):
    return np.ones((mus.shape[0], 1))


@pytest.fixture(scope="module")
def setup():
    K = stiffness()
    space = certrb.ParameterSpace(["mu"], [0.0], [10.0])
    train = space.sample(200, rng=0)
    eim = certrb.matrix_eim(reaction_entries, reaction_matrix, train, tol=1e-13)
    n_h = K.shape[0]
    f = np.full(n_h, 1.0 / N_EL)

    def truth(mus):
        return np.array([spla.spsolve(sp.csc_matrix(K + reaction_matrix(mu)), f) for mu in mus])

    return K, space, eim, f, truth


def reduced(setup, terms):
    K, space, eim, f, _ = setup
    op = eim_operator(eim, terms)
    operator = certrb.AffineOperator([K, *op.terms], _Shifted(op.coefficients))
    problem = certrb.Problem(operator, certrb.AffineFunctional([f], one), K, space, stability=unit_stability)
    res = certrb.weak_greedy(certrb.OfflineBuilder(problem), space.sample(100, rng=1), tol=1e-11, max_basis=15)
    indicator = interpolation_indicator(problem, res.model.basis, eim, terms)
    return problem, dataclasses.replace(res.model, interpolation=indicator)


@dataclasses.dataclass(frozen=True)
class _Shifted:
    """Coefficients (1, beta(mu)): the stiffness term first, then the interpolated reaction."""

    beta: object

    def __call__(self, mus):
        return np.column_stack([np.ones(mus.shape[0]), self.beta(mus)])


def test_eim_converges(setup):
    eim = setup[2]
    assert eim.size >= 4
    assert eim.errors[-1] < 1e-12 * eim.errors[0] or eim.errors[-1] < 1e-12


@pytest.mark.parametrize("terms", [2, 4, 6, 8, 10])
def test_bound_with_indicator_holds_against_the_non_affine_truth(setup, terms):
    *_, truth = setup
    problem, model = reduced(setup, terms)
    mus = problem.parameter_space.sample(40, rng=2)
    U = truth(mus)
    res = model.evaluate(mus)
    err = problem.inner_product.norms((U - model.reconstruct(res.coefficients)).T)
    assert res.interpolation_error is not None
    assert np.all(res.interpolation_error > 0)
    assert np.all(res.bound >= err)


def test_indicator_decreases_with_terms(setup):
    deltas = []
    for terms in (2, 4, 6):
        problem, model = reduced(setup, terms)
        deltas.append(np.max(model.evaluate(problem.parameter_space.sample(20, rng=3)).interpolation_error))
    assert deltas[0] > deltas[1] > deltas[2]


def test_classical_next_term_indicator_is_not_safe(setup):
    """With M' = M + 1 (the classical EIM indicator) the bound can fall below the error."""
    *_, truth = setup
    problem, model = reduced(setup, 4)
    eim = setup[2]
    ind = interpolation_indicator(problem, model.basis, eim, 4, reference_terms=5)
    plain = dataclasses.replace(model, interpolation=ind)
    mus = problem.parameter_space.sample(40, rng=2)
    res = plain.evaluate(mus)
    err = problem.inner_product.norms((truth(mus) - plain.reconstruct(res.coefficients)).T)
    assert np.min(res.bound / err) < 1.0


def test_indicator_needs_one_more_term(setup):
    eim = setup[2]
    problem, model = reduced(setup, 2)
    with pytest.raises(ShapeError, match="at least"):
        interpolation_indicator(problem, model.basis, eim, eim.size)


def test_online_coefficients_keep_no_snapshot_and_match_the_eim_bit_for_bit(setup):
    eim = setup[2]
    mus = setup[1].sample(7, rng=4)
    coefficients = eim_operator(eim).coefficients
    assert isinstance(coefficients, InterpolatedCoefficients)
    magic = coefficients.magic  # M x M arrays and the M magic entries, no (n_h, n_h) snapshot
    assert max(max(a.shape) for a in (magic.entries, magic.matrix, magic.transform)) == eim.size < N_EL - 1
    np.testing.assert_array_equal(coefficients(mus), eim.coefficients(mus))
    np.testing.assert_array_equal(coefficients.magic.values(mus), eim.magic_values(mus))


def test_truncated_coefficients_interpolate_at_the_magic_parameters(setup):
    """beta_m(mu_l) = delta_ml: the first M terms reproduce A(mu_l) exactly at their own parameters."""
    eim = setup[2]
    beta = InterpolatedCoefficients(magic_entries(eim), 4)(eim.parameters[:4])
    np.testing.assert_allclose(beta, np.eye(4), atol=1e-10)


def _vector_setup(setup):
    _, space, _, f, _ = setup
    x = np.linspace(0.0, 1.0, N_EL + 1)[1:-1]

    def load(mu):
        return f / (1.0 + float(np.ravel(mu)[0]) * x)

    eim = certrb.vector_eim(lambda mu, rows: load(mu)[rows], load, space.sample(200, rng=5), tol=1e-13)
    return eim, load


def test_rhs_indicator_is_the_dual_norm_of_the_interpolant_difference(setup):
    K, space = setup[0], setup[1]
    eim, _ = _vector_setup(setup)
    problem = certrb.Problem(certrb.AffineOperator([K], one), eim_functional(eim, 3), K, space,
                             stability=unit_stability)
    indicator = rhs_indicator(problem, eim, 3)
    mus = space.sample(5, rng=6)
    diff = eim_functional(eim).assemble(mus) - eim_functional(eim, 3).assemble(mus)  # (n_mu, n_h)
    np.testing.assert_allclose(indicator(mus), problem.inner_product.dual_norms(diff.T), rtol=1e-8)


def test_interpolation_bound_adds_the_operator_and_rhs_indicators(setup):
    K, space, eim = setup[0], setup[1], setup[2]
    rhs_eim, _ = _vector_setup(setup)
    op = eim_operator(eim, 4)
    operator = certrb.AffineOperator([K, *op.terms], _Shifted(op.coefficients))
    problem = certrb.Problem(operator, eim_functional(rhs_eim, 3), K, space, stability=unit_stability)
    basis = certrb.weak_greedy(certrb.OfflineBuilder(problem), space.sample(50, rng=7), tol=1e-8,
                               max_basis=6).model.basis
    bound = interpolation_bound(problem, basis, eim, 4, rhs_eim, 3)
    mus = space.sample(5, rng=8)
    c = np.random.default_rng(9).standard_normal((5, basis.shape[1]))
    expected = interpolation_indicator(problem, basis, eim, 4)(mus, c) + rhs_indicator(problem, rhs_eim, 3)(mus)
    np.testing.assert_array_equal(bound(mus, c), expected)


def test_scalar_trained_eim_is_refused(setup):
    eim = certrb.matrix_eim(reaction_entries, reaction_matrix, np.linspace(0.0, 10.0, 20), tol=1e-8)
    with pytest.raises(ShapeError, match="n_train, P"):
        eim_operator(eim)


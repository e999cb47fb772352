"""A non-affine problem reduced through the matrix EIM, with the interpolation error in the bound."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import certrb
from certrb.errors import ShapeError
from certrb.nonaffine import eim_operator, interpolation_indicator

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
    res = certrb.weak_greedy(problem, space.sample(100, rng=1), tol=1e-11, max_basis=15)
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

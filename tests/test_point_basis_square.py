"""The square 2012 point-basis formula (``point-basis-square``): singular T, accuracy, data checks."""

import numpy as np
import pytest

import certrb
from certrb.errors import EstimatorError
from certrb.online.estimators.point_basis_square import PointBasisSquareEstimator
from certrb.problems import diffusion1d


@pytest.fixture(scope="module")
def problem():
    return diffusion1d(60)


@pytest.fixture(scope="module")
def model(problem):
    """Both point-basis variants on a 5-vector greedy basis (K = 16, d = 136)."""
    train = problem.parameter_space.sample(80, rng=1)
    basis = certrb.weak_greedy(certrb.OfflineBuilder(problem, rng=0), train, tol=0.0, max_basis=5).model.basis
    return certrb.reduce(certrb.OfflineBuilder(problem, ("point-basis-square", "point-basis"), rng=2), basis)


def test_square_system_is_singular_and_conditioning_reported(model):
    est = model.estimators["point-basis-square"]
    k = est.n_components
    assert k == 1 + 3 * model.n_basis
    assert est.keep.size == est.eps2.size == est.points.shape[0] == k * (k + 1) // 2  # no product vanishes
    # the products obey exact identities: T has far fewer independent columns than d
    assert est.rank < est.keep.size // 2
    assert est.rank <= model.estimators["point-basis"].eps2.size + 2
    assert est.condition > 1e12


def test_square_formula_matches_truth_above_the_floor(problem, model):
    mus = problem.parameter_space.sample(30, rng=7)
    ref = certrb.truth_residual_norm(problem, model, mus, precision="extended")
    f_norm = problem.inner_product.dual_norms(problem.rhs.assemble(mus).T)
    assert np.min(ref / f_norm) > 1e-6
    res = model.evaluate(mus, estimator="point-basis-square")
    assert np.max(np.abs(res.residual_norm - ref) / ref) < 1e-6
    assert not res.rigorous
    assert np.isnan(res.roundoff).all()


def test_submodels_are_refused(problem, model):
    with pytest.raises(EstimatorError, match="built for K"):
        model.evaluate(problem.parameter_space.sample(2, rng=0), estimator="point-basis-square", n=2)


def test_size_limit(problem, model):
    options = {"point-basis-square": {"max_points": 10}}
    builder = certrb.OfflineBuilder(problem, ("point-basis-square",), options=options)
    with pytest.raises(EstimatorError, match="max_points"):
        certrb.reduce(builder, model.basis)


def test_identically_zero_products_are_not_unknowns(complex_problem):
    # phi = (1, i mu2): the real part of conj(phi_1) phi_2 vanishes for every mu
    train = complex_problem.parameter_space.sample(40, rng=1)
    basis = certrb.weak_greedy(certrb.OfflineBuilder(complex_problem, rng=0), train, tol=0.0, max_basis=2).model.basis
    reduced = certrb.reduce(certrb.OfflineBuilder(complex_problem, ("point-basis-square",), rng=3), basis)
    est = reduced.estimators["point-basis-square"]
    k = est.n_components
    assert est.complex_
    assert est.keep.size < k * k
    assert k not in est.keep  # column K of the products is 2 Re(conj(x_0) x_1)
    mus = complex_problem.parameter_space.sample(10, rng=4)
    ref = certrb.truth_residual_norm(complex_problem, reduced, mus, precision="extended")
    assert np.max(np.abs(reduced.evaluate(mus, estimator="point-basis-square").residual_norm - ref) / ref) < 1e-6


def test_arrays_round_trip(problem, model):
    est = model.estimators["point-basis-square"]
    back = PointBasisSquareEstimator.from_arrays(est.to_arrays())
    x = model.operators.solve(problem.operator.theta(problem.parameter_space.sample(5, rng=1)),
                              problem.rhs.theta(problem.parameter_space.sample(5, rng=1)), model.n_basis)[1]
    assert np.array_equal(back.residual_norm(x, model.n_basis), est.residual_norm(x, model.n_basis))
    assert (back.condition, back.rank, back.name) == (est.condition, est.rank, "point-basis-square")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda a: a.pop("condition"), "missing array 'condition'"),
    (lambda a: a.update(condition=np.asarray(0.5)), "condition"),
    (lambda a: a.update(keep=a["keep"][::-1].copy()), "increasing"),
    (lambda a: a.update(piv=a["piv"] + a["piv"].size), "piv"),
    (lambda a: a.update(lu=np.where(np.eye(a["lu"].shape[0], dtype=bool), 0.0, a["lu"])), "zero pivot"),
    (lambda a: a.update(rank=np.asarray(10**6)), "rank"),
    (lambda a: a.update(eps2=-a["eps2"]), "negative"),
])
def test_bad_arrays_are_refused(model, edit, message):
    arrays = dict(model.estimators["point-basis-square"].to_arrays())
    edit(arrays)
    with pytest.raises(ValueError, match=message):
        PointBasisSquareEstimator.from_arrays(arrays)

"""weak_greedy: convergence, stopping reasons, history, any driving estimator."""

import numpy as np
import pytest

import certrb
from certrb.errors import EstimatorError, ParameterError, ShapeError


def test_greedy_converges_and_records_history(small_problem):
    train = small_problem.parameter_space.sample(200, rng=0)
    res = certrb.weak_greedy(small_problem, train, tol=1e-6, max_basis=30)
    assert res.reason == "tolerance"
    assert res.history[-1].max_bound <= 1e-6
    assert [s.n for s in res.history] == list(range(len(res.history)))
    assert res.model.n_basis == res.history[-1].n
    bounds = res.max_bounds[1:]
    assert bounds[-1] < 1e-4 * bounds[0]
    assert all(s.seconds >= 0 and s.mu.shape == (2,) for s in res.history)
    # the greedy's bound at the final step is that of the returned model
    ev = res.model.evaluate(train)
    assert np.isclose(np.max(ev.relative_bound), res.history[-1].max_bound, rtol=1e-8)


def test_greedy_stops_at_max_basis(small_problem):
    train = small_problem.parameter_space.sample(50, rng=1)
    res = certrb.weak_greedy(small_problem, train, tol=0.0, max_basis=3, relative=False)
    assert res.reason == "max_basis"
    assert res.model.n_basis == 3


@pytest.mark.parametrize("name", certrb.ESTIMATOR_NAMES)
def test_any_estimator_drives_the_greedy(small_problem, name):
    train = small_problem.parameter_space.sample(60, rng=2)
    res = certrb.weak_greedy(small_problem, train, tol=1e-4, max_basis=6, estimator=name, rng=0)
    assert res.model.default_estimator == name
    assert res.history[-1].max_bound < res.history[1].max_bound


def test_greedy_stops_when_snapshots_are_in_span(small_problem):
    train = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]])
    res = certrb.weak_greedy(small_problem, train, tol=0.0, max_basis=10)
    assert res.reason in ("in_span", "tolerance")
    assert res.model.n_basis <= 2


def test_greedy_input_checks(small_problem):
    train = small_problem.parameter_space.sample(5, rng=3)
    with pytest.raises(EstimatorError):
        certrb.weak_greedy(small_problem, train, tol=1e-3, max_basis=3, estimator="nope")
    with pytest.raises(ShapeError):
        certrb.weak_greedy(small_problem, train, tol=1e-3, max_basis=0)
    with pytest.raises(ValueError, match="tol"):
        certrb.weak_greedy(small_problem, train, tol=float("nan"), max_basis=3)
    with pytest.raises(ParameterError, match="train"):
        certrb.weak_greedy(small_problem, train * 100, tol=1e-3, max_basis=3)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-17, reason="numpy.longdouble is not wider than float64 here")
def test_extended_greedy_goes_below_the_double_floor():
    from certrb.problems import diffusion1d
    from certrb.truth import true_error

    problem = diffusion1d(1000)
    train = problem.parameter_space.sample(100, rng=0)
    test = problem.parameter_space.sample(20, rng=1)

    def floor(model):  # min over N of the max relative true error, extended-precision reference
        errors = [true_error(problem, model, test, n=n, refine=4) for n in range(1, model.n_basis + 1)]
        return min(float(np.max(np.asarray(e / u, dtype=float))) for e, u in errors)

    double = certrb.weak_greedy(problem, train, tol=0.0, max_basis=40)
    ext = certrb.weak_greedy(problem, train, tol=0.0, max_basis=40, precision="extended")
    assert ext.model.A_N.dtype == ext.model.basis.dtype == np.longdouble
    assert ext.max_bounds.dtype == np.float64
    assert ext.max_bounds[-1] < 1e-13
    assert floor(ext.model) < floor(double.model) / 30


def test_extended_greedy_input_checks(small_problem):
    train = small_problem.parameter_space.sample(20, rng=2)
    for kwargs in ({"estimator": "eim"}, {"estimators": ("orthonormal", "point-basis")}):
        with pytest.raises(EstimatorError, match="precision='extended'"):
            certrb.weak_greedy(small_problem, train, tol=0.0, max_basis=3, precision="extended", **kwargs)
    with pytest.raises(ValueError, match="precision must be one of"):
        certrb.weak_greedy(small_problem, train, tol=0.0, max_basis=3, precision="quad")
    with pytest.raises(ValueError, match="snapshot_refine"):
        certrb.weak_greedy(small_problem, train, tol=0.0, max_basis=3, snapshot_refine=-1)

"""weak_greedy: convergence, stopping reasons, history, any driving estimator, the deprecated call forms."""

import numpy as np
import pytest

import certrb
from certrb.errors import EstimatorError, ParameterError, ShapeError


def test_greedy_converges_and_records_history(small_problem):
    train = small_problem.parameter_space.sample(200, rng=0)
    res = certrb.weak_greedy(certrb.OfflineBuilder(small_problem), train, tol=1e-6, max_basis=30)
    assert res.reason == "tolerance"
    assert res.history[-1].max_bound <= 1e-6
    assert [s.n for s in res.history] == list(range(len(res.history)))
    assert res.model.n_basis == res.history[-1].n == res.builder.n_basis
    bounds = res.max_bounds[1:]
    assert bounds[-1] < 1e-4 * bounds[0]
    assert all(s.seconds >= 0 and s.mu.shape == (2,) for s in res.history)
    # the greedy's bound at the final step is that of the returned model
    ev = res.model.evaluate(train)
    assert np.isclose(np.max(ev.relative_bound), res.history[-1].max_bound, rtol=1e-8)


def test_greedy_stops_at_max_basis(small_problem):
    train = small_problem.parameter_space.sample(50, rng=1)
    res = certrb.weak_greedy(certrb.OfflineBuilder(small_problem), train, tol=0.0, max_basis=3, relative=False)
    assert res.reason == "max_basis"
    assert res.model.n_basis == 3


@pytest.mark.parametrize("name", certrb.ESTIMATOR_NAMES)
def test_any_estimator_drives_the_greedy(small_problem, name):
    train = small_problem.parameter_space.sample(60, rng=2)
    res = certrb.weak_greedy(certrb.OfflineBuilder(small_problem, (name,), rng=0), train, tol=1e-4, max_basis=6)
    assert res.model.default_estimator == name
    assert res.history[-1].max_bound < res.history[1].max_bound


def test_greedy_stops_when_snapshots_are_in_span(small_problem):
    train = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]])
    res = certrb.weak_greedy(certrb.OfflineBuilder(small_problem), train, tol=0.0, max_basis=10)
    assert res.reason in ("in_span", "tolerance")
    assert res.model.n_basis <= 2


def test_greedy_input_checks(small_problem):
    train = small_problem.parameter_space.sample(5, rng=3)
    builder = certrb.OfflineBuilder(small_problem)
    with pytest.raises(EstimatorError):
        certrb.OfflineBuilder(small_problem, ("nope",))
    with pytest.raises(ShapeError):
        certrb.weak_greedy(builder, train, tol=1e-3, max_basis=0)
    with pytest.raises(ValueError, match="tol"):
        certrb.weak_greedy(builder, train, tol=float("nan"), max_basis=3)
    with pytest.raises(ParameterError, match="train"):
        certrb.weak_greedy(builder, train * 100, tol=1e-3, max_basis=3)
    with pytest.raises(TypeError, match="OfflineBuilder or a Problem"):
        certrb.weak_greedy(small_problem.operator, train, tol=1e-3, max_basis=3)
    assert builder.n_basis == 0  # nothing was added by the rejected calls


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-17, reason="numpy.longdouble is not wider than float64 here")
def test_extended_greedy_goes_below_the_double_floor():
    from certrb.problems import diffusion1d

    problem = diffusion1d(1000)
    train = problem.parameter_space.sample(100, rng=0)
    test = problem.parameter_space.sample(20, rng=1)

    def floor(model):  # min over N of the max relative true error, extended-precision reference
        errors = [certrb.true_error(problem, model, test, n=n, refine=4) for n in range(1, model.n_basis + 1)]
        return min(float(np.max(np.asarray(e / u, dtype=float))) for e, u in errors)

    double = certrb.weak_greedy(certrb.OfflineBuilder(problem), train, tol=0.0, max_basis=40)
    ext = certrb.weak_greedy(certrb.OfflineBuilder(problem, precision="extended"), train, tol=0.0, max_basis=40)
    assert ext.model.A_N.dtype == ext.model.basis.dtype == np.longdouble
    assert ext.max_bounds.dtype == np.float64
    assert ext.max_bounds[-1] < 1e-13
    assert floor(ext.model) < floor(double.model) / 30


def test_extended_builder_input_checks(small_problem):
    for estimators in (("eim",), ("orthonormal", "point-basis")):
        with pytest.raises(EstimatorError, match="precision='extended'"):
            certrb.OfflineBuilder(small_problem, estimators, precision="extended")
    with pytest.raises(ValueError, match="precision must be one of"):
        certrb.OfflineBuilder(small_problem, precision="quad")
    with pytest.raises(ValueError, match="snapshot_refine"):
        certrb.OfflineBuilder(small_problem, snapshot_refine=-1)


# --- deprecated call forms: builder options passed to weak_greedy / reduce with a Problem ---------


def _same_model(old, new):
    np.testing.assert_array_equal(old.A_N, new.A_N)
    np.testing.assert_array_equal(old.f_N, new.f_N)
    assert set(old.estimators) == set(new.estimators)
    assert old.default_estimator == new.default_estimator
    for name in new.estimators:
        a, b = old.estimators[name].to_arrays(), new.estimators[name].to_arrays()
        assert a.keys() == b.keys()
        for key in b:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")


def test_deprecated_greedy_options_build_the_same_model(small_problem):
    train = small_problem.parameter_space.sample(40, rng=4)
    with pytest.warns(DeprecationWarning, match="OfflineBuilder") as record:
        old = certrb.weak_greedy(small_problem, train, tol=1e-6, max_basis=4, estimator="expanded",
                                 estimators=("orthonormal",))
    assert [w.filename for w in record] == [__file__]  # one warning, pointing at the caller
    builder = certrb.OfflineBuilder(small_problem, ("expanded", "orthonormal"), default="expanded")
    new = certrb.weak_greedy(builder, train, tol=1e-6, max_basis=4)
    # the driver is prepended to the final estimators and is the model's default
    assert set(old.model.estimators) == {"expanded", "orthonormal"}
    assert old.model.default_estimator == "expanded"
    _same_model(old.model, new.model)
    np.testing.assert_array_equal(old.max_bounds, new.max_bounds)
    assert old.reason == new.reason


def test_deprecated_reduce_options_build_the_same_model(small_problem):
    V = small_problem.solve(small_problem.parameter_space.sample(3, rng=5)).T
    with pytest.warns(DeprecationWarning, match="OfflineBuilder") as record:
        old = certrb.reduce(small_problem, V, ("orthonormal",), certify=False)
    assert [w.filename for w in record] == [__file__]
    new = certrb.reduce(certrb.OfflineBuilder(small_problem, ("orthonormal",), certify=False), V)
    assert set(old.estimators) == {"orthonormal"}
    _same_model(old, new)
    mus = small_problem.parameter_space.sample(5, rng=6)
    a, b = old.evaluate(mus), new.evaluate(mus)
    np.testing.assert_array_equal(a.bound, b.bound)
    assert np.all(np.isnan(a.roundoff))  # certify=False reached the builder: no certificate


def test_a_problem_alone_is_not_deprecated(small_problem):
    """Without builder options a Problem gets a default builder, silently (warnings are errors here)."""
    V = small_problem.solve(small_problem.parameter_space.sample(3, rng=8)).T
    _same_model(certrb.reduce(small_problem, V), certrb.reduce(certrb.OfflineBuilder(small_problem), V))


def test_builder_options_with_a_builder_are_refused(small_problem):
    builder = certrb.OfflineBuilder(small_problem)
    train = small_problem.parameter_space.sample(5, rng=7)
    V = small_problem.solve(train[:2]).T
    with pytest.raises(TypeError, match="belong to the OfflineBuilder"):
        certrb.weak_greedy(builder, train, tol=0.0, max_basis=2, estimator="expanded")
    with pytest.raises(TypeError, match="belong to the OfflineBuilder"):
        certrb.reduce(builder, V, ("orthonormal",))
    with pytest.raises(TypeError, match="belong to the OfflineBuilder"):
        certrb.reduce(builder, V, certify=False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        certrb.reduce(small_problem, V, tolerance=1.0)
    assert builder.n_basis == 0


# --- the stagnation stop --------------------------------------------------------------------------


def test_stagnation_stops_at_the_round_off_floor_and_keeps_the_earlier_basis(small_problem):
    """Below the stall level a window that gains less than the factor stops the greedy and is dropped."""
    train = small_problem.parameter_space.sample(100, rng=0)
    factor, steps = 1e3, 2  # demanding, so that the 1D greedy (which ends in the span) stalls first

    def run(stagnation):
        return certrb.weak_greedy(certrb.OfflineBuilder(small_problem, certify=False), train, tol=0.0,
                                  max_basis=40, stagnation=stagnation)

    res = run((factor, steps))
    assert res.reason == "stagnation"
    assert res.stop.startswith("bound stagnated: ")
    assert res.history[-1].stop == res.stop
    assert all(s.stop == "" for s in res.history[:-1])
    bounds = res.max_bounds
    kept = res.history[-1].n - steps
    assert bounds[-steps:].min() > bounds[kept] / factor  # the window gained less than the factor
    assert bounds[kept] <= certrb.offline.greedy.STALL_LEVEL * np.finfo(float).eps * bounds[1]
    assert res.model.n_basis == res.builder.n_basis == kept
    assert f"keeps N = {kept}" in res.stop
    # the kept model is the one the greedy swept at that size
    assert np.isclose(np.max(res.model.evaluate(train).relative_bound), bounds[kept], rtol=1e-6)
    off = run(None)
    assert off.reason in ("in_span", "max_basis")
    assert off.model.n_basis >= res.history[-1].n
    np.testing.assert_array_equal(off.max_bounds[:len(bounds)], bounds)
    np.testing.assert_array_equal(res.model.basis, off.model.basis[:, :kept])
    np.testing.assert_allclose(res.model.A_N, off.model.A_N[:, :kept, :kept], rtol=0, atol=1e-13)


def test_default_stagnation_leaves_the_classical_floor_to_the_span(small_problem):
    """E1 stalls at sqrt(eps), above the stall level: the default ends as without the test."""
    train = small_problem.parameter_space.sample(100, rng=0)
    on, off = (certrb.weak_greedy(certrb.OfflineBuilder(small_problem, "expanded", certify=False), train, tol=0.0,
                                  max_basis=40, **kw) for kw in ({}, {"stagnation": None}))
    assert on.reason == off.reason != "stagnation"
    np.testing.assert_array_equal(on.max_bounds, off.max_bounds)


def test_stagnation_waits_below_the_stall_level(small_problem):
    """A plateau while the bound is still large (pre-asymptotic) never stops the greedy."""
    train = small_problem.parameter_space.sample(60, rng=1)
    res = certrb.weak_greedy(certrb.OfflineBuilder(small_problem, certify=False), train, tol=1e-6, max_basis=30,
                             stagnation=(1e6, 1))
    assert res.reason == "tolerance"
    assert res.stop == "tolerance reached"
    level = certrb.offline.greedy.STALL_LEVEL * np.finfo(float).eps * res.max_bounds[1]
    assert np.all(res.max_bounds[1:-1] > level)  # the window never started below the stall level


def test_stop_reasons_in_plain_words(small_problem):
    train = small_problem.parameter_space.sample(50, rng=1)
    capped = certrb.weak_greedy(certrb.OfflineBuilder(small_problem), train, tol=0.0, max_basis=3)
    assert (capped.reason, capped.stop, capped.history[-1].stop) == ("max_basis", "basis size cap", "basis size cap")
    twice = np.array([[1.0, 2.0], [1.0, 2.0]])
    spanned = certrb.weak_greedy(certrb.OfflineBuilder(small_problem), twice, tol=0.0, max_basis=10)
    assert spanned.reason == "in_span"
    assert spanned.stop == "next snapshot already in the span"


@pytest.mark.parametrize("bad", [(1.0, 3), (2.0, 0), (2.0, 1.5), (2.0,), "fast"])
def test_stagnation_input_checks(small_problem, bad):
    builder = certrb.OfflineBuilder(small_problem)
    with pytest.raises(ValueError, match="stagnation"):
        certrb.weak_greedy(builder, small_problem.parameter_space.sample(5, rng=3), tol=1e-3, max_basis=3,
                           stagnation=bad)
    assert builder.n_basis == 0

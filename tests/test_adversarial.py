"""Adversarial inputs (hypothesis): every refusal is a specific certrb exception, every answer is certified.

Parameter batches of every shape and dtype, coefficients scaled over 1e-8..1e8,
nearly dependent snapshots, corrupted model files, and coefficient or
stability callables that return garbage. Where an answer comes back, its
rigorous bound is checked against the extended-precision truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import certrb
from certrb.errors import ModelFileError, ParameterError, ShapeError, StabilityError
from certrb.problems import diffusion1d
from certrb.problems.diffusion1d import operator_coefficients, rhs_coefficients

ESTIMATORS = ("orthonormal", "eim-stabilized", "expanded")
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def problem() -> certrb.Problem:
    return diffusion1d(30)


@pytest.fixture(scope="module")
def model(problem) -> certrb.ReducedModel:
    train = problem.parameter_space.sample(60, rng=0)
    return certrb.weak_greedy(certrb.OfflineBuilder(problem, ESTIMATORS, rng=0), train, tol=0.0, max_basis=6).model


def model_for(problem: certrb.Problem, V: NDArray,
              estimators: tuple[str, ...] = ("orthonormal",)) -> certrb.ReducedModel:
    """A model of ``problem`` for the basis ``V`` (n_h, N), through an OfflineBuilder."""
    return certrb.reduce(certrb.OfflineBuilder(problem, estimators, rng=0), V)


def check_certified(problem: certrb.Problem, model: certrb.ReducedModel, mus: NDArray, result) -> None:
    """Shapes of an answer, and its rigorous bound against the truth (refined in extended precision)."""
    n_mu = mus.shape[0]
    for arr in (result.residual_norm, result.stability, result.bound, result.estimate, result.relative_bound):
        assert arr.shape == (n_mu,)
    assert result.coefficients.shape == (n_mu, result.n)
    assert np.all(np.isfinite(result.bound))
    assert np.all(result.bound >= 0)
    if n_mu and result.rigorous:
        error, _ = certrb.true_error(problem, model, mus, n=result.n)
        assert np.all(result.bound >= error), (mus, result.bound, error)


# ---------------------------------------------------------------- parameter batches

def unit_batches(max_rows: int = 6) -> st.SearchStrategy[NDArray]:
    """Batches of points of the unit square, shape (n, 2), 1 <= n <= max_rows."""
    unit = st.floats(0.0, 1.0, allow_nan=False)
    return st.lists(st.tuples(unit, unit), min_size=1, max_size=max_rows).map(np.array)


def in_box(space: certrb.ParameterSpace, unit: NDArray) -> NDArray:
    return np.clip(space.lower + unit * (space.upper - space.lower), space.lower, space.upper)


@FAST
@given(unit=unit_batches(), dtype=st.sampled_from(["float64", "float32", "int64", "int32"]),
       single=st.booleans(), estimator=st.sampled_from(ESTIMATORS), n=st.integers(1, 6))
def test_valid_batches_of_any_real_dtype_are_certified(problem, model, unit, dtype, single, estimator, n):
    space = problem.parameter_space
    mus = in_box(space, unit).astype(dtype)
    mus = np.clip(mus, space.lower.astype(dtype), space.upper.astype(dtype))  # float32 rounding stays inside
    query = mus[0] if single else mus
    result = model.evaluate(query, estimator=estimator, n=n)
    as_float = np.atleast_2d(np.asarray(query, dtype=float))
    assert (result.n, result.estimator) == (n, estimator)
    check_certified(problem, model, as_float, result)
    again = model.evaluate(as_float, estimator=estimator, n=n)  # the dtype must not change the answer
    np.testing.assert_array_equal(again.bound, result.bound)


def test_empty_batch_gives_empty_answers_or_a_parameter_error(problem, model):
    """A (0, P) batch passes validation; evaluating it must not fail inside numpy."""
    empty = np.empty((0, problem.parameter_space.dim))
    try:
        result = model.evaluate(empty)
    except ParameterError:
        return  # an explicit refusal is acceptable; any other exception fails the test
    check_certified(problem, model, empty, result)


@FAST
@given(width=st.integers(0, 6).filter(lambda p: p != 2), rows=st.integers(0, 4), flat=st.booleans())
def test_wrong_parameter_count_is_refused(model, width, rows, flat):
    mus = np.ones(width) if flat else np.ones((rows, width))
    with pytest.raises(ParameterError):
        model.evaluate(mus)


@FAST
@given(unit=unit_batches(), value=st.sampled_from([np.nan, np.inf, -np.inf]), data=st.data())
def test_non_finite_parameters_are_refused(problem, model, unit, value, data):
    mus = in_box(problem.parameter_space, unit)
    i = data.draw(st.integers(0, mus.shape[0] - 1))
    mus[i, data.draw(st.integers(0, 1))] = value
    with pytest.raises(ParameterError):
        model.evaluate(mus)


@FAST
@given(unit=unit_batches(), exponent=st.floats(-12, 8), below=st.booleans(), data=st.data())
def test_parameters_outside_the_domain_are_refused(problem, model, unit, exponent, below, data):
    space = problem.parameter_space
    mus = in_box(space, unit)
    i, j = data.draw(st.integers(0, mus.shape[0] - 1)), data.draw(st.integers(0, 1))
    step = (space.upper[j] - space.lower[j]) * 10.0**exponent
    mus[i, j] = space.lower[j] - step if below else space.upper[j] + step
    with pytest.raises(ParameterError, match="outside the parameter domain"):
        model.evaluate(mus)


@pytest.mark.parametrize("mus", [
    np.array([[1.0, 2.0]], dtype=complex),
    np.array([[1.0 + 1e-300j, 2.0]]),
    [["a", "b"]],
    [[1.0, 2.0], [3.0]],
    np.array([[None, 1.0]], dtype=object),
    np.zeros((1, 1, 2)),
    1.0,
    None,
])
def test_malformed_batches_are_refused(model, mus):
    with pytest.raises(ParameterError):
        model.evaluate(mus)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"n": 0}, ShapeError), ({"n": 7}, ShapeError), ({"n": 1.5}, ShapeError), ({"n": "2"}, ShapeError),
    ({"estimator": "truth"}, certrb.EstimatorError), ({"estimator": "point-basis"}, certrb.EstimatorError),
])
def test_bad_evaluate_options_are_refused(model, kwargs, error):
    with pytest.raises(error):
        model.evaluate([[1.0, 1.0]], **kwargs)


# ---------------------------------------------------------------- scalings

@dataclass(frozen=True)
class Scaled:
    """Coefficient function ``func(mus) * scales`` (scales broadcast over the terms)."""

    func: object
    scales: tuple[float, ...]

    def __call__(self, mus: NDArray) -> NDArray:
        return self.func(mus) * np.asarray(self.scales)


def scaled_problem(base: certrb.Problem, op_scales: tuple[float, float, float], rhs_scale: float) -> certrb.Problem:
    """``A = c0 K + c1 mu1 K_x + c2 mu2 M``, ``f = t F``: coercive w.r.t. X = K with ``alpha >= c0``."""
    return certrb.Problem(
        certrb.AffineOperator(base.operator.terms, Scaled(operator_coefficients, op_scales)),
        certrb.AffineFunctional(base.rhs.terms, Scaled(rhs_coefficients, (rhs_scale,))),
        base.inner_product, base.parameter_space,
        stability=certrb.MinTheta([0.0, 0.0], alpha_ref=op_scales[0]),
    )


exponents = st.floats(-8.0, 8.0, allow_nan=False)


@SLOWER
@given(a=exponents, b=exponents)
def test_uniformly_scaled_problem_scales_the_bound(problem, a, b):
    """``A -> s A``, ``f -> t f`` scales u, the error and every bound by ``t / s``; the bound stays certified."""
    s, t = 10.0**a, 10.0**b
    scaled = scaled_problem(problem, (s, s, s), t)
    snaps = problem.parameter_space.sample(4, rng=5)
    mus = problem.parameter_space.sample(12, rng=6)
    plain = model_for(problem, problem.solve(snaps).T)
    model = model_for(scaled, scaled.solve(snaps).T, ("orthonormal", "eim-stabilized"))
    ref = plain.evaluate(mus)
    for name in ("orthonormal", "eim-stabilized"):
        result = model.evaluate(mus, estimator=name)
        check_certified(scaled, model, mus, result)
        if name == "orthonormal":
            above = ref.relative_bound > 1e-8  # well above the round-off floor the ratio is exact
            np.testing.assert_allclose(result.estimate[above], ref.estimate[above] * t / s, rtol=1e-6)


@SLOWER
@given(c=st.tuples(exponents, exponents, exponents), b=exponents)
def test_terms_scaled_apart_keep_the_bound_certified(problem, c, b):
    """Terms whose coefficients differ by up to 16 orders of magnitude.

    One dominant term makes the snapshots nearly equal: refusing them as dependent
    (ShapeError) is then the documented answer; otherwise the model must be certified.
    """
    scales = tuple(10.0**e for e in c)
    scaled = scaled_problem(problem, scales, 10.0**b)
    space = problem.parameter_space
    try:
        model = model_for(scaled, scaled.solve(space.sample(4, rng=7)).T, ("orthonormal", "expanded"))
    except ShapeError as exc:
        refusal = str(exc)
    else:
        refusal = None
    if refusal is not None:
        assert "linearly dependent" in refusal
        return
    mus = space.sample(10, rng=8)
    for name in ("orthonormal", "expanded"):
        check_certified(scaled, model, mus, model.evaluate(mus, estimator=name))


# ---------------------------------------------------------------- nearly dependent snapshots

@SLOWER
@given(exponent=st.floats(-17.0, -5.0), seed=st.integers(0, 2**16), copies=st.integers(1, 3))
def test_nearly_dependent_snapshots(problem, exponent, seed, copies):
    """Snapshots that differ by 10^-17..10^-5: refused as dependent, or a certified model."""
    space = problem.parameter_space
    U = problem.solve(space.sample(3, rng=seed)).T
    rng = np.random.default_rng(seed)
    near = U[:, :1] * (1 + 10.0**exponent * rng.standard_normal((U.shape[0], copies)))
    try:
        model = model_for(problem, np.hstack([U, near]), ("orthonormal", "eim-stabilized"))
    except ShapeError as exc:
        if "dependent" not in str(exc):
            raise
        return
    V = model.basis
    assert np.max(np.abs(problem.inner_product.gram(V) - np.eye(V.shape[1]))) < 1e-10
    mus = space.sample(10, rng=seed + 1)
    for name in ("orthonormal", "eim-stabilized"):
        check_certified(problem, model, mus, model.evaluate(mus, estimator=name))


# ---------------------------------------------------------------- corrupted model files

@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    pytest.importorskip("h5py")
    path = tmp_path_factory.mktemp("adversarial") / "model.h5"
    certrb.save(model, path)
    return path, path.read_bytes()


def check_load(path, model, mus) -> None:
    """A corrupted file is refused with ModelFileError, or loads into the very same model."""
    try:
        loaded = certrb.load(path, trusted=True)
    except ModelFileError:
        return
    for name in ESTIMATORS:
        a, b = loaded.evaluate(mus, estimator=name), model.evaluate(mus, estimator=name)
        np.testing.assert_array_equal(a.bound, b.bound)
        np.testing.assert_array_equal(a.coefficients, b.coefficients)


@FAST
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_model_file(problem, model, saved, fraction):
    path, raw = saved
    bad = path.with_name("truncated.h5")
    bad.write_bytes(raw[: int(fraction * len(raw))])
    check_load(bad, model, problem.parameter_space.sample(3, rng=0))


@FAST
@given(flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)), min_size=1,
                      max_size=4))
def test_bit_flipped_model_file(problem, model, saved, flips):
    path, raw = saved
    data = bytearray(raw)
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    bad = path.with_name("flipped.h5")
    bad.write_bytes(bytes(data))
    check_load(bad, model, problem.parameter_space.sample(3, rng=0))


@FAST
@given(junk=st.binary(max_size=4096))
def test_arbitrary_bytes_are_not_a_model(saved, junk):
    path, _ = saved
    bad = path.with_name("junk.h5")
    bad.write_bytes(junk)
    with pytest.raises(ModelFileError):
        certrb.load(bad)


def test_missing_model_file(tmp_path):
    pytest.importorskip("h5py")
    with pytest.raises(FileNotFoundError):
        certrb.load(tmp_path / "absent.h5")


# ---------------------------------------------------------------- coefficient and stability callables

def returning(value_of):
    """A coefficient function ``mus -> value_of(n_mu)``."""
    return lambda mus: value_of(mus.shape[0])


BAD_COEFFICIENTS = {
    "too few terms": returning(lambda m: np.ones((m, 2))),
    "too many rows": returning(lambda m: np.ones((m + 1, 3))),
    "flat": returning(lambda m: np.ones(3 * m)),
    "scalar": returning(lambda m: 1.0),
    "none": returning(lambda m: None),
    "nan": returning(lambda m: np.full((m, 3), np.nan)),
    "inf": returning(lambda m: np.full((m, 3), np.inf)),
    "strings": returning(lambda m: np.full((m, 3), "1.0")),
    "objects": returning(lambda m: np.full((m, 3), None, dtype=object)),
}


@pytest.mark.parametrize("name", sorted(BAD_COEFFICIENTS))
def test_bad_operator_coefficients_are_refused(problem, name):
    with pytest.raises(ShapeError):
        certrb.Problem(certrb.AffineOperator(problem.operator.terms, BAD_COEFFICIENTS[name]), problem.rhs,
                       problem.inner_product, problem.parameter_space, stability=lambda m: np.ones(m.shape[0]))


def nan_above(mus: NDArray) -> NDArray:
    """diffusion1d's coefficients, NaN where mu1 > 10."""
    theta = operator_coefficients(mus)
    theta[mus[:, 0] > 10, 1] = np.nan
    return theta


@FAST
@given(unit=unit_batches())
def test_coefficients_nan_in_part_of_the_domain(problem, unit):
    """Refused exactly where the coefficients are NaN, certified elsewhere."""
    partial = certrb.Problem(certrb.AffineOperator(problem.operator.terms, nan_above), problem.rhs,
                             problem.inner_product, problem.parameter_space, stability=problem.stability)
    snaps = problem.parameter_space.sample(3, rng=1) * [0.5, 1.0]  # mu1 <= 10
    model = model_for(partial, partial.solve(snaps).T)
    mus = in_box(problem.parameter_space, unit)
    if np.any(mus[:, 0] > 10):
        with pytest.raises(ShapeError, match="NaN"):
            model.evaluate(mus)
    else:
        check_certified(partial, model, mus, model.evaluate(mus))


BAD_STABILITY = {
    "wrong shape": returning(lambda m: np.ones(m + 1)),
    "matrix": returning(lambda m: np.ones((m, 1))),
    "none": returning(lambda m: None),
    "nan": returning(lambda m: np.full(m, np.nan)),
    "inf": returning(lambda m: np.full(m, np.inf)),
    "zero": returning(lambda m: np.zeros(m)),
    "negative": returning(lambda m: -np.ones(m)),
    "strings": returning(lambda m: np.full(m, "x")),
}


@pytest.mark.parametrize("name", sorted(BAD_STABILITY))
def test_bad_stability_bounds_are_refused(problem, name):
    bad = certrb.Problem(problem.operator, problem.rhs, problem.inner_product, problem.parameter_space,
                         stability=BAD_STABILITY[name])
    with pytest.raises(StabilityError):
        bad.stability_lower_bound([[1.0, 1.0]])
    model = model_for(bad, problem.solve(problem.parameter_space.sample(2, rng=0)).T)
    with pytest.raises(StabilityError):
        model.evaluate([[1.0, 1.0]])

"""evaluate_batch: blocks of a large batch, precomputed stability values, one parameter against a batch."""

import numpy as np
import pytest

import certrb
from certrb.online.evaluate import BLOCK, ROUND_UP, evaluate_batch, with_output

FIELDS = ("coefficients", "residual_norm", "stability", "bound", "relative_bound", "output", "output_bound",
          "interpolation_error", "roundoff", "estimate")


def assert_same(a: certrb.OnlineResult, b: certrb.OnlineResult) -> None:
    """Every field bit for bit (None where the other is None)."""
    assert (a.estimator, a.n) == (b.estimator, b.n)
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(x, y, equal_nan=True), name


def concatenated(parts: list[certrb.OnlineResult], name: str) -> np.ndarray:
    return np.concatenate([getattr(p, name) for p in parts])


def rows(res: certrb.OnlineResult, i: int) -> certrb.OnlineResult:
    """Parameter ``i`` of a batched result, as a result of its own."""
    fields = {name: None if getattr(res, name) is None else getattr(res, name)[i:i + 1] for name in FIELDS}
    return certrb.OnlineResult(**fields, estimator=res.estimator, n=res.n, certificate=res.certificate)


@pytest.fixture(scope="module")
def mus600(small_problem):
    return small_problem.parameter_space.sample(600, rng=31)


@pytest.mark.parametrize("estimator", certrb.ESTIMATOR_NAMES)
def test_a_large_batch_is_the_concatenation_of_its_blocks(small_greedy, mus600, estimator):
    model = small_greedy.model
    n = None if estimator.startswith("point-basis") else 6  # point-basis is built for the full model only
    assert mus600.shape[0] > 2 * BLOCK  # three blocks, the last one partial
    whole = model.evaluate(mus600, estimator=estimator, n=n)
    blocks = [model.evaluate(mus600[s:s + BLOCK], estimator=estimator, n=n) for s in range(0, 600, BLOCK)]
    assert [b.coefficients.shape[0] for b in blocks] == [BLOCK, BLOCK, 600 - 2 * BLOCK]
    for name in FIELDS:
        if getattr(whole, name) is None:
            assert all(getattr(b, name) is None for b in blocks), name
        else:
            assert np.array_equal(getattr(whole, name), concatenated(blocks, name), equal_nan=True), name
    assert whole.rigorous == all(b.rigorous for b in blocks)


def assert_equal_to_roundoff(one: certrb.OnlineResult, batch: certrb.OnlineResult) -> None:
    """Two evaluations of the same parameters agree up to the round-off each one certifies.

    Each residual norm is within its certified round-off of the exact one, so two of them
    differ by at most the sum (uncertified estimators: by 1e-8 relative); the bounds follow.
    """
    c = batch.coefficients
    assert np.allclose(one.coefficients, c, rtol=1e-10, atol=1e-12 * np.abs(c).max())
    assert np.array_equal(one.stability, batch.stability)
    assert one.rigorous == batch.rigorous
    fp1, fp2 = one.roundoff, batch.roundoff
    certified = ~np.isnan(fp2)
    assert np.array_equal(certified, ~np.isnan(fp1))
    tol = np.where(certified, fp1 + fp2, 1e-8 * batch.residual_norm)
    assert np.all(np.abs(one.residual_norm - batch.residual_norm) <= tol)
    assert np.all(np.abs(one.estimate - batch.estimate) <= tol / batch.stability * (1 + 1e-12))
    tol_bound = np.where(certified, 2 * np.maximum(fp1, fp2), tol) / batch.stability
    assert np.all(np.abs(one.bound - batch.bound) <= tol_bound * (1 + 1e-12))
    assert np.allclose(one.output, batch.output, rtol=1e-12, atol=1e-15 * np.abs(batch.output).max())
    # the output bound is ||l(mu)||_{V'} times the bound (rounded up)
    assert np.allclose(one.output_bound / one.bound, batch.output_bound / batch.bound, rtol=1e-12)


@pytest.mark.parametrize("estimator", certrb.ESTIMATOR_NAMES)
def test_a_large_batch_equals_its_single_evaluations(small_greedy, mus600, estimator):
    model = small_greedy.model
    whole = model.evaluate(mus600, estimator=estimator)
    singles = [model.evaluate(mu, estimator=estimator) for mu in mus600]
    assert all(s.coefficients.shape == (1, model.n_basis) for s in singles)
    assert all(s.interpolation_error is None for s in singles)
    joined = certrb.OnlineResult(**{name: concatenated(singles, name) for name in FIELDS if name !=
                                    "interpolation_error"}, estimator=estimator, n=model.n_basis,
                                 certificate=singles[0].certificate)
    assert_equal_to_roundoff(joined, whole)
    assert [s.rigorous for s in singles] == [whole.rigorous] * 600
    # the lean one-parameter path forms the bound with the same operations as the batch
    eps, fp, beta = joined.residual_norm, joined.roundoff, joined.stability
    assert np.array_equal(joined.estimate, eps / beta)
    expected = eps / beta if np.isnan(fp).all() else (eps + fp) / beta * ROUND_UP
    assert np.array_equal(joined.bound, expected)
    assert np.allclose(joined.relative_bound, joined.bound / np.linalg.norm(joined.coefficients, axis=1),
                       rtol=1e-15)


def test_one_parameter_equals_the_batched_evaluation(small_problem, small_greedy):
    model = small_greedy.model
    mus = small_problem.parameter_space.sample(7, rng=4)
    batch = model.evaluate(mus)
    for i, mu in enumerate(mus):
        one = model.evaluate(mu)
        assert one.coefficients.shape == (1, model.n_basis)
        assert np.allclose(one.coefficients[0], batch.coefficients[i], rtol=1e-13, atol=1e-15)
        assert np.isclose(one.bound[0], batch.bound[i], rtol=1e-10)
        assert np.isclose(one.estimate[0], batch.estimate[i], rtol=1e-10)
        assert np.isclose(one.output[0], batch.output[i], rtol=1e-12)
        assert np.isclose(one.output_bound[0], batch.output_bound[i], rtol=1e-10)
        assert one.rigorous
        assert batch.rigorous


def test_one_complex_parameter_equals_the_batched_evaluation(complex_problem):
    V = complex_problem.solve(complex_problem.parameter_space.sample(5, rng=7)).T
    model = certrb.reduce(certrb.OfflineBuilder(complex_problem, ("orthonormal", "expanded")), V)
    mus = complex_problem.parameter_space.sample(6, rng=8)
    for estimator in ("orthonormal", "expanded"):
        batch = model.evaluate(mus, estimator=estimator)
        for i, mu in enumerate(mus):
            one = model.evaluate(mu, estimator=estimator)
            assert one.coefficients.dtype == np.complex128
            assert_equal_to_roundoff(one, rows(batch, i))
            assert np.allclose(one.coefficients[0], batch.coefficients[i], rtol=1e-13, atol=1e-15)
            assert np.isclose(one.bound[0], batch.bound[i], rtol=1e-10)
            assert np.isclose(one.output[0], batch.output[i], rtol=1e-12)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-17, reason="numpy.longdouble is not wider than float64 here")
def test_one_parameter_of_an_extended_model_stays_extended(small_problem):
    V = small_problem.solve(small_problem.parameter_space.sample(4, rng=9)).T
    model = certrb.reduce(certrb.OfflineBuilder(small_problem, precision="extended"), V)
    mus = small_problem.parameter_space.sample(3, rng=10)
    batch = model.evaluate(mus)
    for i, mu in enumerate(mus):
        one = model.evaluate(mu)
        for name in ("coefficients", "residual_norm", "bound", "estimate", "relative_bound", "output_bound"):
            assert getattr(one, name).dtype == getattr(batch, name).dtype == np.longdouble, name
        assert np.array_equal(one.bound, batch.bound[i:i + 1])


@pytest.mark.parametrize("n_mu", [1, 40, 600])
def test_precomputed_stability_gives_the_models_bound(small_problem, small_greedy, mus600, n_mu):
    model = small_greedy.model
    mus = mus600[:n_mu]
    est = model.estimators[model.default_estimator]
    beta = small_problem.stability_lower_bound(mus)
    own = model.evaluate(mus)
    given = evaluate_batch(model, mus, model.n_basis, est, stability=beta)
    assert_same(given, own)
    # the given values are the ones used (block by block): doubling them halves the bound exactly
    halved = evaluate_batch(model, mus, model.n_basis, est, stability=2 * beta)
    assert np.array_equal(halved.stability, 2 * beta)
    assert np.array_equal(halved.bound, own.bound / 2)
    assert np.array_equal(halved.estimate, own.estimate / 2)
    assert np.array_equal(halved.coefficients, own.coefficients)


def test_output_can_be_skipped(small_greedy, mus600):
    model = small_greedy.model
    est = model.estimators[model.default_estimator]
    for mus in (mus600[:1], mus600):
        res = evaluate_batch(model, mus, 5, est, output=False)
        assert res.output is None
        assert res.output_bound is None
        full = model.evaluate(mus, n=5)
        assert np.array_equal(res.bound, full.bound)


def test_with_output_adds_the_output_evaluate_batch_would_compute(small_problem, small_greedy, complex_problem,
                                                                  mus600):
    V = complex_problem.solve(complex_problem.parameter_space.sample(5, rng=7)).T
    complex_model = certrb.reduce(certrb.OfflineBuilder(complex_problem, ("orthonormal", "expanded")), V)
    cases = [(small_greedy.model, mus600[:40]), (complex_model, complex_problem.parameter_space.sample(7, rng=8))]
    for model, mus in cases:
        est = model.estimators[model.default_estimator]
        full = evaluate_batch(model, mus, model.n_basis, est)
        added = with_output(model, mus, evaluate_batch(model, mus, model.n_basis, est, output=False))
        assert_same(added, full)
    no_output = certrb.Problem(small_problem.operator, small_problem.rhs, small_problem.inner_product,
                               small_problem.parameter_space, stability=small_problem.stability)
    plain = certrb.reduce(certrb.OfflineBuilder(no_output), small_greedy.model.basis[:, :3])
    res = evaluate_batch(plain, mus600[:3], 3, plain.estimators[plain.default_estimator], output=False)
    assert with_output(plain, mus600[:3], res) is res  # no output: unchanged

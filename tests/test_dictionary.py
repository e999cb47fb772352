"""Dictionaries of local certified models: building, the online rules, certified bounds, saving and loading."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import certrb
from certrb import Dictionary, ModelFileError, ParameterSpace, ShapeError
from certrb.offline.clustering import gram, sizes_for_tolerance
from certrb.offline.dictionary import build_dictionary

pytest.importorskip("kmedoids")

RULES = ("nearest", "bound", "nearest-then-bound")


@pytest.fixture(scope="module")
def helmholtz():
    from certrb.problems.helmholtz1d import helmholtz1d

    return helmholtz1d(40, (1.0, 6.0), scm_train=30)


@pytest.fixture(scope="module")
def built(helmholtz):
    train = helmholtz.parameter_space.sample(60, rng=0)
    report: list = []
    d = build_dictionary(helmholtz, train, n_clusters=3, tol=1e-5, max_basis=12, rng=1, report=report)
    return d, report[0], train


def test_one_certified_local_model_per_cluster(built, helmholtz):
    d, report, train = built
    assert len(d.models) == 3 == report.clustering.n_clusters
    assert report.reasons == ["tolerance"] * 3
    for c, members in enumerate(report.train_sets):  # each greedy saw its cluster
        assert set(np.flatnonzero(report.clustering.labels == c)) <= set(members)
    G = gram(helmholtz.solve(train), helmholtz.inner_product)
    for c, members in enumerate(report.train_sets):  # the criterion predicted on the greedy's own training set
        assert report.prediction.sizes[c] == sizes_for_tolerance(G[np.ix_(members, members)], 1e-5, 12)
    res = d.evaluate(train, selection="nearest")
    assert res.relative_bound.max() <= 1e-5  # the nearest model was trained at every training parameter


@pytest.mark.parametrize("rule", RULES)
def test_bounds_are_the_chosen_models_certified_bounds(helmholtz, built, rule):
    d = built[0]
    mus = helmholtz.parameter_space.sample(15, rng=3)
    res = d.evaluate(mus, selection=rule)
    assert res.rigorous
    assert res.coefficients.shape == (15, d.n_basis.max())
    for i, j in enumerate(res.model):
        own = d.models[j].evaluate(mus[i])
        n = d.models[j].n_basis
        np.testing.assert_allclose(res.coefficients[i, :n], own.coefficients[0], rtol=1e-10, atol=1e-14)
        assert np.all(res.coefficients[i, n:] == 0)
        assert res.bound[i] == pytest.approx(own.bound[0], rel=1e-10)
        err = certrb.true_error(helmholtz, d.models[j], mus[i:i + 1])[0]
        assert err[0] <= res.bound[i]


def test_rules_order_the_bounds(built, helmholtz):
    d = built[0]
    mus = helmholtz.parameter_space.sample(40, rng=4)
    b = {rule: d.evaluate(mus, selection=rule).bound for rule in RULES}
    assert np.all(b["bound"] <= b["nearest-then-bound"])
    assert np.all(b["nearest-then-bound"] <= b["nearest"])
    near = d.candidates(mus, "nearest")[:, 0]
    assert np.array_equal(d.evaluate(mus, selection="nearest").model, near)


@pytest.mark.parametrize("rule", RULES)
def test_one_parameter_and_given_stability_give_the_batch_results(helmholtz, built, rule):
    d = built[0]
    mus = helmholtz.parameter_space.sample(6, rng=5)
    batch = d.evaluate(mus, selection=rule)
    beta = helmholtz.stability(mus)
    given = d.evaluate(mus, selection=rule, stability=beta)
    assert np.array_equal(given.model, batch.model)
    assert np.array_equal(given.bound, batch.bound)
    for i in range(mus.shape[0]):
        for one in (d.evaluate(mus[i], selection=rule), d.evaluate(mus[i], selection=rule, stability=beta[i:i + 1])):
            assert one.model.tolist() == [batch.model[i]]
            assert one.coefficients.shape == (1, d.n_basis.max())
            np.testing.assert_allclose(one.coefficients[0], batch.coefficients[i], rtol=1e-9, atol=1e-14)
            for name in ("bound", "relative_bound", "stability", "residual_norm", "output"):
                np.testing.assert_allclose(getattr(one, name), getattr(batch, name)[i:i + 1], rtol=1e-9)
            assert one.certificate == batch.certificate
            assert one.estimator == batch.estimator
    with pytest.raises(certrb.StabilityError, match="shape"):
        d.evaluate(mus, selection=rule, stability=beta[:2])
    with pytest.raises(certrb.StabilityError, match="positive"):
        d.evaluate(mus, selection=rule, stability=-beta)


def test_build_is_a_function_of_rng_on_every_backend(helmholtz, built):
    d, _, train = built
    again = build_dictionary(helmholtz, train, n_clusters=3, tol=1e-5, max_basis=12, rng=1)
    for a, b in zip(d.models, again.models, strict=True):
        assert np.array_equal(a.A_N, b.A_N)
    assert np.array_equal(d.centers, again.centers)


@pytest.mark.slow
def test_process_pool_gives_the_serial_models(helmholtz, built):
    d, _, train = built
    with certrb.ParallelMap(2, chunk_size=1) as pm:
        pooled = build_dictionary(helmholtz, train, n_clusters=3, tol=1e-5, max_basis=12, rng=1, parallel=pm)
    for a, b in zip(d.models, pooled.models, strict=True):
        assert np.array_equal(a.A_N, b.A_N)


def test_auto_takes_the_cheapest_predicted_online_cost_within_budget(helmholtz):
    from certrb.problems import diffusion1d

    problem = diffusion1d(50)
    train = problem.parameter_space.sample(40, rng=0)
    report: list = []
    d = build_dictionary(problem, train, n_clusters="auto", max_clusters=4, tol=1e-4, max_basis=10, rng=0,
                         report=report)
    costs = {k: p.online_cost for k, p in report[0].predictions.items()}
    assert set(costs) == {1, 2, 3, 4}
    assert len(d.models) == min(costs, key=lambda k: (costs[k], k))
    report.clear()
    build_dictionary(problem, train, n_clusters="auto", max_clusters=4, tol=1e-4, max_basis=10, rng=0,
                     offline_budget=0.0, report=report)  # nothing fits: the cheapest offline count
    offline = {k: p.offline_cost for k, p in report[0].predictions.items()}
    assert report[0].clustering.n_clusters == min(offline, key=lambda k: (offline[k], k))


def test_save_and_load_one_file(tmp_path, built, helmholtz):
    d = built[0]
    path = tmp_path / "dictionary.h5"
    certrb.save_dictionary(d, path)
    with pytest.raises(ModelFileError, match="import path"):
        certrb.load_dictionary(path)
    loaded = certrb.load_dictionary(path, trusted=True)
    assert len({id(m.stability) for m in loaded.models}) == 1  # one stability evaluation per parameter
    mus = helmholtz.parameter_space.sample(10, rng=6)
    for rule in RULES:
        a, b = d.evaluate(mus, selection=rule), loaded.evaluate(mus, selection=rule)
        assert np.array_equal(a.model, b.model)
        assert np.array_equal(a.bound, b.bound)
    assert loaded.selection == d.selection
    assert loaded.n_candidates == d.n_candidates
    with h5py.File(path, "r+") as f:  # a modified model array fails the checksums
        f["models/1/A_N"][0, 0, 0] += 1.0
    with pytest.raises(ModelFileError, match="checksum"):
        certrb.load_dictionary(path, trusted=True)
    single = tmp_path / "model.h5"
    certrb.save(d.models[0], single)
    with pytest.raises(ModelFileError, match="certrb-dictionary"):
        certrb.load_dictionary(single, trusted=True)


def test_bad_arguments_raise_clear_errors(helmholtz, built):
    d, _, train = built
    with pytest.raises(ValueError, match="dissimilarity"):
        build_dictionary(helmholtz, train, n_clusters=2, tol=1e-4, max_basis=5, dissimilarity="cosine")
    with pytest.raises(ValueError, match="selection"):
        build_dictionary(helmholtz, train, n_clusters=2, tol=1e-4, max_basis=5, selection="best")
    with pytest.raises(ValueError, match="n_clusters"):
        build_dictionary(helmholtz, train, n_clusters=61, tol=1e-4, max_basis=5)
    with pytest.raises(ValueError, match="selection"):
        d.evaluate(train[:2], selection="closest")
    with pytest.raises(ShapeError, match="one row per model"):
        Dictionary(d.models, d.centers[:2])
    with pytest.raises(ValueError, match="n_candidates"):
        Dictionary(d.models, d.centers, n_candidates=4)
    from certrb.problems import diffusion1d

    other = diffusion1d(20)
    stray = certrb.weak_greedy(other, other.parameter_space.sample(5, rng=0), tol=1e-2, max_basis=2).model
    with pytest.raises(ShapeError, match="parameter space"):
        Dictionary([d.models[0], stray], np.vstack([d.centers[0], d.centers[0]]))
    assert isinstance(d.parameter_space, ParameterSpace)

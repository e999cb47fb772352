"""The offline-solve sweep: floors that follow the accuracy of the offline X-solves."""

from __future__ import annotations

import numpy as np

from certrb.offline_floor import PerturbedInnerProduct, offline_solve_sweep
from certrb.problems import diffusion1d


def test_perturbed_solves_have_the_requested_relative_accuracy():
    problem = diffusion1d(60)
    X = problem.inner_product.matrix
    ip = PerturbedInnerProduct(X, 1e-8, seed=0)
    g = np.random.default_rng(1).standard_normal((X.shape[0], 3))
    exact = problem.inner_product.riesz(g)
    got = ip.riesz(g)
    rel = ip.norms(got - exact) / ip.norms(exact)
    np.testing.assert_allclose(rel, 1e-8, rtol=1e-6)
    np.testing.assert_array_equal(PerturbedInnerProduct(X, 0.0, seed=0).riesz(g), exact)


def test_floors_follow_eta():
    settings = {"n_train": 60, "n_test": 8, "sizes": [4, 7], "etas": [1e-6, 1e-8]}
    out = offline_solve_sweep(diffusion1d(60), settings, seed=0)
    runs = {r["eta"]: r["estimators"] for r in out["runs"]}
    assert set(runs) == {0.0, 1e-6, 1e-8}
    for name in ("orthonormal", "eim"):
        # the estimators' deviation from the exact E0 follows eta: 100x less accurate solves, ~100x larger
        dev = {eta: r[name]["max_deviation"] for eta, r in runs.items()}
        assert 30 * dev[1e-8] < dev[1e-6] < 300 * dev[1e-8]
        assert dev[1e-8] > 100 * dev[0.0]

"""The round-off study on a small mesh, and the floor definition."""

import json

import numpy as np
import pytest

import certrb
from certrb.problems import diffusion1d
from certrb.study import STUDY_ESTIMATORS, estimator_floor, roundoff_study, sweep_estimators


def test_floor_definition():
    rel = np.array([1e-2, 1e-6, 1e-9, 1e-12])
    dev = np.array([1e-8, 1e-3, 0.5, np.nan])
    assert estimator_floor(rel, dev) == (1e-9, True)
    assert estimator_floor(rel, np.array([0.0, 0.0, 0.0, np.nan])) == (1e-9, False)


def test_sweep_grows_the_basis_and_skips_what_cannot_be_built():
    problem = diffusion1d(80)
    space = problem.parameter_space
    basis = certrb.weak_greedy(certrb.OfflineBuilder(problem), space.sample(60, rng=0), tol=1e-12,
                               max_basis=6).model.basis
    test = space.sample(10, rng=1)
    names = ("orthonormal", "point-basis")
    builder = certrb.OfflineBuilder(problem, names, options={"point-basis": {"max_points": 30}})
    U = problem.solve(test)
    steps = list(sweep_estimators(builder, basis, names, test, train=space.sample(40, rng=2), seed=0))
    assert basis.shape[1] >= 3
    assert [s.n for s in steps] == list(range(1, basis.shape[1] + 1))
    for step in steps:
        # d = K(K+1)/2 point-basis products with K = 1 + 3N components: only N <= 2 fits in 30 points
        assert set(step.models) == (set(names) if step.n <= 2 else {"orthonormal"})
        model = step.models["orthonormal"]
        np.testing.assert_array_equal(step.coefficients, model.solve(test))
        err = problem.inner_product.norms((U - step.coefficients @ basis[:, :step.n].T).T)
        assert np.all(step.results["orthonormal"].bound >= err)
    with pytest.raises(ValueError, match="empty"):
        next(sweep_estimators(builder, basis, ("orthonormal",), test, train=test, seed=0))


@pytest.fixture(scope="module")
def study():
    stages = []
    results = roundoff_study(diffusion1d(120), n_train=150, n_test=25, max_basis=24, seed=1, max_points=800,
                             square_points=300,
                             progress=lambda s, d, t: stages.append(s))
    return results, stages


def test_study_structure(study):
    results, stages = study
    assert {"greedy (orthonormal)", "greedy (expanded)", "estimators per N"} <= set(stages)
    names = {"truth-double", *STUDY_ESTIMATORS}
    assert set(results["floors"]) == names
    n_sizes = len(results["sizes"])
    for name in names | {"truth-extended"}:
        assert len(results["rel_residual"][name]) == n_sizes
    assert results["n_components"] == [1 + 3 * n for n in results["sizes"]]
    json.dumps(results, allow_nan=False)  # valid JSON as is


def test_study_shows_the_phenomenon(study):
    results, _ = study
    floors = results["floors"]
    # the classical expansion fails at sqrt(eps) level; the stable ones near the truth floor
    assert floors["expanded"] >= 1e-9
    assert results["floors_reached"]["expanded"]
    for name in ("orthonormal", "eim-stabilized"):
        assert floors[name] <= 10 * max(floors["truth-double"], 1e-13)
    assert all(results["violations"][name] == 0 for name in ("orthonormal", "eim", "eim-stabilized"))
    # the round-off-certified bounds hold everywhere, the round-off regime included, E1's too
    assert results["certified_violations"] == {name: 0 for name in ("expanded", "orthonormal", "eim", "eim-stabilized")}
    true_err = np.array(results["true_error"])
    assert np.nanmin(true_err) < 1e-11  # the regime was reached
    assert len(results["certified_bound"]["orthonormal"]) == len(results["sizes"])
    # the expanded-driven greedy stalls above the stable one
    g = results["greedy"]
    best = lambda rec: min(b for b in rec["max_bound"] if b is not None)  # noqa: E731
    assert best(g["expanded"]) > 100 * best(g["orthonormal"])

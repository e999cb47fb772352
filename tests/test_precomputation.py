"""Precomputation counts: the Riesz solves each offline builder really makes, stored sizes, flops."""

import numpy as np
import pytest

import certrb
from certrb.offline.innerproduct import InnerProduct
from certrb.offline.precomputation import online_flops, precomputation_counts, stored_floats


@pytest.fixture
def solves(monkeypatch):
    """Counts the right-hand sides of every Riesz solve (``X z = g``, refinement steps not counted)."""
    count = [0]
    riesz = InnerProduct.riesz

    def counted(self, g, *, refine=0):
        count[0] += 1 if np.ndim(g) == 1 else np.shape(g)[1]
        return riesz(self, g, refine=refine)

    monkeypatch.setattr(InnerProduct, "riesz", counted)
    return count


def _grown(problem, n, names):
    builder = certrb.OfflineBuilder(problem, names, rng=0, options={"point-basis": {"max_points": 400}})
    V = problem.solve(problem.parameter_space.sample(n, rng=0)).T
    builder.add_snapshots(V)
    return builder


@pytest.mark.parametrize("name", ["orthonormal", "expanded", "point-basis", "eim", "eim-stabilized"])
@pytest.mark.parametrize("certify", [False, True])
def test_counted_riesz_solves_match(small_problem, solves, name, certify):
    n, q_f, q_a = 4, small_problem.rhs.n_terms, small_problem.operator.n_terms
    builder = _grown(small_problem, n, (name,))
    k = q_f + q_a * n
    assert solves[0] == k  # the builder's component representatives: Q_f + Q_a N
    before = solves[0]
    est = builder.estimator(name, train=small_problem.parameter_space.sample(60, rng=1), certify=certify)
    counts = precomputation_counts(name, est, n, q_f, q_a, certified=certify)
    assert counts["truth_solves"] == n
    reused = k if name in ("orthonormal", "expanded") else 0  # E1/E5 are the builder's K representatives
    reused += k if certify and name.startswith("eim") else 0  # so is the EIM's certified remainder bound
    assert solves[0] - before == counts["riesz_solves"] + counts["riesz_solves_certificate"] - reused
    if name in ("orthonormal", "expanded"):
        assert counts["riesz_solves"] == k
        assert counts["truth_residual_norms"] == 0
    else:
        assert counts["truth_residual_norms"] == counts["riesz_solves"] == counts["terms"] > 0


def test_stored_floats_and_flops(small_problem):
    n, q_f, q_a = 3, small_problem.rhs.n_terms, small_problem.operator.n_terms
    builder = _grown(small_problem, n, ("orthonormal", "expanded"))
    k = q_f + q_a * n
    exp = builder.estimator("expanded")
    orth = builder.estimator("orthonormal")
    assert stored_floats(exp) == k * k  # G alone without certificate
    r = orth.to_arrays()["R"].shape[0]
    assert stored_floats(orth) == r * k
    solve = 2 * q_a * n * n + 2 * q_f * n + n ** 3 // 3 + 2 * n * n + q_a * n
    assert online_flops("expanded", exp, n, q_f, q_a) == solve + 2 * k * k + 2 * k
    assert online_flops("orthonormal", orth, n, q_f, q_a) == solve + 2 * r * k + 2 * r
    with pytest.raises(ValueError, match="no precomputation count"):
        precomputation_counts("truth", exp, n, q_f, q_a, certified=False)

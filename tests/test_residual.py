"""Residual coefficient ordering, and online data free of truth-sized arrays.

The import rules of the online/offline split are checked in test_architecture.py.
"""

import numpy as np

from certrb.offline.estimators.truth import combine_components
from certrb.online.residual import pad_coefficients, residual_coefficients


def test_coefficients_reproduce_the_residual(small_problem, small_greedy):
    model = small_greedy.model
    mus = small_problem.parameter_space.sample(4, rng=0)
    n = 3
    c = model.solve(mus, n=n)
    x = residual_coefficients(small_problem.rhs.theta(mus), small_problem.operator.theta(mus), c)
    assert x.shape == (4, 1 + 3 * n)
    R = combine_components(small_problem, model.basis, x)
    theta = small_problem.operator.theta(mus)
    for i in range(4):
        A = small_problem.operator.assemble(theta[i])
        r = small_problem.rhs.assemble(mus[i:i + 1])[0] - A @ (model.basis[:, :n] @ c[i])
        assert np.allclose(R[:, i], r, atol=1e-12 * np.abs(r).max() + 1e-16)


def test_padding():
    x = np.arange(6.0).reshape(2, 3)
    p = pad_coefficients(x, 5)
    assert p.shape == (2, 5)
    assert np.array_equal(p[:, :3], x)
    assert not p[:, 3:].any()


def test_online_data_holds_no_truth_sized_array(small_problem, small_greedy):
    n_h = small_problem.size
    model = small_greedy.model
    arrays = [model.A_N, model.f_N, model.output.l_N, model.output.dual_gram]
    for est in model.estimators.values():
        arrays.extend(np.asarray(a) for a in est.to_arrays().values())
    assert all(n_h not in a.shape for a in arrays)

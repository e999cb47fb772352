"""reduce() and the incremental OfflineBuilder."""

import numpy as np
import pytest

import certrb
from certrb.errors import ShapeError
from certrb.estimators.expanded import gram
from certrb.reduce import OfflineBuilder


def snapshots(problem, k, seed=0):
    return problem.solve(problem.parameter_space.sample(k, rng=seed)).T


def test_incremental_state_equals_from_scratch(small_problem):
    U = snapshots(small_problem, 5)
    step = OfflineBuilder(small_problem)
    for j in range(5):
        step.add_snapshots(U[:, j:j + 1])
    block = OfflineBuilder(small_problem)
    block.append_orthonormal(step.basis)
    assert np.allclose(step.A_N, small_problem.operator.project(step.basis), atol=1e-12)
    assert np.allclose(step.gram, gram(block.components, block.riesz), rtol=1e-10, atol=1e-14)
    # E5: Psi X-orthonormal and Psi R = Riesz representatives
    ip = small_problem.inner_product
    assert np.max(np.abs(ip.gram(step.psi) - np.eye(step.psi.shape[1]))) < 1e-12
    assert np.allclose(step.psi @ step.R, step.riesz, atol=1e-12 * np.abs(step.riesz).max())


def test_reduce_orthonormalizes_a_raw_basis(small_problem):
    U = snapshots(small_problem, 4, seed=1)
    model = certrb.reduce(small_problem, U)
    V = model.basis
    assert V.shape == U.shape
    assert np.max(np.abs(small_problem.inner_product.gram(V) - np.eye(4))) < 1e-12
    # same span: projecting U onto V loses nothing
    P = V @ small_problem.inner_product.gram(U, V)
    assert np.allclose(P, U, atol=1e-10 * np.abs(U).max())


def test_reduce_keeps_an_orthonormal_basis(small_problem, small_greedy):
    V = small_greedy.model.basis
    model = certrb.reduce(small_problem, V)
    assert np.array_equal(model.basis, V)


def test_reduce_rejects_bad_bases(small_problem):
    U = snapshots(small_problem, 2, seed=2)
    with pytest.raises(ShapeError, match="linearly dependent"):
        certrb.reduce(small_problem, np.column_stack([U, U[:, 0] * 2.0]))
    with pytest.raises(ShapeError, match="shape"):
        certrb.reduce(small_problem, U[:-1])
    with pytest.raises(ShapeError, match="shape"):
        certrb.reduce(small_problem, np.zeros((small_problem.size, 0)))
    bad = U.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ShapeError, match="NaN"):
        certrb.reduce(small_problem, bad)
    with pytest.raises(TypeError):
        certrb.reduce("not a problem", U)


def test_builder_rejects_snapshot_in_span(small_problem):
    U = snapshots(small_problem, 2, seed=3)
    b = OfflineBuilder(small_problem)
    assert b.add_snapshots(U) == 2
    assert b.add_snapshots((U[:, :1] + 3 * U[:, 1:]) / 7) == 0
    assert b.n_basis == 2

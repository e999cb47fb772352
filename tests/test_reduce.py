"""reduce() and the incremental OfflineBuilder."""

import numpy as np
import pytest
import scipy.sparse as sp

import certrb
from certrb import OfflineBuilder, ShapeError
from certrb.offline.estimators.expanded import gram
from certrb.online import kernels
from certrb.online.precision import working_rtol


def snapshots(problem, k, seed=0):
    return problem.solve(problem.parameter_space.sample(k, rng=seed)).T


def projected_extended(problem, V):
    """Reference ``V^T A_q V`` (Q_a, N, N) and ``V^T f_p`` (Q_f, N) accumulated in numpy.longdouble (real V)."""
    Ve = V.astype(np.longdouble)
    A = np.array([Ve.T @ (sp.csr_matrix(a).astype(np.longdouble) @ Ve) for a in problem.operator.terms])
    return A, problem.rhs.terms.astype(np.longdouble) @ Ve


def test_incremental_state_equals_from_scratch(small_problem):
    U = snapshots(small_problem, 5)
    step = OfflineBuilder(small_problem)
    for j in range(5):
        step.add_snapshots(U[:, j:j + 1])
    block = OfflineBuilder(small_problem)
    block.append_orthonormal(step.basis)
    assert np.allclose(step.A_N, small_problem.operator.project(step.basis), atol=1e-12)
    assert np.allclose(step.gram, gram(block.riesz, small_problem.inner_product), rtol=1e-10, atol=1e-14)
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
    used = OfflineBuilder(small_problem)
    used.add_snapshots(U[:, :1])
    with pytest.raises(ShapeError, match="empty builder"):
        certrb.reduce(used, U)


def test_builder_rejects_snapshot_in_span(small_problem):
    U = snapshots(small_problem, 2, seed=3)
    b = OfflineBuilder(small_problem)
    assert b.add_snapshots(U) == 2
    assert b.add_snapshots((U[:, :1] + 3 * U[:, 1:]) / 7) == 0
    assert b.n_basis == 2


def test_builder_views_stay_valid_as_it_grows(small_problem):
    U = snapshots(small_problem, 6, seed=4)
    b = OfflineBuilder(small_problem)
    b.add_snapshots(U[:, :1])
    first, R_first = b.basis, b.R
    kept = first.copy()
    for j in range(1, 6):  # several buffer reallocations and in-place appends
        b.add_snapshots(U[:, j:j + 1])
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(b.basis[:, :1], kept)
    assert b.R.shape == (b.psi.shape[1], b.components.shape[1])
    np.testing.assert_array_equal(b.R[:R_first.shape[0], :R_first.shape[1]], R_first)


# --- precision="extended" -------------------------------------------------------------------------------

needs_long_double = pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-17,
                                       reason="numpy.longdouble is not wider than float64 here")


@needs_long_double
def test_extended_offline_state_is_longdouble_and_consistent(small_problem):
    b = OfflineBuilder(small_problem, precision="extended")
    assert (b.refine, b.rtol) == (2, working_rtol(np.longdouble))
    assert b.add_snapshots(small_problem.solve(small_problem.parameter_space.sample(5, rng=3), refine=2).T) == 5
    for name in ("basis", "components", "riesz", "psi", "R", "gram", "A_N", "f_N"):
        assert getattr(b, name).dtype == np.longdouble, name
    ip = small_problem.inner_product
    eps = float(np.finfo(np.longdouble).eps)
    # orthogonal, A_N, f_N and Psi R to extended (not double) round-off; the column norms are
    # divided out as float64 by certrb.basis.orthonormalize, a scaling that does not change the span
    defect = np.abs(ip.gram(b.basis) - np.eye(5))
    assert float(np.max(defect - np.diag(np.diag(defect)))) < 1e3 * eps
    assert float(np.max(np.diag(defect))) < 1e-15
    A_ext, f_ext = projected_extended(small_problem, b.basis)
    assert float(np.max(np.abs(b.A_N - A_ext) / np.max(np.abs(A_ext)))) < 1e3 * eps
    assert float(np.max(np.abs(b.f_N - f_ext) / np.max(np.abs(f_ext)))) < 1e3 * eps
    assert float(np.max(np.abs(b.psi @ b.R - b.riesz)) / np.max(np.abs(b.riesz))) < 1e3 * eps
    mus = small_problem.parameter_space.sample(3, rng=4)
    c, x = b.operators().solve(small_problem.operator.theta(mus), small_problem.rhs.theta(mus), 5)
    assert c.dtype == x.dtype == np.longdouble


@needs_long_double
def test_extended_model_is_not_certified(small_problem):
    V = snapshots(small_problem, 4, seed=7)
    model = certrb.reduce(OfflineBuilder(small_problem, ("orthonormal", "expanded"), precision="extended"), V)
    assert model.A_N.dtype == model.f_N.dtype == model.basis.dtype == np.longdouble
    again = certrb.reduce(OfflineBuilder(small_problem, precision="extended"), model.basis)  # re-orthonormalized
    assert again.n_basis == 4
    for name in ("orthonormal", "expanded"):
        res = model.evaluate(small_problem.parameter_space.sample(6, rng=8), estimator=name)
        assert res.coefficients.dtype == np.longdouble
        assert np.isnan(res.roundoff).all()
        assert np.array_equal(res.bound, res.estimate)
        assert not res.rigorous


@pytest.mark.parametrize("name", ["point-basis", "eim", "eim-stabilized"])
def test_extended_refuses_estimators_without_extended_support(small_problem, name):
    V = snapshots(small_problem, 3, seed=9)
    with pytest.raises(certrb.EstimatorError, match="precision='extended'"):
        OfflineBuilder(small_problem, ("orthonormal", name), precision="extended")
    b = OfflineBuilder(small_problem, precision="extended")
    b.add_snapshots(V)
    with pytest.raises(certrb.EstimatorError, match="precision='extended'"):
        b.estimator(name)
    with pytest.raises(certrb.EstimatorError, match="precision='extended'"):
        b.model(estimators=(name,))


@pytest.mark.parametrize("precision", ["single", "Extended", None])
def test_precision_is_validated(small_problem, precision):
    with pytest.raises(ValueError, match="precision must be one of"):
        OfflineBuilder(small_problem, precision=precision)
    # the deprecated keyword of reduce reaches the same check
    with (pytest.warns(DeprecationWarning, match="precision"),
          pytest.raises(ValueError, match="precision must be one of")):
        certrb.reduce(small_problem, snapshots(small_problem, 2), precision=precision)


def test_builder_options_passed_to_reduce_are_deprecated(small_problem):
    V = snapshots(small_problem, 3, seed=10)
    train = small_problem.parameter_space.sample(30, rng=2)
    new = certrb.reduce(OfflineBuilder(small_problem, ("orthonormal", "eim"), default="eim", rng=1), V, train=train)
    with pytest.warns(DeprecationWarning, match="OfflineBuilder"):
        old = certrb.reduce(small_problem, V, ("orthonormal", "eim"), default="eim", rng=1, train=train)
    assert (old.default_estimator, sorted(old.estimators)) == ("eim", ["eim", "orthonormal"])
    mus = small_problem.parameter_space.sample(5, rng=3)
    assert np.array_equal(old.evaluate(mus).bound, new.evaluate(mus).bound)
    with pytest.raises(TypeError, match="set them there"):
        certrb.reduce(OfflineBuilder(small_problem), V, certify=False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        certrb.reduce(small_problem, V, estimator="orthonormal")


def test_symmetric_terms_give_exactly_symmetric_reduced_operators(small_problem, small_greedy):
    A = small_greedy.model.A_N
    assert np.array_equal(A, A.transpose(0, 2, 1))
    # the symmetrization only removes round-off: V^T A_q V formed in one block agrees
    V = small_greedy.model.basis
    direct = np.array([V.T @ (a @ V) for a in small_problem.operator.terms])
    assert np.allclose(A, direct, rtol=0, atol=1e-13 * np.abs(direct).max())


def test_nonsymmetric_terms_are_left_alone(small_problem):
    K = small_problem.operator.terms[0]
    n = K.shape[0]
    convection = sp.diags([np.full(n - 1, 0.5), np.full(n - 1, -0.5)], [1, -1], format="csr")
    problem = certrb.Problem(certrb.AffineOperator([K, convection], lambda m: np.column_stack([np.ones(len(m)),
                                                                                                m[:, 0]])),
                             small_problem.rhs, small_problem.inner_product.matrix,
                             certrb.ParameterSpace(["b"], [0.0], [1.0]), stability=lambda m: np.full(len(m), 0.5))
    builder = OfflineBuilder(problem, certify=False)
    builder.add_snapshots(problem.solve(np.array([[0.2], [0.9]])).T)
    skew = builder.A_N[1] + builder.A_N[1].T  # V^T C V is skew-symmetric
    assert np.abs(builder.A_N[1]).max() > 1e-3
    assert np.abs(skew).max() < 1e-12
    assert not np.array_equal(builder.A_N[1], builder.A_N[1].T)
    model = builder.model()
    assert kernels.packed_symmetric(model.A_N) is None  # not symmetric: no compiled Cholesky, LAPACK's LU path
    assert np.allclose(model.solve([0.5]), np.linalg.solve(builder.A_N[0] + 0.5 * builder.A_N[1],
                                                           builder.f_N[0]), rtol=1e-12)

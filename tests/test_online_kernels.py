"""Compiled online kernels: packing, batched and single Cholesky solves, E5 norm, and their use by ReducedModel."""

import dataclasses

import numpy as np
import pytest

import certrb
from certrb.online import kernels
from certrb.online.residual import residual_coefficients

kern = kernels.compiled()
needs_numba = pytest.mark.skipif(kern is None, reason="numba (extra 'fast') is not installed")


def spd_operators(q: int, n: int, seed: int) -> np.ndarray:
    """q symmetric positive definite (n, n) matrices with condition numbers up to ~1e6."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(q):
        Qm, _ = np.linalg.qr(rng.standard_normal((n, n)))
        out.append((Qm * np.logspace(0, -6, n)) @ Qm.T)
    return np.array(out)


def test_packed_symmetric_layout_and_nesting():
    A_N = spd_operators(3, 6, seed=0)
    packed = kernels.packed_symmetric(A_N)
    assert packed.shape == (3, 21)
    assert packed.flags.c_contiguous
    for i in range(6):
        for j in range(i + 1):
            assert np.array_equal(packed[:, i * (i + 1) // 2 + j], 0.5 * (A_N[:, i, j] + A_N[:, j, i]))
    # the nested sub-model's packing is a prefix
    assert np.array_equal(kernels.packed_symmetric(A_N[:, :4, :4]), packed[:, :10])


def test_packed_symmetric_refuses_complex_and_nonsymmetric():
    A_N = spd_operators(2, 5, seed=1)
    assert kernels.packed_symmetric(A_N.astype(complex)) is None
    skew = A_N.copy()
    skew[1, 0, 4] += 1e-10 * np.abs(A_N[1]).max()
    assert kernels.packed_symmetric(skew) is None
    assert kernels.packed_symmetric(A_N.astype(np.longdouble)) is None
    nearly = A_N.copy()
    nearly[0, 0, 4] *= 1 + 1e-16  # a skew part at round-off level is still symmetric
    assert kernels.packed_symmetric(nearly) is not None


@needs_numba
@pytest.mark.parametrize("n", [1, 2, 7, 31])
def test_batch_solve_matches_lapack(n):
    A_N = spd_operators(4, n, seed=n)
    rng = np.random.default_rng(n)
    theta = rng.uniform(0.1, 1.0, (300, 4))
    f = rng.standard_normal((300, n))
    A = kernels.packed_symmetric(A_N).T @ theta.T
    rhs = f.T.copy()  # overwritten by the solutions
    ok = kern.cholesky_solve_batch(A, rhs)
    ref = np.linalg.solve(np.einsum("mq,qij->mij", theta, A_N), f[:, :, None])[:, :, 0]
    assert ok.all()
    assert np.allclose(rhs.T, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


@needs_numba
def test_batch_solve_flags_indefinite_lanes_only():
    n = 5
    A_N = np.array([np.eye(n), np.diag([1.0, 1.0, -1.0, 1.0, 1.0])])
    theta = np.array([[1.0, 0.5], [1.0, 2.0], [1.0, 0.0]])  # the middle system is indefinite
    A = kernels.packed_symmetric(A_N).T @ theta.T
    f = np.ones((n, 3))
    ok = kern.cholesky_solve_batch(A, f)
    assert ok.tolist() == [True, False, True]
    assert np.allclose(f[:, 0], 1 / np.array([1.5, 1.5, 0.5, 1.5, 1.5]))
    assert np.allclose(f[:, 2], 1.0)


@needs_numba
def test_compiled_kernels_equal_their_python_bodies():
    A_N = spd_operators(3, 6, seed=2)
    packed = kernels.packed_symmetric(A_N)
    rng = np.random.default_rng(2)
    theta, phi = rng.uniform(0.1, 1, (8, 3)), rng.standard_normal((8, 2))
    f_N = rng.standard_normal((2, 6))
    A1, f1 = packed.T @ theta.T, f_N.T @ phi.T
    A2, f2 = A1.copy(), f1.copy()
    assert np.array_equal(kern.cholesky_solve_batch(A1, f1), kernels.cholesky_solve_batch(A2, f2))
    assert np.array_equal(f1, f2)  # same IEEE operations in the same order
    for a, b in zip(kern.cholesky_solve_one(packed, f_N, theta[0], phi[0], 4),
                    kernels.cholesky_solve_one(packed, f_N, theta[0], phi[0], 4), strict=True):
        assert np.array_equal(a, b)


@needs_numba
@pytest.mark.parametrize("n", [1, 3, 6])
def test_single_solve_and_residual_coefficients(n):
    A_N = spd_operators(3, 6, seed=3)
    packed = kernels.packed_symmetric(A_N)
    rng = np.random.default_rng(3)
    theta, phi, f_N = rng.uniform(0.1, 1, 3), rng.standard_normal(2), rng.standard_normal((2, 6))
    c, x, ok = kern.cholesky_solve_one(packed, f_N, theta, phi, n)
    ref = np.linalg.solve(np.einsum("q,qij->ij", theta, A_N)[:n, :n], phi @ f_N[:, :n])
    assert ok
    assert np.allclose(c, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
    assert np.array_equal(x, residual_coefficients(phi[None], theta[None], c[None])[0])


@needs_numba
def test_single_solve_reports_indefinite():
    A_N = np.array([np.eye(3), np.diag([1.0, -1.0, 1.0])])
    _, _, ok = kern.cholesky_solve_one(kernels.packed_symmetric(A_N), np.ones((1, 3)),
                                       np.array([1.0, 2.0]), np.ones(1), 3)
    assert not ok


@needs_numba
def test_orthonormal_norm_matches_the_estimator(small_greedy):
    est = small_greedy.model.estimators["orthonormal"]
    x = np.random.default_rng(4).standard_normal((1, est.R.shape[1] - 3))
    RT = np.ascontiguousarray(est.R.T)
    eps, fp = kern.orthonormal_norm(RT, x[0], est.certificate.weights, est.certificate.eps_factor)
    assert np.isclose(eps, np.linalg.norm(est.R[:, : x.shape[1]] @ x[0]), rtol=1e-14)
    assert np.isclose(fp, est.certificate.delta(x, np.array([eps]))[0], rtol=1e-14)


@pytest.fixture
def numpy_only(monkeypatch):
    """Run ReducedModel without the compiled kernels (as without numba)."""
    monkeypatch.setattr(kernels, "compiled", lambda: None)


def fresh(model: certrb.ReducedModel) -> certrb.ReducedModel:
    """A copy with empty online caches (so that the kernels are looked up again)."""
    return dataclasses.replace(model)


@needs_numba
@pytest.mark.parametrize("estimator", ["orthonormal", "expanded", "eim"])
def test_model_kernels_agree_with_numpy_path(small_problem, small_greedy, estimator, counting, monkeypatch):
    model = fresh(small_greedy.model)
    mus = small_problem.parameter_space.sample(600, rng=5)  # more than one block
    fast = model.evaluate(mus, estimator=estimator, n=5)
    assert {name for name, _ in counting.calls} == {"cholesky_solve_batch"}  # symmetric: the compiled path
    fast_one = model.evaluate(mus[3], estimator=estimator)
    assert ("cholesky_solve_one", True) in counting.calls
    monkeypatch.setattr(kernels, "compiled", lambda: None)
    slow_model = fresh(small_greedy.model)
    slow = slow_model.evaluate(mus, estimator=estimator, n=5)
    slow_one = slow_model.evaluate(mus[3], estimator=estimator)
    for a, b in ((fast, slow), (fast_one, slow_one)):
        assert np.allclose(a.coefficients, b.coefficients, rtol=1e-10, atol=1e-12 * np.abs(b.coefficients).max())
        for name in ("residual_norm", "roundoff", "bound", "relative_bound", "estimate", "stability", "output"):
            assert np.allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-14), name
        assert (a.bound >= a.estimate).all()


def test_numpy_path_without_kernels(small_problem, small_greedy, numpy_only):
    model = fresh(small_greedy.model)
    mus = small_problem.parameter_space.sample(40, rng=6)
    err, _ = certrb.true_error(small_problem, model, mus)
    res = model.evaluate(mus)
    assert (res.bound >= err).all()
    assert res.rigorous
    A = np.einsum("mq,qij->mij", small_problem.operator.theta(mus), model.A_N)
    ref = np.linalg.solve(A, (small_problem.rhs.theta(mus) @ model.f_N)[:, :, None])[:, :, 0]
    assert np.allclose(res.coefficients, ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max())  # LAPACK's LU

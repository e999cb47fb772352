"""Tests of certrb.online.precision: working precisions, the refined dense solve, extended-precision models."""

from __future__ import annotations

import numpy as np
import pytest

import certrb
from certrb.errors import ShapeError
from certrb.online import precision
from certrb.online.solve import ReducedOperators
from certrb.problems import diffusion1d

EPS_EXT = float(np.finfo(np.longdouble).eps)
needs_longdouble = pytest.mark.skipif(EPS_EXT >= 1e-17, reason="numpy.longdouble is not wider than float64 here")


def test_extended_dtype_and_is_extended():
    assert precision.extended_dtype(np.ones(2)) is np.longdouble
    assert precision.extended_dtype(np.ones(2), np.ones(2, dtype=complex)) is np.clongdouble
    assert precision.extended_dtype(np.float64, np.complex128) is np.clongdouble
    assert precision.is_extended(np.ones(2, dtype=np.longdouble))
    assert precision.is_extended(np.ones(2, dtype=np.clongdouble))
    assert not precision.is_extended(np.ones(2))
    assert not precision.is_extended(np.ones(2, dtype=complex))


def test_check_precision():
    for name in precision.PRECISIONS:
        assert precision.check_precision(name) == name
    for bad in ("quad", "Double", None, 64):
        with pytest.raises(ValueError, match="precision must be one of"):
            precision.check_precision(bad)


def test_working_rtol_is_100_eps():
    assert precision.working_rtol(np.float64) == 100 * np.finfo(np.float64).eps
    assert precision.working_rtol(np.dtype(np.longdouble)) == 100 * EPS_EXT
    assert precision.working_rtol(np.longdouble) <= precision.working_rtol(np.float64)


@needs_longdouble
def test_refined_solve_reaches_extended_backward_error():
    """On Hilbert systems (cond up to 1.5e10) the refined residual is ~1000x below a double solve's."""
    for n in (6, 8):
        i = np.arange(n)
        H = (1.0 / (i[:, None] + i[None, :] + 1)).astype(np.longdouble)
        b = (H @ np.ones(n, dtype=np.longdouble))[None, :]
        residuals = []
        for steps in (0, 3):
            c = precision.refined_solve(H[None], b, steps=steps)
            assert c.dtype == np.longdouble
            residuals.append(float(np.max(np.abs(b[0] - H @ c[0]))))
        assert residuals[1] < 1e-2 * residuals[0]


def test_refined_solve_complex_batch_and_validation():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 4, 4)) + 1j * rng.standard_normal((5, 4, 4)) + 4 * np.eye(4)
    b = rng.standard_normal((5, 4)) + 0j
    c = precision.refined_solve(A, b)
    assert c.dtype == np.clongdouble
    assert c.shape == (5, 4)
    np.testing.assert_allclose(np.asarray(c, dtype=complex), np.linalg.solve(A, b[:, :, None])[:, :, 0], rtol=1e-12)
    with pytest.raises(ShapeError, match="A must have shape"):
        precision.refined_solve(A, b[:, :3])
    with pytest.raises(ValueError, match="steps"):
        precision.refined_solve(A, b, steps=-1)


def test_extended_reduced_solve_matches_the_double_solve():
    """Operators stored in extended precision are solved by refined_solve, same contract as in double."""
    rng = np.random.default_rng(4)
    q_a, q_f, N = 3, 2, 5
    A_N = rng.standard_normal((q_a, N, N)) + 5 * np.eye(N)
    f_N = rng.standard_normal((q_f, N))
    theta, phi = rng.uniform(0.5, 1.5, (7, q_a)), rng.standard_normal((7, q_f))
    c_ref, x_ref = ReducedOperators(A_N, f_N).solve(theta, phi, 4)
    c, x = ReducedOperators(A_N.astype(np.longdouble), f_N.astype(np.longdouble)).solve(theta, phi, 4)
    assert c.shape == c_ref.shape == (7, 4)
    assert x.shape == x_ref.shape == (7, q_f + q_a * 4)
    assert c.dtype == x.dtype == np.longdouble
    np.testing.assert_allclose(np.asarray(c, dtype=float), c_ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(x, dtype=float), x_ref, rtol=1e-12, atol=1e-14)


@needs_longdouble
def test_extended_builder_keeps_directions_below_the_double_rtol():
    """A snapshot 1e-15 (relative) off the span is a new direction in extended precision, not in double."""
    problem = diffusion1d(60)
    U = problem.solve(problem.parameter_space.sample(2, rng=7)).T
    e = np.random.default_rng(7).standard_normal((problem.size, 1))
    norms = problem.inner_product.norms
    near = U[:, :1] + 1e-15 * float(norms(U[:, :1])[0] / norms(e)[0]) * e  # X-distance <= 1e-15 ||u||_X
    snapshots = np.column_stack([U, near])
    double = certrb.OfflineBuilder(problem)
    ext = certrb.OfflineBuilder(problem, precision="extended")
    assert double.add_snapshots(snapshots) == 2
    assert ext.add_snapshots(snapshots) == 3
    assert ext.basis.dtype == np.longdouble
    gram = problem.inner_product.gram(np.asarray(ext.basis, dtype=float))
    assert float(np.max(np.abs(gram - np.eye(3)))) < 1e-12


@needs_longdouble
def test_extended_model_lowers_the_galerkin_error_floor():
    """A snapshot parameter is reproduced to extended accuracy by an extended model; a double model costs digits."""
    problem = diffusion1d(2000)
    mus = problem.parameter_space.sample(3, rng=0)
    V = problem.solve(mus, refine=2).T  # an (unorthonormalized) extended basis of truth solutions
    U_ref = problem.solve(mus[:1], refine=3)
    double = certrb.reduce(certrb.OfflineBuilder(problem, certify=False), np.asarray(V, dtype=float))
    ext = certrb.reduce(certrb.OfflineBuilder(problem, precision="extended"), V)
    assert ext.A_N.dtype == ext.basis.dtype == np.longdouble
    assert double.A_N.dtype == np.float64
    ip = problem.inner_product
    norm = float(ip.norms(U_ref.T)[0])

    def error(model):
        return float(ip.norms((U_ref - model.reconstruct(model.solve(mus[:1]))).T)[0]) / norm

    err_d, err_e = error(double), error(ext)
    assert err_e < 1e-13
    assert err_d > 10 * err_e

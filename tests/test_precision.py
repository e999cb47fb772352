"""Tests of certrb.extended: projections, refined solves and reconstruction in extended precision."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

from certrb import extended
from certrb.errors import ShapeError
from certrb.innerproduct import InnerProduct
from certrb.problems import diffusion1d
from certrb.rom import reduced_solve

EPS_EXT = float(np.finfo(np.longdouble).eps)
pytestmark = pytest.mark.skipif(EPS_EXT >= 1e-17, reason="numpy.longdouble is not wider than float64 here")


def laplacian(n: int) -> sp.csr_matrix:
    """1D Dirichlet Laplacian (n x n), condition number ~ 0.4 n^2."""
    return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="csr")


def exact_product(a: sp.spmatrix, v: NDArray) -> list:
    """``a @ v`` in exact rational arithmetic via Python fractions (small sizes only)."""
    from fractions import Fraction

    coo = sp.coo_matrix(a)
    out = [Fraction(0)] * a.shape[0]
    for i, j, x in zip(coo.row, coo.col, coo.data, strict=True):
        out[i] += Fraction(float(x)) * Fraction(float(v[j]))
    return out


def test_extended_dtype_and_is_extended():
    assert extended.extended_dtype(np.ones(2)) is np.longdouble
    assert extended.extended_dtype(np.ones(2), np.ones(2, dtype=complex)) is np.clongdouble
    assert extended.is_extended(np.ones(2, dtype=np.longdouble))
    assert not extended.is_extended(np.ones(2))


def test_project_operator_matches_exact_arithmetic():
    from fractions import Fraction

    rng = np.random.default_rng(0)
    n = 30
    A = laplacian(n) * 1e3
    V = rng.standard_normal((n, 3))
    got = extended.project_operator([A], V)
    assert got.shape == (1, 3, 3)
    assert got.dtype == np.longdouble
    for j in range(3):
        Av = exact_product(A, V[:, j])
        for i in range(3):
            exact = sum((Fraction(float(V[k, i])) * Av[k] for k in range(n)), Fraction(0))
            scale = float(np.abs(V[:, i]) @ (abs(A) @ np.abs(V[:, j])))
            assert abs(float(Fraction(*got[0, i, j].as_integer_ratio()) - exact)) <= 50 * EPS_EXT * scale


def test_project_operator_petrov_galerkin_and_functional():
    rng = np.random.default_rng(1)
    n = 40
    terms = [laplacian(n), sp.identity(n, format="csr")]
    V, W = rng.standard_normal((n, 4)), rng.standard_normal((n, 2))
    got = extended.project_operator(terms, V, W)
    assert got.shape == (2, 2, 4)
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.stack([W.T @ (t @ V) for t in terms]), rtol=1e-12)
    F = rng.standard_normal((3, n))
    f_N = extended.project_functional(F, V)
    assert f_N.shape == (3, 4)
    assert f_N.dtype == np.longdouble
    np.testing.assert_allclose(np.asarray(f_N, dtype=float), F @ V, rtol=1e-12)


def test_project_operator_complex():
    rng = np.random.default_rng(2)
    n = 20
    A = laplacian(n) + 1j * sp.identity(n, format="csr")
    V = rng.standard_normal((n, 3)) + 1j * rng.standard_normal((n, 3))
    got = extended.project_operator([A], V)
    assert got.dtype == np.clongdouble
    np.testing.assert_allclose(np.asarray(got[0], dtype=complex), V.conj().T @ (A @ V), rtol=1e-12)


def test_refined_solve_reaches_extended_backward_error():
    """On Hilbert systems (cond up to 1.5e10) the refined residual is ~1000x below a double solve's."""
    for n in (6, 8):
        i = np.arange(n)
        H = (1.0 / (i[:, None] + i[None, :] + 1)).astype(np.longdouble)
        b = (H @ np.ones(n, dtype=np.longdouble))[None, :]
        residuals = []
        for steps in (0, 3):
            c = extended.refined_solve(H[None], b, steps=steps)
            assert c.dtype == np.longdouble
            residuals.append(float(np.max(np.abs(b[0] - H @ c[0]))))
        assert residuals[1] < 1e-2 * residuals[0]


def test_refined_solve_complex_batch_and_validation():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 4, 4)) + 1j * rng.standard_normal((5, 4, 4)) + 4 * np.eye(4)
    b = rng.standard_normal((5, 4)) + 0j
    c = extended.refined_solve(A, b)
    assert c.dtype == np.clongdouble
    assert c.shape == (5, 4)
    np.testing.assert_allclose(np.asarray(c, dtype=complex), np.linalg.solve(A, b[:, :, None])[:, :, 0], rtol=1e-12)
    with pytest.raises(ShapeError, match="A must have shape"):
        extended.refined_solve(A, b[:, :3])
    with pytest.raises(ValueError, match="steps"):
        extended.refined_solve(A, b, steps=-1)


def test_refined_reduced_solve_matches_reduced_solve_contract():
    rng = np.random.default_rng(4)
    q_a, q_f, N = 3, 2, 5
    A_N = rng.standard_normal((q_a, N, N)) + 5 * np.eye(N)
    f_N = rng.standard_normal((q_f, N))
    theta, phi = rng.uniform(0.5, 1.5, (7, q_a)), rng.standard_normal((7, q_f))
    c_ref, x_ref = reduced_solve(A_N, f_N, theta, phi, 4)
    c, x = extended.refined_reduced_solve(A_N, f_N, theta, phi, 4)
    assert c.shape == c_ref.shape
    assert x.shape == x_ref.shape
    assert c.dtype == x.dtype == np.longdouble
    np.testing.assert_allclose(np.asarray(c, dtype=float), c_ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(x, dtype=float), x_ref, rtol=1e-12, atol=1e-14)
    with pytest.raises(ShapeError):
        extended.refined_reduced_solve(A_N, f_N, theta, phi, N + 1)


def test_reconstruct_extended():
    rng = np.random.default_rng(5)
    V, c = rng.standard_normal((10, 4)), rng.standard_normal((3, 2))
    U = extended.reconstruct(V, c)
    assert U.shape == (3, 10)
    assert U.dtype == np.longdouble
    np.testing.assert_allclose(np.asarray(U, dtype=float), c @ V[:, :2].T, rtol=1e-13)
    with pytest.raises(ShapeError):
        extended.reconstruct(V, rng.standard_normal((3, 5)))


def test_best_approximation_error_is_the_projection_remainder():
    rng = np.random.default_rng(6)
    n = 50
    ip = InnerProduct(laplacian(n))
    V = rng.standard_normal((n, 3))
    U = np.vstack([V @ [1.0, -2.0, 0.5], rng.standard_normal(n)])
    err = np.asarray(extended.best_approximation_error(ip, V, U), dtype=float)
    assert err[0] < 1e-12 * np.sqrt(U[0] @ (ip.matrix @ U[0]))
    w = np.linalg.solve(V.T @ (ip.matrix @ V), V.T @ (ip.matrix @ U[1]))
    e = U[1] - V @ w
    np.testing.assert_allclose(err[1], np.sqrt(e @ (ip.matrix @ e)), rtol=1e-10)


def test_extend_orthonormal_factor_keeps_directions_below_double_rtol():
    """A representative 1e-15 (relative) off the span is kept in extended precision, dropped by rtol=1e-14."""
    n = 60
    ip = InnerProduct(laplacian(n))
    rng = np.random.default_rng(7)
    base = rng.standard_normal((n, 2)).astype(np.longdouble)
    third = base[:, 0] + np.longdouble(1e-15) * rng.standard_normal(n).astype(np.longdouble)
    rho = np.column_stack([base, third])
    empty = np.zeros((n, 0), dtype=np.longdouble)
    psi, R = extended.extend_orthonormal_factor(empty, np.zeros((0, 0), dtype=np.longdouble), rho, ip)
    assert R.shape == (3, 3)
    assert R.dtype == np.longdouble
    _, R_d = extended.extend_orthonormal_factor(empty, np.zeros((0, 0), dtype=np.longdouble), rho, ip, rtol=1e-14)
    assert R_d.shape == (2, 3)
    # psi R reproduces rho to extended precision; psi is X-orthonormal
    assert float(np.max(np.abs(psi @ R - rho))) < 1e3 * EPS_EXT * float(np.max(np.abs(rho)))
    gram = psi.T @ (ip.matrix.astype(np.longdouble) @ psi)
    assert float(np.max(np.abs(gram - np.eye(3)))) < 1e-15
    # extend incrementally: same factor as in one go
    psi2, R2 = extended.extend_orthonormal_factor(empty, np.zeros((0, 0), dtype=np.longdouble), rho[:, :2], ip)
    psi2, R2 = extended.extend_orthonormal_factor(psi2, R2, rho[:, 2:], ip)
    np.testing.assert_allclose(np.asarray(R2, dtype=float), np.asarray(R, dtype=float), rtol=1e-12, atol=1e-12)


def test_extended_projection_lowers_the_galerkin_error_floor():
    """A snapshot parameter is reproduced to extended accuracy; a double projection costs digits."""
    problem = diffusion1d(2000)
    mus = problem.parameter_space.sample(3, rng=0)
    V = problem.solve(mus, refine=2).T  # an (unorthonormalized) extended basis of truth solutions
    U_ref = problem.solve(mus[:1], refine=3)
    theta, phi = problem.operator.theta(mus[:1]), problem.rhs.theta(mus[:1])
    Vd = np.asarray(V, dtype=float)
    c_d, _ = reduced_solve(problem.operator.project(Vd), problem.rhs.project(Vd), theta, phi, 3)
    A_ext = extended.project_operator(problem.operator.terms, V)
    c_e, _ = extended.refined_reduced_solve(A_ext, extended.project_functional(problem.rhs.terms, V), theta, phi, 3)
    ip = problem.inner_product
    norm = float(ip.norms(U_ref.T)[0])
    err_d = float(ip.norms((U_ref - extended.reconstruct(Vd, c_d)).T)[0]) / norm
    err_e = float(ip.norms((U_ref - extended.reconstruct(V, c_e)).T)[0]) / norm
    assert err_e < 1e-13
    assert err_d > 10 * err_e

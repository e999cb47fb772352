"""InnerProduct: Riesz map, norms, extended-precision refinement and validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

from certrb import InnerProduct, InnerProductError
from conftest import p1_matrices


@pytest.fixture(scope="module")
def stiffness():
    K, M, _, _ = p1_matrices(50)
    return K, M


@pytest.fixture(scope="module")
def ip(stiffness):
    return InnerProduct(stiffness[0])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _complex_hermitian(n, rng):
    """A sparse complex Hermitian positive definite matrix (tridiagonal, diagonally dominant)."""
    off = rng.standard_normal(n - 1) + 1j * rng.standard_normal(n - 1)
    diag = 2.0 * (np.abs(np.r_[off, 0.0]) + np.abs(np.r_[0.0, off])) + 1.0
    X = sp.diags([off.conj(), diag, off], [-1, 0, 1], format="csr")
    return X


def _ill_conditioned(n, rng):
    """D K D with K the P1 stiffness and D a diagonal scaling over 4 decades: cond ~ 1e12."""
    K = p1_matrices(n + 1)[0]
    D = sp.diags(np.exp(rng.uniform(-5.0, 5.0, K.shape[0])))
    return sp.csr_matrix(D @ K @ D)


def _residual_ext(X, g, z):
    Xe = sp.csr_matrix(X).astype(np.clongdouble if np.iscomplexobj(X.data) else np.longdouble)
    r = np.asarray(g).astype(Xe.dtype) - Xe @ np.asarray(z).astype(Xe.dtype)
    return float(np.max(np.abs(r)) / np.max(np.abs(g)))


# --- construction -------------------------------------------------------------------------


def test_properties(ip, stiffness):
    assert ip.size == stiffness[0].shape[0]
    assert sp.issparse(ip.matrix)
    assert ip.matrix.dtype == np.float64


def test_accepts_dense_and_int():
    ip = InnerProduct(np.array([[2, -1], [-1, 2]]))
    assert ip.matrix.dtype == np.float64
    np.testing.assert_allclose(ip.riesz(np.array([1.0, 0.0])), [2 / 3, 1 / 3])


def test_tiny_asymmetry_tolerated(stiffness, rng):
    X = stiffness[0].tolil()
    X[0, 1] += 1e-14
    X = X.tocsr()
    ip = InnerProduct(X)
    assert (ip.matrix != X).nnz == 0  # kept as given, not symmetrized
    g = rng.standard_normal(ip.size)
    np.testing.assert_allclose(X @ ip.riesz(g), g, atol=1e-12 * np.max(np.abs(g)))


def test_non_hermitian(stiffness):
    X = stiffness[0].tolil()
    X[0, 1] += 1e-6
    with pytest.raises(InnerProductError, match="not Hermitian"):
        InnerProduct(X.tocsr())


def test_complex_non_hermitian(rng):
    X = _complex_hermitian(8, rng)
    with pytest.raises(InnerProductError, match="not Hermitian"):
        InnerProduct(X + 1j * sp.eye(8))  # imaginary diagonal
    with pytest.raises(InnerProductError, match="not Hermitian"):
        InnerProduct(sp.csr_matrix(X.T) + sp.triu(X, 1) - sp.triu(X, 1).conj())  # complex symmetric


@pytest.mark.parametrize(
    "matrix",
    [
        np.diag([1.0, -1.0, 2.0]),  # indefinite diagonal
        np.array([[1.0, 2.0], [2.0, 1.0]]),  # indefinite, positive diagonal
        np.array([[0.0, 1.0], [1.0, 0.0]]),  # zero diagonal
        -np.eye(4),  # negative definite
        np.array([[2.0, -1.0], [-1.0, -0.1]]),
    ],
)
def test_not_positive_definite(matrix):
    with pytest.raises(InnerProductError):
        InnerProduct(matrix)


def test_negative_definite_stiffness(stiffness):
    with pytest.raises(InnerProductError, match="positive definite"):
        InnerProduct(-stiffness[0])


def test_indefinite_shifted_stiffness(stiffness):
    K, M = stiffness
    # generalized eigenvalues of (K, M) start at ~pi^2: K - 20 M has exactly one negative direction
    with pytest.raises(InnerProductError, match="positive definite"):
        InnerProduct(K - 20.0 * M)


@pytest.mark.parametrize(
    "matrix",
    [
        np.array([[1.0, 1.0], [1.0, 1.0]]),
        np.array([[1.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 1.0]]),  # Neumann Laplacian
        np.diag([1.0, 0.0, 1.0]),
        np.zeros((3, 3)),
    ],
)
def test_singular(matrix):
    with pytest.raises(InnerProductError):
        InnerProduct(matrix)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite(bad):
    X = np.eye(3)
    X[1, 1] = bad
    with pytest.raises(InnerProductError, match="NaN or infinite"):
        InnerProduct(X)


@pytest.mark.parametrize("shape", [(3, 4), (0, 0), (4, 1)])
def test_non_square_or_empty(shape):
    with pytest.raises(InnerProductError, match="square"):
        InnerProduct(np.ones(shape))


def test_error_is_value_error():
    with pytest.raises(ValueError, match="positive definite"):
        InnerProduct(-np.eye(2))


# --- Riesz map and norms ------------------------------------------------------------------


def test_riesz_solves(ip, stiffness, rng):
    K = stiffness[0]
    g = rng.standard_normal(ip.size)
    z = ip.riesz(g)
    assert z.shape == g.shape
    assert z.dtype == np.float64
    assert np.linalg.norm(K @ z - g) <= 1e-12 * np.linalg.norm(g) * np.linalg.norm(K.toarray(), 2)
    np.testing.assert_allclose(z, np.linalg.solve(K.toarray(), g), rtol=1e-10)


def test_riesz_block_and_complex_rhs(ip, stiffness, rng):
    K = stiffness[0].toarray()
    G = rng.standard_normal((ip.size, 3)) + 1j * rng.standard_normal((ip.size, 3))
    Z = ip.riesz(G)
    assert Z.shape == (ip.size, 3)
    assert Z.dtype == np.complex128
    np.testing.assert_allclose(Z, np.linalg.solve(K, G), rtol=1e-10)


def test_riesz_complex_hermitian(rng):
    X = _complex_hermitian(30, rng)
    ip = InnerProduct(X)
    assert ip.matrix.dtype == np.complex128
    g = rng.standard_normal(30) + 1j * rng.standard_normal(30)
    np.testing.assert_allclose(ip.riesz(g), np.linalg.solve(X.toarray(), g), rtol=1e-12)
    # a real functional under a complex inner product has a complex representative
    gr = rng.standard_normal(30)
    zr = ip.riesz(gr)
    np.testing.assert_allclose(X @ zr, gr, atol=1e-12)
    assert np.max(np.abs(zr.imag)) > 1e-3


def test_refine_returns_extended_with_smaller_residual(rng):
    X = _ill_conditioned(400, rng)
    ip = InnerProduct(X)
    g = rng.standard_normal(ip.size)
    z0 = ip.riesz(g)
    z1 = ip.riesz(g, refine=1)
    z2 = ip.riesz(g, refine=2)
    assert z0.dtype == np.float64
    assert z1.dtype == np.longdouble
    assert z2.dtype == np.longdouble
    r0, r1, r2 = (_residual_ext(X, g, z) for z in (z0, z1, z2))
    assert r0 > 1e-12  # double precision leaves a visible residual here
    assert r1 < 1e-2 * r0
    assert r2 <= 1.5 * r1
    # the refined solution is not just the double solution cast up
    assert np.max(np.abs(z2 - z0.astype(np.longdouble))) > 0


def test_refine_complex_hermitian_extended(rng):
    X = _complex_hermitian(40, rng) + sp.diags(np.exp(rng.uniform(-8, 8, 40)))
    ip = InnerProduct(X)
    g = rng.standard_normal(40) + 1j * rng.standard_normal(40)
    z = ip.riesz(g, refine=2)
    assert z.dtype == np.clongdouble
    assert _residual_ext(X, g, z) <= _residual_ext(X, g, ip.riesz(g)) + 1e-18


def test_gram_and_norms(ip, stiffness, rng):
    K = stiffness[0].toarray()
    U = rng.standard_normal((ip.size, 3)) + 1j * rng.standard_normal((ip.size, 3))
    W = rng.standard_normal((ip.size, 2))
    np.testing.assert_allclose(ip.gram(U, W), W.conj().T @ K @ U, rtol=1e-12)
    G = ip.gram(U)
    np.testing.assert_allclose(G, G.conj().T, rtol=1e-12)
    np.testing.assert_allclose(ip.norms(U), np.sqrt(np.real(np.diag(U.conj().T @ K @ U))), rtol=1e-12)


def test_dual_norms_dense_formula(ip, stiffness, rng):
    K = stiffness[0].toarray()
    G = rng.standard_normal((ip.size, 4))
    expected = np.sqrt(np.einsum("hk,hk->k", G, np.linalg.solve(K, G)))
    d = ip.dual_norms(G)
    assert d.shape == (4,)
    np.testing.assert_allclose(d, expected, rtol=1e-12)
    # duality: ||g||_{V'} = ||X^{-1} g||_V
    np.testing.assert_allclose(d, ip.norms(ip.riesz(G)), rtol=1e-12)
    d_ext = ip.dual_norms(G, refine=1)
    assert d_ext.dtype == np.longdouble
    np.testing.assert_allclose(d_ext.astype(float), expected, rtol=1e-12)


def test_dual_norms_complex(rng):
    X = _complex_hermitian(25, rng)
    ip = InnerProduct(X)
    G = rng.standard_normal((25, 3)) + 1j * rng.standard_normal((25, 3))
    L = sla.cholesky(X.toarray(), lower=True)
    expected = np.linalg.norm(sla.solve_triangular(L, G, lower=True), axis=0)  # ||L^{-1} g||_2
    np.testing.assert_allclose(ip.dual_norms(G), expected, rtol=1e-12)
    np.testing.assert_allclose(ip.dual_norms(G, refine=2).astype(float), expected, rtol=1e-12)

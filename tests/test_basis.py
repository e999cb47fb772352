"""Reduced bases: X-orthonormality, nestedness, span rejection, QR coefficients, POD."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from certrb import InnerProduct, ShapeError, extend, gram_schmidt, pod
from certrb.offline.basis import orthonormalize, qr_extend
from conftest import p1_matrices

N_H = 60


@pytest.fixture(scope="module")
def ip():
    return InnerProduct(p1_matrices(N_H + 1)[0])  # stiffness: cond ~ 1e3, far from the identity


@pytest.fixture(scope="module")
def complex_ip():
    rng = np.random.default_rng(5)
    off = rng.standard_normal(N_H - 1) + 1j * rng.standard_normal(N_H - 1)
    diag = 2.0 * (np.abs(np.r_[off, 0.0]) + np.abs(np.r_[0.0, off])) + 0.1
    return InnerProduct(sp.diags([off.conj(), diag, off], [-1, 0, 1], format="csr"))


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def _orth_defect(V, ip):
    return float(np.max(np.abs(ip.gram(V) - np.eye(V.shape[1])), initial=0.0))


# --- gram_schmidt / extend ----------------------------------------------------------------


def test_gram_schmidt_orthonormal(ip, rng):
    W = rng.standard_normal((N_H, 10))
    V = gram_schmidt(W, ip)
    assert V.shape == (N_H, 10)
    assert _orth_defect(V, ip) < 1e-12
    # same span: the projection of W onto span(V) reproduces W
    P = V @ ip.gram(W, V)
    np.testing.assert_allclose(P, W, atol=1e-10 * np.max(np.abs(W)))


def test_gram_schmidt_ill_conditioned_input(ip, rng):
    # a Vandermonde-like block: columns nearly parallel, cond ~ 1e10
    x = np.linspace(0.0, 1.0, N_H)
    W = np.column_stack([x**k for k in range(8)])
    V = gram_schmidt(W, ip)
    assert V.shape == (N_H, 8)
    assert _orth_defect(V, ip) < 1e-12


def test_gram_schmidt_drops_dependent_columns(ip, rng):
    A = rng.standard_normal((N_H, 4))
    W = np.column_stack([A[:, 0], A[:, 1], A[:, 0] - 2 * A[:, 1], A[:, 2], np.zeros(N_H), A[:, 3]])
    V = gram_schmidt(W, ip)
    assert V.shape == (N_H, 4)
    assert _orth_defect(V, ip) < 1e-12


def test_gram_schmidt_empty(ip):
    assert gram_schmidt(np.zeros((N_H, 0)), ip).shape == (N_H, 0)


def test_extend_nested(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 5)), ip)
    W = rng.standard_normal((N_H, 3))
    V2, accepted = extend(V, W, ip)
    assert V2.shape == (N_H, 8)
    np.testing.assert_array_equal(accepted, [True, True, True])
    np.testing.assert_array_equal(V2[:, :5], V)  # first columns unchanged, bit for bit
    assert _orth_defect(V2, ip) < 1e-12
    # extending one at a time gives the same result as a block
    V3 = V
    for j in range(3):
        V3, _ = extend(V3, W[:, j : j + 1], ip)
    np.testing.assert_allclose(V3, V2, atol=1e-12)


def test_extend_rejects_vector_in_span(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 5)), ip)
    w = V @ rng.standard_normal((5, 1))
    V2, accepted = extend(V, w, ip)
    assert V2.shape == V.shape
    np.testing.assert_array_equal(accepted, [False])
    np.testing.assert_array_equal(V2, V)


def test_extend_rtol_threshold(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 5)), ip)
    base = V @ rng.standard_normal(5)
    e = rng.standard_normal(N_H)
    e -= V @ ip.gram(e[:, None], V)[:, 0]  # X-orthogonal to span(V)
    e /= ip.norms(e[:, None])[0]
    nrm = ip.norms(base[:, None])[0]
    tiny = base + 1e-14 * nrm * e  # relative distance 1e-14 < rtol = 1e-12
    small = base + 1e-9 * nrm * e  # relative distance 1e-9
    _, acc = extend(V, np.column_stack([tiny]), ip)
    np.testing.assert_array_equal(acc, [False])
    V2, acc = extend(V, np.column_stack([small]), ip)
    np.testing.assert_array_equal(acc, [True])
    assert _orth_defect(V2, ip) < 1e-12  # re-orthogonalization handles heavy cancellation
    # the new direction is e (up to sign)
    assert abs(abs(ip.gram(V2[:, -1:], e[:, None])[0, 0]) - 1.0) < 1e-6
    _, acc = extend(V, np.column_stack([small]), ip, rtol=1e-8)
    np.testing.assert_array_equal(acc, [False])


def test_extend_rejects_zero_and_duplicates(ip, rng):
    w = rng.standard_normal((N_H, 1))
    V, acc = extend(np.zeros((N_H, 0)), np.column_stack([np.zeros(N_H), w, 3.0 * w]), ip)
    np.testing.assert_array_equal(acc, [False, True, False])
    assert V.shape == (N_H, 1)


def test_extend_shape_errors(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 2)), ip)
    with pytest.raises(ShapeError, match="share n_h"):
        extend(V, rng.standard_normal((N_H + 1, 1)), ip)
    with pytest.raises(ShapeError):
        extend(V, rng.standard_normal(N_H), ip)
    with pytest.raises(ShapeError):
        extend(V[:, 0], rng.standard_normal((N_H, 1)), ip)


# --- qr_extend ----------------------------------------------------------------------------


def test_qr_extend_reproduces_vectors(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 3)), ip)
    W = rng.standard_normal((N_H, 4))
    Q, R, accepted = qr_extend(V, W, ip)
    assert Q.shape == (N_H, 7)
    assert R.shape == (7, 4)
    assert accepted.all()
    np.testing.assert_allclose(Q @ R, W, atol=1e-12 * np.max(np.abs(W)))
    # coefficients are the X-inner products with the basis
    np.testing.assert_allclose(R, ip.gram(W, Q), atol=1e-12)
    # new rows are upper triangular with a positive diagonal (the norms of the remainders)
    new = R[3:]
    np.testing.assert_array_equal(np.tril(new, -1), 0.0)
    assert np.all(np.diag(new) > 0)


def test_qr_extend_with_rejected_columns(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 2)), ip)
    a, b = rng.standard_normal((N_H, 1)), rng.standard_normal((N_H, 1))
    W = np.column_stack([a, V @ np.array([1.0, -2.0]), b, a + b])
    Q, R, accepted = qr_extend(V, W, ip)
    np.testing.assert_array_equal(accepted, [True, False, True, False])
    assert Q.shape == (N_H, 4)
    assert R.shape == (4, 4)
    np.testing.assert_allclose(Q @ R, W, atol=1e-12 * np.max(np.abs(W)))
    np.testing.assert_allclose(R[:2, 1], [1.0, -2.0], atol=1e-12)
    np.testing.assert_allclose(R[2:, 1], 0.0, atol=1e-12)


def test_qr_extend_complex(complex_ip, rng):
    W = rng.standard_normal((N_H, 5)) + 1j * rng.standard_normal((N_H, 5))
    Q, R, accepted = qr_extend(np.zeros((N_H, 0), dtype=complex), W, complex_ip)
    assert accepted.all()
    assert Q.dtype == np.complex128
    assert _orth_defect(Q, complex_ip) < 1e-12
    np.testing.assert_allclose(Q @ R, W, atol=1e-12 * np.max(np.abs(W)))
    np.testing.assert_array_equal(np.tril(R, -1), 0.0)


def test_gram_schmidt_complex(complex_ip, rng):
    W = rng.standard_normal((N_H, 6)) + 1j * rng.standard_normal((N_H, 6))
    V = gram_schmidt(W, complex_ip)
    assert V.dtype == np.complex128
    assert _orth_defect(V, complex_ip) < 1e-12


def test_extend_real_basis_by_complex_vectors(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 2)), ip)
    W = rng.standard_normal((N_H, 2)) + 1j * rng.standard_normal((N_H, 2))
    V2, accepted = extend(V, W, ip)
    assert accepted.all()
    assert V2.dtype == np.complex128
    assert _orth_defect(V2, ip) < 1e-12


def test_gram_schmidt_real_vectors_complex_inner_product(complex_ip, rng):
    # real vectors under a complex Hermitian inner product: the basis must become complex
    W = rng.standard_normal((N_H, 4))
    V = gram_schmidt(W, complex_ip)
    assert V.shape == (N_H, 4)
    assert _orth_defect(V, complex_ip) < 1e-12
    np.testing.assert_allclose(V @ complex_ip.gram(W, V), W, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 12),
    rank=st.integers(1, 12),
    log_scale=st.floats(-6, 6),
    complex_=st.booleans(),
)
def test_gram_schmidt_property(ip, seed, k, rank, log_scale, complex_):
    rng = np.random.default_rng(seed)
    r = min(rank, k)
    A = rng.standard_normal((N_H, r))
    C = rng.standard_normal((r, k))
    if complex_:
        A = A + 1j * rng.standard_normal((N_H, r))
    W = (10.0**log_scale) * (A @ C)  # exact rank r, arbitrary scale
    V = gram_schmidt(W, ip)
    assert V.shape[1] == r
    assert _orth_defect(V, ip) < 1e-12
    np.testing.assert_allclose(V @ ip.gram(W, V), W, atol=1e-10 * np.max(np.abs(W)))


# --- POD ----------------------------------------------------------------------------------


def _x_singular_values(S, ip):
    L = sla.cholesky(ip.matrix.toarray(), lower=True)  # X = L L^T, ||v||_X = ||L^T v||
    return np.linalg.svd(L.T @ S, compute_uv=False)


def test_pod_modes_and_singular_values(ip, rng):
    S = rng.standard_normal((N_H, 15)) @ np.diag(np.logspace(0, -3, 15))
    modes, sv = pod(S, ip)
    assert sv.shape == (15,)
    assert np.all(np.diff(sv) <= 0)
    np.testing.assert_allclose(sv, _x_singular_values(S, ip), rtol=1e-8)
    assert modes.shape == (N_H, 15)
    assert _orth_defect(modes, ip) < 1e-12


def test_pod_truncation_error(ip, rng):
    S = rng.standard_normal((N_H, 12)) @ np.diag(np.logspace(0, -4, 12)) @ rng.standard_normal((12, 12))
    modes, sv = pod(S, ip, n=5)
    assert modes.shape == (N_H, 5)
    # Schmidt-Eckart-Young in the X norm: squared projection error = sum of discarded sv^2
    E = S - modes @ ip.gram(S, modes)
    err2 = float(np.sum(ip.norms(E) ** 2))
    np.testing.assert_allclose(err2, np.sum(sv[5:] ** 2), rtol=1e-6)


def test_pod_low_rank_snapshots(ip, rng):
    k = 4
    S = rng.standard_normal((N_H, k)) @ rng.standard_normal((k, 20))
    modes, sv = pod(S, ip)
    assert modes.shape == (N_H, k)
    assert _orth_defect(modes, ip) < 1e-12
    assert np.all(sv[k:] < 1e-7 * sv[0])
    assert sv[k - 1] > 1e-3 * sv[0]
    # the modes span the snapshots
    np.testing.assert_allclose(modes @ ip.gram(S, modes), S, atol=1e-10 * np.max(np.abs(S)))


def test_pod_complex(complex_ip, rng):
    S = (rng.standard_normal((N_H, 3)) + 1j * rng.standard_normal((N_H, 3))) @ rng.standard_normal((3, 9))
    modes, sv = pod(S, complex_ip)
    assert modes.shape == (N_H, 3)
    assert modes.dtype == np.complex128
    assert _orth_defect(modes, complex_ip) < 1e-12
    assert np.all(np.diff(sv) <= 0)


def test_pod_zero_snapshots(ip):
    modes, sv = pod(np.zeros((N_H, 3)), ip)
    assert modes.shape == (N_H, 0)
    np.testing.assert_array_equal(sv, 0.0)


def test_orthonormalize_matches_qr_extend(ip, rng):
    V = gram_schmidt(rng.standard_normal((N_H, 5)), ip)
    W = rng.standard_normal((N_H, 3))
    new, R, accepted = orthonormalize(np.asfortranarray(V), W, ip)
    Q, R2, accepted2 = qr_extend(V, W, ip)
    np.testing.assert_array_equal(Q[:, 5:], new)
    np.testing.assert_array_equal(R, R2)
    np.testing.assert_array_equal(accepted, accepted2)
    assert _orth_defect(np.column_stack([V, new]), ip) < 1e-12
    np.testing.assert_allclose(np.column_stack([V, new]) @ R, W, atol=1e-12 * np.abs(W).max())

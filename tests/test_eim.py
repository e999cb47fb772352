"""Empirical interpolation of vector families, plain and stabilized."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certrb.eim import EIMBasis, eim_greedy, interpolation_coefficients


def _interpolate(basis: EIMBasis, x: np.ndarray, stabilized: bool | None = None) -> np.ndarray:
    st_ = basis.stabilized if stabilized is None else stabilized
    lam = interpolation_coefficients(basis.vectors, basis.indices, basis.matrix, x, stabilized=st_)
    return lam @ basis.vectors


def _rel_remainder(basis, x, stabilized=None):
    """Per-vector max-norm remainder ||x - I[x]||_inf / ||x||_inf."""
    return np.max(np.abs(x - _interpolate(basis, x, stabilized)), axis=1) / np.max(np.abs(x), axis=1)


def _smooth_family(mus, t):
    return 1.0 / (1.0 + mus[:, None] * t[None, :])


@pytest.fixture(scope="module")
def t_grid():
    return np.linspace(0.0, 1.0, 80)


@pytest.fixture(scope="module")
def smooth_train(t_grid):
    return _smooth_family(np.linspace(0.0, 50.0, 300), t_grid)


@pytest.fixture(scope="module")
def smooth_test(t_grid):
    return _smooth_family(np.random.default_rng(0).uniform(0.0, 50.0, 150), t_grid)


def _low_rank(rng, n, k, r, complex_=False):
    B = rng.standard_normal((r, k))
    C = rng.standard_normal((n, r))
    if complex_:
        B = B + 1j * rng.standard_normal((r, k))
        C = C + 1j * rng.standard_normal((n, r))
    return C @ B, B


# --- structure ----------------------------------------------------------------------------


@pytest.mark.parametrize("stabilized", [False, True])
def test_basis_structure(smooth_train, stabilized):
    b = eim_greedy(smooth_train, max_terms=12, stabilized=stabilized)
    m = b.size
    assert m == 12
    assert b.stabilized is stabilized
    assert b.vectors.shape == (m, 80)
    assert b.indices.shape == (m,)
    assert b.matrix.shape == (m, m)
    assert b.errors.shape == (m + 1,)
    assert b.selected.shape == (m,)
    assert len(set(b.indices.tolist())) == m  # distinct magic indices
    assert len(set(b.selected.tolist())) == m  # a training vector is never chosen twice
    # B[i, j] = q_j[k_i]; unit diagonal; lower triangular (upper part at round-off)
    np.testing.assert_array_equal(b.matrix, b.vectors[:, b.indices].T)
    np.testing.assert_array_equal(np.diag(b.matrix), 1.0)
    assert np.max(np.abs(np.triu(b.matrix, 1))) < 1e-12
    # each q_j is scaled to 1 at its magic index, which is where it peaks
    np.testing.assert_allclose(np.max(np.abs(b.vectors), axis=1), 1.0, rtol=1e-12)


def test_first_step_picks_largest(smooth_train):
    b = eim_greedy(smooth_train, max_terms=1)
    norms = np.max(np.abs(smooth_train), axis=1)
    assert norms[b.selected[0]] == norms.max()
    assert b.errors[0] == norms.max()
    x = smooth_train[b.selected[0]]
    assert abs(x[b.indices[0]]) == np.max(np.abs(x))
    np.testing.assert_allclose(b.vectors[0], x / x[b.indices[0]])


@pytest.mark.parametrize("stabilized", [False, True])
def test_errors_history_matches_remainders(smooth_train, stabilized):
    b = eim_greedy(smooth_train, max_terms=7, stabilized=stabilized)
    for m in range(1, 8):
        sub = EIMBasis(b.vectors[:m], b.indices[:m], b.matrix[:m, :m], b.errors[: m + 1], b.selected[:m], stabilized)
        rem = np.max(np.abs(smooth_train - _interpolate(sub, smooth_train)))
        np.testing.assert_allclose(b.errors[m], rem, rtol=1e-9, atol=1e-15)


# --- interpolation property and exact reproduction ----------------------------------------


@pytest.mark.parametrize("stabilized", [False, True])
def test_interpolation_at_magic_indices(smooth_train, smooth_test, stabilized):
    b = eim_greedy(smooth_train, max_terms=10, stabilized=stabilized)
    Ix = _interpolate(b, smooth_test)
    np.testing.assert_allclose(Ix[:, b.indices], smooth_test[:, b.indices], rtol=0, atol=1e-14)


@pytest.mark.parametrize("stabilized", [False, True])
@pytest.mark.parametrize("complex_", [False, True])
def test_exact_reproduction_of_span(stabilized, complex_):
    rng = np.random.default_rng(3)
    train, B = _low_rank(rng, 200, 50, 7, complex_)
    b = eim_greedy(train, stabilized=stabilized)
    assert b.size == 7
    assert b.vectors.dtype == train.dtype
    assert b.errors[-1] <= 1e-13 * b.errors[0]
    test = (rng.standard_normal((100, 7)) + (1j * rng.standard_normal((100, 7)) if complex_ else 0)) @ B
    assert np.max(_rel_remainder(b, test)) < 1e-13
    np.testing.assert_allclose(_interpolate(b, test)[:, b.indices], test[:, b.indices], atol=1e-13)


def test_zero_family():
    b = eim_greedy(np.zeros((5, 6)))
    assert b.size == 0
    np.testing.assert_array_equal(b.errors, [0.0])
    assert interpolation_coefficients(b.vectors, b.indices, b.matrix, np.ones((2, 6)), stabilized=True).shape == (2, 0)


def test_max_terms_respected(smooth_train):
    for m in (0, 1, 5):
        b = eim_greedy(smooth_train, max_terms=m)
        assert b.size == m
        assert b.errors.size == m + 1
    assert eim_greedy(smooth_train[:, :6], max_terms=100).size <= 6  # never more than K


def test_rtol_stops_greedy(smooth_train):
    b = eim_greedy(smooth_train, rtol=1e-4)
    assert b.errors[-1] <= 1e-4 * np.max(np.abs(smooth_train))
    assert b.errors[-2] > 1e-4 * np.max(np.abs(smooth_train))
    assert b.size < eim_greedy(smooth_train, rtol=1e-8).size


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_family(bad):
    # must be refused, not turned into a NaN basis (NaN) or an empty one with errors [inf] (inf)
    fam = np.ones((3, 4))
    fam[1, 2] = bad
    with pytest.raises(ValueError, match="family"):
        eim_greedy(fam)


def test_family_must_be_2d():
    with pytest.raises(ValueError):  # noqa: PT011
        eim_greedy(np.ones(4))


# --- convergence on a smooth family -------------------------------------------------------


@pytest.mark.parametrize("stabilized", [False, True])
def test_decay_smooth_family(smooth_train, smooth_test, stabilized):
    b = eim_greedy(smooth_train, stabilized=stabilized)
    e = b.errors / b.errors[0]
    # non-increasing up to small bumps, and fast (exponential) decay
    assert np.all(e[1:] <= 1.5 * e[:-1])
    assert e[10] < 1e-4
    assert e[-1] < 1e-12
    assert b.size <= 30
    # generalization to unseen parameters
    assert np.max(_rel_remainder(b, smooth_test)) < 1e-11
    # the default stopping rule: 10 K eps relative
    assert b.errors[-1] <= 10 * 80 * np.finfo(float).eps * np.max(np.abs(smooth_train))


def test_stabilized_equals_plain_when_well_conditioned(smooth_train, smooth_test):
    plain = eim_greedy(smooth_train, max_terms=10)
    stab = eim_greedy(smooth_train, max_terms=10, stabilized=True)
    np.testing.assert_array_equal(plain.indices, stab.indices)
    np.testing.assert_array_equal(plain.selected, stab.selected)
    np.testing.assert_allclose(plain.vectors, stab.vectors, atol=1e-12)
    np.testing.assert_allclose(plain.errors, stab.errors, rtol=1e-9)
    np.testing.assert_allclose(_interpolate(plain, smooth_test), _interpolate(stab, smooth_test), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 12))
def test_stabilized_remainder_never_larger(smooth_train, seed, m):
    # the stabilized interpolant starts from the plain one and only accepts sweeps that shrink
    # the max-norm remainder: per vector it is never worse, whatever the basis (up to round-off)
    rng = np.random.default_rng(seed)
    b = eim_greedy(smooth_train, max_terms=m)
    x = _smooth_family(rng.uniform(0.0, 50.0, 20), np.linspace(0.0, 1.0, 80)) + 1e-3 * rng.standard_normal((20, 80))
    plain = np.max(np.abs(x - _interpolate(b, x, stabilized=False)), axis=1)
    stab = np.max(np.abs(x - _interpolate(b, x, stabilized=True)), axis=1)
    # up to the round-off of recomputing x - lam Q from the final coefficients
    assert np.all(stab <= plain * (1 + 1e-10) + 1e-14 * np.max(np.abs(x)))


def test_stabilized_on_ill_conditioned_interpolation():
    # a family whose EIM matrix has an exponentially large inverse (B = I - strictly lower a):
    # the remainder of vectors in its span is limited by round-off times the Lebesgue constant
    m, a = 40, 0.9
    rng = np.random.default_rng(0)
    fam = np.zeros((m, 2 * m))
    for j in range(m):
        fam[j, j] = 1.0
        fam[j, j + 1 : m] = -a
    fam[:, m:] = 0.5 * rng.uniform(-1.0, 1.0, (m, m))
    test = rng.standard_normal((100, m)) @ fam
    plain = eim_greedy(fam)
    stab = eim_greedy(fam, stabilized=True)
    assert plain.size == stab.size == m
    np.testing.assert_array_equal(plain.indices, np.arange(m))
    assert np.max(np.abs(np.linalg.inv(plain.matrix))) > 1e9
    # exact on the training family itself (integer-like structure, no rounding)
    assert plain.errors[-1] == 0.0
    r_plain = np.max(_rel_remainder(plain, test))
    r_stab = np.max(_rel_remainder(stab, test))
    assert r_plain > 1e-10  # round-off amplified: the plain interpolant is visibly inaccurate
    assert r_stab <= r_plain  # the stabilized one is never worse (observed: ~0.7x here)


def test_stabilized_default_rtol_no_worse(smooth_train, smooth_test):
    # with the default stopping rule both variants stop at the family's numerical span; the
    # stabilized one needs no more terms and generalizes as well (observed: 20 terms each)
    plain = eim_greedy(smooth_train)
    stab = eim_greedy(smooth_train, stabilized=True)
    assert stab.size <= plain.size
    assert np.max(_rel_remainder(stab, smooth_test)) <= 2.0 * np.max(_rel_remainder(plain, smooth_test))
    assert np.max(_rel_remainder(stab, smooth_test)) < 1e-11


@pytest.mark.parametrize("stabilized", [False, True])
def test_greedy_without_tolerance_stays_accurate(smooth_train, smooth_test, stabilized):
    # rtol ~ 0: the greedy runs past the numerical span into round-off; the interpolant must not
    # deteriorate (each new q_j is scaled to 1 at its magic index, so |B^{-1}| stays moderate)
    b = eim_greedy(smooth_train, rtol=1e-30, stabilized=stabilized)
    assert len(set(b.indices.tolist())) == b.size
    assert np.max(_rel_remainder(b, smooth_test)) < 1e-12

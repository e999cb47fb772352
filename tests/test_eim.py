"""Empirical interpolation of vector families, plain and stabilized."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certrb.offline.eim import EIMBasis, deim, eim_greedy, interpolation_coefficients_ls, remove_point, symmetric_eim
from certrb.online.interpolation import interpolation_coefficients


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
    assert r_stab < r_plain  # the stabilized one is more accurate (observed: 0.81x here)


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


# --- choice of norm in the greedy step ------------------------------------------------------


def _spd(rng, k):
    a = rng.standard_normal((k, k))
    return a @ a.T + k * np.eye(k)


@pytest.mark.parametrize("complex_", [False, True])
def test_norms_reproduce_span(complex_):
    rng = np.random.default_rng(11)
    train, B = _low_rank(rng, 120, 40, 6, complex_)
    test = rng.standard_normal((30, 6)) @ B
    for norm in ("linf", "l2", _spd(rng, 40)):
        b = eim_greedy(train, norm=norm)
        assert b.size == 6
        assert b.errors[-1] <= 1e-12 * b.errors[0]
        assert np.max(_rel_remainder(b, test)) < 1e-12
        np.testing.assert_array_equal(np.diag(b.matrix), 1.0)


def test_norms_pick_different_points(smooth_train):
    M = np.diag(np.linspace(1.0, 100.0, 80))
    bases = {name: eim_greedy(smooth_train, max_terms=8, norm=norm)
             for name, norm in [("linf", "linf"), ("l2", "l2"), ("inner", M)]}
    assert {b.norm for b in bases.values()} == {"linf", "l2", "inner"}
    idx = {name: tuple(b.indices.tolist()) for name, b in bases.items()}
    assert len(set(idx.values())) == 3  # observed: (0 79 5 28 ..), (0 79 6 21 ..), (0 79 6 23 ..)
    # errors are measured in the chosen norm; the first is the largest norm of a member
    np.testing.assert_allclose(bases["l2"].errors[0], np.max(np.linalg.norm(smooth_train, axis=1)))
    np.testing.assert_allclose(bases["inner"].errors[0],
                               np.max(np.sqrt(np.einsum("ik,kl,il->i", smooth_train, M, smooth_train))))
    for name, b in bases.items():  # magic index = argmax |remainder|: each q_j peaks at 1 there
        np.testing.assert_allclose(np.max(np.abs(b.vectors), axis=1), 1.0, rtol=1e-12, err_msg=name)


def test_identity_inner_product_is_l2(smooth_train):
    a = eim_greedy(smooth_train, max_terms=10, norm="l2")
    b = eim_greedy(smooth_train, max_terms=10, norm=np.eye(80))
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-12)


def test_l2_norm_decay(smooth_train, smooth_test):
    b = eim_greedy(smooth_train, norm="l2", stabilized=True)
    assert b.errors[-1] <= 10 * 80 * np.finfo(float).eps * b.errors[0]
    assert np.max(_rel_remainder(b, smooth_test)) < 1e-11


@pytest.mark.parametrize(
    ("norm", "match"),
    [("l1", "norm"), (np.eye(3), r"\(K, K\)"), (np.triu(np.ones((4, 4))), "Hermitian"),
     (-np.eye(4), "positive definite"), (np.full((4, 4), np.nan), "NaN")],
)
def test_bad_norm(norm, match):
    with pytest.raises(ValueError, match=match):
        eim_greedy(np.ones((3, 4)), norm=norm)


@pytest.mark.parametrize(("kw", "match"), [({"max_terms": -1}, "max_terms"), ({"rtol": np.nan}, "rtol")])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        eim_greedy(np.ones((3, 4)), **kw)


# --- DEIM -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smooth_deim(smooth_train):
    return deim(smooth_train.T)


def test_deim_structure(smooth_deim, smooth_train):
    d = smooth_deim
    m = d.size
    assert 10 < m <= 30
    assert d.vectors.shape == d.modes.shape == (m, 80)
    assert d.errors.shape == (m + 1,)
    np.testing.assert_array_equal(d.selected, np.arange(m))
    np.testing.assert_array_equal(d.matrix, d.vectors[:, d.indices].T)
    np.testing.assert_array_equal(np.diag(d.matrix), 1.0)
    assert np.max(np.abs(np.triu(d.matrix, 1))) < 1e-12
    np.testing.assert_allclose(d.modes @ d.modes.T, np.eye(m), atol=1e-12)
    s = np.linalg.svd(smooth_train, compute_uv=False)
    np.testing.assert_allclose(d.singular_values, s, rtol=1e-12, atol=1e-13 * s[0])
    # the first index is where the leading mode peaks
    assert d.indices[0] == np.argmax(np.abs(d.modes[0]))
    # rows and columns conventions agree
    d0 = deim(smooth_train, snapshot_axis=0)
    np.testing.assert_array_equal(d0.indices, d.indices)


def test_deim_equals_classical_projector(smooth_deim, smooth_test):
    # q_j span the first m modes, so the interpolant is U (P^T U)^{-1} P^T
    d = smooth_deim
    for m in (3, 8, 12):
        U, P = d.modes[:m].T, d.indices[:m]
        classical = (U @ np.linalg.solve(U[P, :], smooth_test[:, P].T)).T
        sub = EIMBasis(d.vectors[:m], P, d.matrix[:m, :m], d.errors[: m + 1], d.selected[:m], False)
        np.testing.assert_allclose(_interpolate(sub, smooth_test), classical, atol=1e-11)


def test_deim_decay_and_interpolation(smooth_deim, smooth_train, smooth_test):
    d = smooth_deim
    e = d.errors / d.errors[0]
    assert e[8] < 1e-3
    assert e[-1] < 1e-11
    Ix = _interpolate(d, smooth_test)
    np.testing.assert_allclose(Ix[:, d.indices], smooth_test[:, d.indices], rtol=0, atol=1e-14)
    assert np.max(_rel_remainder(d, smooth_test)) < 1e-10
    # error history: the max-norm remainder of the snapshots with l terms
    for m in (1, 5, 9):
        sub = EIMBasis(d.vectors[:m], d.indices[:m], d.matrix[:m, :m], d.errors[: m + 1], d.selected[:m], False)
        np.testing.assert_allclose(d.errors[m], np.max(np.abs(smooth_train - _interpolate(sub, smooth_train))),
                                   rtol=1e-9)


def test_deim_close_to_pod(smooth_deim, smooth_train):
    # ||f - I f||_2 <= ||(P^T U)^{-1}||_2 ||f - U U^T f||_2; the constant stays modest here (observed < 4)
    d = smooth_deim
    for m in (3, 6, 10, 15):
        U = d.modes[:m]
        pod = np.max(np.linalg.norm(smooth_train - smooth_train @ U.T @ U, axis=1))
        sub = EIMBasis(d.vectors[:m], d.indices[:m], d.matrix[:m, :m], d.errors[: m + 1], d.selected[:m], False)
        dei = np.max(np.linalg.norm(smooth_train - _interpolate(sub, smooth_train), axis=1))
        assert pod <= dei * (1 + 1e-10)  # POD is optimal in this norm
        assert dei <= 10 * pod


@pytest.mark.parametrize("complex_", [False, True])
def test_deim_low_rank(complex_):
    rng = np.random.default_rng(5)
    train, B = _low_rank(rng, 60, 30, 5, complex_)
    d = deim(train.T, stabilized=True)
    assert d.size == 5
    assert d.stabilized
    assert d.errors[-1] <= 1e-13 * d.errors[0]
    test = (rng.standard_normal((10, 5)) + 1j * complex_ * rng.standard_normal((10, 5))) @ B
    assert np.max(_rel_remainder(d, test)) < 1e-12


def test_deim_n_terms_and_rtol(smooth_train):
    assert deim(smooth_train.T, n_terms=4).size == 4
    d = deim(smooth_train.T, rtol=1e-6)
    s = d.singular_values
    assert s[d.size - 1] > 1e-6 * s[0] >= s[d.size]
    assert deim(np.zeros((6, 3))).size == 0


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [((np.ones(4),), {}, "snapshots"), ((np.full((3, 3), np.nan),), {}, "snapshots"),
     ((np.ones((3, 3)),), {"snapshot_axis": 2}, "snapshot_axis"), ((np.ones((3, 3)),), {"n_terms": -2}, "n_terms")],
)
def test_deim_bad_input(args, kw, match):
    with pytest.raises(ValueError, match=match):
        deim(*args, **kw)


# --- symmetric formulation ------------------------------------------------------------------


@pytest.mark.parametrize("complex_", [False, True])
def test_symmetric_low_rank_exact(complex_):
    rng = np.random.default_rng(8)
    F, _ = _low_rank(rng, 50, 70, 6, complex_)
    s = symmetric_eim(F)
    assert s.size == 6
    assert s.errors[-1] <= 1e-13 * s.errors[0]
    np.testing.assert_allclose(s.approximate(F), F, atol=1e-12 * np.max(np.abs(F)))
    np.testing.assert_array_equal(s.core, F[np.ix_(s.rows, s.cols)])
    np.testing.assert_allclose(s.lower @ s.upper, s.core, atol=1e-13 * np.max(np.abs(F)))
    assert np.all(np.abs(s.lower) <= 1 + 1e-15)  # full pivoting
    # the first pivot is the largest entry
    assert np.abs(F[s.rows[0], s.cols[0]]) == np.max(np.abs(F))


def test_symmetric_smooth_kernel():
    x, y = np.linspace(0.0, 1.0, 60), np.linspace(0.0, 2.0, 70)
    F = np.exp(-((x[:, None] - y[None, :]) ** 2))
    s = symmetric_eim(F)
    e = s.errors / s.errors[0]
    assert np.all(e[1:] <= e[:-1] * (1 + 1e-12))  # full pivoting: non-increasing max-norm remainder
    assert e[4] < 1e-2  # observed 1.4e-3, then 1.1e-8 at 8 terms
    assert e[8] < 1e-7
    assert e[-1] < 1e-13
    assert s.size <= 16
    approx = s.approximate(F)
    np.testing.assert_allclose(approx, F, atol=1e-13)
    # exact on the selected cross, also for m smaller than the rank
    s5 = symmetric_eim(F, max_terms=5)
    a5 = s5.approximate(F)
    assert np.max(np.abs(a5 - F)) == pytest.approx(s5.errors[-1], rel=1e-8)
    np.testing.assert_allclose(a5[s5.rows, :], F[s5.rows, :], atol=1e-14)
    np.testing.assert_allclose(a5[:, s5.cols], F[:, s5.cols], atol=1e-14)
    # evaluate the interpolant off the grid: new x and new y need only f(x, Y) and f(X, y)
    rng = np.random.default_rng(1)
    x2, y2 = rng.uniform(0.0, 1.0, 25), rng.uniform(0.0, 2.0, 30)
    f = lambda a, b: np.exp(-((a[:, None] - b[None, :]) ** 2))  # noqa: E731
    off = s.interpolate(f(x2, y[s.cols]), f(x[s.rows], y2))
    assert np.max(np.abs(off - f(x2, y2))) < 1e-12


def test_symmetric_bad_input():
    with pytest.raises(ValueError, match="values"):
        symmetric_eim(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="rtol"):
        symmetric_eim(np.ones((2, 2)), rtol=-1.0)
    s = symmetric_eim(np.ones((3, 4)))
    assert s.size == 1
    with pytest.raises(ValueError, match="f_x_cols"):
        s.interpolate(np.ones((3, 2)), np.ones((1, 4)))
    assert symmetric_eim(np.zeros((3, 3))).size == 0


# --- rectangular extension ------------------------------------------------------------------


def test_remove_point_keeps_valid_interpolant(smooth_train, smooth_test):
    b = eim_greedy(smooth_train, max_terms=10)
    for j in (0, 4, 9):
        r = remove_point(b, j, smooth_train)
        assert r.size == r.indices.size == 9
        np.testing.assert_array_equal(r.indices, np.delete(b.indices, j))
        # square and exact on the span it keeps; interpolates at the remaining points
        y = np.random.default_rng(j).standard_normal((5, 9)) @ r.vectors
        np.testing.assert_allclose(r.interpolate(y), y, atol=1e-10)
        np.testing.assert_allclose(r.interpolate(smooth_test)[:, r.indices], smooth_test[:, r.indices], atol=1e-11)
        # reported errors: before = the basis's, after = the new one's on the family
        np.testing.assert_allclose(r.errors[0], b.errors[-1], rtol=1e-9)
        np.testing.assert_allclose(r.errors[1], np.max(np.abs(smooth_train - r.interpolate(smooth_train))))
        assert r.errors[1] >= r.errors[0]
        # no worse than simply dropping q_j along with its point (unit triangular sub-system)
        keep = np.delete(np.arange(10), j)
        naive = interpolation_coefficients_ls(b.vectors[keep], r.indices, smooth_train) @ b.vectors[keep]
        assert r.errors[1] <= np.max(np.abs(smooth_train - naive)) * (1 + 1e-9)


def test_remove_point_keep_functions(smooth_train):
    b = eim_greedy(smooth_train, max_terms=10)
    r = remove_point(b, 2, smooth_train, keep_functions=True)
    assert r.size == 10
    assert r.indices.size == 9
    np.testing.assert_array_equal(r.functions, np.arange(10))
    # minimum-norm least squares: still interpolates at the 9 remaining points
    np.testing.assert_allclose(r.interpolate(smooth_train)[:, r.indices], smooth_train[:, r.indices], atol=1e-10)
    assert r.errors[1] > r.errors[0]


def test_remove_point_chain_and_errors(smooth_train):
    b = eim_greedy(smooth_train, max_terms=12)
    r1 = remove_point(b, 0, smooth_train)
    r2 = remove_point(r1, 3, smooth_train)
    assert r2.size == r2.indices.size == 10
    np.testing.assert_allclose(r2.errors[0], r1.errors[1], rtol=1e-12)
    with pytest.raises(ValueError, match="j"):
        remove_point(b, 12, smooth_train)
    with pytest.raises(ValueError, match="family"):
        remove_point(b, 0, smooth_train[:, :5])


def test_least_squares_more_points_than_functions():
    rng = np.random.default_rng(2)
    _, B = _low_rank(rng, 1, 50, 6)
    pts = rng.choice(50, 15, replace=False)
    x = rng.standard_normal((20, 6)) @ B
    lam = interpolation_coefficients_ls(B, pts, x)
    assert lam.shape == (20, 6)
    np.testing.assert_allclose(lam @ B, x, atol=1e-11)
    # with the magic points of an EIM basis it equals the square interpolation
    b = eim_greedy(x)
    np.testing.assert_allclose(interpolation_coefficients_ls(b.vectors, b.indices, x),
                               interpolation_coefficients(b.vectors, b.indices, b.matrix, x, stabilized=False),
                               atol=1e-10)
    # least squares against noisy point values: residual orthogonal to the point matrix
    noisy = x + 1e-3 * rng.standard_normal(x.shape)
    lam = interpolation_coefficients_ls(B, pts, noisy)
    np.testing.assert_allclose(B[:, pts] @ (noisy[:, pts] - lam @ B[:, pts]).T, 0.0, atol=1e-10)


@pytest.mark.parametrize(
    ("points", "x", "match"),
    [([0, 0], np.ones((1, 5)), "points"), ([5], np.ones((1, 5)), "points"), ([0.5], np.ones((1, 5)), "points"),
     ([0, 1], np.ones((1, 4)), "x"), ([0, 1], np.full((1, 5), np.nan), "x")],
)
def test_least_squares_bad_input(points, x, match):
    with pytest.raises(ValueError, match=match):
        interpolation_coefficients_ls(np.ones((2, 5)), points, x)

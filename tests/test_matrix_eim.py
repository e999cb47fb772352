"""Nonintrusive matrix EIM of black-box operators and vectors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from certrb.offline.matrix_eim import MatrixEIM, matrix_eim, vector_eim

# --- families -------------------------------------------------------------------------------


def _theta(mu):
    return np.array([np.exp(-mu), np.sin(3.0 * mu) + 2.0, 1.0 / (1.0 + mu**2)])


class _Affine:
    """A(mu) = sum_q theta_q(mu) A_q with non-polynomial theta and random sparse A_q."""

    def __init__(self, n=60):
        self.terms = [sp.random(n, n, density=0.08, random_state=q, format="csr") + (q + 1) * sp.eye(n, format="csr")
                      for q in range(3)]
        self.dense = [a.toarray() for a in self.terms]

    def matrix(self, mu):
        return sum(t * a for t, a in zip(_theta(mu), self.terms, strict=True))

    def entry(self, mu, rows, cols):
        return sum(t * a[rows, cols] for t, a in zip(_theta(mu), self.dense, strict=True))


class _Kernel:
    """Dense A(mu)[i, j] = exp(-mu |x_i - x_j|) (optionally times exp(i mu |x_i - x_j|) / (1 + d))."""

    def __init__(self, n=40, complex_=False):
        x = np.linspace(0.0, 1.0, n)
        self.d = np.abs(x[:, None] - x[None, :])
        self.complex_ = complex_

    def _f(self, mu, d):
        return np.exp(1j * mu * d) / (1.0 + d) if self.complex_ else np.exp(-mu * d)

    def matrix(self, mu):
        return self._f(mu[0], self.d)

    def entry(self, mu, rows, cols):
        return self._f(mu[0], self.d[rows, cols])


class _Reaction:
    """Sparse 1D P1 stiffness + reaction with coefficient 1 / (1 + mu x) (midpoint rule per element)."""

    def __init__(self, n_el=60):
        self.h = 1.0 / n_el
        self.mid = (np.arange(n_el) + 0.5) * self.h
        self.n = n_el - 1  # interior nodes

    def _element_coefficients(self, mu):
        return 1.0 / (1.0 + mu * self.mid)

    def matrix(self, mu):
        c = self._element_coefficients(mu) * self.h / 6.0
        main = 2.0 / self.h + 2.0 * (c[:-1] + c[1:])
        off = -1.0 / self.h + c[1:-1]
        return sp.diags([off, main, off], [-1, 0, 1], format="csr")

    def entry(self, mu, rows, cols):
        return np.asarray(self.matrix(mu)[rows, cols]).ravel()


@pytest.fixture(scope="module")
def affine():
    return _Affine()


@pytest.fixture(scope="module")
def affine_eim(affine):
    return matrix_eim(affine.entry, affine.matrix, np.linspace(0.0, 3.0, 40))


@pytest.fixture(scope="module")
def kernel():
    return _Kernel()


@pytest.fixture(scope="module")
def kernel_eim(kernel):
    return matrix_eim(kernel.entry, kernel.matrix, np.linspace(1.0, 10.0, 60)[:, None], tol=1e-13)


def _rel(a, b):
    a = a.toarray() if sp.issparse(a) else a
    b = b.toarray() if sp.issparse(b) else b
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


# --- exact reproduction and structure -------------------------------------------------------


def test_affine_in_disguise_reproduced(affine, affine_eim):
    r = affine_eim
    assert isinstance(r, MatrixEIM)
    assert r.size == 3
    assert len(set(r.selected.tolist())) == 3
    assert r.parameters.shape == (3,)
    assert r.entries.shape == (3, 2)
    assert r.errors.shape == (4,)
    assert r.errors[0] == 1.0
    assert r.errors[-1] < 1e-13
    for mu in np.random.default_rng(0).uniform(0.0, 3.0, 8):
        assert _rel(r.approximate(mu), affine.matrix(mu)) < 1e-13
    assert sp.issparse(r.approximate(1.0))


def test_structure(affine, affine_eim):
    r = affine_eim
    # snapshots are A(mu_m); B unit lower triangular with B[l, k] = q_k[e_l]
    for mu, a in zip(r.parameters, r.matrices, strict=True):
        assert _rel(a, affine.matrix(mu)) == 0.0
    np.testing.assert_array_equal(np.diag(r.matrix), 1.0)
    np.testing.assert_array_equal(np.triu(r.matrix, 1), 0.0)
    np.testing.assert_array_equal(np.tril(r.transform, -1), 0.0)
    q = [sum(r.transform[p, k] * r.matrices[p] for p in range(r.size)) for k in range(r.size)]
    for k in range(r.size):
        vals = np.array([q[k][i, j] for i, j in r.entries])
        np.testing.assert_allclose(vals[k:], r.matrix[k:, k], atol=1e-13)
        np.testing.assert_allclose(vals[:k], 0.0, atol=1e-13)
        assert abs(abs(vals[k]) - np.max(np.abs(q[k].toarray()))) < 1e-13  # magic entry = largest
    # beta are Lagrange functions of the parameter: beta_m(mu_l) = delta_ml
    np.testing.assert_allclose(r.coefficients(r.parameters), np.eye(r.size), atol=1e-12)


def test_first_step(kernel, kernel_eim):
    # the first parameter has the largest candidate entry; its magic entry is its largest entry
    r = kernel_eim
    a0 = kernel.matrix(r.parameters[0])
    assert np.max(np.abs(a0)) == pytest.approx(1.0)
    i, j = r.entries[0]
    assert abs(a0[i, j]) == np.max(np.abs(a0))


# --- convergence ----------------------------------------------------------------------------


def test_exponential_decay_dense_kernel(kernel, kernel_eim):
    r = kernel_eim
    e = r.errors
    assert e[5] < 1e-2
    assert e[10] < 1e-8
    assert e[-1] <= 1e-13
    assert r.size <= 20
    rates = np.log(e[1:11] / e[:10])
    assert np.mean(rates) < -1.5  # observed about -2.5 per term
    for mu in (1.37, 5.5, 9.9):
        assert _rel(r.approximate([mu]), kernel.matrix([mu])) < 1e-12
        # a moderate parametric Lebesgue constant (observed <= 5)
        assert np.sum(np.abs(r.coefficients([[mu]]))) < 50.0


def test_exponential_decay_sparse_reaction():
    prob = _Reaction()
    r = matrix_eim(prob.entry, prob.matrix, np.linspace(0.0, 20.0, 50))
    assert r.errors[-1] <= 1e-12
    assert r.errors[1] > 1e-5 * r.errors[0]  # the stiffness part alone does not do it
    k = np.flatnonzero(r.errors < 1e-10)[0]
    assert k <= 15
    for mu in (0.3, 7.7, 19.1):
        assert _rel(r.approximate(mu), prob.matrix(mu)) < 1e-11
    assert all(sp.issparse(a) for a in r.matrices)


def test_interpolation_at_magic_entries(kernel, kernel_eim):
    r = matrix_eim(kernel.entry, kernel.matrix, np.linspace(1.0, 10.0, 60)[:, None], max_terms=6)
    assert r.size == 6
    for mu in np.random.default_rng(3).uniform(1.0, 10.0, (5, 1)):
        a, ap = kernel.matrix(mu), r.approximate(mu)
        for i, j in r.entries:
            assert abs(ap[i, j] - a[i, j]) <= 1e-14
        assert np.max(np.abs(ap - a)) > 1e-8  # not exact elsewhere with 6 terms


def test_error_history_matches_candidates(kernel):
    train = np.linspace(1.0, 10.0, 30)[:, None]
    full = matrix_eim(kernel.entry, kernel.matrix, train, max_terms=7)
    for m in (3, 7):
        r = matrix_eim(kernel.entry, kernel.matrix, train, max_terms=m)
        err = max(np.max(np.abs(r.approximate(mu) - kernel.matrix(mu))) for mu in train)
        np.testing.assert_allclose(r.errors[-1], err, rtol=1e-8)  # "all" candidates: every entry
        np.testing.assert_allclose(r.errors, full.errors[: m + 1])


# --- online cost ----------------------------------------------------------------------------


def test_coefficients_evaluate_only_magic_entries(kernel, kernel_eim):
    calls = []

    def counting(mu, rows, cols):
        calls.append((np.array(rows), np.array(cols)))
        return kernel.entry(mu, rows, cols)

    r = matrix_eim(counting, kernel.matrix, np.linspace(1.0, 10.0, 60)[:, None], tol=1e-13)
    calls.clear()
    mus = np.random.default_rng(4).uniform(1.0, 10.0, (7, 1))
    beta = r.coefficients(mus)
    assert beta.shape == (7, r.size)
    assert len(calls) == 7
    for rows, cols in calls:
        np.testing.assert_array_equal(rows, r.entries[:, 0])
        np.testing.assert_array_equal(cols, r.entries[:, 1])
    assert sum(c[0].size for c in calls) == 7 * r.size
    np.testing.assert_allclose(beta, kernel_eim.coefficients(mus), atol=1e-12)


def test_coefficients_from_values(kernel_eim, kernel):
    mu = np.array([[4.2]])
    vals = np.array([[kernel.matrix(mu[0])[i, j] for i, j in kernel_eim.entries]])
    np.testing.assert_allclose(kernel_eim.coefficients_from_values(vals), kernel_eim.coefficients(mu), atol=1e-14)
    with pytest.raises(ValueError, match="values"):
        kernel_eim.coefficients_from_values(vals[:, :-1])
    with pytest.raises(ValueError, match="mus"):
        kernel_eim.coefficients(np.ones((2, 3)))


# --- complex, vectors, candidates -----------------------------------------------------------


def test_complex_family():
    prob = _Kernel(complex_=True)
    r = matrix_eim(prob.entry, prob.matrix, np.linspace(1.0, 10.0, 50)[:, None])
    assert np.iscomplexobj(r.matrix) or np.iscomplexobj(r.transform)
    assert r.errors[-1] <= 1e-12
    assert r.size < 30
    for mu in ([1.37], [5.5], [9.1]):
        ap, a = r.approximate(mu), prob.matrix(mu)
        assert np.iscomplexobj(ap)
        assert _rel(ap, a) < 1e-11
        for i, j in r.entries:
            assert abs(ap[i, j] - a[i, j]) < 1e-13


@pytest.mark.parametrize("complex_", [False, True])
def test_vector_eim(complex_):
    x = np.linspace(0.0, 1.0, 80)

    def vec(mu):
        v = 1.0 / (1.0 + mu * x)
        return v * np.exp(1j * mu * x) if complex_ else v

    def ent(mu, rows):
        return vec(mu)[rows]

    r = vector_eim(ent, vec, np.linspace(0.0, 20.0, 100))
    assert r.entries.shape == (r.size, 1)
    assert r.errors[-1] <= 1e-12
    assert r.size <= 30
    for mu in (0.77, 13.3):
        v = r.approximate(mu)
        assert v.shape == (80,)
        assert np.max(np.abs(v - vec(mu))) < 1e-11
        np.testing.assert_allclose(v[r.entries[:, 0]], vec(mu)[r.entries[:, 0]], atol=1e-14)


def test_candidate_options(kernel):
    train = np.linspace(1.0, 10.0, 20)[:, None]
    a = matrix_eim(kernel.entry, kernel.matrix, train, candidate_entries="random", n_random=200, rng=1, max_terms=8)
    b = matrix_eim(kernel.entry, kernel.matrix, train, candidate_entries="random", n_random=200, rng=1, max_terms=8)
    np.testing.assert_array_equal(a.entries, b.entries)
    np.testing.assert_array_equal(a.selected, b.selected)
    auto = matrix_eim(kernel.entry, kernel.matrix, train, n_random=100, rng=1, max_terms=8)  # 1600 > 100: random
    assert auto.size == 8
    rows = np.arange(40)
    diag = matrix_eim(kernel.entry, kernel.matrix, train, candidate_entries=(rows, rows))
    assert diag.errors[0] == 1.0
    assert diag.size == 1  # the diagonal is 1 for every mu: one term interpolates it


def test_max_terms_and_tol(kernel):
    train = np.linspace(1.0, 10.0, 30)[:, None]
    assert matrix_eim(kernel.entry, kernel.matrix, train, max_terms=0).size == 0
    r = matrix_eim(kernel.entry, kernel.matrix, train, tol=1e-4)
    assert r.errors[-1] <= 1e-4 < r.errors[-2]
    with pytest.raises(ValueError, match="no terms"):
        matrix_eim(kernel.entry, kernel.matrix, train, max_terms=0).approximate([2.0])


# --- bad input ------------------------------------------------------------------------------


def _good_matrix(mu):
    return np.array([[1.0 + mu, 2.0], [3.0, np.exp(mu)]])


def _good_entry(mu, rows, cols):
    return _good_matrix(mu)[rows, cols]


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (lambda mu, r, c: _good_entry(mu, r, c)[None, :], "shape"),
        (lambda mu, r, c: np.append(_good_entry(mu, r, c), 1.0), "shape"),
        (lambda mu, r, c: np.full(r.size, np.nan), "NaN"),
        (lambda mu, r, c: np.full(r.size, np.inf), "infinite"),
        (lambda mu, r, c: np.array(["a"] * r.size), "numbers"),
        (lambda mu, r, c: _good_matrix(mu).T[r, c], "disagree"),
    ],
)
def test_bad_entry(entry, match):
    with pytest.raises(ValueError, match=match):
        matrix_eim(entry, _good_matrix, np.linspace(0.0, 1.0, 5))


def test_bad_entry_online():
    r = matrix_eim(_good_entry, _good_matrix, np.linspace(0.0, 1.0, 5))
    broken = MatrixEIM(r.parameters, r.entries, r.matrices, r.matrix, r.transform, r.errors, r.selected,
                       lambda mu, rows, cols: np.full(rows.size, np.nan), "matrix")
    with pytest.raises(ValueError, match="NaN"):
        broken.coefficients([0.5])


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        (lambda mu: np.full((2, 2), np.nan), "NaN"),
        (lambda mu: sp.csr_matrix(np.array([[np.inf, 0.0], [0.0, 1.0]])), "infinite"),
        (lambda mu: np.ones(4), "2-D"),
        (lambda mu: _good_matrix(mu) if mu == 0.0 else np.ones((3, 3)), "shape"),
    ],
)
def test_bad_matrix(matrix, match):
    with pytest.raises(ValueError, match=match):
        matrix_eim(_good_entry, matrix, np.linspace(0.0, 1.0, 5))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"train": np.array([0.0, np.nan])}, "train"),
        ({"train": np.zeros((0, 2))}, "train"),
        ({"candidate_entries": "everything"}, "candidate_entries"),
        ({"candidate_entries": (np.array([0, 5]), np.array([0, 1]))}, "candidate_entries"),
        ({"candidate_entries": (np.array([0, 1]),)}, "candidate_entries"),
        ({"tol": -1.0}, "tol"),
        ({"max_terms": 1.5}, "max_terms"),
    ],
)
def test_bad_options(kw, match):
    args = {"train": np.linspace(0.0, 1.0, 5), **kw}
    with pytest.raises(ValueError, match=match):
        matrix_eim(_good_entry, _good_matrix, **args)


def test_bad_vector_callables():
    x = np.linspace(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="1-D"):
        vector_eim(lambda mu, r: x[r], lambda mu: np.ones((5, 1)), np.linspace(0.0, 1.0, 3))
    with pytest.raises(ValueError, match="shape"):
        vector_eim(lambda mu, r: np.ones(2), lambda mu: x, np.linspace(0.0, 1.0, 3))

"""AffineOperator / AffineFunctional: validation, assembly and projection."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from certrb import AffineFunctional, AffineOperator, ShapeError
from certrb.online.coefficients import evaluate_coefficients


def _theta2(mus):
    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0]])


def _random_terms(n, q, rng, complex_=False):
    mats = []
    for _ in range(q):
        m = sp.random(n, n, density=0.3, random_state=rng) + sp.eye(n)
        if complex_:
            m = m + 1j * sp.random(n, n, density=0.3, random_state=rng)
        mats.append(sp.csr_matrix(m))
    return mats


@pytest.fixture
def rng():
    return np.random.default_rng(42)


@pytest.fixture
def operator(rng):
    return AffineOperator(_random_terms(12, 2, rng), _theta2)


@pytest.fixture
def functional(rng):
    return AffineFunctional([rng.standard_normal(12), rng.standard_normal(12)], _theta2)


# --- evaluate_coefficients ----------------------------------------------------------------


def test_evaluate_coefficients_ok():
    mus = np.array([[1.0], [2.0], [3.0]])
    theta = evaluate_coefficients(_theta2, mus, 2, "operator")
    np.testing.assert_array_equal(theta, [[1, 1], [1, 2], [1, 3]])
    assert theta.dtype == np.float64


def test_evaluate_coefficients_int_promoted_complex_kept():
    mus = np.ones((2, 1))
    assert evaluate_coefficients(lambda m: np.ones((2, 1), dtype=int), mus, 1, "x").dtype == np.float64
    assert evaluate_coefficients(lambda m: np.ones((2, 1)) * 1j, mus, 1, "x").dtype == np.complex128


@pytest.mark.parametrize(
    "func",
    [
        lambda m: np.ones(m.shape[0]),  # (n_mu,) instead of (n_mu, Q)
        lambda m: np.ones((m.shape[0], 3)),  # too many terms
        lambda m: np.ones((m.shape[0] + 1, 2)),  # wrong n_mu
        lambda m: np.ones((m.shape[0], 1)),  # too few terms
    ],
)
def test_coefficients_wrong_shape(operator, functional, func):
    mus = np.array([[0.5], [0.7]])
    op = AffineOperator(operator.terms, func)
    fn = AffineFunctional(functional.terms, func)
    with pytest.raises(ShapeError, match=r"operator coefficients must return shape \(2, 2\)"):
        op.theta(mus)
    with pytest.raises(ShapeError, match=r"functional coefficients must return shape \(2, 2\)"):
        fn.theta(mus)
    with pytest.raises(ShapeError):
        fn.assemble(mus)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, complex(np.nan, 0.0)])
def test_coefficients_non_finite(operator, functional, bad):
    def func(mus):
        out = _theta2(mus).astype(complex if isinstance(bad, complex) else float)
        out[-1, 1] = bad
        return out

    mus = np.array([[0.5], [0.7]])
    with pytest.raises(ShapeError, match="NaN or infinite"):
        AffineOperator(operator.terms, func).theta(mus)
    with pytest.raises(ShapeError, match="NaN or infinite"):
        AffineFunctional(functional.terms, func).theta(mus)


# --- AffineOperator construction ----------------------------------------------------------


def test_operator_properties(operator):
    assert operator.n_terms == 2
    assert operator.size == 12
    assert operator.dtype == np.float64
    assert all(sp.issparse(t) and t.format == "csr" for t in operator.terms)


def test_operator_accepts_dense_and_int_terms():
    op = AffineOperator([np.eye(3, dtype=int), np.ones((3, 3), dtype=int)], _theta2)
    assert op.dtype == np.float64
    assert op.terms[1].dtype == np.float64
    assert op.size == 3


def test_operator_terms_are_copies(rng):
    t = sp.csr_matrix(np.eye(4))
    op = AffineOperator([t], lambda m: np.ones((m.shape[0], 1)))
    t.data[:] = 7.0
    np.testing.assert_array_equal(op.terms[0].toarray(), np.eye(4))


def test_operator_empty_terms():
    with pytest.raises(ShapeError, match="at least one"):
        AffineOperator([], _theta2)


def test_operator_non_square():
    with pytest.raises(ShapeError, match="square"):
        AffineOperator([sp.csr_matrix((3, 4)), sp.csr_matrix((3, 4))], _theta2)


def test_operator_inconsistent_sizes():
    with pytest.raises(ShapeError, match=r"terms\[1\] has shape \(4, 4\)"):
        AffineOperator([sp.eye(3), sp.eye(4)], _theta2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_operator_non_finite_entries(bad):
    m = np.eye(3)
    m[0, 2] = bad
    with pytest.raises(ShapeError, match=r"terms\[1\] contains NaN"):
        AffineOperator([sp.eye(3), m], _theta2)


@pytest.mark.parametrize("coef", [None, 3.0, np.ones((2, 2))])
def test_operator_non_callable(coef):
    with pytest.raises(TypeError, match="callable"):
        AffineOperator([sp.eye(3)], coef)


# --- AffineOperator maths -----------------------------------------------------------------


def test_assemble_equals_manual_sum(operator):
    mus = np.array([[0.3], [-2.5]])
    theta = operator.theta(mus)
    for row in theta:
        A = operator.assemble(row)
        assert A.format == "csc"
        manual = row[0] * operator.terms[0].toarray() + row[1] * operator.terms[1].toarray()
        np.testing.assert_allclose(A.toarray(), manual, rtol=1e-15, atol=1e-15)


def test_assemble_complex_coefficients_on_real_terms(operator):
    A = operator.assemble(np.array([1.0, 2.0j]))
    assert np.iscomplexobj(A.data)
    np.testing.assert_allclose(A.toarray(), operator.terms[0].toarray() + 2j * operator.terms[1].toarray())


def test_apply_terms(operator, rng):
    V = rng.standard_normal((12, 3))
    out = operator.apply_terms(V)
    assert out.shape == (2, 12, 3)
    for q in range(2):
        np.testing.assert_allclose(out[q], operator.terms[q].toarray() @ V, rtol=1e-14, atol=1e-14)


def test_project_galerkin(operator, rng):
    V = rng.standard_normal((12, 4))
    A_N = operator.project(V)
    assert A_N.shape == (2, 4, 4)
    for q in range(2):
        np.testing.assert_allclose(A_N[q], V.T @ operator.terms[q].toarray() @ V, rtol=1e-13, atol=1e-13)


def test_project_petrov_galerkin_complex(rng):
    op = AffineOperator(_random_terms(10, 3, rng, complex_=True), lambda m: np.ones((m.shape[0], 3)))
    assert op.dtype == np.complex128
    V = rng.standard_normal((10, 3)) + 1j * rng.standard_normal((10, 3))
    W = rng.standard_normal((10, 5)) + 1j * rng.standard_normal((10, 5))
    A_N = op.project(V, W)
    assert A_N.shape == (3, 5, 3)
    assert A_N.dtype == np.complex128
    for q in range(3):
        np.testing.assert_allclose(A_N[q], W.conj().T @ op.terms[q].toarray() @ V, rtol=1e-13, atol=1e-13)
    # the reduced operator equals the projection of the assembled one (linearity)
    theta = np.array([0.5, -1.0 + 2j, 3.0j])
    lhs = np.tensordot(theta, A_N, axes=1)
    rhs = W.conj().T @ op.assemble(theta).toarray() @ V
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_complex_terms_keep_complex_dtype(rng):
    real, cplx = _random_terms(6, 1, rng)[0], _random_terms(6, 1, rng, complex_=True)[0]
    op = AffineOperator([real, cplx], _theta2)
    assert op.dtype == np.complex128
    assert all(t.dtype == np.complex128 for t in op.terms)
    np.testing.assert_array_equal(op.terms[1].toarray(), cplx.toarray())  # imaginary part kept
    A = op.assemble(np.array([1.0, 1.0]))
    assert A.dtype == np.complex128
    np.testing.assert_allclose(A.toarray(), real.toarray() + cplx.toarray())


# --- AffineFunctional ---------------------------------------------------------------------


def test_functional_properties(functional):
    assert functional.n_terms == 2
    assert functional.size == 12
    assert functional.dtype == np.float64
    assert not functional.terms.flags.writeable


def test_functional_assemble_equals_manual_sum(functional):
    mus = np.array([[0.0], [1.5], [-4.0]])
    F = functional.assemble(mus)
    assert F.shape == (3, 12)
    for i, mu in enumerate(mus[:, 0]):
        np.testing.assert_allclose(F[i], functional.terms[0] + mu * functional.terms[1], rtol=1e-15, atol=1e-15)


def test_functional_project(functional, rng):
    V = rng.standard_normal((12, 4)) + 1j * rng.standard_normal((12, 4))
    P = functional.project(V)
    assert P.shape == (2, 4)
    for p in range(2):
        np.testing.assert_allclose(P[p], V.conj().T @ functional.terms[p], rtol=1e-13)


def test_functional_complex_terms_keep_complex(rng):
    f0 = rng.standard_normal(5)
    f1 = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    fn = AffineFunctional([f0, f1], _theta2)
    assert fn.dtype == np.complex128
    np.testing.assert_array_equal(fn.terms[1], f1)
    np.testing.assert_allclose(fn.assemble(np.array([[2.0]]))[0], f0 + 2.0 * f1)


def test_functional_empty():
    with pytest.raises(ShapeError, match="at least one"):
        AffineFunctional([], _theta2)


def test_functional_not_vectors():
    with pytest.raises(ShapeError, match="1-D"):
        AffineFunctional([np.ones((3, 2))], _theta2)
    with pytest.raises(ShapeError, match="1-D"):
        AffineFunctional([np.float64(1.0)], _theta2)


def test_functional_unequal_lengths():
    with pytest.raises(ShapeError, match="equal lengths"):
        AffineFunctional([np.ones(3), np.ones(4)], _theta2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_functional_non_finite(bad):
    with pytest.raises(ShapeError, match="NaN or infinite"):
        AffineFunctional([np.ones(3), np.array([1.0, bad, 0.0])], _theta2)


def test_functional_non_callable():
    with pytest.raises(TypeError, match="callable"):
        AffineFunctional([np.ones(3)], "phi")

"""The complex, non-coercive Helmholtz problem certified through the inf-sup SCM."""

import numpy as np
import pytest
import scipy.linalg as sla

import certrb
from certrb.problems.helmholtz1d import helmholtz1d


@pytest.fixture(scope="module")
def problem():
    return helmholtz1d(80, (1.0, 6.0), scm_train=60)


def exact_inf_sup(problem, ks):
    L = np.linalg.cholesky(problem.inner_product.matrix.toarray())
    theta = problem.operator.theta(ks)
    out = []
    for row in theta:
        A = problem.operator.assemble(row).toarray()
        B = sla.solve_triangular(L, sla.solve_triangular(L, A, lower=True).conj().T, lower=True).conj().T
        out.append(np.linalg.svd(B, compute_uv=False)[-1])
    return np.array(out)


def test_problem_is_complex_and_non_coercive(problem):
    assert problem.dtype == np.complex128
    k = np.array([[6.0]])
    A = problem.operator.assemble(problem.operator.theta(k)[0]).toarray()
    H = (A + A.conj().T) / 2
    assert np.min(sla.eigh(H, problem.inner_product.matrix.toarray(), eigvals_only=True)) < 0


def test_scm_lower_bound_is_below_the_inf_sup_constant(problem):
    ks = problem.parameter_space.sample(100, rng=0)
    lb = problem.stability_lower_bound(ks)
    exact = exact_inf_sup(problem, ks)
    assert np.all(lb > 0)
    assert np.all(lb <= exact * (1 + 1e-10))
    assert np.min(lb / exact) > 0.3


def test_bound_holds_above_the_truth_floor(problem):
    train = problem.parameter_space.sample(200, rng=1)
    builder = certrb.OfflineBuilder(problem, ("orthonormal", "eim-stabilized", "expanded"))
    model = certrb.weak_greedy(builder, train, tol=1e-12, max_basis=20).model
    mus = problem.parameter_space.sample(60, rng=2)
    f_norm = problem.inner_product.dual_norms(problem.rhs.assemble(mus).T)
    for n in range(1, model.n_basis + 1):
        err, _ = certrb.true_error(problem, model, mus, n=n)
        ref = certrb.truth_residual_norm(problem, model, mus, n=n, precision="extended")
        above = ref / f_norm > 1e-11
        for name in ("orthonormal", "eim-stabilized"):
            res = model.evaluate(mus, estimator=name, n=n)
            assert np.all(res.bound[above] >= err[above]), (name, n)


def test_unresolved_wavenumbers_are_refused():
    with pytest.raises(ValueError, match="elements per wavelength"):
        helmholtz1d(20, (1.0, 50.0))
    with pytest.raises(ValueError, match="k_range"):
        helmholtz1d(100, (0.0, 5.0))

"""Certified stability constants against exact ones (1D P1 Laplacian and mass: closed-form spectra in mpmath).

On a uniform mesh of ``n`` interior nodes (``h = 1 / (n + 1)``) the stiffness ``K`` and mass ``M``
share their eigenvectors, with ``K v_j = lambda_j M v_j``,
``lambda_j = (6 / h^2) (1 - cos(j pi h)) / (2 + cos(j pi h))``. Every constant below is a
function of the ``lambda_j``, so it is known exactly; mpmath evaluates it with 40 digits.
The inner products ``X = K + w M`` reach condition numbers of 1e14 (``w = 1e-10``).
"""

from __future__ import annotations

import time

import mpmath
import numpy as np
import pytest
import scipy.sparse as sp

import certrb
from certification.illconditioned import h1_diffusion
from certrb import (
    SCM,
    AffineFunctional,
    AffineOperator,
    InnerProductError,
    MinTheta,
    ParameterSpace,
    Problem,
    StabilityError,
)
from certrb.offline.certify import certify_psd, hermitian_sum
from certrb.offline.stability import coercivity_constant, dominance_defect

mpmath.mp.dps = 40
WEIGHTS = (1e-10, 1e-6, 1.0)


def p1(n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Dirichlet P1 stiffness and mass on ``n`` interior nodes of [0, 1]."""
    h = 1.0 / (n + 1)
    ones = np.ones(n - 1)
    K = sp.diags([-ones, 2 * np.ones(n), -ones], [-1, 0, 1]) / h
    M = sp.diags([ones, 4 * np.ones(n), ones], [-1, 0, 1]) * (h / 6)
    return sp.csr_matrix(K), sp.csr_matrix(M)


def spectrum(n: int) -> list:
    """The ``lambda_j`` of ``(K, M)`` in mpmath, j = 1..n."""
    h = mpmath.mpf(1) / (n + 1)
    return [6 / h**2 * (1 - mpmath.cos(j * mpmath.pi * h)) / (2 + mpmath.cos(j * mpmath.pi * h))
            for j in range(1, n + 1)]


def exact_min(n: int, f) -> float:
    """``min_j f(lambda_j)``, rounded to double."""
    return float(min(f(lam) for lam in spectrum(n)))


def assert_certified(value: float, exact: float, rtol: float = 1e-3) -> None:
    """Certified: never above the exact constant, and within ``rtol`` of it."""
    assert value <= exact, (value, exact)
    assert value >= exact * (1 - rtol), (value, exact)


@pytest.mark.parametrize("n", [40, 300])
def test_certify_psd_separates_at_the_exact_eigenvalue(n):
    K, M = p1(n)
    lam = float(spectrum(n)[0])
    for rel in (1e-6, 1e-3):
        assert certify_psd(*hermitian_sum([(1.0, K), (-lam * (1 - rel), M)]))
        # just above the smallest eigenvalue K - s M is indefinite: it must never be certified
        assert not certify_psd(*hermitian_sum([(1.0, K), (-lam * (1 + rel), M)]))
    assert not certify_psd(K.toarray() - lam * (1 + 1e-9) * M.toarray())  # the dense path
    assert certify_psd(K.toarray() - lam * (1 - 1e-6) * M.toarray())


def test_certify_psd_complex_hermitian():
    """``D K D^H`` and ``D M D^H`` with a unitary diagonal ``D``: complex Hermitian, the spectrum of ``(K, M)``."""
    n = 50
    K, M = p1(n)
    D = sp.diags(np.exp(1j * np.linspace(0.0, 3.0, n)))
    Kc, Mc = sp.csr_matrix(D @ K @ D.conj().T), sp.csr_matrix(D @ M @ D.conj().T)
    lam = float(spectrum(n)[0])
    assert certify_psd(*hermitian_sum([(1.0, Kc), (-lam * (1 - 1e-6), Mc)]))
    assert not certify_psd(*hermitian_sum([(1.0, Kc), (-lam * (1 + 1e-6), Mc)]))


@pytest.mark.parametrize("n", [30, 150, 600])
@pytest.mark.parametrize("w", WEIGHTS)
def test_coercivity_constant_is_a_certified_lower_bound(n, w):
    K, M = p1(n)
    X = K + w * M
    # A = K + M: alpha = min_j (lambda_j + 1) / (lambda_j + w)
    assert_certified(coercivity_constant(K + M, X), exact_min(n, lambda lam: (lam + 1) / (lam + w)))
    # A = K: alpha = min_j lambda_j / (lambda_j + w) (the bottom of the spectrum)
    assert_certified(coercivity_constant(K, X), exact_min(n, lambda lam: lam / (lam + w)))


@pytest.mark.parametrize("n", [30, 150])
def test_audit_case_exact_one(n):
    """A = X = K + 1e-10 M: alpha = 1 exactly (a dense eigh of (X, X) returned 1.0773 here)."""
    K, M = p1(n)
    X = K + 1e-10 * M
    assert_certified(coercivity_constant(X, X), 1.0, rtol=1e-6)


def _scalar_problem(K, M, X, theta, stability, lower=0.0, upper=10.0):
    space = ParameterSpace(["mu"], [lower], [upper])
    f = AffineFunctional([np.ones(K.shape[0])], lambda m: np.ones((m.shape[0], 1)))
    return Problem(AffineOperator([K, M], theta), f, X, space, stability=stability)


def _theta(m):
    return np.column_stack([np.ones(m.shape[0]), m[:, 0]])


@pytest.mark.parametrize("w", WEIGHTS)
def test_min_theta_is_certified_below_the_exact_constant(w):
    n = 80
    K, M = p1(n)
    problem = _scalar_problem(K, M, K + w * M, _theta, MinTheta([2.0]))
    assert problem.stability.certified
    mus = np.linspace(1.0, 10.0, 10)[:, None]
    lower = problem.stability_lower_bound(mus)
    for mu, lb in zip(mus[:, 0], lower, strict=True):
        exact = exact_min(n, lambda lam, mu=mu: (lam + mu) / (lam + w))
        assert lb <= exact
    # at mu_ref the bound is the certified reference constant
    assert_certified(float(lower[1]), exact_min(n, lambda lam: (lam + 2) / (lam + w)), rtol=1e-6)


def test_min_theta_refuses_an_indefinite_term():
    K, M = p1(40)
    # the second term's Hermitian part K - 20 M is indefinite (lambda_1 ~ pi^2 < 20)
    with pytest.raises(StabilityError, match="term 1 is not certified"):
        _scalar_problem(K, K - 20.0 * M, K, _theta, MinTheta([1.0]))


def test_singular_inner_product_is_refused():
    """The audit case: a Neumann Laplacian (X 1 = 0 exactly) whose LU pivots are all positive in floating point."""
    n = 200
    h = 1.0 / n
    main = np.r_[1.0, 2 * np.ones(n - 1), 1.0]
    K = sp.diags([-np.ones(n), main, -np.ones(n)], [-1, 0, 1]) / h
    assert np.abs(K @ np.ones(n + 1)).max() == 0
    with pytest.raises(InnerProductError, match="singular"):
        certrb.InnerProduct(K)
    # 1 + 2e-16 on the first diagonal entry: the LU pivots are all positive, X is numerically singular
    Kp = sp.csr_matrix(K)
    Kp[0, 0] *= 1 + 2**-52
    with pytest.raises(InnerProductError, match="numerically singular"):
        certrb.InnerProduct(Kp)
    certrb.InnerProduct(K + 1e-6 * sp.identity(n + 1) * h)  # a small mass term makes it definite


def test_singular_operator_raises_stability_error():
    K, _ = p1(30)
    zero = sp.csr_matrix(K.shape)
    problem = _scalar_problem(zero, zero, K, _theta, lambda m: np.ones(m.shape[0]))
    with pytest.raises(StabilityError, match="singular"):
        problem.solve([[1.0]])


@pytest.mark.parametrize("w", WEIGHTS)
def test_scm_coercive_below_the_exact_constant(w):
    n = 60
    K, M = p1(n)
    op = AffineOperator([K, M], _theta)
    scm = SCM(op, K + w * M, np.linspace(0.0, 10.0, 11)[:, None])
    assert scm.certified
    mus = np.linspace(0.05, 9.95, 23)[:, None]
    exact = np.array([exact_min(n, lambda lam, mu=mu: (lam + mu) / (lam + w)) for mu in mus[:, 0]])
    lower = scm(mus)
    assert np.all(lower <= exact)
    assert np.all(scm.lower_values <= [exact_min(n, lambda lam, mu=mu: (lam + mu) / (lam + w))
                                       for mu in scm.points[:, 0]])


@pytest.mark.parametrize("w", [1e-6, 1.0])
def test_scm_infsup_below_the_exact_constant(w):
    """A(mu) = K - mu M (indefinite for mu > lambda_1): beta(mu) = min_j |lambda_j - mu| / (lambda_j + w)."""
    n = 40
    K, M = p1(n)
    op = AffineOperator([K, M], lambda m: np.column_stack([np.ones(m.shape[0]), -m[:, 0]]))
    lam1 = float(spectrum(n)[0])
    train = np.linspace(0.0, 0.8 * lam1, 9)[:, None]  # below the first resonance
    scm = SCM(op, K + w * M, train, kind="inf-sup")
    assert scm.certified
    mus = np.linspace(0.01, 0.79 * lam1, 15)[:, None]
    exact = np.array([exact_min(n, lambda lam, mu=mu: abs(lam - mu) / (lam + w)) for mu in mus[:, 0]])
    assert np.all(scm(mus) <= exact)
    exact_points = [exact_min(n, lambda lam, mu=mu: abs(lam - mu) / (lam + w)) ** 2 for mu in scm.points[:, 0]]
    assert np.all(scm.lower_values <= exact_points)


def test_online_result_names_its_stability_certificate():
    K, M = p1(40)
    certified = _scalar_problem(K, M, K, _theta, MinTheta([1.0]))
    assumed = _scalar_problem(K, M, K, _theta, lambda m: np.full(m.shape[0], 0.5))
    for problem, name, rigorous in ((certified, "min-theta (certified)", True),
                                    (assumed, "user callable (assumed)", False)):
        builder = certrb.OfflineBuilder(problem, ("orthonormal",))
        model = certrb.weak_greedy(builder, problem.parameter_space.sample(20, rng=0), tol=1e-12, max_basis=4).model
        res = model.evaluate([[3.0]])
        assert res.certificate == name
        assert np.isfinite(res.roundoff).all()
        assert res.rigorous is rigorous


@pytest.mark.slow
def test_coercivity_constant_at_1e5_dofs():
    """2D five-point Laplacian, 316^2 unknowns: A = 2 K + h^2 I against X = K, alpha = 2 + h^2 / lambda_max(K)."""
    m = 316
    h = 1.0 / (m + 1)
    T = sp.diags([-np.ones(m - 1), 2 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1])
    eye = sp.identity(m)
    K = sp.csr_matrix(sp.kron(T, eye) + sp.kron(eye, T))
    top = 8 * mpmath.sin(m * mpmath.pi * mpmath.mpf(h) / 2) ** 2
    exact = float(2 + mpmath.mpf(h) ** 2 / top)
    start = time.perf_counter()
    alpha = coercivity_constant(2 * K + h * h * sp.identity(m * m), K)
    elapsed = time.perf_counter() - start
    assert_certified(alpha, exact, rtol=1e-6)
    assert elapsed < 120, elapsed


# --- singular, diagonally dominant terms and the ill-conditioned family --------------------------


def test_dominance_defect_is_exactly_zero_for_a_neumann_stiffness():
    n = 37  # h = 1/37 is not a power of two: 2/h is still exact (a doubling)
    h = 1.0 / n
    main = np.r_[1.0, 2 * np.ones(n - 1), 1.0] / h
    off = -np.ones(n) / h
    K = sp.csr_matrix(sp.diags([off, main, off], [-1, 0, 1]))
    assert not dominance_defect(K).any()
    Kp = K.tolil()
    Kp[3, 3] *= 1 - 2**-52  # one row just short of dominance: a positive defect of about u K_33
    delta = dominance_defect(sp.csr_matrix(Kp))
    assert np.flatnonzero(delta).tolist() == [3]
    assert 0 < delta[3] < 1e-14 * K[3, 3]
    assert np.isinf(dominance_defect(sp.csr_matrix(-K))).all()  # negative diagonal: no Gershgorin proof


def test_dominance_defect_of_a_non_symmetric_term_bounds_its_hermitian_part():
    K, _ = p1(30)
    skew = sp.csr_matrix(sp.diags([np.ones(29), -np.ones(29)], [-1, 1]))
    delta = dominance_defect(K + 1e3 * skew)  # Hermitian part K: Dirichlet rows strictly dominant
    assert delta.max() <= 1e-12 * K.diagonal().max()


def test_hermitian_sum_merges_equal_matrices():
    K, M = p1(50)
    X = sp.csr_matrix(K + 1e-10 * M)
    s = 1 - 1e-8
    c = 1.0 - s  # exact (Sterbenz)
    Mh, F = hermitian_sum([(1.0, X.copy()), (-s, X)])
    # one term c X: one rounding per entry, and an error bound of that size (not u |X|)
    assert abs(Mh - c * X).max() <= 2**-53 * c * abs(X).max()
    assert F.max() <= 1e-14 * c * abs(X).max()
    assert certify_psd(Mh, F)  # (1 - s) X is as definite as X itself


def _family_terms(problem):
    return [sp.csr_matrix(a) for a in problem.operator.terms], sp.csr_matrix(problem.inner_product.matrix)


def exact_psd(terms, coefficients, X, s) -> bool:
    """``sum_q c_q A_q - s X >= 0`` decided in 60-digit arithmetic (tridiagonal LDL^T pivots, exact affine sum)."""
    with mpmath.workdps(60):
        n = X.shape[0]
        diag = [mpmath.mpf(0)] * n
        low = [mpmath.mpf(0)] * (n - 1)
        for c, a in [*zip(coefficients, terms, strict=True), (-s, X)]:
            c = mpmath.mpf(float(c))
            d, lo = a.diagonal(), a.diagonal(-1)
            for i in range(n):
                diag[i] += c * mpmath.mpf(float(d[i]))
            for i in range(n - 1):
                low[i] += c * mpmath.mpf(float(lo[i]))
        pivot = diag[0]
        for i in range(1, n):
            if pivot <= 0:
                return False
            pivot = diag[i] - low[i - 1] ** 2 / pivot
        return pivot >= 0


@pytest.mark.parametrize(("w", "n"), [(1.0, 256), (1e-6, 256), (1e-10, 8), (1e-10, 16)])
@pytest.mark.parametrize("kind", ["min-theta", "scm"])
def test_ill_conditioned_family_stability_is_below_the_exact_constant(w, n, kind):
    """certrb's own MinTheta and SCM on X = K + w M, cond(X) up to ~1e13: every value <= the exact constant."""
    problem = h1_diffusion(n, w, kind)
    assert problem.stability.certified
    terms, X = _family_terms(problem)
    mus = problem.parameter_space.sample(12, rng=7)
    mus[0] = [0.0, 1.0]  # alpha = 1 exactly there
    lower = problem.stability_lower_bound(mus)
    theta = problem.operator.theta(mus)
    for c, lb in zip(theta, lower, strict=True):
        assert exact_psd(terms, c, X, lb), (w, n, kind, lb)
    assert lower.min() >= (0.99999 if kind == "min-theta" else 0.5)  # the exact constants are >= 1
    if kind == "min-theta":  # at mu_ref the bound is tight: 1 - 1e-8 <= alpha = 1
        assert lower[0] >= 1 - 2e-8
        assert not exact_psd(terms, theta[0], X, 1 + 1e-6)


def test_ill_conditioned_family_refuses_what_it_cannot_prove():
    """30 elements at w = 1e-10: K_x has rounded rows (not exactly dominant) and cond(X) ~ 4e13."""
    with pytest.raises(StabilityError, match="term 1 is not certified"):
        h1_diffusion(30, 1e-10, "min-theta")
    with pytest.raises(StabilityError):
        h1_diffusion(30, 1e-10, "scm")

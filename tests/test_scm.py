"""Successive constraint method: lower bounds against dense truth constants, coercive and inf-sup."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

import certrb
from certrb import (
    SCM,
    AffineFunctional,
    AffineOperator,
    MinTheta,
    ParameterError,
    ParameterSpace,
    Problem,
    ShapeError,
    StabilityError,
)
from certrb.online.scm import infsup_coefficients
from certrb.problems import diffusion1d
from conftest import make_complex_problem, p1_matrices

N_TEST = 500


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Many small dense factorizations: multi-threaded BLAS only adds overhead (3x on a loaded 2-core box)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --- truth constants (dense) ----------------------------------------------------------------


def dense_alpha(operator, X, mus):
    """alpha(mu) = smallest eigenvalue of the Hermitian part of A(mu) w.r.t. X."""
    Xd = X.toarray()
    out = []
    for t in operator.theta(mus):
        A = operator.assemble(t).toarray()
        out.append(sla.eigh((A + A.conj().T) / 2, Xd, eigvals_only=True, subset_by_index=[0, 0])[0])
    return np.array(out)


def dense_beta(operator, X, mus):
    """beta(mu) = sigma_min(L^{-1} A(mu) L^{-H}) with X = L L^H."""
    L = np.linalg.cholesky(X.toarray())
    out = []
    for t in operator.theta(mus):
        A = operator.assemble(t).toarray()
        Ah = sla.solve_triangular(L, sla.solve_triangular(L, A, lower=True).conj().T, lower=True).conj().T
        out.append(np.linalg.svd(Ah, compute_uv=False)[-1])
    return np.array(out)


# --- problems -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def d60():
    return diffusion1d(60)


@pytest.fixture(scope="module")
def d60_test(d60):
    mus = d60.parameter_space.sample(N_TEST, rng=2)
    return mus, dense_alpha(d60.operator, d60.inner_product.matrix, mus)


def _corners_and_samples(space, n, rng):
    return np.vstack([space.grid(2), space.sample(n, rng=rng)])


def indefinite_theta(mus):
    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0], mus[:, 1]])


@pytest.fixture(scope="module")
def indefinite_term():
    """A(mu) = K + mu1 (K_x - 5 M) + mu2 M on (0, 1), mu1 in [-0.5, 1], mu2 in [0, 10], X = K.

    The middle term is indefinite and mu1 changes sign (min-theta does not apply),
    yet A(mu) is coercive on the whole domain.
    """
    import skfem
    from skfem.helpers import dot, grad

    mesh = skfem.MeshLine(np.linspace(0.0, 1.0, 61))
    basis = skfem.Basis(mesh, skfem.ElementLineP1())
    Kx = skfem.BilinearForm(lambda u, v, w: w.x[0] * dot(grad(u), grad(v))).assemble(basis)
    inner = basis.complement_dofs(basis.get_dofs())
    K, M, F, _ = p1_matrices(60)
    op = AffineOperator([K, Kx[inner][:, inner] - 5.0 * M, M], indefinite_theta)
    space = ParameterSpace(["mu1", "mu2"], [-0.5, 0.0], [1.0, 10.0])
    return op, K, space, F


def helmholtz_theta(mus):
    k = mus[:, 0]
    return np.column_stack([np.ones_like(k), -(k**2), -1j * k])


def helmholtz_theta_real(mus):
    k = mus[:, 0]
    return np.column_stack([np.ones_like(k), -(k**2), k])


@pytest.fixture(scope="module")
def helmholtz():
    """-u'' - k^2 u = f on (0, 1), u(0) = 0, u'(1) - i k u(1) = 0: A(k) = K - k^2 M - i k B, X = K + M."""
    import skfem
    from skfem.helpers import dot, grad

    mesh = skfem.MeshLine(np.linspace(0.0, 1.0, 81))
    basis = skfem.Basis(mesh, skfem.ElementLineP1())
    K = skfem.BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(basis)
    M = skfem.BilinearForm(lambda u, v, w: u * v).assemble(basis)
    free = basis.complement_dofs(basis.get_dofs(lambda x: x[0] < 1e-12))
    K, M = K[free][:, free].tocsr(), M[free][:, free].tocsr()
    n = K.shape[0]
    assert abs(mesh.p[0, free[-1]] - 1.0) < 1e-12
    B = sp.csr_matrix(([1.0], ([n - 1], [n - 1])), shape=(n, n))
    space = ParameterSpace(["k"], [1.0], [10.0])
    return {"K": K, "M": M, "B": B, "X": (K + M).tocsr(), "space": space,
            "train": np.linspace(1.0, 10.0, 120)[:, None], "test": space.sample(N_TEST, rng=5)}


@pytest.fixture(scope="module")
def helmholtz_exact(helmholtz):
    op = AffineOperator([helmholtz["K"], helmholtz["M"], helmholtz["B"]], helmholtz_theta)
    return dense_beta(op, helmholtz["X"], helmholtz["test"])


# --- coercive kind --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def d60_scm(d60):
    train = _corners_and_samples(d60.parameter_space, 200, 1)
    return SCM(d60.operator, d60.inner_product, train)


@pytest.mark.parametrize("dense_limit", [None, 0], ids=["dense", "arpack"])
def test_coercive_bounds_diffusion1d(d60, d60_test, dense_limit):
    train = _corners_and_samples(d60.parameter_space, 200, 1)
    scm = SCM(d60.operator, d60.inner_product, train, dense_limit=dense_limit)
    mus, exact = d60_test
    lower, upper = scm(mus), scm.upper_bound(mus)
    assert np.all(lower <= exact * (1 + 1e-12))
    assert np.all(upper >= exact * (1 - 1e-12))
    # measured: lower / exact in [0.976, 1.0], median 0.989 (two SCM points reach tol = 0.75)
    assert np.all(lower >= 0.9 * exact)
    assert scm.history[-1] <= 0.75


def test_coercive_offline_data(d60_scm, d60):
    scm = d60_scm
    k, q = scm.n_points, d60.operator.n_terms
    assert scm.box.shape == (q, 2)
    assert scm.points.shape == (k, 2)
    assert scm.y.shape == (k, q)
    assert scm.history.shape == (k,)
    assert scm.theta_points.shape == (k, q)
    assert np.all(scm.box[:, 0] <= scm.y.min(axis=0))
    assert np.all(scm.y.max(axis=0) <= scm.box[:, 1])
    # X = K is the first term: its Rayleigh quotient is 1
    np.testing.assert_allclose(scm.box[0], [1.0, 1.0], rtol=1e-8)
    assert np.all(scm.lower_values <= scm.values)
    np.testing.assert_allclose(scm.values, dense_alpha(d60.operator, d60.inner_product.matrix, scm.points),
                               rtol=1e-10)
    # at an SCM point its own constraint is active: the bound recovers the certified value
    lower = scm(scm.points)
    assert np.all(lower >= scm.lower_values * (1 - 1e-12))
    assert np.all(lower <= scm.values)
    # online data only: nothing of size n_h
    arrays = [v for v in vars(scm).values() if isinstance(v, np.ndarray)]
    assert max(a.size for a in arrays) < d60.size
    assert "SCM(kind='coercive'" in repr(scm)


def test_coercive_tighter_tolerance(d60, d60_test):
    train = _corners_and_samples(d60.parameter_space, 150, 3)
    scm = SCM(d60.operator, d60.inner_product, train, tol=1e-3, max_iter=30)
    mus, exact = d60_test
    lower = scm(mus)
    assert scm.n_points > 1
    assert scm.history[-1] <= 1e-3 or scm.n_points == 30
    assert np.all(lower <= exact * (1 + 1e-12))
    # measured: lower / exact >= 0.999 with 19 SCM points
    assert np.all(lower >= 0.99 * exact)


def test_non_parametrically_coercive(indefinite_term):
    op, K, space, F = indefinite_term
    rhs = AffineFunctional([F], lambda m: np.ones((m.shape[0], 1)))
    with pytest.raises(StabilityError, match="non-negative"):
        Problem(op, rhs, K, space, stability=MinTheta([-0.5, 5.0]))
    scm = SCM(op, K, _corners_and_samples(space, 200, 0))
    assert scm.box[1, 0] < 0 < scm.box[1, 1]  # the indefinite term
    mus = space.sample(N_TEST, rng=1)
    exact = dense_alpha(op, K, mus)
    lower, upper = scm(mus), scm.upper_bound(mus)
    assert exact.min() > 0.4  # coercive on the whole domain
    assert np.all(lower <= exact * (1 + 1e-12))
    assert np.all(upper >= exact * (1 - 1e-12))
    # measured: lower / exact >= 0.848, median 0.971 (one SCM point reaches tol = 0.75)
    assert np.all(lower >= 0.75 * exact)


def test_scm_as_problem_stability(d60, d60_scm, d60_test):
    problem = Problem(d60.operator, d60.rhs, d60.inner_product, d60.parameter_space, stability=d60_scm,
                      output=d60.output)
    mus, exact = d60_test
    lower = problem.stability_lower_bound(mus[:50])
    np.testing.assert_array_equal(lower, d60_scm(mus[:50]))
    assert np.all((lower > 0) & (lower <= exact[:50]))
    assert problem.stability_lower_bound(mus[0]).shape == (1,)
    with pytest.raises(ParameterError):
        problem.stability_lower_bound([[100.0, 0.0]])


def test_scm_in_reduced_model(d60, d60_scm):
    problem = Problem(d60.operator, d60.rhs, d60.inner_product, d60.parameter_space, stability=d60_scm)
    train = d60.parameter_space.sample(40, rng=4)
    result = certrb.weak_greedy(certrb.OfflineBuilder(problem, "orthonormal"), train, tol=1e-6, max_basis=5)
    mus = d60.parameter_space.sample(5, rng=6)
    out = result.model.evaluate(mus)
    np.testing.assert_allclose(out.stability, d60_scm(mus))
    errors, _ = certrb.true_error(problem, result.model, mus)
    assert np.all(out.bound >= errors * (1 - 1e-10))


def test_pickle_and_from_data(d60_scm, d60_test):
    mus = d60_test[0][:20]
    clone = pickle.loads(pickle.dumps(d60_scm))
    np.testing.assert_array_equal(clone(mus), d60_scm(mus))
    fields = ("kind", "n_terms", "imag_terms", "box", "points", "values", "lower_values", "y", "history",
              "n_neighbors", "scaling")
    rebuilt = SCM.from_data(d60_scm.coefficients, **{f: getattr(d60_scm, f) for f in fields})
    np.testing.assert_array_equal(rebuilt(mus), d60_scm(mus))
    np.testing.assert_array_equal(rebuilt.upper_bound(mus), d60_scm.upper_bound(mus))
    bad = {f: getattr(d60_scm, f) for f in fields} | {"y": d60_scm.y[:, :2]}
    with pytest.raises(ShapeError, match="y must have shape"):
        SCM.from_data(d60_scm.coefficients, **bad)


def test_failing_lp_raises(d60_scm):
    fields = ("kind", "n_terms", "imag_terms", "box", "points", "values", "y", "history", "n_neighbors",
              "scaling")
    data = {f: getattr(d60_scm, f) for f in fields}
    # constraints no y in the box can satisfy: c(mu_k) . y >= 1e6 alpha(mu_k)
    corrupted = SCM.from_data(d60_scm.coefficients, lower_values=d60_scm.lower_values * 1e6, **data)
    with pytest.raises(StabilityError, match=r"linear program failed at mu = \[3\.0, 40\.0\]"):
        corrupted(np.array([[3.0, 40.0]]))


# --- inf-sup kind ---------------------------------------------------------------------------


def test_infsup_coefficients_expansion():
    """sum_j c_j(theta) y_j(v) = ||A v||_{X^-1}^2 for the documented Hermitian terms S_j."""
    rng = np.random.default_rng(0)
    n, q = 7, 3
    A = [rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)) for _ in range(q)]
    G = rng.standard_normal((n, n))
    X = G @ G.T + n * np.eye(n)
    Xi = np.linalg.inv(X)
    B = {(a, b): A[a].conj().T @ Xi @ A[b] for a in range(q) for b in range(q)}
    iu = list(zip(*np.triu_indices(q, 1), strict=True))
    S = ([B[a, a] for a in range(q)] + [(B[a, b] + B[a, b].conj().T) / 2 for a, b in iu]
         + [0.5j * (B[a, b] - B[a, b].conj().T) for a, b in iu])
    for s in S:
        np.testing.assert_allclose(s, s.conj().T, atol=1e-12)
    theta = rng.standard_normal((4, q)) + 1j * rng.standard_normal((4, q))
    c = infsup_coefficients(theta, True)
    assert c.shape == (4, q * q)
    v = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    y = np.array([np.vdot(v, s @ v).real for s in S])
    for t, ci in zip(theta, c, strict=True):
        Av = sum(tq * a for tq, a in zip(t, A, strict=True)) @ v
        np.testing.assert_allclose(ci @ y, np.vdot(Av, Xi @ Av).real, rtol=1e-12)
    # real coefficients: the imaginary block vanishes and may be dropped
    assert not infsup_coefficients(theta.real, True)[:, q * (q + 1) // 2:].any()
    assert infsup_coefficients(theta.real, False).shape == (4, q * (q + 1) // 2)


@pytest.mark.parametrize(
    ("coefficients", "scale_b", "n_terms"),
    [(helmholtz_theta, 1.0, 9), (helmholtz_theta_real, -1j, 6)],
    ids=["complex-theta", "real-theta"],
)
def test_infsup_helmholtz_dense(helmholtz, helmholtz_exact, coefficients, scale_b, n_terms):
    h = helmholtz
    op = AffineOperator([h["K"], h["M"], scale_b * h["B"]], coefficients)
    scm = SCM(op, h["X"], h["train"], kind="inf-sup")
    assert scm.box.shape == (n_terms, 2)
    assert scm.imag_terms == (n_terms == 9)
    lower, upper = scm(h["test"]), scm.upper_bound(h["test"])
    exact = helmholtz_exact
    assert np.all(lower > 0)
    assert np.all(lower <= exact * (1 + 1e-10))
    assert np.all(upper >= exact * (1 - 1e-10))
    # measured: lower / exact >= 0.60, median 0.89 (tol = 0.75 on beta^2: >= 0.5 on the training set)
    assert np.all(lower >= 0.5 * exact)
    assert scm.certified
    np.testing.assert_allclose(np.sqrt(scm.values), dense_beta(op, h["X"], scm.points), rtol=1e-8)
    assert np.all(scm.lower_values <= dense_beta(op, h["X"], scm.points) ** 2)


def test_infsup_helmholtz_arpack(helmholtz, helmholtz_exact):
    h = helmholtz
    op = AffineOperator([h["K"], h["M"], h["B"]], helmholtz_theta)
    scm = SCM(op, h["X"], h["train"], kind="inf-sup", dense_limit=0)
    # Cauchy-Schwarz box: diagonal terms in [0, u_q], the others symmetric
    assert np.all(scm.box[:3, 0] == 0)
    assert np.allclose(scm.box[3:, 0], -scm.box[3:, 1])
    lower, upper = scm(h["test"]), scm.upper_bound(h["test"])
    exact = helmholtz_exact
    assert np.all(lower > 0)
    assert np.all(lower <= exact * (1 + 1e-10))
    assert np.all(upper >= exact * (1 - 1e-10))
    # measured: lower / exact >= 0.49, median 0.85 (the looser box needs more SCM points: 37 vs 21)
    assert np.all(lower >= 0.4 * exact)
    np.testing.assert_allclose(np.sqrt(scm.values), dense_beta(op, h["X"], scm.points), rtol=1e-6)
    # beta(mu_k)^2 certified by the dense test at this size: below the exact values, and flagged certified
    assert scm.certified
    assert np.all(scm.lower_values <= dense_beta(op, h["X"], scm.points) ** 2)


@pytest.mark.parametrize("dense_limit", [None, 0], ids=["dense", "arpack"])
def test_infsup_complex_coercive_problem(dense_limit):
    """-u'' + (mu1 + i mu2) u: clustered smallest singular values (ARPACK falls back to alpha^2 <= beta^2)."""
    problem = make_complex_problem(60)
    space = problem.parameter_space
    scm = SCM(problem.operator, problem.inner_product, _corners_and_samples(space, 100, 0), kind="inf-sup",
              dense_limit=dense_limit)
    assert scm.imag_terms
    mus = space.sample(N_TEST, rng=1)
    exact = dense_beta(problem.operator, problem.inner_product.matrix, mus)
    lower, upper = scm(mus), scm.upper_bound(mus)
    assert np.all(lower <= exact * (1 + 1e-10))
    assert np.all(upper >= exact * (1 - 1e-10))
    # measured: dense >= 0.99999 (2 points), arpack >= 0.81 (7 points)
    assert np.all(lower >= 0.7 * exact)
    assert np.all(scm.lower_values <= scm.values)


def sometimes_complex_theta(mus):
    """Real for k <= 5, a complex third coefficient beyond."""
    k = mus[:, 0]
    return np.column_stack([np.ones_like(k), -(k**2), np.where(k <= 5.0, 1.0, 1j) * k])


def test_infsup_real_scm_rejects_complex_online(helmholtz):
    h = helmholtz
    op = AffineOperator([h["K"], h["M"], -1j * h["B"]], sometimes_complex_theta)
    scm = SCM(op, h["X"], np.linspace(1.0, 5.0, 9)[:, None], kind="inf-sup", max_iter=3)
    assert not scm.imag_terms
    assert scm(np.array([[2.0]]))[0] > 0
    with pytest.raises(StabilityError, match="without imaginary terms"):
        scm(np.array([[7.0]]))


# --- failures and bad input -----------------------------------------------------------------


def test_not_coercive_raises():
    K, M, _, _ = p1_matrices(40)
    op = AffineOperator([K, M], lambda m: np.column_stack([np.ones(m.shape[0]), -m[:, 0]]))
    with pytest.raises(StabilityError, match="not positive"):
        SCM(op, K, np.linspace(0.0, 30.0, 16)[:, None])


def test_bad_input(d60):
    op, X = d60.operator, d60.inner_product
    train = d60.parameter_space.sample(10, rng=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        SCM(op, X, train, kind="inf_sup")
    with pytest.raises(TypeError, match="AffineOperator"):
        SCM(X.matrix, X, train)
    with pytest.raises(ShapeError, match="train must be a real array of shape"):
        SCM(op, X, train[0])
    with pytest.raises(ShapeError, match="train must be a real array of shape"):
        SCM(op, X, np.zeros((0, 2)))
    with pytest.raises(ShapeError, match="NaN"):
        SCM(op, X, np.array([[np.nan, 1.0]]))
    with pytest.raises(ShapeError, match="inner_product has size"):
        SCM(op, sp.identity(5, format="csr"), train)
    for option in ({"tol": 0.0}, {"n_neighbors": 0}, {"max_iter": 1.5}, {"margin": -1.0}):
        with pytest.raises(ValueError, match=next(iter(option))):
            SCM(op, X, train, **option)


def test_complex_coefficients_rejected_by_coercive_kind():
    K, M, _, _ = p1_matrices(30)
    op = AffineOperator([K, M], lambda m: np.column_stack([np.ones(m.shape[0]), m[:, 0] + 1j * m[:, 1]]))
    with pytest.raises(StabilityError, match="real operator coefficients"):
        SCM(op, K, np.array([[1.0, 2.0], [3.0, 4.0]]))


def test_online_input_validation(d60_scm):
    with pytest.raises(ParameterError, match=r"shape \(n_mu, 2\)"):
        d60_scm(np.ones((3, 3)))
    with pytest.raises(ParameterError, match="NaN"):
        d60_scm(np.array([[np.nan, 1.0]]))
    with pytest.raises(ParameterError, match="real"):
        d60_scm(np.array([[1.0 + 1j, 1.0]]))
    assert d60_scm([1.0, 2.0]).shape == (1,)
    assert d60_scm(np.zeros((0, 2))).shape == (0,)


@pytest.mark.parametrize("dense_limit", [None, 0], ids=["dense", "arpack"])
def test_coercive_with_an_exactly_skew_term(dense_limit):
    """A skew advection term has a zero Hermitian part: its box is [0, 0], the SCM runs on the rest."""
    n = 60
    h = 1.0 / (n + 1)
    K = sp.csr_matrix(sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) / h)
    B = sp.csr_matrix(sp.diags([-np.ones(n - 1), np.ones(n - 1)], [-1, 1]) * 0.5)  # exactly skew
    op = AffineOperator([K, B], lambda m: np.column_stack([m[:, 0], np.cos(m[:, 1])]))
    train = np.column_stack([np.linspace(0.5, 2.0, 7), np.linspace(0.0, 3.0, 7)])
    scm = SCM(op, K, train, dense_limit=dense_limit)
    np.testing.assert_array_equal(scm.box[1], [0.0, 0.0])
    mus = np.column_stack([np.linspace(0.6, 1.9, 5), np.linspace(0.1, 2.9, 5)])
    lower = scm(mus)
    assert scm.certified
    assert np.all(lower <= mus[:, 0])  # alpha(mu) = mu_1 exactly (X = K, the skew part adds nothing)
    assert np.all(lower >= 0.5 * mus[:, 0])

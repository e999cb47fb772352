"""Round-off certificates: the certified bound holds down to machine precision and stays tight above it."""

import numpy as np
import pytest
import scipy.sparse as sp

import certrb
from certrb.offline.estimators.orthonormal import extend_factor
from certrb.offline.estimators.roundoff import exact_components, factor_certificate, product_extended, riesz_defects
from certrb.online.estimators.roundoff import UNIT, FactorCertificate, gamma
from certrb.problems import diffusion1d
from certrb.problems.helmholtz1d import helmholtz1d


def test_gamma_matches_its_definition_and_refuses_huge_n():
    assert gamma(10) == pytest.approx(10 * UNIT / (1 - 10 * UNIT), rel=1e-15)
    assert gamma(1) > UNIT
    with pytest.raises(ValueError, match="undefined"):
        gamma(2**52)


@pytest.fixture(scope="module")
def spd():
    """A small random SPD inner product and random functionals."""
    rng = np.random.default_rng(3)
    n = 40
    B = sp.random(n, n, density=0.2, random_state=rng) + sp.eye(n) * 3
    X = certrb.InnerProduct((B @ B.T).tocsr())
    g = rng.standard_normal((n, 6))
    return X, g


def test_riesz_defect_measures_a_known_perturbation(spd):
    X, g = spd
    z = np.asarray(X.riesz(g, refine=2), dtype=float)
    clean = riesz_defects(X, g.astype(np.longdouble), z)
    assert np.all(clean < 1e-13 * X.norms(z))
    d = np.zeros_like(z)
    d[:, 2] = 1e-9 * np.random.default_rng(0).standard_normal(z.shape[0])
    defects = riesz_defects(X, g.astype(np.longdouble), z + d)
    # SAFETY * ||d||_X for the perturbed column, still tiny for the others
    assert defects[2] == pytest.approx(2 * X.norms(d[:, 2:3])[0], rel=1e-6)
    assert np.all(np.delete(defects, 2) < 1e-13 * np.delete(X.norms(z), 2))


def _exact_norms(X: certrb.InnerProduct, g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``||sum_k x_k g_k||_{V'}`` from the combination formed in extended precision (refined solve)."""
    r = g.astype(np.longdouble) @ x.T.astype(np.longdouble)
    return np.asarray(X.dual_norms(r, refine=3), dtype=float)


def test_certificate_bounds_the_error_of_a_perturbed_factorization(spd):
    """With a deliberately damaged factor the certified norm still bounds the exact one."""
    X, g = spd
    z = np.asarray(X.riesz(g, refine=2), dtype=float)
    psi, R = extend_factor(np.zeros((40, 0)), np.zeros((0, 0)), z, X)
    R_bad = R.copy()
    R_bad[0, 1] += 1e-7  # a visible factorization defect
    cert = factor_certificate(X, g.astype(np.longdouble), z, psi, R_bad)
    assert cert.defects[1] > 1e-7  # measured (psi_0 is X-normalized)
    # combinations that nearly cancel: x = y + t * (null direction of the first 5 columns, completed)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 6)) * np.logspace(-12, 0, 200)[:, None]
    y = x @ R_bad.T
    eps = np.sqrt((y * y).sum(axis=1))
    exact = _exact_norms(X, g, x)
    assert np.all(exact <= eps + cert.delta(x, eps))
    # without the damage the same certificate is tight (delta ~ u * |x| |rho|, not the damage)
    cert_ok = factor_certificate(X, g.astype(np.longdouble), z, psi, R)
    y = x @ R.T
    eps = np.sqrt((y * y).sum(axis=1))
    delta = cert_ok.delta(x, eps)
    assert np.all(exact <= eps + delta)
    assert np.all(delta <= 1e-12 * np.abs(x).sum(axis=1) * X.norms(z).max())


def test_certificate_round_trips_through_arrays(spd):
    X, g = spd
    z = np.asarray(X.riesz(g, refine=2), dtype=float)
    psi, R = extend_factor(np.zeros((40, 0)), np.zeros((0, 0)), z, X)
    cert = factor_certificate(X, g.astype(np.longdouble), z, psi, R)
    back = FactorCertificate.from_arrays(cert.to_arrays("c_"), "c_", R.shape)
    x = np.random.default_rng(2).standard_normal((5, 6))
    eps = np.ones(5)
    assert np.array_equal(back.delta(x, eps), cert.delta(x, eps))


def test_exact_components_agree_with_double_components(small_problem, small_greedy):
    V = small_greedy.model.basis
    g = exact_components(small_problem, V)
    assert g.dtype == np.longdouble
    q_f, q_a = small_problem.rhs.n_terms, small_problem.operator.n_terms
    assert g.shape == (small_problem.size, q_f + q_a * V.shape[1])
    A1v2 = small_problem.operator.terms[1] @ V[:, 1]  # column of A_2 v_2 in basis-vector-major order
    assert np.allclose(np.asarray(g[:, q_f + q_a + 1], dtype=float), A1v2, rtol=1e-14, atol=1e-14 * abs(A1v2).max())


@pytest.fixture(scope="module")
def deep():
    """A 1D diffusion model greedily driven to machine precision, all certified estimators attached."""
    problem = diffusion1d(400)
    train = problem.parameter_space.sample(300, rng=11)
    builder = certrb.OfflineBuilder(problem, ("orthonormal", "eim", "eim-stabilized", "expanded"))
    model = certrb.weak_greedy(builder, train, tol=1e-15, max_basis=28).model
    return problem, model


@pytest.mark.parametrize("name", ["orthonormal", "eim", "eim-stabilized"])
def test_certified_bound_never_below_true_error_at_any_n(deep, name):
    """The stable estimators: certified everywhere, tight above the round-off regime."""
    problem, model = deep
    mus = problem.parameter_space.sample(60, rng=12)
    lowest = np.inf
    for n in range(1, model.n_basis + 1):
        res = model.evaluate(mus, estimator=name, n=n)
        err, norm = certrb.true_error(problem, model, mus, n=n)
        assert res.rigorous
        assert np.all(res.bound >= err), (n, np.min(res.bound / err))
        assert np.all(res.bound >= res.estimate)
        lowest = min(lowest, float(np.max(err / norm)))
        # tight wherever the error is far above the round-off regime
        far = err / norm > 1e-9
        assert np.all(res.bound[far] <= 2 * res.estimate[far])
    assert lowest < 1e-10  # the round-off regime (u * cond(A) ~ 1e-10 here) was reached and certified


def test_certified_expanded_bound_holds_and_shows_its_sqrt_eps_floor(deep):
    """E1's certificate makes it honest: never below the error, but stuck far above the floor."""
    problem, model = deep
    mus = problem.parameter_space.sample(40, rng=14)
    f_norm = problem.inner_product.dual_norms(problem.rhs.assemble(mus).T)
    for n in (5, 15, model.n_basis):
        res = model.evaluate(mus, estimator="expanded", n=n)
        err, _ = certrb.true_error(problem, model, mus, n=n)
        assert res.rigorous
        assert np.all(res.bound >= err)
    # at the finest basis the residual is ~1e-12 ||f|| but the certified residual bound cannot go below ~1e-8
    certified_residual = (res.residual_norm + res.roundoff) / f_norm
    assert np.min(certified_residual) > 1e-9
    assert np.max(certrb.truth_residual_norm(problem, model, mus, precision="extended") / f_norm) < 1e-10


def test_uncertified_estimators_are_flagged_and_unchanged(deep):
    problem, model = deep
    mus = problem.parameter_space.sample(10, rng=13)
    reduced = certrb.reduce(certrb.OfflineBuilder(problem, "point-basis"), model.basis,
                            train=problem.parameter_space.sample(50, rng=1))
    res = reduced.evaluate(mus, estimator="point-basis")
    assert np.all(np.isnan(res.roundoff))
    assert not res.rigorous
    assert np.array_equal(res.bound, res.estimate)
    assert np.array_equal(res.bound, res.residual_norm / res.stability)


def test_complex_noncoercive_model_is_certified():
    problem = helmholtz1d(120, (1.0, 6.0), scm_train=60)
    train = problem.parameter_space.sample(60, rng=1)
    model = certrb.weak_greedy(certrb.OfflineBuilder(problem, ("orthonormal", "eim")), train, tol=1e-13,
                               max_basis=25).model
    mus = problem.parameter_space.sample(30, rng=2)
    for name in ("orthonormal", "eim"):
        for n in (model.n_basis // 2, model.n_basis):
            res = model.evaluate(mus, estimator=name, n=n)
            err, _ = certrb.true_error(problem, model, mus, n=n)
            assert res.rigorous
            assert np.all(res.bound >= err)


def test_loaded_model_keeps_its_certificate(deep, tmp_path):
    pytest.importorskip("h5py")
    problem, model = deep
    path = tmp_path / "deep.h5"
    certrb.save(model, path)
    loaded = certrb.load(path, trusted=True)
    mus = problem.parameter_space.sample(7, rng=3)
    for name in ("orthonormal", "eim"):
        a, b = model.evaluate(mus, estimator=name), loaded.evaluate(mus, estimator=name)
        assert b.rigorous
        assert b.certificate == a.certificate == "min-theta (certified)"
        assert np.array_equal(a.bound, b.bound)


@pytest.mark.parametrize("sparse", [False, True])
def test_split_product_matches_extended_precision(sparse):
    """The error-free splitting reproduces the longdouble product far below double round-off."""
    rng = np.random.default_rng(5)
    if sparse:
        A = sp.random(400, 300, density=0.02, random_state=rng, format="csr")
        A.data *= np.logspace(-3, 3, A.nnz)
        A_ext = A.astype(np.longdouble)
    else:
        A = rng.standard_normal((400, 60)) * np.logspace(-3, 3, 60)
        A_ext = A.astype(np.longdouble)
    B = rng.standard_normal((A.shape[1], 7)) * np.logspace(4, -4, 7)
    exact = A_ext @ B.astype(np.longdouble)
    scale = np.maximum(abs(A) @ np.abs(B), 1e-300)  # empty sparse rows: both products are exactly 0
    got = product_extended(A, B)
    assert got.dtype == np.longdouble
    assert np.max(np.abs(got - exact) / scale) < 1e-18
    assert np.max(np.abs((A @ B) - exact) / scale) > 1e-18  # plain double is visibly worse


def test_certification_can_be_skipped(small_problem, small_greedy):
    builder = certrb.OfflineBuilder(small_problem, ("orthonormal", "eim", "expanded"), certify=False)
    model = certrb.reduce(builder, small_greedy.model.basis, train=small_problem.parameter_space.sample(40, rng=1))
    mus = small_problem.parameter_space.sample(6, rng=2)
    for name in ("orthonormal", "eim", "expanded"):
        res = model.evaluate(mus, estimator=name)
        assert not res.rigorous
        assert np.array_equal(res.bound, res.estimate)

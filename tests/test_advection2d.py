"""advection2d: term structure, a manufactured solution, a mirror symmetry, certified stability, a greedy."""

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

import certrb
from certrb.interop.skfem import Dirichlet
from certrb.problems import advection2d
from certrb.problems.thermal_block import cross_mesh, interior_points

skfem = pytest.importorskip("skfem")


@pytest.fixture(scope="module")
def adv8():
    return advection2d(8, pe_range=(1.0, 20.0), n_scm_train=40)


def test_sizes_and_parameters(adv8):
    assert adv8.size == 7**2 + 8**2
    assert adv8.parameter_space.names == ("pe", "angle")
    assert adv8.operator.n_terms == 4
    assert adv8.rhs.n_terms == 1
    assert adv8.output is not None


def test_terms_symmetric_skew_and_inner_product(adv8):
    K, Bx, By, M = adv8.operator.terms
    for a in (K, M):
        assert abs(a - a.T).max() == 0
    for b in (Bx, By):
        assert abs(b + b.T).max() == 0  # exactly skew: no Hermitian part
        assert abs(b).max() > 0
    X = adv8.inner_product.matrix
    assert abs(X - (K + M)).max() == 0
    assert sla.eigh(X.toarray(), eigvals_only=True)[0] > 0


def _manufactured_error(n: int, mu: np.ndarray) -> float:
    """Relative H1 distance between the truth solution for u* = sin(pi x) sin(pi y) and u*'s interpolant."""
    problem = advection2d(n, pe_range=(1.0, 20.0), n_scm_train=5)
    pe, angle = mu
    basis = skfem.Basis(cross_mesh(n), skfem.ElementTriP1())
    dirichlet = Dirichlet(basis)

    @skfem.LinearForm
    def source(v, w):
        x, y = w.x
        u = np.sin(np.pi * x) * np.sin(np.pi * y)
        ux, uy = np.pi * np.cos(np.pi * x) * np.sin(np.pi * y), np.pi * np.sin(np.pi * x) * np.cos(np.pi * y)
        return (2 * np.pi**2 / pe * u + np.cos(angle) * ux + np.sin(angle) * uy + u) * v

    (load,) = dirichlet.vectors([source])
    A = sum(t * a for t, a in zip(problem.operator.theta(mu[None])[0], problem.operator.terms, strict=True))
    u_h = sp.linalg.spsolve(A.tocsc(), load)
    x, y = interior_points(n)
    exact = np.sin(np.pi * x) * np.sin(np.pi * y)
    ip = problem.inner_product
    return float(ip.norms((u_h - exact)[:, None])[0] / ip.norms(exact[:, None])[0])


def test_manufactured_solution_converges():
    mu = np.array([7.0, 0.6])
    coarse, fine = _manufactured_error(8, mu), _manufactured_error(16, mu)
    assert fine < 0.03
    assert 1.8 < coarse / fine < 2.5  # first order in H1, as P1 elements should be


def test_diagonal_advection_is_mirror_symmetric(adv8):
    """With b along the diagonal, u(x, y) = u(y, x): the mesh and the equation are symmetric in x <-> y."""
    u = adv8.solve(np.array([[5.0, np.pi / 4]]))[0]
    keys = np.rint(interior_points(8) * 16).astype(int)
    lookup = {(a, b): j for j, (a, b) in enumerate(keys.T)}
    mirror = np.array([lookup[(b, a)] for a, b in keys.T])
    assert np.max(np.abs(u - u[mirror])) < 1e-12 * np.max(np.abs(u))
    assert np.max(np.abs(u - adv8.solve(np.array([[5.0, 0.2]]))[0])) > 1e-3 * np.max(np.abs(u))


def test_advection_moves_the_solution_downstream(adv8):
    """Strong advection along +x pushes the mass of u towards x = 1."""
    x, _ = interior_points(8)
    u = adv8.solve(np.array([[20.0, 0.0]]))[0]
    assert np.all(u > 0)
    assert np.sum(u * x) / np.sum(u) > 0.55


def test_stability_certified_below_the_coercivity_constant(adv8):
    mus = adv8.parameter_space.sample(6, rng=3)
    lower = adv8.stability_lower_bound(mus)
    X = adv8.inner_product.matrix.toarray()
    for mu, lb in zip(mus, lower, strict=True):
        A = sum(t * a for t, a in zip(adv8.operator.theta(mu[None])[0], adv8.operator.terms, strict=True)).toarray()
        alpha = sla.eigh((A + A.T) / 2, X, eigvals_only=True)[0]
        assert 0 < lb <= alpha
        assert alpha >= min(1 / mu[0], 1.0) * (1 - 1e-12)
        assert lb > 0.5 * alpha  # the SCM is not vacuous
    assert adv8.stability.certified


def test_greedy_bound_is_certified(adv8):
    space = adv8.parameter_space
    result = certrb.weak_greedy(certrb.OfflineBuilder(adv8, ("orthonormal",), rng=0), space.sample(60, rng=0),
                                tol=1e-6, max_basis=12)
    test = space.sample(10, rng=1)
    out = result.model.evaluate(test)
    err, norm = certrb.true_error(adv8, result.model, test)
    assert np.all(out.bound >= err)
    assert np.max(err / norm) < 1e-2
    assert np.median(out.bound / err) < 30  # effectivity: the bound is informative


@pytest.mark.parametrize(("kw", "match"), [
    ({"n": 1}, "n must be"), ({"pe_range": (0.0, 2.0)}, "pe_range"), ({"angle_range": (1.0, 0.0)}, "angle_range"),
    ({"reaction": 0.0}, "reaction"), ({"n_scm_train": 0}, "n_scm_train"),
])
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        advection2d(**{"n": 4, **kw})

"""thermal_block: mesh sizes, operator structure, stability, solution properties, a greedy."""

import numpy as np
import pytest
import scipy.sparse as sp

import certrb
from certrb.offline.stability import coercivity_constant
from certrb.problems import thermal_block
from certrb.problems.thermal_block import block_index, cross_mesh, interior_points


@pytest.fixture(scope="module")
def tb8():
    return thermal_block((2, 2), n=8)


@pytest.fixture(scope="module")
def tb20():
    return thermal_block((2, 2), n=20)


def mirror_permutation(points, n, mirror):
    """Index map i -> j with points[:, j] == mirror(points[:, i]) (points on the 1/(2n) lattice)."""
    keys = np.rint(points * 2 * n).astype(int)
    mirrored = np.rint(mirror(points) * 2 * n).astype(int)
    lookup = {(a, b): j for j, (a, b) in enumerate(keys.T)}
    return np.array([lookup[(a, b)] for a, b in mirrored.T])


def poisson_mean_exact():
    """int u for -Lap u = 1 on the unit square, u = 0 on the boundary (double sine series)."""
    k = np.arange(1, 4000, 2, dtype=float)
    m2, n2 = np.meshgrid(k**2, k**2)
    return 64 / np.pi**6 * np.sum(1.0 / (m2 * n2 * (m2 + n2)))


def test_sizes_match_the_pymor_demo_mesh():
    n = 100
    mesh = cross_mesh(n)
    assert mesh.p.shape[1] == (n + 1) ** 2 + n**2 == 20_201
    assert mesh.t.shape[1] == 4 * n**2
    problem = thermal_block((2, 2), n=n)
    assert problem.size == (n - 1) ** 2 + n**2 == 19_801
    assert interior_points(n).shape == (2, problem.size)


@pytest.mark.parametrize(("blocks", "n"), [((2, 2), 4), ((3, 1), 6), ((1, 4), 8), ((3, 2), 6)])
def test_terms_and_parameter_space(blocks, n):
    problem = thermal_block(blocks, n=n, mu_range=(0.5, 2.0))
    n_blocks = blocks[0] * blocks[1]
    assert problem.operator.n_terms == n_blocks
    assert problem.parameter_space.names == tuple(f"mu_{b}" for b in range(1, n_blocks + 1))
    assert np.all(problem.parameter_space.lower == 0.5)
    assert np.all(problem.parameter_space.upper == 2.0)
    assert problem.size == (n - 1) ** 2 + n**2


def test_blocks_are_row_major_from_the_bottom():
    n, blocks = 6, (3, 2)
    problem = thermal_block(blocks, n=n)
    pts = interior_points(n)
    for b, a in enumerate(problem.operator.terms):
        r, c = divmod(b, blocks[0])
        inside = ((pts[0] >= c / 3 - 1e-12) & (pts[0] <= (c + 1) / 3 + 1e-12)
                  & (pts[1] >= r / 2 - 1e-12) & (pts[1] <= (r + 1) / 2 + 1e-12))
        np.testing.assert_array_equal(a.diagonal() > 0, inside)
    np.testing.assert_array_equal(block_index(np.array([[0.1, 0.5, 0.9, 0.1], [0.1, 0.1, 0.1, 0.9]]), blocks),
                                  [0, 1, 2, 3])


def test_symmetric_semidefinite_terms_and_definite_inner_product(tb8):
    X = tb8.inner_product.matrix
    for a in tb8.operator.terms:
        assert (a - a.T).nnz == 0
        assert np.linalg.eigvalsh(a.toarray())[0] > -1e-12 * abs(a).max()
    assert (X - X.T).nnz == 0
    assert np.linalg.eigvalsh(X.toarray())[0] > 0


def test_operator_at_ones_is_the_inner_product(tb20):
    A = tb20.operator.assemble(np.ones(4))
    X = sp.csc_matrix(tb20.inner_product.matrix)
    assert abs(A - X).max() == 0.0


def test_min_theta_bound_is_min_mu_and_below_the_coercivity_constant(tb8):
    mus = np.vstack([tb8.parameter_space.sample(6, rng=4), [[0.1, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]])
    bound = tb8.stability_lower_bound(mus)
    # min mu, lowered by the certification of alpha_ref = c and the terms' certified shifts
    assert np.all(bound <= mus.min(axis=1))
    np.testing.assert_allclose(bound, mus.min(axis=1), rtol=1e-6)
    X = tb8.inner_product.matrix
    for mu, lb in zip(mus, bound, strict=True):
        alpha = coercivity_constant(tb8.operator.assemble(tb8.operator.theta(mu[None])[0]), X)
        assert lb <= alpha / (1 - 1e-6)  # both certified lower bounds, each within 1e-6 of the constant
    assert 1 - 1e-6 <= bound[-1] <= 1.0  # the certified constant at the reference


def test_stability_reference_moves_inside_a_range_without_one():
    problem = thermal_block((2, 1), n=4, mu_range=(2.0, 5.0))
    mus = np.array([[2.0, 3.0], [5.0, 4.0]])
    lower = problem.stability_lower_bound(mus)
    assert np.all(lower <= [2.0, 4.0])
    np.testing.assert_allclose(lower, [2.0, 4.0], rtol=1e-6)


def test_solution_is_positive(tb20):
    U = tb20.solve(tb20.parameter_space.sample(5, rng=0))
    assert np.all(U > 0)


def test_solution_symmetries(tb20):
    n = 20
    pts = interior_points(n)
    swap = mirror_permutation(pts, n, lambda p: p[::-1])
    flip = mirror_permutation(pts, n, lambda p: np.vstack([1 - p[0], p[1]]))
    u_diag = tb20.solve([[0.2, 0.9, 0.9, 0.2]])[0]  # blocks 1 and 2 swap under x <-> y
    np.testing.assert_allclose(u_diag[swap], u_diag, rtol=1e-12, atol=0)
    u_equal = tb20.solve([[0.5] * 4])[0]
    np.testing.assert_allclose(u_equal[flip], u_equal, rtol=1e-12, atol=0)
    u_one = tb20.solve([[1.0] * 4])[0]
    np.testing.assert_allclose(u_equal, 2 * u_one, rtol=1e-12)  # A(c, ..., c) = c X


def test_mean_output_converges_at_second_order():
    exact = poisson_mean_exact()
    means = []
    for n in (4, 8, 16, 32):
        problem = thermal_block((2, 2), n=n)
        u = problem.solve(np.ones((1, 4)))
        means.append(float(problem.output.assemble(np.ones((1, 4)))[0] @ u[0]))
    errors = np.abs(np.array(means) - exact)
    rates = np.log2(errors[:-1] / errors[1:])
    assert np.all(rates > 1.8), rates
    assert errors[-1] < 1e-4


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"blocks": (0, 2)}, ValueError, "positive integers"),
        ({"blocks": (2, 2, 2)}, ValueError, "pair"),
        ({"blocks": (1.5, 2)}, ValueError, "positive integers"),
        ({"blocks": 2}, TypeError, "pair"),
        ({"n": 1}, ValueError, "n must be an integer >= 2"),
        ({"blocks": (3, 2), "n": 8}, ValueError, "multiple of each block count"),
        ({"mu_range": (0.0, 1.0)}, ValueError, "mu_range"),
        ({"mu_range": (2.0, 1.0)}, ValueError, "mu_range"),
    ],
)
def test_invalid_arguments(kwargs, exc, match):
    args = {"n": 4, **kwargs}
    with pytest.raises(exc, match=match):
        thermal_block(**args)


def test_weak_greedy_reaches_relative_tolerance(tb20):
    space = tb20.parameter_space
    train = space.sample(200, rng=5)
    res = certrb.weak_greedy(certrb.OfflineBuilder(tb20, "orthonormal"), train, tol=1e-6, max_basis=60)
    assert res.reason == "tolerance"
    assert res.history[-1].max_bound <= 1e-6
    test = space.sample(10, rng=6)
    ev = res.model.evaluate(test)
    errors = tb20.inner_product.norms((tb20.solve(test) - res.model.reconstruct(ev.coefficients)).T)
    assert np.all(errors <= ev.bound * (1 + 1e-8) + 1e-13)

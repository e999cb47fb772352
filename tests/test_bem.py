"""BEM truth solver for the sound-soft sphere: mesh, Mie series, single-layer kernels, convergence."""

import numpy as np
import pytest
from scipy.special import spherical_jn, spherical_yn

pytest.importorskip("numba")

from certrb.bem import (
    check_resolution,
    icosphere,
    relative_surface_error,
    sphere_scattering,
    triangle_areas,
    triangle_centroids,
    triangle_normals,
)
from certrb.bem.entries import CombinedFieldBlock, PlaneWaveBlock, SubMesh, restrict_mesh
from certrb.bem.kernels import load_vector, operator_entries, operator_matrix, single_layer_entries, single_layer_matrix
from certrb.bem.mesh import triangle_edges
from certrb.bem.mie import _legendre, mie_coefficients, mie_neumann_trace, scattering_cross_section
from certrb.errors import ShapeError


@pytest.fixture(scope="module")
def level2():
    v, t = icosphere(2)
    return v, t, single_layer_matrix(v, t, 2.0)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_icosphere_is_a_closed_outward_sphere(level):
    v, t = icosphere(level)
    assert t.shape == (20 * 4**level, 3)
    assert v.shape[0] - triangle_edges(t).shape[0] + t.shape[0] == 2  # Euler characteristic of S^2
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-14)
    assert np.all(np.einsum("ij,ij->i", triangle_normals(v, t), triangle_centroids(v, t)) > 0)
    directed = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])  # consistent orientation:
    assert np.unique(directed, axis=0).shape[0] == directed.shape[0]  # each directed edge used once


def test_icosphere_area_converges_to_4pi_at_second_order():
    errors = np.array([4 * np.pi - triangle_areas(*icosphere(level)).sum() for level in range(1, 5)])
    assert np.all(errors > 0)
    np.testing.assert_allclose(errors[:-1] / errors[1:], 4.0, rtol=0.05)


def test_icosphere_rejects_bad_level():
    with pytest.raises(ValueError, match="level"):
        icosphere(-1)


@pytest.mark.parametrize("k", [0.1, 2.0, 10.0, 40.0])
def test_mie_series_is_converged(k):
    c = mie_coefficients(k)
    assert np.max(np.abs(c[-3:])) <= 1e-14 * np.max(np.abs(c))


def test_mie_low_frequency_limit():
    t = np.linspace(-1, 1, 9)
    for k in (1e-3, 1e-4):  # phi = 1 + i k (3 cos(theta) - 1) + O(k^2)
        np.testing.assert_allclose((mie_neumann_trace(t, k) - 1) / (1j * k), 3 * t - 1, atol=5 * k)


def test_mie_trace_is_the_radial_derivative_of_the_total_field():
    k, t, n = 2.5, np.linspace(-1, 1, 7), np.arange(40)

    def u_total(r):
        h = lambda x: spherical_jn(n, x) + 1j * spherical_yn(n, x)  # noqa: E731
        a = (2 * n + 1) * 1j**n * (spherical_jn(n, k * r) - spherical_jn(n, k) / h(k) * h(k * r))
        return a @ _legendre(n[-1], t)

    assert np.max(np.abs(u_total(1.0))) < 1e-13  # sound soft
    eps = 1e-5
    np.testing.assert_allclose((u_total(1 + eps) - u_total(1 - eps)) / (2 * eps), mie_neumann_trace(t, k), atol=1e-8)


@pytest.mark.parametrize("k", [0.5, 3.0, 8.0])
def test_mie_trace_satisfies_the_optical_theorem(k):
    # far field f(d) = -(1/4 pi) int e^{-i k d.y} phi(y) ds(y); sigma = (4 pi / k) Im f(d)
    x, w = np.polynomial.legendre.leggauss(80)
    f = -0.5 * np.sum(w * np.exp(-1j * k * x) * mie_neumann_trace(x, k))
    np.testing.assert_allclose(4 * np.pi / k * f.imag, scattering_cross_section(k), rtol=1e-12)


def test_mie_rejects_bad_input():
    with pytest.raises(ValueError, match="k"):
        mie_neumann_trace(0.0, -1.0)
    with pytest.raises(ValueError, match="cos_theta"):
        mie_neumann_trace(1.5, 1.0)


@pytest.mark.parametrize(("operator", "eta"), [("single_layer", None), ("adjoint_double_layer", None),
                                               ("combined", None), ("combined", -0.7)])
def test_entries_equal_the_matrix_bit_for_bit(level2, operator, eta):
    v, t, V = level2
    A = V if operator == "single_layer" else operator_matrix(v, t, 2.0, operator=operator, eta=eta)
    rng = np.random.default_rng(0)
    rows = np.concatenate([np.arange(50), rng.integers(0, t.shape[0], 500)])
    cols = np.concatenate([np.arange(50), rng.integers(0, t.shape[0], 500)])  # includes the diagonal
    assert np.array_equal(operator_entries(v, t, 2.0, rows, cols, operator=operator, eta=eta), A[rows, cols])
    if operator == "single_layer":
        assert np.array_equal(single_layer_entries(v, t, 2.0, rows, cols), A[rows, cols])


def test_blocks_on_a_sub_mesh_equal_the_whole_mesh_bit_for_bit(level2):
    v, t, _ = level2
    rng = np.random.default_rng(1)
    rows = np.concatenate([[0, 0, 0], rng.integers(0, t.shape[0], 30)])
    cols = np.concatenate([[0, 1, 2], rng.integers(0, t.shape[0], 30)])  # coincident, touching and far pairs
    block = CombinedFieldBlock(restrict_mesh(v, t, np.concatenate([rows, cols])))
    assert block.mesh.ids.size < t.shape[0] / 4
    full = operator_matrix(v, t, 2.0, operator="combined")
    assert block(2.0, rows, cols).tobytes() == full[rows, cols].tobytes()
    load = PlaneWaveBlock(restrict_mesh(v, t, rows), np.array([0.0, 0.6, 0.8]))
    assert load(2.0, rows).tobytes() == load_vector(v, t, 2.0, [0.0, 0.6, 0.8], formulation="combined")[rows].tobytes()
    rebuilt = PlaneWaveBlock.from_arrays(load.to_arrays("x/"), "x/")
    assert rebuilt(2.0, rows).tobytes() == load(2.0, rows).tobytes()


def test_a_sub_mesh_keeps_corners_and_shared_vertices():
    v, t = icosphere(1)
    index = np.array([5, 3, 3, 40, 41, 0])
    mesh = restrict_mesh(v, t, index)
    np.testing.assert_array_equal(mesh.ids, [0, 3, 5, 40, 41])
    np.testing.assert_array_equal(mesh.vertices[mesh.triangles], v[t[mesh.ids]])
    shared = t[mesh.ids][:, None, :, None] == t[mesh.ids][None, :, None, :]
    np.testing.assert_array_equal(mesh.triangles[:, None, :, None] == mesh.triangles[None, :, None, :], shared)
    with pytest.raises(ShapeError, match="outside the sub-mesh"):
        mesh.local([1])
    with pytest.raises(ShapeError, match="ids"):
        SubMesh.from_arrays({**mesh.to_arrays(), "ids": mesh.ids[::-1]})


def test_combined_matrix_is_its_parts(level2):
    v, t, V = level2
    K = operator_matrix(v, t, 2.0, operator="adjoint_double_layer")
    A = operator_matrix(v, t, 2.0, operator="combined", eta=1.5)
    np.testing.assert_allclose(A, np.diag(triangle_areas(v, t) / 2) + K - 1.5j * V, rtol=1e-15, atol=1e-17)
    assert np.all(np.diag(K) == 0)


def test_single_layer_matrix_is_symmetric(level2):
    _, _, V = level2
    assert np.array_equal(V, V.T)
    assert np.all(np.isfinite(V))


def test_single_layer_of_a_constant_converges_at_second_order(level2):
    # on the unit sphere int_S G(x, y) ds(y) = e^{ik} sin(k) / k; flat triangles: O(h^2) geometric error
    k = 2.0
    exact = np.exp(1j * k) * np.sin(k) / k
    v1, t1 = icosphere(1)
    errors = []
    for v, t, V in ((v1, t1, single_layer_matrix(v1, t1, k)), level2):
        errors.append(np.max(np.abs(V.sum(axis=1) / triangle_areas(v, t) - exact)) / abs(exact))
    # measured: 0.111 (80 triangles), 0.0297 (320), 0.0076 (1280)
    assert errors[1] < 0.035
    assert errors[0] / errors[1] > 3.5


def test_adjoint_double_layer_of_a_constant_converges():
    # on the unit sphere int_S d/dn_x G(x, y) ds(y) = (i k^2 / 2) (j_0 h_0' + j_0' h_0)(k) (mean of both traces)
    k = 2.0
    h0 = spherical_jn(0, k) + 1j * spherical_yn(0, k)
    dh0 = spherical_jn(0, k, derivative=True) + 1j * spherical_yn(0, k, derivative=True)
    exact = 0.5j * k**2 * (spherical_jn(0, k) * dh0 + spherical_jn(0, k, derivative=True) * h0)
    errors = []
    for level in (1, 2):
        v, t = icosphere(level)
        K = operator_matrix(v, t, k, operator="adjoint_double_layer")
        errors.append(np.max(np.abs(K.sum(axis=1) / triangle_areas(v, t) - exact)) / abs(exact))
    # measured: 0.110 (80 triangles), 0.0313 (320), 0.0093 (1280)
    assert errors[1] < 0.035
    assert errors[0] / errors[1] > 3.0


def test_touching_pairs_do_not_depend_on_the_near_switch():
    v, t = icosphere(2)
    rows, cols = [0, 0, 5], [0, 1, 5]
    for operator in ("single_layer", "adjoint_double_layer"):
        a = operator_entries(v, t, 1.0, rows, cols, operator=operator)
        b = operator_entries(v, t, 1.0, rows, cols, operator=operator, near=1e-9)
        assert np.array_equal(a, b)
    assert single_layer_entries(v, t, 1.0, [0], [0])[0].real > 0


def test_load_vector_integrates_exactly_a_constant():
    v, t = icosphere(1)
    np.testing.assert_allclose(load_vector(v, t, 1e-300), triangle_areas(v, t), rtol=1e-14)


@pytest.mark.parametrize(("formulation", "bounds"), [
    ("first_kind", (0.03, 0.01)),
    pytest.param("combined", (0.03, 0.01), marks=pytest.mark.e2e),  # the 3D model end to end: CI's second step
])
def test_bem_converges_to_mie(formulation, bounds):
    k = 2.0
    errors = [relative_surface_error(level, k, sphere_scattering(level, k, formulation=formulation)[0])
              for level in (2, 3)]
    # measured: first kind 0.0222 (320 triangles), 0.0069 (1280); combined 0.0226, 0.0063
    assert errors[0] < bounds[0]
    assert errors[1] < bounds[1]
    assert errors[1] < 0.5 * errors[0]


@pytest.mark.parametrize("k", [np.pi, 3.4934])
def test_combined_field_is_well_conditioned_at_interior_resonances(k):
    # k = pi is a zero of j_0, i.e. an interior Dirichlet eigenvalue; 3.4934 is not (reference)
    v, t = icosphere(2)
    A = operator_matrix(v, t, k, operator="combined") / (4 * np.pi / t.shape[0])  # scale out the mass matrix
    assert np.linalg.svd(A, compute_uv=False)[-1] > 0.4  # measured 0.476 at k = pi
    phi, _ = sphere_scattering(2, k)
    assert relative_surface_error(2, k, phi) < 0.04  # measured 0.0313 at k = pi


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="k = 0"):
        sphere_scattering(2, 0.0)
    with pytest.raises(ValueError, match="k = -1"):
        sphere_scattering(2, -1.0)
    with pytest.raises(ValueError, match=r"level = 2.*k = 5"):
        sphere_scattering(2, 5.0)
    with pytest.raises(ValueError, match="formulation"):
        sphere_scattering(2, 1.0, formulation="hypersingular")
    v, t = icosphere(1)
    with pytest.raises(ValueError, match="operator"):
        operator_entries(v, t, 1.0, [0], [0], operator="double_layer")
    with pytest.raises(ValueError, match="rows and cols"):
        operator_entries(v, t, 1.0, [0, 1], [0])
    assert check_resolution(3, 5.0) == pytest.approx(0.1507, rel=1e-3)

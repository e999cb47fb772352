"""certrb.interop.skfem: forms assembled on the free dofs, solutions scattered back."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import skfem
from skfem.helpers import dot, grad

import certrb
from certrb.errors import ShapeError
from certrb.interop.skfem import Dirichlet


@skfem.BilinearForm
def laplace(u, v, w):
    return dot(grad(u), grad(v))


@skfem.BilinearForm
def mass(u, v, w):
    return u * v


@skfem.BilinearForm
def weighted(u, v, w):
    return w.k * u * v


@skfem.LinearForm
def unit(v, w):
    return 1.0 * v


def _complex_load(v, w):
    return (1.0 + 2.0j) * v


complex_load = skfem.LinearForm(_complex_load, dtype=np.complex128)


@pytest.fixture(scope="module")
def basis():
    return skfem.Basis(skfem.MeshTri().refined(3), skfem.ElementTriP1())


def test_default_dirichlet_dofs_are_the_boundary(basis):
    d = Dirichlet(basis)
    boundary = np.sort(basis.get_dofs().flatten())
    np.testing.assert_array_equal(d.dirichlet, boundary)
    np.testing.assert_array_equal(d.free, basis.complement_dofs(basis.get_dofs()))
    assert d.size + boundary.size == basis.N


def test_matrices_and_vectors_are_the_free_blocks(basis):
    d = Dirichlet(basis)
    K, M = d.matrices([laplace, mass])
    (f,) = d.vectors([unit])
    full_K = laplace.assemble(basis)
    np.testing.assert_array_equal(K.toarray(), full_K.toarray()[np.ix_(d.free, d.free)])
    assert K.format == "csr"
    assert K.shape == (d.size, d.size)
    np.testing.assert_array_equal(f, unit.assemble(basis)[d.free])
    (W,) = d.matrices([weighted], k=3.0)  # fields reach the forms
    np.testing.assert_allclose(W.toarray(), 3.0 * M.toarray(), rtol=1e-14, atol=0)


def test_truth_solution_matches_scikit_fem_condense(basis):
    d = Dirichlet(basis)
    K, M = d.matrices([laplace, mass])
    (f,) = d.vectors([unit])
    problem = certrb.Problem(certrb.AffineOperator([K, M], ["1", "mu"]), certrb.AffineFunctional([f], ["1"]), K,
                             certrb.ParameterSpace(["mu"], [0.0], [1.0]), stability=certrb.MinTheta([0.0]))
    u = d.scatter(problem.solve([[0.5]])[0])
    A = laplace.assemble(basis) + 0.5 * mass.assemble(basis)
    reference = skfem.solve(*skfem.condense(A, unit.assemble(basis), D=basis.get_dofs()), solver=spla.spsolve)
    np.testing.assert_allclose(u, reference, rtol=1e-12, atol=1e-15)
    assert (u[d.dirichlet] == 0).all()


def test_given_dofs_and_complex_forms(basis):
    left = basis.get_dofs(lambda x: x[0] == 0.0)
    d = Dirichlet(basis, left)
    assert d.size == basis.N - left.flatten().size
    d2 = Dirichlet(basis, np.asarray(left.flatten()).tolist())
    np.testing.assert_array_equal(d.free, d2.free)
    (g,) = d.vectors([complex_load])
    assert g.dtype == np.complex128
    full = d.scatter(np.stack([g, 2 * g]))  # a batch keeps its leading axis and dtype
    assert full.shape == (2, basis.N)
    assert full.dtype == np.complex128
    np.testing.assert_array_equal(full[1, d.free], 2 * g)


def test_bad_input_is_refused(basis):
    with pytest.raises(TypeError, match="scikit-fem basis"):
        Dirichlet(np.eye(3))
    with pytest.raises(ShapeError, match="lie in"):
        Dirichlet(basis, [0, basis.N])
    with pytest.raises(TypeError, match="integers"):
        Dirichlet(basis, [0.5])
    with pytest.raises(ShapeError, match="empty"):
        Dirichlet(basis, np.arange(basis.N))
    d = Dirichlet(basis)
    with pytest.raises(TypeError, match="BilinearForm"):
        d.matrices([unit])
    with pytest.raises(TypeError, match="LinearForm"):
        d.vectors([mass])
    with pytest.raises(ShapeError, match="free dofs"):
        d.scatter(np.zeros(basis.N))

"""scikit-fem in: a 2D diffusion-reaction problem assembled with scikit-fem, reduced and certified by certrb.

    -div(k grad u) + mu2 u = 1 on the unit square, u = 0 on its boundary,

with the conductivity k = mu1 on the centre square (1/4, 3/4)^2 and k = 1 elsewhere, so
A(mu) = A_out + mu1 A_in + mu2 M: one scikit-fem BilinearForm per affine term, assembled on
the free (interior) dofs. Output: the mean temperature on the centre square. The script
builds a certified model, checks its bound against truth solves, saves it and loads it back
untrusted (expression coefficients and a min-theta bound: the file is data only).

Run: python skfem_thermal.py [squares per side, a multiple of 4; default 32] [model file]
"""

import sys

import numpy as np
import skfem
from skfem.helpers import dot, grad

import certrb
from certrb.interop.skfem import Dirichlet


def centre(x):
    """Indicator of the centre square (1/4, 3/4)^2 at the points x (2, ...)."""
    return (np.abs(x[0] - 0.5) < 0.25) & (np.abs(x[1] - 0.5) < 0.25)


@skfem.BilinearForm
def outer(u, v, w):
    return (~centre(w.x)) * dot(grad(u), grad(v))


@skfem.BilinearForm
def inner(u, v, w):
    return centre(w.x) * dot(grad(u), grad(v))


@skfem.BilinearForm
def mass(u, v, w):
    return u * v


@skfem.LinearForm
def source(v, w):
    return 1.0 * v


@skfem.LinearForm
def centre_mean(v, w):
    return 4.0 * centre(w.x) * v  # the centre square has area 1/4


def thermal_problem(n):
    """The truth problem on n x n squares (each split in two triangles) and its Dirichlet condensation."""
    grid = np.linspace(0.0, 1.0, n + 1)  # n a multiple of 4: element edges on the centre square's sides
    basis = skfem.Basis(skfem.MeshTri.init_tensor(grid, grid), skfem.ElementTriP1())
    dirichlet = Dirichlet(basis)  # u = 0 on every boundary dof; the unknowns are the interior dofs
    K_out, K_in, M = dirichlet.matrices([outer, inner, mass])
    f, ell = dirichlet.vectors([source, centre_mean])
    problem = certrb.Problem(
        certrb.AffineOperator([K_out, K_in, M], ["1", "mu1", "mu2"]),
        certrb.AffineFunctional([f], ["1"]),
        K_out + K_in,  # X: the H1_0 inner product, A(1, 0) itself
        certrb.ParameterSpace(["mu1", "mu2"], [0.1, 0.0], [10.0, 10.0]),
        stability=certrb.MinTheta([1.0, 0.0]),  # alpha(mu) >= min(1, mu1): M is positive semidefinite
        output=certrb.AffineFunctional([ell], ["1"]),
    )
    return problem, dirichlet


def main(n=32, path="skfem_thermal.h5", n_train=200, n_test=20):
    problem, dirichlet = thermal_problem(n)
    space = problem.parameter_space
    builder = certrb.OfflineBuilder(problem, ("orthonormal", "expanded"), rng=0)
    greedy = certrb.weak_greedy(builder, space.sample(n_train, rng=0), tol=1e-10, max_basis=30)
    model = greedy.model
    print(f"n_h = {problem.size}, N = {model.n_basis} ({greedy.reason}), "
          f"max relative training bound {greedy.max_bounds[-1]:.1e}")

    test = space.sample(n_test, rng=1)
    res = model.evaluate(test)
    error, _ = certrb.true_error(problem, model, test)
    print(f"certified: {res.rigorous} ({res.certificate}); bound / true error in "
          f"[{np.min(res.bound / error):.2f}, {np.max(res.bound / error):.2f}]")
    if not (res.bound >= error).all():
        raise SystemExit("a certified bound fell below the true error")

    certrb.save(model, path)
    loaded = certrb.load(path)  # untrusted: the file holds expressions and arrays only
    again = loaded.evaluate(test)
    if not np.array_equal(again.bound, res.bound):
        raise SystemExit("the loaded model evaluates differently")
    u = dirichlet.scatter(model.reconstruct(res.coefficients[:1]))[0]  # full dof vector, 0 on the boundary
    print(f"mu = {np.round(test[0], 3)}: mean centre temperature {res.output[0]:.6e} +- {res.output_bound[0]:.1e}, "
          f"max u_N = {u.max():.4e}")
    return problem, model, test, res, error


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 32, sys.argv[2] if len(sys.argv) > 2 else "skfem_thermal.h5")

"""The 1D diffusion-reaction study problem.

``-((1 + mu_1 x) u')' + mu_2 u = 1`` on (0, 1), ``u(0) = u(1) = 0``, P1 finite
elements (scikit-fem), ``mu_1 in [0, 20]``, ``mu_2 in [0, 500]``, inner product
the H1_0 Gram matrix ``(u', v')``. Affine with
``A(mu) = K + mu_1 K_x + mu_2 M`` (all terms symmetric positive semi-definite),
``f = F``, and the output ``s(mu) = int_0^1 u`` (``l = F``).

The stability bound is min-theta with ``mu_ref = (0, 0)``, where ``A = K = X``
gives ``alpha = 1``: ``alpha(mu) >= 1`` for every parameter.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..offline.affine import AffineFunctional, AffineOperator
from ..offline.problem import Problem
from ..offline.stability import MinTheta
from ..online.parameters import ParameterSpace

__all__ = ["diffusion1d", "operator_coefficients", "rhs_coefficients"]


def operator_coefficients(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """``theta(mu) = (1, mu_1, mu_2)``, shape (n_mu, 3)."""
    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0], mus[:, 1]])


def rhs_coefficients(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """``phi(mu) = (1,)``, shape (n_mu, 1)."""
    return np.ones((mus.shape[0], 1))


def diffusion1d(n_elements: int = 500) -> Problem:
    """Build the 1D study problem.

    Parameters
    ----------
    n_elements : int
        Number of uniform P1 elements; the truth space has ``n_elements - 1`` unknowns.

    Returns
    -------
    Problem
        Real, coercive, Q_a = 3, Q_f = 1, with an output.

    """
    import skfem
    from skfem.helpers import dot, grad

    if int(n_elements) != n_elements or n_elements < 2:
        raise ValueError(f"n_elements must be an integer >= 2; got {n_elements!r}")
    mesh = skfem.MeshLine(np.linspace(0.0, 1.0, int(n_elements) + 1))
    basis = skfem.Basis(mesh, skfem.ElementLineP1())

    @skfem.BilinearForm
    def stiffness(u, v, w):
        return dot(grad(u), grad(v))

    @skfem.BilinearForm
    def weighted_stiffness(u, v, w):
        return w.x[0] * dot(grad(u), grad(v))

    @skfem.BilinearForm
    def mass(u, v, w):
        return u * v

    @skfem.LinearForm
    def load(v, w):
        return 1.0 * v

    interior = basis.complement_dofs(basis.get_dofs())
    terms = [m[interior][:, interior] for m in (stiffness.assemble(basis), weighted_stiffness.assemble(basis),
                                                 mass.assemble(basis))]
    f = load.assemble(basis)[interior]
    space = ParameterSpace(["mu1", "mu2"], [0.0, 0.0], [20.0, 500.0])
    return Problem(
        AffineOperator(terms, operator_coefficients),
        AffineFunctional([f], rhs_coefficients),
        terms[0],
        space,
        stability=MinTheta([0.0, 0.0], alpha_ref=1.0),
        output=AffineFunctional([f], rhs_coefficients),
    )

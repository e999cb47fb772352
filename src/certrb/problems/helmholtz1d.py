"""A complex, non-coercive 1D Helmholtz problem with an impedance condition.

``-u'' - k^2 u = 1`` on (0, 1), ``u(0) = 0``, ``u'(1) - i k u(1) = 0`` (outgoing
waves), P1 finite elements (scikit-fem), wavenumber ``k`` in ``[k_min, k_max]``.
Affine with ``A(k) = K - k^2 M - i k B`` (``B = e_n e_n^T`` at x = 1), inner
product ``X = K + M`` (H1), output ``s(k) = u(1)``. The problem is not coercive;
it is certified through the inf-sup constant, bounded below by the successive
constraint method (:class:`certrb.SCM`, kind ``"inf-sup"``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..offline.affine import AffineFunctional, AffineOperator
from ..offline.problem import Problem
from ..online.parameters import ParameterSpace

__all__ = ["helmholtz1d", "operator_coefficients", "output_coefficients", "rhs_coefficients"]


def operator_coefficients(mus: NDArray[np.float64]) -> NDArray[np.complex128]:
    """``theta(k) = (1, -k^2, -i k)``, shape (n_mu, 3)."""
    k = mus[:, 0]
    return np.column_stack([np.ones_like(k), -(k**2), -1j * k]).astype(complex)


def rhs_coefficients(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """``phi(k) = (1,)``, shape (n_mu, 1)."""
    return np.ones((mus.shape[0], 1))


def output_coefficients(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """Output coefficients ``(1,)``, shape (n_mu, 1)."""
    return np.ones((mus.shape[0], 1))


def helmholtz1d(n_elements: int = 400, k_range: tuple[float, float] = (1.0, 10.0), *, scm_train: int = 200,
                stability=None) -> Problem:
    """Build the 1D Helmholtz problem.

    Parameters
    ----------
    n_elements : int
        Number of uniform P1 elements (unknowns: nodes 1..n, node 0 is Dirichlet).
    k_range : (float, float)
        Wavenumber range; at least 10 elements per wavelength are required at the top.
    scm_train : int
        Training wavenumbers of the inf-sup SCM (used when ``stability`` is None).
    stability : callable, optional
        Stability lower bound to use instead of the SCM.

    Returns
    -------
    Problem
        Complex, non-coercive, Q_a = 3, Q_f = 1, with an output.
    """
    import skfem
    from skfem.helpers import dot, grad

    k_min, k_max = map(float, k_range)
    if not 0 < k_min <= k_max:
        raise ValueError(f"k_range must satisfy 0 < k_min <= k_max; got {k_range}")
    if int(n_elements) != n_elements or n_elements * 2 * np.pi / k_max < 10 * 1.0:
        raise ValueError(f"n_elements = {n_elements} does not resolve k_max = {k_max}: need at least 10 elements "
                         f"per wavelength, i.e. n_elements >= {int(np.ceil(10 * k_max / (2 * np.pi)))}")
    mesh = skfem.MeshLine(np.linspace(0.0, 1.0, int(n_elements) + 1))
    basis = skfem.Basis(mesh, skfem.ElementLineP1())
    K = skfem.BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(basis)
    M = skfem.BilinearForm(lambda u, v, w: u * v).assemble(basis)
    F = skfem.LinearForm(lambda v, w: 1.0 * v).assemble(basis)
    free = np.setdiff1d(np.arange(basis.N), basis.get_dofs(lambda x: np.isclose(x[0], 0.0)).all())
    right = int(np.argmax(mesh.p[0, free]))
    B = sp.csr_matrix(([1.0], ([right], [right])), shape=(free.size, free.size))
    K, M = K[free][:, free], M[free][:, free]
    l_vec = np.zeros(free.size)
    l_vec[right] = 1.0
    space = ParameterSpace(["k"], [k_min], [k_max])
    operator = AffineOperator([K, M, B], operator_coefficients)
    X = K + M
    if stability is None:
        from ..offline.scm import SCM

        stability = SCM(operator, X, space.grid(scm_train), kind="inf-sup")  # the grid holds the ends
    return Problem(operator, AffineFunctional([F[free]], rhs_coefficients), X, space, stability=stability,
                   output=AffineFunctional([l_vec], output_coefficients))

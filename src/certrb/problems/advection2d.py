"""A 2D advection-diffusion-reaction problem on the unit square (scikit-fem): coercive, non-symmetric.

``-(1 / pe) lap u + b . grad u + sigma u = 1`` in ``(0, 1)^2``, ``u = 0`` on the
boundary, with the unit advection field ``b = (cos(angle), sin(angle))``, the
Peclet number ``pe`` and the angle as parameters, and a fixed reaction ``sigma``.

Discretization: P1 elements on the mesh of :func:`certrb.problems.thermal_block.cross_mesh`
(``n x n`` squares, four triangles each), unknowns on the interior nodes
(:class:`certrb.interop.skfem.Dirichlet`). Affine with four terms

    A(mu) = (1 / pe) K + cos(angle) B_x + sin(angle) B_y + sigma M

(coefficients as expression strings), where ``K`` is the stiffness, ``M`` the mass
and ``B_x``, ``B_y`` the advection matrices ``(d_x u, v)``, ``(d_y u, v)``. Since
``b`` is constant and ``u = 0`` on the boundary, ``B_x`` and ``B_y`` are skew-symmetric;
they are stored exactly skew (``(B - B^T) / 2``), so the Hermitian part of ``A(mu)`` is
``K / pe + sigma M``. Inner product: the H1 Gram matrix ``X = K + M``. Output ``int u``.

Stability: the coefficients ``cos(angle)``, ``sin(angle)`` change sign, so min-theta
does not apply; the coercivity constant ``alpha(mu) = min_v v^T (K / pe + sigma M) v / v^T X v``
is bounded below by the successive constraint method (:class:`certrb.offline.scm.SCM`,
kind ``"coercive"``, certified eigenvalue bounds) applied to the Hermitian part
``K / pe + sigma M`` (the exactly skew terms contribute nothing to ``v^T A v``; an SCM
over all four terms would ask ARPACK for eigenvalues of the zero matrices). It is at
least ``min(1 / pe, sigma)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ..offline.affine import AffineFunctional, AffineOperator
from ..offline.problem import Problem
from ..offline.scm import SCM
from ..online.parameters import ParameterSpace
from .thermal_block import cross_mesh

__all__ = ["OPERATOR_COEFFICIENTS", "advection2d"]

OPERATOR_COEFFICIENTS = ("1 / pe", "cos(angle)", "sin(angle)")  # then the reaction sigma


def _check_range(value: Sequence[float], name: str, positive: bool) -> tuple[float, float]:
    if isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high); got {value!r}")
    lo, hi = (float(v) for v in value)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi) or (positive and lo <= 0):
        need = "0 < low <= high" if positive else "low <= high"
        raise ValueError(f"{name} must be finite with {need}; got {tuple(value)!r}")
    return lo, hi


def _terms(dirichlet) -> tuple[list[sp.csr_matrix], sp.csr_matrix]:
    """``[K, B_x, B_y, M]`` on the free dofs (K, M exactly symmetric, B exactly skew) and ``X = K + M``."""
    import skfem
    from skfem.helpers import dot, grad

    @skfem.BilinearForm
    def stiffness(u, v, w):
        return dot(grad(u), grad(v))

    @skfem.BilinearForm
    def mass(u, v, w):
        return u * v

    @skfem.BilinearForm
    def advection_x(u, v, w):
        return u.grad[0] * v

    @skfem.BilinearForm
    def advection_y(u, v, w):
        return u.grad[1] * v

    K, Bx, By, M = dirichlet.matrices([stiffness, advection_x, advection_y, mass])
    K, M = ((K + K.T) * 0.5).tocsr(), ((M + M.T) * 0.5).tocsr()
    Bx, By = ((Bx - Bx.T) * 0.5).tocsr(), ((By - By.T) * 0.5).tocsr()
    return [K, Bx, By, M], (K + M).tocsr()


def advection2d(
    n: int = 32,
    *,
    pe_range: Sequence[float] = (1.0, 2.0),
    angle_range: Sequence[float] = (0.0, float(np.pi) / 2),
    reaction: float = 1.0,
    n_scm_train: int = 200,
) -> Problem:
    """Build the advection-diffusion-reaction problem.

    Parameters
    ----------
    n : int
        Squares per side of the mesh, ``n >= 2``; the truth space has ``(n - 1)^2 + n^2``
        unknowns (1,985 for ``n = 32``).
    pe_range : (float, float)
        Bounds ``0 < low <= high`` of the Peclet number ``pe`` (diffusion ``1 / pe``).
    angle_range : (float, float)
        Bounds of the advection angle (radians).
    reaction : float
        The reaction coefficient ``sigma > 0``.
    n_scm_train : int
        Random training parameters of the SCM (seed 0).

    Returns
    -------
    Problem
        Real, coercive, non-symmetric; parameters ``("pe", "angle")``, Q_a = 4, Q_f = 1,
        output ``int u``; stability by SCM.

    Raises
    ------
    ValueError
        If ``n``, a range, ``reaction`` or ``n_scm_train`` is invalid.

    Examples
    --------
    >>> problem = advection2d(4)
    >>> problem.size, problem.parameter_space.names
    (25, ('pe', 'angle'))

    """
    import skfem

    from ..interop.skfem import Dirichlet

    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    pe = _check_range(pe_range, "pe_range", positive=True)
    angle = _check_range(angle_range, "angle_range", positive=False)
    if not (np.isfinite(reaction) and reaction > 0):
        raise ValueError(f"reaction must be a finite positive number; got {reaction!r}")
    if isinstance(n_scm_train, bool) or int(n_scm_train) != n_scm_train or n_scm_train < 1:
        raise ValueError(f"n_scm_train must be a positive integer; got {n_scm_train!r}")
    dirichlet = Dirichlet(skfem.Basis(cross_mesh(int(n)), skfem.ElementTriP1()))
    terms, X = _terms(dirichlet)
    load = dirichlet.vectors([skfem.LinearForm(lambda v, w: 1.0 * v)])
    space = ParameterSpace(["pe", "angle"], [pe[0], angle[0]], [pe[1], angle[1]])
    operator = AffineOperator(terms, [*OPERATOR_COEFFICIENTS, repr(float(reaction))]).bind(space.names)
    # the skew terms add nothing to v^T A v: the SCM of the Hermitian part bounds alpha(mu) exactly
    hermitian = AffineOperator([terms[0], terms[3]], [OPERATOR_COEFFICIENTS[0], repr(float(reaction))])
    scm = SCM(hermitian.bind(space.names), X, space.sample(int(n_scm_train), rng=0))
    return Problem(operator, AffineFunctional(load, ["1"]), X, space, stability=scm,
                   output=AffineFunctional(load, ["1"]))

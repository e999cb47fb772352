"""A truth family with an ill-conditioned inner product: 1D P1 diffusion in H1 with a tiny mass weight.

``-((1 + mu_1 x) u')' + w mu_2 u = f`` on (0, 1) with natural boundary conditions,
``f(v) = int_0^1 (x - 1/2) v`` (mean zero: the constants, which X hardly weighs, stay
unexcited), ``mu_1 in [0, 10]``, ``mu_2 in [1, 10]``, and the inner product ``X = K + w M``
(H1 with mass weight ``w``). Without Dirichlet conditions the stiffness matrix ``K`` is
singular (constants), so ``cond(X) ~ 4 / (w h^2)``: 4e12 for ``w = 1e-6`` and 1024
elements, 4e13 for ``w = 1e-10`` and 32 (with more, X is too close to singular to be
certified definite in double precision).

The operator is stored as ``A(mu) = X + mu_1 K_x + w (mu_2 - 1) M`` with the *stored* X as
its first term, so that ``A(mu) - X = mu_1 K_x + w (mu_2 - 1) M`` exactly: ``M`` is positive
definite and ``K_x`` (the stiffness of the coefficient ``x``) is positive semi-definite, which
for the stored matrix holds exactly when every row is diagonally dominant in exact arithmetic:
on dyadic meshes (``n_elements`` a power of two) every entry of ``K_x`` is a sum of
exactly representable numbers, and :func:`certrb.offline.stability.dominance_defect` checks it.
Then ``alpha(mu) >= 1``, proven; the problem's stability is certrb's own :class:`MinTheta`
at ``mu_ref = (0, 1)`` by default, or :class:`SCM`, or the proven constant 1 (``stability="proven"``).
(With ``A(mu)`` written as ``K + mu_1 K_x + w mu_2 M`` instead, ``A(mu_ref)`` is the exact sum
``K + w M``, not the stored ``X = fl(K + w M)``: their ratio is 0.99956 at ``w = 1e-10``.)
Shared by the tests and by ``benchmarks/certification.py``.
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

import certrb
from certrb.offline.affine import AffineFunctional, AffineOperator

__all__ = ["STABILITY", "WEIGHTS", "condition_number", "exact_solutions", "h1_diffusion"]

WEIGHTS = (1.0, 1e-6, 1e-10)
STABILITY = ("min-theta", "scm", "proven")


def _theta(mus: NDArray[np.float64], weight: float) -> NDArray[np.float64]:
    """``(1, mu_1, w (mu_2 - 1))``, shape (n_mu, 3)."""
    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0], weight * (mus[:, 1] - 1.0)])


def _phi(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(1,)``, shape (n_mu, 1)."""
    return np.ones((mus.shape[0], 1))


def _alpha_lower(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """The proven coercivity lower bound 1, shape (n_mu,)."""
    return np.ones(np.atleast_2d(mus).shape[0])


def _assemble(elements: NDArray, n: int) -> sp.csr_matrix:
    """Sum of 2x2 element matrices ``elements`` (n_el, 2, 2) on a line of n nodes, shape (n, n)."""
    i = np.arange(n - 1)
    rows = np.stack([i, i, i + 1, i + 1], axis=1).ravel()
    cols = np.stack([i, i + 1, i, i + 1], axis=1).ravel()
    return sp.csr_matrix((elements.reshape(-1), (rows, cols)), shape=(n, n))


def h1_diffusion(n_elements: int, weight: float, stability: str = "min-theta") -> certrb.Problem:
    """The problem of the module docstring on ``n_elements`` uniform P1 elements (``n_elements + 1`` dofs).

    ``stability`` is one of :data:`STABILITY`: certrb's ``MinTheta`` at ``mu_ref = (0, 1)``,
    certrb's ``SCM`` (coercive, 16 training parameters) or the proven constant 1.
    """
    n, h = n_elements + 1, 1.0 / n_elements
    x = np.linspace(0.0, 1.0, n)
    unit = np.array([[1.0, -1.0], [-1.0, 1.0]])
    mid = 0.5 * (x[:-1] + x[1:])
    K = _assemble(np.broadcast_to(unit / h, (n - 1, 2, 2)), n)
    Kx = _assemble(mid[:, None, None] * unit / h, n)
    M = _assemble(np.broadcast_to(np.array([[2.0, 1.0], [1.0, 2.0]]) * h / 6, (n - 1, 2, 2)), n)
    X = sp.csr_matrix(K + weight * M)
    f = np.zeros(n)  # int (x - 1/2) phi_i, exact for P1 hats
    np.add.at(f, np.arange(n - 1), h / 2 * (x[:-1] - 0.5) + h**2 / 6)
    np.add.at(f, np.arange(1, n), h / 2 * (x[:-1] - 0.5) + h**2 / 3)
    space = certrb.ParameterSpace(["mu1", "mu2"], [0.0, 1.0], [10.0, 10.0])
    operator = AffineOperator([X, Kx, M], functools.partial(_theta, weight=weight))
    if stability == "min-theta":
        bound: object = certrb.MinTheta([0.0, 1.0])
    elif stability == "scm":
        bound = certrb.SCM(operator, X, space.sample(16, rng=5))
    elif stability == "proven":
        bound = _alpha_lower
    else:
        raise ValueError(f"stability must be one of {STABILITY}; got {stability!r}")
    return certrb.Problem(operator, AffineFunctional([f], _phi), X, space, stability=bound)


def condition_number(problem: certrb.Problem) -> float:
    """Spectral condition number of the inner-product matrix (dense eigenvalues; small problems only)."""
    ev = np.linalg.eigvalsh(problem.inner_product.matrix.toarray())
    return float(ev[-1] / ev[0])



def exact_solutions(problem: certrb.Problem, mus: NDArray[np.float64], digits: int = 50) -> NDArray:
    """Truth solutions of ``mus`` (n_mu, P) solved in ``digits``-digit arithmetic, shape (n_mu, n_h), longdouble.

    Iterative refinement with extended-precision residuals stalls at about
    ``u_ext cond(A) ||u||`` (1e-12 relative for ``w = 1e-6`` and 1024 elements), the size
    of the reduced models' floor here. The family is tridiagonal, so each system
    ``sum_q theta_q(mu) A_q u = sum_p phi_p(mu) f_p`` (exact affine sums of the stored
    data) is solved directly by Gaussian elimination in mpmath (no pivoting is needed:
    A is positive definite); the solutions are then rounded to extended precision
    (relative error ~5e-20). Pass them to ``truth_reference(..., solutions=)``.
    """
    terms = [sp.dia_matrix(a) for a in problem.operator.terms]
    if any(abs(int(k)) > 1 for a in terms for k in a.offsets):
        raise ValueError("exact_solutions needs tridiagonal operator terms")
    n = problem.size
    bands = [[a.diagonal(k).astype(float) for a in terms] for k in (-1, 0, 1)]
    loads = np.asarray(problem.rhs.terms, dtype=float).reshape(problem.rhs.n_terms, n)
    theta, phi = problem.operator.theta(mus), problem.rhs.theta(mus)
    out = np.empty((mus.shape[0], n), dtype=np.longdouble)
    with mpmath.workdps(digits):
        mp = mpmath.mpf

        def combine(c: NDArray, rows: list[NDArray]) -> list:
            return [mpmath.fsum(mp(float(t)) * mp(float(r[i])) for t, r in zip(c, rows, strict=True))
                    for i in range(rows[0].size)]

        for m in range(mus.shape[0]):
            low, diag, up = (combine(theta[m], band) for band in bands)
            b = combine(phi[m], list(loads))
            for i in range(1, n):  # forward elimination
                factor = low[i - 1] / diag[i - 1]
                diag[i] -= factor * up[i - 1]
                b[i] -= factor * b[i - 1]
            u = [mp(0)] * n
            u[-1] = b[-1] / diag[-1]
            for i in range(n - 2, -1, -1):
                u[i] = (b[i] - up[i] * u[i + 1]) / diag[i]
            out[m] = [np.longdouble(mpmath.nstr(v, 25, strip_zeros=False)) for v in u]
    return out

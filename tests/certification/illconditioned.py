"""A truth family with an ill-conditioned inner product: 1D P1 diffusion in H1 with a tiny mass weight.

``-((1 + mu_1 x) u')' + w mu_2 u = f`` on (0, 1) with natural boundary conditions,
``f(v) = int_0^1 (x - 1/2) v`` (mean zero: the constants, which X hardly weighs, stay
unexcited), ``mu_1 in [0, 10]``, ``mu_2 in [1, 10]``, and the inner product ``X = K + w M``
(H1 with mass weight ``w``). Without Dirichlet conditions the stiffness matrix ``K`` is
singular (constants), so ``cond(X) ~ 4 / (w h^2)``: 4e12 for ``w = 1e-6`` and 1000
elements, 4e13 for ``w = 1e-10`` and 30 (with more, X is too close to singular to be
certified definite in double precision). ``A(mu_ref) = X`` at ``mu_ref = (0, 1)`` and every term is positive
semi-definite, so ``A(mu) - X = mu_1 K_x + (mu_2 - 1) w M`` is too and ``alpha(mu) >= 1``
(the stability callable returns this proven constant). Shared by the tests and by ``benchmarks/certification.py``.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

import certrb
from certrb.offline.affine import AffineFunctional, AffineOperator

__all__ = ["WEIGHTS", "condition_number", "h1_diffusion"]

WEIGHTS = (1.0, 1e-6, 1e-10)


def _theta(mus: NDArray[np.float64], weight: float) -> NDArray[np.float64]:
    """``(1, mu_1, w mu_2)``, shape (n_mu, 3)."""
    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0], weight * mus[:, 1]])


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


def h1_diffusion(n_elements: int, weight: float) -> certrb.Problem:
    """The problem of the module docstring on ``n_elements`` uniform P1 elements (``n_elements + 1`` dofs)."""
    n, h = n_elements + 1, 1.0 / n_elements
    x = np.linspace(0.0, 1.0, n)
    unit = np.array([[1.0, -1.0], [-1.0, 1.0]])
    mid = 0.5 * (x[:-1] + x[1:])
    K = _assemble(np.broadcast_to(unit / h, (n - 1, 2, 2)), n)
    Kx = _assemble(mid[:, None, None] * unit / h, n)
    M = _assemble(np.broadcast_to(np.array([[2.0, 1.0], [1.0, 2.0]]) * h / 6, (n - 1, 2, 2)), n)
    f = np.zeros(n)  # int (x - 1/2) phi_i, exact for P1 hats
    np.add.at(f, np.arange(n - 1), h / 2 * (x[:-1] - 0.5) + h**2 / 6)
    np.add.at(f, np.arange(1, n), h / 2 * (x[:-1] - 0.5) + h**2 / 3)
    space = certrb.ParameterSpace(["mu1", "mu2"], [0.0, 1.0], [10.0, 10.0])
    return certrb.Problem(AffineOperator([K, Kx, M], functools.partial(_theta, weight=weight)),
                          AffineFunctional([f], _phi), K + weight * M, space,
                          stability=_alpha_lower)


def condition_number(problem: certrb.Problem) -> float:
    """Spectral condition number of the inner-product matrix (dense eigenvalues; small problems only)."""
    ev = np.linalg.eigvalsh(problem.inner_product.matrix.toarray())
    return float(ev[-1] / ev[0])

"""Stability (coercivity) lower bounds, offline: the reference constant of the min-theta bound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from ..errors import StabilityError
from ..online.stability import MinThetaBound, real_nonnegative
from .affine import AffineOperator

__all__ = ["MinTheta", "coercivity_constant"]

_DENSE_LIMIT = 3000

StabilityCallable = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def coercivity_constant(matrix: sp.spmatrix, inner_product: sp.spmatrix) -> float:
    """Coercivity constant ``min_v Re(v^H A v) / (v^H X v)`` of one matrix.

    Computed as the smallest generalized eigenvalue of the Hermitian part of
    ``A`` with respect to ``X``: dense ``eigh`` up to 3000 unknowns, otherwise
    ``eigsh`` in shift-invert mode around 0, whose answer is then checked with
    the inertia of ``H - s X`` (no eigenvalue may lie below it).

    Raises
    ------
    StabilityError
        If eigsh does not converge or its answer is not the smallest eigenvalue.

    Parameters
    ----------
    matrix : sparse matrix, shape (n_h, n_h)
    inner_product : sparse matrix, shape (n_h, n_h), Hermitian positive definite

    Returns
    -------
    alpha : float

    """
    H = sp.csc_matrix((matrix + matrix.conj().T) * 0.5)
    X = sp.csc_matrix(inner_product)
    if H.shape[0] <= _DENSE_LIMIT:
        return float(sla.eigh(H.toarray(), X.toarray(), eigvals_only=True, subset_by_index=[0, 0])[0])
    try:
        vals = spla.eigsh(H, k=1, M=X, sigma=0.0, which="LM", return_eigenvectors=False)
    except spla.ArpackNoConvergence as exc:
        raise StabilityError("eigsh did not converge for the coercivity constant; pass alpha_ref") from exc
    alpha = float(vals[0])
    # eigsh found the eigenvalue nearest 0; by Sylvester's law of inertia, no eigenvalue lies
    # below it iff H - s X has no negative pivot for s slightly below it
    shift = alpha - 1e-8 * abs(alpha)
    lu = spla.splu(H - shift * X, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    if not np.array_equal(lu.perm_r, lu.perm_c) or np.any(lu.U.diagonal().real <= 0):
        raise StabilityError("could not certify the smallest eigenvalue found by eigsh; pass alpha_ref")
    return alpha


@dataclass(frozen=True)
class MinTheta:
    """The min-theta coercivity lower bound, to be bound to a Problem.

    For ``A(mu) = sum_q theta_q(mu) A_q`` with real ``theta_q(mu) >= 0`` and
    Hermitian parts of ``A_q`` positive semi-definite,
    ``alpha(mu) >= alpha(mu_ref) * min_{q: theta_q(mu_ref) > 0} theta_q(mu) / theta_q(mu_ref)``.

    Parameters
    ----------
    mu_ref : array_like, shape (P,)
        Reference parameter.
    alpha_ref : float, optional
        Coercivity constant at ``mu_ref``; computed by the Problem when omitted.

    """

    mu_ref: ArrayLike
    alpha_ref: float | None = None

    def bind(self, operator: AffineOperator, inner_product: sp.spmatrix, mus_ref: NDArray) -> MinThetaBound:
        """Evaluate the reference data and return the online lower-bound function."""
        theta_ref = real_nonnegative(operator.theta(mus_ref))[0]
        alpha = self.alpha_ref
        if alpha is None:
            alpha = coercivity_constant(operator.assemble(theta_ref), inner_product)
        if not alpha > 0:
            raise StabilityError(f"coercivity constant at mu_ref is not positive: {alpha}")
        return MinThetaBound(operator.coefficients, theta_ref, float(alpha))

"""E0 ``truth``: the residual norm computed in the truth space (reference only).

The residual vector ``r = sum_k x_k g_k = sum_p phi_p f_p - sum_q theta_q A_q V c``
is formed without the components ``g``, in double or in extended precision
(numpy.longdouble), then ``X z = r`` is solved (refined in extended precision
for ``"extended"``) and ``sqrt(Re(r^H z))`` returned.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ...errors import ShapeError

__all__ = ["combine_components", "dual_norms_of", "residual_norms"]

PRECISIONS = ("double", "extended")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")


def combine_components(problem, basis: NDArray, coeffs: NDArray, *, precision: str = "double") -> NDArray:
    """Vectors ``sum_k coeffs[m, k] g_k`` for residual-coefficient rows.

    Parameters
    ----------
    problem : Problem
    basis : ndarray, shape (n_h, N)
    coeffs : ndarray, shape (m, Q_f + Q_a n) with n <= N
        Rows ordered as :mod:`certrb.online.residual` orders components.
    precision : {"double", "extended"}

    Returns
    -------
    vectors : ndarray, shape (n_h, m)
        float64/complex128, or numpy.longdouble/clongdouble for "extended".

    """
    _check_precision(precision)
    q_f, q_a = problem.rhs.n_terms, problem.operator.n_terms
    n = (coeffs.shape[1] - q_f) // q_a
    if coeffs.ndim != 2 or coeffs.shape[1] != q_f + q_a * n or n > basis.shape[1]:
        raise ShapeError(f"coeffs must have shape (m, {q_f} + {q_a} n) with n <= {basis.shape[1]}; got {coeffs.shape}")
    dtype = np.result_type(problem.dtype, coeffs.dtype, basis.dtype)
    if precision == "extended":
        dtype = np.dtype(np.clongdouble if np.issubdtype(dtype, np.complexfloating) else np.longdouble)
        terms = problem._extended_terms(dtype)
    else:
        terms = problem.operator.terms
    cf = coeffs[:, :q_f].astype(dtype)
    cc = coeffs[:, q_f:].reshape(coeffs.shape[0], n, q_a).astype(dtype)
    V = basis[:, :n].astype(dtype)
    out = problem.rhs.terms.astype(dtype).T @ cf.T
    for q, a in enumerate(terms):
        out = out + a @ (V @ cc[:, :, q].T)
    return out


def dual_norms_of(problem, vectors: NDArray, *, precision: str = "double") -> NDArray[np.float64]:
    """Dual norms ``sqrt(Re(r^H X^{-1} r))`` of the columns of ``vectors`` (n_h, m), shape (m,)."""
    _check_precision(precision)
    refine = 2 if precision == "extended" else 0
    return np.asarray(problem.inner_product.dual_norms(vectors, refine=refine), dtype=np.float64)


def residual_norms(problem, basis: NDArray, x: NDArray, *, precision: str = "double") -> NDArray[np.float64]:
    """Truth residual norms for residual coefficients ``x`` (n_mu, K_n), shape (n_mu,)."""
    return dual_norms_of(problem, combine_components(problem, basis, x, precision=precision), precision=precision)

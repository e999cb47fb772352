"""Non-affine problems through the nonintrusive matrix EIM.

A black-box ``A(mu)`` interpolated by :func:`certrb.matrix_eim` with M terms,
``A_M(mu) = sum_m beta_m(mu) A(mu_m)``, is an affine operator: the reduced basis
machinery applies unchanged (:func:`eim_operator`, :func:`eim_functional`), and
online only the M magic entries of ``A(mu)`` are evaluated.

The interpolation error enters the reported bound through an *indicator*, not a
rigorous term: with a finer interpolant of M' > M terms (by default every term the
EIM greedy computed), ``delta(mu) = ||(A_M'(mu) - A_M(mu)) u_N(mu)||_{V'}`` estimates
``||(A(mu) - A_M(mu)) u_N(mu)||_{V'}``; it misses only the error of the finer
interpolant. (With M' = M + 1, the classical EIM indicator, effectivities between
0.7 and 1.7 were measured on a reaction-diffusion test: not safe.) The reduced
model then reports ``bound = (eps(mu) + delta(mu)) / beta_LB(mu)`` and
``OnlineResult.interpolation_error = delta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

from ..errors import ShapeError
from .affine import AffineFunctional, AffineOperator
from .basis import qr_extend
from .matrix_eim import MatrixEIM

__all__ = ["InterpolatedCoefficients", "InterpolationIndicator", "eim_functional", "eim_operator",
           "interpolation_indicator"]


@dataclass(frozen=True, eq=False)
class InterpolatedCoefficients:
    """Coefficients ``beta(mus)`` (n_mu, terms) of the first ``terms`` terms of a matrix EIM.

    The EIM is nested: its first ``terms`` terms form a valid interpolant with the
    leading blocks of the triangular interpolation matrix and transform. Only the
    magic entries of ``A(mu)`` are evaluated.
    """

    eim: MatrixEIM
    terms: int

    def __post_init__(self) -> None:
        if not 1 <= self.terms <= self.eim.size:
            raise ShapeError(f"terms must lie in [1, {self.eim.size}]; got {self.terms}")

    def __call__(self, mus: NDArray[np.float64]) -> NDArray:
        """Coefficients for a batch ``mus`` (n_mu, P), shape (n_mu, terms)."""
        return self.from_values(self.eim.magic_values(mus))

    def from_values(self, values: NDArray) -> NDArray:
        """Coefficients (n_mu, terms) from magic-entry values (n_mu, m'), ``m' >= terms`` (the first are used)."""
        m = self.terms
        lam = sla.solve_triangular(self.eim.matrix[:m, :m], values[:, :m].T, lower=True, unit_diagonal=True)
        return (self.eim.transform[:m, :m] @ lam).T


def eim_operator(eim: MatrixEIM, terms: int | None = None) -> AffineOperator:
    """The affine operator ``A_M(mu) = sum_{m < M} beta_m(mu) A(mu_m)`` of a matrix EIM.

    Parameters
    ----------
    eim : MatrixEIM
        From :func:`certrb.matrix_eim` (sparse or dense square snapshots).
    terms : int, optional
        M (default: all terms).

    Returns
    -------
    AffineOperator
    """
    m = eim.size if terms is None else int(terms)
    return AffineOperator(list(eim.matrices[:m]), InterpolatedCoefficients(eim, m))


def eim_functional(eim: MatrixEIM, terms: int | None = None) -> AffineFunctional:
    """The affine vector ``f_M(mu) = sum_{m < M} beta_m(mu) f(mu_m)`` of a vector EIM."""
    m = eim.size if terms is None else int(terms)
    return AffineFunctional([np.asarray(v) for v in eim.matrices[:m]], InterpolatedCoefficients(eim, m))


@dataclass(frozen=True, eq=False)
class InterpolationIndicator:
    """Online data of the interpolation-error indicator (no n_h-sized array).

    Attributes
    ----------
    coarse, fine : InterpolatedCoefficients
        The M- and M'-term coefficient functions.
    R : ndarray, shape (r, M' N)
        Factor with ``X^{-1} [A(mu_l) v_i]_{i, l} = Psi R`` (basis-vector-major, then term).
    """

    coarse: InterpolatedCoefficients
    fine: InterpolatedCoefficients
    R: NDArray

    def __call__(self, mus: NDArray[np.float64], c: NDArray) -> NDArray[np.float64]:
        """``delta(mu)`` for coefficients ``c`` (n_mu, n), shape (n_mu,)."""
        gamma = self.fine(mus)
        gamma[:, : self.coarse.terms] -= self.coarse(mus)
        x = (c[:, :, None] * gamma[:, None, :]).reshape(c.shape[0], -1)
        y = x @ self.R[:, : x.shape[1]].T
        return np.sqrt((y.conj() * y).real.sum(axis=1))


def interpolation_indicator(
    problem, basis: NDArray, eim: MatrixEIM, terms: int, *, reference_terms: int | None = None
) -> InterpolationIndicator:
    """Build the indicator for a problem whose operator is :func:`eim_operator` ``(eim, terms)``.

    Parameters
    ----------
    problem : Problem
        Provides the inner product.
    basis : ndarray, shape (n_h, N)
    eim : MatrixEIM
        Needs more than ``terms`` terms.
    terms : int
        M, the number of terms of the operator.
    reference_terms : int, optional
        M' > M, the terms of the finer interpolant (default: all of them).

    Returns
    -------
    InterpolationIndicator
    """
    fine = eim.size if reference_terms is None else int(reference_terms)
    if not terms < fine <= eim.size:
        raise ShapeError(f"the indicator needs an EIM with at least {terms + 1} terms and terms < reference_terms "
                         f"<= {eim.size}; got terms={terms}, reference_terms={fine}")
    g = np.stack([a @ basis for a in eim.matrices[:fine]], axis=2).reshape(basis.shape[0], -1)  # A_l v_i
    rho = np.asarray(problem.inner_product.riesz(g), dtype=g.dtype)
    _, R, _ = qr_extend(np.zeros((g.shape[0], 0), dtype=rho.dtype), rho, problem.inner_product, rtol=1e-14)
    return InterpolationIndicator(InterpolatedCoefficients(eim, terms), InterpolatedCoefficients(eim, fine), R)

"""Non-affine problems through the nonintrusive matrix EIM: the offline builders.

A black-box ``A(mu)`` interpolated by :func:`certrb.matrix_eim` with M terms,
``A_M(mu) = sum_m beta_m(mu) A(mu_m)``, is an affine operator: the reduced basis
machinery applies unchanged (:func:`eim_operator`, :func:`eim_functional`), and
online only the M magic entries of ``A(mu)`` are evaluated
(:class:`~certrb.online.nonaffine.InterpolatedCoefficients`, which keeps no snapshot).

The interpolation error enters the reported bound through an *indicator*, not a
rigorous term: with a finer interpolant of M' > M terms (by default every term the
EIM greedy computed), ``delta(mu) = ||(A_M'(mu) - A_M(mu)) u_N(mu)||_{V'}`` estimates
``||(A(mu) - A_M(mu)) u_N(mu)||_{V'}``; it misses only the error of the finer
interpolant. (With M' = M + 1, the classical EIM indicator, effectivities between
0.7 and 1.7 were measured on a reaction-diffusion test: not safe.) The reduced
model then reports ``bound = (eps(mu) + delta(mu)) / beta_LB(mu)`` and
``OnlineResult.interpolation_error = delta``. The same holds for an interpolated
right-hand side, ``||f_M'(mu) - f_M(mu)||_{V'}`` (:func:`rhs_indicator`), and for
both together (:func:`interpolation_bound`). The indicators' online evaluation is in
:mod:`certrb.online.nonaffine`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..errors import ShapeError
from ..online.nonaffine import (
    InterpolatedCoefficients,
    InterpolationBound,
    InterpolationIndicator,
    MagicEntries,
    RhsIndicator,
)
from .affine import AffineFunctional, AffineOperator
from .basis import orthonormalize
from .matrix_eim import MatrixEIM
from .problem import Problem

__all__ = ["eim_functional", "eim_operator", "interpolation_bound", "interpolation_indicator", "magic_entries",
           "rhs_indicator"]


def magic_entries(eim: MatrixEIM) -> MagicEntries:
    """The online part of a matrix or vector EIM: entry callable, magic entries, ``B`` and ``T`` (no snapshot).

    An entry callable with a method ``restricted(*index)`` (as the boundary-element
    evaluators of :mod:`certrb.problems.scattering3d`) is replaced by its restriction to
    the magic entries ``index``: the same values, from the data those entries need only
    (a data evaluator of :data:`certrb.online.nonaffine.ENTRIES` is stored in a model file).

    Raises
    ------
    ShapeError
        If the EIM was trained on scalar parameters (``parameters`` of shape (m,)):
        a problem's coefficients receive parameter rows (n_mu, P).
    """
    if eim.parameters.ndim != 2:
        raise ShapeError(f"the EIM must be trained on parameters of shape (n_train, P); got {eim.parameters.shape}")
    restricted = getattr(eim.entry, "restricted", None)
    entry = eim.entry if restricted is None else restricted(*eim.entries.T)
    return MagicEntries(entry, eim.entries, eim.matrix, eim.transform)


def _terms(eim: MatrixEIM, terms: int | None) -> int:
    return eim.size if terms is None else int(terms)


def eim_operator(eim: MatrixEIM, terms: int | None = None) -> AffineOperator:
    """The affine operator ``A_M(mu) = sum_{m < M} beta_m(mu) A(mu_m)`` of a matrix EIM.

    Parameters
    ----------
    eim : MatrixEIM
        From :func:`certrb.matrix_eim` (sparse or dense square snapshots), trained on
        parameters of shape (n_train, P).
    terms : int, optional
        M (default: all terms).

    Returns
    -------
    AffineOperator
    """
    m = _terms(eim, terms)
    return AffineOperator(list(eim.matrices[:m]), InterpolatedCoefficients(magic_entries(eim), m))


def eim_functional(eim: MatrixEIM, terms: int | None = None) -> AffineFunctional:
    """The affine vector ``f_M(mu) = sum_{m < M} beta_m(mu) f(mu_m)`` of a vector EIM (as :func:`eim_operator`)."""
    m = _terms(eim, terms)
    return AffineFunctional([np.asarray(v) for v in eim.matrices[:m]], InterpolatedCoefficients(magic_entries(eim), m))


def _coarse_and_fine(eim: MatrixEIM, terms: int, reference_terms: int | None
                     ) -> tuple[InterpolatedCoefficients, InterpolatedCoefficients]:
    """The M- and M'-term coefficients of ``eim``, sharing one :class:`MagicEntries`; checks M < M' <= size."""
    fine = _terms(eim, reference_terms)
    if not terms < fine <= eim.size:
        raise ShapeError(f"the indicator needs an EIM with at least {terms + 1} terms and terms < reference_terms "
                         f"<= {eim.size}; got terms={terms}, reference_terms={fine}")
    magic = magic_entries(eim)
    return InterpolatedCoefficients(magic, terms), InterpolatedCoefficients(magic, fine)


def _riesz_factor(problem: Problem, g: NDArray) -> NDArray:
    """``R`` (r, k) with ``X^{-1} g = Psi R``, ``Psi`` X-orthonormal, for columns ``g`` (n_h, k)."""
    rho = np.asarray(problem.inner_product.riesz(g), dtype=g.dtype)
    _, R, _ = orthonormalize(np.zeros((g.shape[0], 0), dtype=rho.dtype), rho, problem.inner_product, rtol=1e-14)
    return R


def interpolation_indicator(
    problem: Problem, basis: NDArray, eim: MatrixEIM, terms: int, *, reference_terms: int | None = None
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

    Raises
    ------
    ShapeError
        Unless ``terms < reference_terms <= eim.size``.
    """
    coarse, fine = _coarse_and_fine(eim, terms, reference_terms)
    g = np.stack([a @ basis for a in eim.matrices[:fine.terms]], axis=2).reshape(basis.shape[0], -1)  # A_l v_i
    return InterpolationIndicator(coarse, fine, _riesz_factor(problem, g))


def rhs_indicator(problem: Problem, eim: MatrixEIM, terms: int, *,
                  reference_terms: int | None = None) -> RhsIndicator:
    """Build the indicator for a problem whose right-hand side is :func:`eim_functional` ``(eim, terms)``.

    Parameters and errors as :func:`interpolation_indicator` (without a basis).
    """
    coarse, fine = _coarse_and_fine(eim, terms, reference_terms)
    return RhsIndicator(coarse, fine, _riesz_factor(problem, np.column_stack(eim.matrices[:fine.terms])))


def interpolation_bound(problem: Problem, basis: NDArray, operator_eim: MatrixEIM, operator_terms: int,
                        rhs_eim: MatrixEIM, rhs_terms: int) -> InterpolationBound:
    """Operator plus right-hand-side indicators, for a problem built from both interpolants (all terms as reference).

    Parameters
    ----------
    problem : Problem
        Operator :func:`eim_operator` ``(operator_eim, operator_terms)`` (possibly among
        affine terms), right-hand side :func:`eim_functional` ``(rhs_eim, rhs_terms)``.
    basis : ndarray, shape (n_h, N)
    operator_eim, rhs_eim : MatrixEIM
    operator_terms, rhs_terms : int

    Returns
    -------
    InterpolationBound
    """
    return InterpolationBound(interpolation_indicator(problem, basis, operator_eim, operator_terms),
                              rhs_indicator(problem, rhs_eim, rhs_terms))

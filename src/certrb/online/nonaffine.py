"""Online stage of non-affine terms interpolated by the matrix EIM, and their interpolation-error indicators.

A matrix or vector EIM (:func:`certrb.matrix_eim`, :func:`certrb.vector_eim`) makes a
black-box ``A(mu)`` affine, ``A_M(mu) = sum_{m < M} beta_m(mu) A(mu_m)``. Online, the
coefficients ``beta(mu) = T B^{-1} a(mu)`` need only the magic entries ``a(mu)`` of
``A(mu)``, the unit lower-triangular ``B`` and the upper triangular ``T``
(:class:`MagicEntries`, :class:`InterpolatedCoefficients`): no snapshot.

The interpolation error is estimated, not bounded, by the distance of the M-term
interpolant to a finer one of M' > M terms: :class:`InterpolationIndicator` for the
operator, ``||(A_M'(mu) - A_M(mu)) u_N(mu)||_{V'}``, :class:`RhsIndicator` for the
right-hand side, ``||f_M'(mu) - f_M(mu)||_{V'}``, and :class:`InterpolationBound`
for both (the ``interpolation`` of a :class:`~certrb.online.model.ReducedModel`).
Their builders are in :mod:`certrb.offline.nonaffine`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError

__all__ = ["InterpolatedCoefficients", "InterpolationBound", "InterpolationIndicator", "MagicEntries",
           "RhsIndicator", "coefficient_gap"]


@dataclass(frozen=True, eq=False)
class MagicEntries:
    """The online part of a matrix or vector EIM of M' terms (from :func:`certrb.offline.nonaffine.magic_entries`).

    Attributes
    ----------
    entry : callable
        ``entry(mu, rows, cols)`` (a matrix EIM) or ``entry(mu, rows)`` (a vector EIM)
        for one parameter ``mu`` (P,): the entries as an array of shape (n_entries,).
    entries : ndarray of int, shape (M', 2) or (M', 1)
        The magic entries ``(i_m, j_m)`` or ``(i_m,)``.
    matrix : ndarray, shape (M', M')
        Unit lower-triangular interpolation matrix ``B``.
    transform : ndarray, shape (M', M')
        Upper triangular ``T`` of the Newton basis.
    """

    entry: Callable[..., ArrayLike]
    entries: NDArray[np.intp]
    matrix: NDArray
    transform: NDArray

    @property
    def size(self) -> int:
        """Number of terms M'."""
        return self.entries.shape[0]

    def values(self, mus: NDArray[np.float64]) -> NDArray:
        """The M' magic entries of ``A(mu)`` for a batch ``mus`` (n_mu, P), shape (n_mu, M').

        One ``entry`` call per parameter, with exactly the magic entries.

        Raises
        ------
        ShapeError
            If ``entry`` does not return an array of shape (M',).
        """
        index = tuple(self.entries[:, d] for d in range(self.entries.shape[1]))
        rows = [np.asarray(self.entry(mu, *index)) for mu in mus]
        for row in rows:
            if row.shape != (self.size,):
                raise ShapeError(f"entry must return an array of shape (n_entries,) = ({self.size},); "
                                 f"got {row.shape}")
        return np.stack(rows)


@dataclass(frozen=True, eq=False)
class InterpolatedCoefficients:
    """Coefficients ``beta(mus)`` (n_mu, terms) of the first ``terms`` terms of a matrix or vector EIM.

    The EIM is nested: its first ``terms`` terms form a valid interpolant with the
    leading blocks of the triangular interpolation matrix and transform. Only the
    magic entries of ``A(mu)`` are evaluated.

    Attributes
    ----------
    magic : MagicEntries
    terms : int
        M, at most ``magic.size``.
    """

    magic: MagicEntries
    terms: int

    def __post_init__(self) -> None:
        if not 1 <= self.terms <= self.magic.size:
            raise ShapeError(f"terms must lie in [1, {self.magic.size}]; got {self.terms}")

    def __call__(self, mus: NDArray[np.float64]) -> NDArray:
        """Coefficients for a batch ``mus`` (n_mu, P), shape (n_mu, terms)."""
        return self.from_values(self.magic.values(mus))

    def from_values(self, values: NDArray) -> NDArray:
        """Coefficients (n_mu, terms) from magic-entry values (n_mu, M'), ``M' >= terms`` (the first are used)."""
        m = self.terms
        lam = sla.solve_triangular(self.magic.matrix[:m, :m], values[:, :m].T, lower=True, unit_diagonal=True)
        return (self.magic.transform[:m, :m] @ lam).T


def coefficient_gap(coarse: InterpolatedCoefficients, fine: InterpolatedCoefficients,
                    mus: NDArray[np.float64]) -> NDArray:
    """``beta_fine(mu) - [beta_coarse(mu), 0]``, shape (n_mu, M'), from one evaluation of the magic entries.

    ``coarse`` and ``fine`` are two truncations (M < M' terms) of one EIM.
    """
    values = fine.magic.values(mus)
    gap = fine.from_values(values)
    gap[:, : coarse.terms] -= coarse.from_values(values)
    return gap


@dataclass(frozen=True, eq=False)
class InterpolationIndicator:
    """``||(A_M'(mu) - A_M(mu)) u_N(mu)||_{V'}``: indicator of the operator's interpolation error.

    Attributes
    ----------
    coarse, fine : InterpolatedCoefficients
        The M- and M'-term coefficient functions (M < M') of one matrix EIM.
    R : ndarray, shape (r, M' N)
        Factor with ``X^{-1} [A(mu_l) v_i]_{i, l} = Psi R`` (basis-vector-major, then
        term), ``Psi`` X-orthonormal.
    """

    coarse: InterpolatedCoefficients
    fine: InterpolatedCoefficients
    R: NDArray

    def __call__(self, mus: NDArray[np.float64], c: NDArray) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, P) and reduced coefficients ``c`` (n_mu, n), shape (n_mu,)."""
        gap = coefficient_gap(self.coarse, self.fine, mus)
        x = (c[:, :, None] * gap[:, None, :]).reshape(c.shape[0], -1)
        y = x @ self.R[:, : x.shape[1]].T
        return np.sqrt((y.conj() * y).real.sum(axis=1))


@dataclass(frozen=True, eq=False)
class RhsIndicator:
    """``||f_M'(mu) - f_M(mu)||_{V'}``: indicator of the right-hand side's interpolation error.

    Attributes
    ----------
    coarse, fine : InterpolatedCoefficients
        The M- and M'-term coefficient functions (M < M') of one vector EIM.
    R : ndarray, shape (r, M')
        Factor with ``X^{-1} [f(mu_1) .. f(mu_M')] = Psi R``, ``Psi`` X-orthonormal.
    """

    coarse: InterpolatedCoefficients
    fine: InterpolatedCoefficients
    R: NDArray

    def __call__(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, P), shape (n_mu,)."""
        return np.linalg.norm(coefficient_gap(self.coarse, self.fine, mus) @ self.R.T, axis=1)


@dataclass(frozen=True, eq=False)
class InterpolationBound:
    """Operator plus right-hand-side interpolation indicators, the ``interpolation`` of a ReducedModel.

    Non-rigorous: each estimates the error of an M-term interpolant by its distance to
    the M'-term one. With ``r(mu) = f(mu) - A(mu) u_N`` the residual of the
    non-interpolated problem, ``||r(mu)||_{V'} <= eps(mu) + ||(A - A_M) u_N||_{V'} +
    ||f - f_M||_{V'}``, and the two last terms are replaced by the indicators (each
    evaluates the magic entries once per parameter).

    Attributes
    ----------
    operator : InterpolationIndicator
    rhs : RhsIndicator
    """

    operator: InterpolationIndicator
    rhs: RhsIndicator

    def __call__(self, mus: NDArray[np.float64], c: NDArray) -> NDArray[np.float64]:
        """Indicator for a batch ``mus`` (n_mu, P) and reduced coefficients ``c`` (n_mu, n), shape (n_mu,)."""
        return self.operator(mus, c) + self.rhs(mus)

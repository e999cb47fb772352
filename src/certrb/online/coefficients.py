"""Coefficient functions of the affine terms, evaluated and checked online.

A coefficient function maps a parameter batch ``mus`` (n_mu, P) to ``theta`` (n_mu, Q).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import ShapeError

__all__ = ["Coefficients", "Conjugated", "evaluate_coefficients"]

Coefficients = Callable[[NDArray[np.float64]], NDArray]


def evaluate_coefficients(func: Coefficients, mus: NDArray[np.float64], n_terms: int, what: str) -> NDArray:
    """Call a coefficient function and check its result.

    Parameters
    ----------
    func : callable
        Maps ``mus`` of shape (n_mu, P) to an array of shape (n_mu, Q).
    mus : ndarray, shape (n_mu, P)
    n_terms : int
        Expected Q.
    what : str
        Name used in error messages.

    Returns
    -------
    theta : ndarray, shape (n_mu, Q), float64 or complex128

    Raises
    ------
    ShapeError
        On a wrong shape, a non-numeric dtype, or NaN / infinite values.

    """
    theta = np.asarray(func(mus))
    if theta.shape != (mus.shape[0], n_terms):
        raise ShapeError(
            f"{what} coefficients must return shape ({mus.shape[0]}, {n_terms}) for mus of shape "
            f"{mus.shape}; got {theta.shape}"
        )
    if theta.dtype.kind not in "biufc":  # strings, objects (e.g. None): refuse rather than fail inside numpy
        raise ShapeError(f"{what} coefficients must return a numeric array; got dtype {theta.dtype}")
    if theta.dtype.kind not in "fc" or theta.dtype.itemsize < 8:
        theta = theta.astype(np.result_type(theta.dtype, np.float64))
    if not np.isfinite(theta).all():
        raise ShapeError(f"{what} coefficients returned NaN or infinite values")
    return theta


@dataclass(frozen=True)
class Conjugated:
    """Complex conjugate of a coefficient function: ``mus -> conj(func(mus))``.

    Used for the coefficients of adjoint operators ``A(mu)^H = sum_q conj(theta_q(mu)) A_q^H``.
    """

    func: Coefficients

    def __call__(self, mus: NDArray[np.float64]) -> NDArray:
        """Conjugated coefficients, shape (n_mu, Q)."""
        return np.conj(self.func(mus))

"""Affinely parametrized operators and functionals.

``A(mu) = sum_q theta_q(mu) A_q`` and ``f(mu) = sum_p phi_p(mu) f_p``. The
coefficient function maps a parameter batch ``(n_mu, P)`` to ``(n_mu, Q)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..errors import ShapeError
from ..online.coefficients import Coefficients, evaluate_coefficients

__all__ = ["AffineFunctional", "AffineOperator"]

def _common_dtype(arrays: Sequence) -> np.dtype:
    return np.result_type(np.float64, *[a.dtype for a in arrays])


@dataclass(frozen=True, eq=False)
class AffineOperator:
    """Affine operator ``A(mu) = sum_q theta_q(mu) A_q``.

    Parameters
    ----------
    terms : sequence of sparse matrices, each (n_h, n_h)
        Real or complex terms ``A_q``; stored as CSR.
    coefficients : callable
        ``coefficients(mus)`` with ``mus`` (n_mu, P) returns (n_mu, Q).

    """

    terms: tuple[sp.csr_matrix, ...]
    coefficients: Coefficients

    def __init__(self, terms: Sequence, coefficients: Coefficients) -> None:
        if len(terms) == 0:
            raise ShapeError("terms must hold at least one matrix")
        mats = tuple(sp.csr_matrix(t) for t in terms)
        shape = mats[0].shape
        if shape[0] != shape[1]:
            raise ShapeError(f"terms[0] must be square; got shape {shape}")
        for q, m in enumerate(mats):
            if m.shape != shape:
                raise ShapeError(f"terms[{q}] has shape {m.shape}; expected {shape} like terms[0]")
            if not np.all(np.isfinite(m.data)):
                raise ShapeError(f"terms[{q}] contains NaN or infinite entries")
        if not callable(coefficients):
            raise TypeError("coefficients must be callable: mus (n_mu, P) -> (n_mu, Q)")
        dtype = _common_dtype(mats)
        object.__setattr__(self, "terms", tuple(m.astype(dtype) for m in mats))
        object.__setattr__(self, "coefficients", coefficients)

    @property
    def n_terms(self) -> int:
        """Number of affine terms Q."""
        return len(self.terms)

    @property
    def size(self) -> int:
        """Truth dimension n_h."""
        return self.terms[0].shape[0]

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the terms (float64 or complex128)."""
        return self.terms[0].dtype

    def theta(self, mus: NDArray[np.float64]) -> NDArray:
        """Coefficients ``theta(mus)``, shape (n_mu, Q)."""
        return evaluate_coefficients(self.coefficients, mus, self.n_terms, "operator")

    def assemble(self, theta_row: NDArray) -> sp.csc_matrix:
        """Assemble ``sum_q theta_q A_q`` for one coefficient row ``theta_row`` of shape (Q,)."""
        out = self.terms[0] * theta_row[0]
        for t, a in zip(theta_row[1:], self.terms[1:], strict=True):
            out = out + t * a
        return sp.csc_matrix(out)

    def apply_terms(self, vectors: NDArray) -> NDArray:
        """Apply every term to a block of vectors.

        Parameters
        ----------
        vectors : ndarray, shape (n_h, k)

        Returns
        -------
        out : ndarray, shape (Q, n_h, k)

        """
        return np.stack([a @ vectors for a in self.terms])

    def project(self, V: NDArray, W: NDArray | None = None) -> NDArray:
        """Galerkin projection ``W^H A_q V`` of each term.

        Parameters
        ----------
        V : ndarray, shape (n_h, N)
        W : ndarray, shape (n_h, M), optional (defaults to V)

        Returns
        -------
        A_N : ndarray, shape (Q, M, N)

        """
        W = V if W is None else W
        Wh = W.T.conj() if np.iscomplexobj(W) else W.T
        return np.stack([Wh @ (a @ V) for a in self.terms])


@dataclass(frozen=True, eq=False)
class AffineFunctional:
    """Affine vector ``f(mu) = sum_p phi_p(mu) f_p``.

    Used both for right-hand sides (the functional ``v -> v^H f``) and for
    outputs ``s(mu) = l(mu)^H u``.

    Parameters
    ----------
    terms : sequence of array_like, each (n_h,)
        Real or complex vectors ``f_p``.
    coefficients : callable
        ``coefficients(mus)`` with ``mus`` (n_mu, P) returns (n_mu, Q).

    """

    terms: NDArray
    coefficients: Coefficients

    def __init__(self, terms: Sequence, coefficients: Coefficients) -> None:
        vecs = [np.asarray(t) for t in terms]
        if len(vecs) == 0:
            raise ShapeError("terms must hold at least one vector")
        if any(v.ndim != 1 for v in vecs):
            raise ShapeError(f"each term must be a 1-D vector; got shapes {[v.shape for v in vecs]}")
        if len({v.shape for v in vecs}) != 1:
            raise ShapeError(f"terms must have equal lengths; got {[v.shape[0] for v in vecs]}")
        if not callable(coefficients):
            raise TypeError("coefficients must be callable: mus (n_mu, P) -> (n_mu, Q)")
        arr = np.stack(vecs).astype(_common_dtype(vecs))
        if not np.all(np.isfinite(arr)):
            raise ShapeError("terms contain NaN or infinite values")
        arr.flags.writeable = False
        object.__setattr__(self, "terms", arr)
        object.__setattr__(self, "coefficients", coefficients)

    @property
    def n_terms(self) -> int:
        """Number of affine terms Q."""
        return self.terms.shape[0]

    @property
    def size(self) -> int:
        """Truth dimension n_h."""
        return self.terms.shape[1]

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the terms (float64 or complex128)."""
        return self.terms.dtype

    def theta(self, mus: NDArray[np.float64]) -> NDArray:
        """Coefficients ``phi(mus)``, shape (n_mu, Q)."""
        return evaluate_coefficients(self.coefficients, mus, self.n_terms, "functional")

    def assemble(self, mus: NDArray[np.float64]) -> NDArray:
        """Vectors ``f(mu)`` for a batch, shape (n_mu, n_h)."""
        return self.theta(mus) @ self.terms

    def project(self, V: NDArray) -> NDArray:
        """Projection ``V^H f_p`` of each term, shape (Q, N) for ``V`` of shape (n_h, N)."""
        return self.terms @ (V.conj() if np.iscomplexobj(V) else V)

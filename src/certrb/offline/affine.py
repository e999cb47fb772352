"""Affinely parametrized operators and functionals.

``A(mu) = sum_q theta_q(mu) A_q`` and ``f(mu) = sum_p phi_p(mu) f_p``. The
coefficient function maps a parameter batch ``(n_mu, P)`` to ``(n_mu, Q)``; it is a
callable, an :class:`certrb.online.expressions.ExpressionCoefficients`, or a sequence of
expression strings (one per term) over the parameter names, e.g. ``["1", "mu1"]``, which
:class:`certrb.offline.problem.Problem` binds to its parameter space's names.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..errors import ExpressionError, ShapeError
from ..interop.guard import reject_pymor
from ..online.coefficients import Coefficients, evaluate_coefficients
from ..online.expressions import ExpressionCoefficients

__all__ = ["AffineFunctional", "AffineOperator", "UnboundExpressions"]


@dataclass(frozen=True)
class UnboundExpressions:
    """Expression coefficients whose parameter names are not known yet.

    What an operator or functional holds when given a sequence of strings;
    :class:`certrb.offline.problem.Problem` replaces it by
    ``ExpressionCoefficients(texts, parameter_space.names)``.
    """

    texts: tuple[str, ...]

    def __call__(self, mus: NDArray[np.float64]) -> NDArray:
        """Refuse: the expressions have no parameter names to refer to yet."""
        raise TypeError(f"the coefficient expressions {list(self.texts)} are bound to the parameter names when "
                        f"the Problem is built; build a certrb.Problem first, call .bind(names) on the operator or "
                        f"functional, or pass certrb.ExpressionCoefficients(texts, names)")


def _coefficients(coefficients: Any, n_terms: int) -> Coefficients:
    """A callable for the coefficients: strings become :class:`UnboundExpressions`; one expression per term."""
    reject_pymor(coefficients, "coefficients")
    if isinstance(coefficients, str) or not (callable(coefficients) or isinstance(coefficients, Sequence)):
        raise TypeError(f"coefficients must be callable (mus (n_mu, P) -> (n_mu, Q)) or a sequence of expression "
                        f"strings, one per term; got {coefficients!r}")
    if not callable(coefficients):
        for q, c in enumerate(coefficients):
            reject_pymor(c, f"coefficients[{q}]")
        wrong = [c for c in coefficients if not isinstance(c, str)]
        if wrong:
            raise TypeError(f"coefficient expressions must be strings; got {wrong[0]!r}")
        coefficients = UnboundExpressions(tuple(coefficients))
    if isinstance(coefficients, UnboundExpressions | ExpressionCoefficients) and len(coefficients.texts) != n_terms:
        raise ShapeError(f"got {len(coefficients.texts)} coefficient expressions for {n_terms} terms; "
                         f"give one expression per term")
    return coefficients


def _bind(coefficients: Coefficients, names: tuple[str, ...], what: str) -> Coefficients:
    """Expression coefficients over ``names``; a callable is returned as it is."""
    if isinstance(coefficients, UnboundExpressions):
        try:
            return ExpressionCoefficients(coefficients.texts, names)
        except ExpressionError as exc:
            raise ExpressionError(f"{what} coefficients: {exc}") from None
    if isinstance(coefficients, ExpressionCoefficients) and coefficients.names != tuple(names):
        raise ExpressionError(f"{what} coefficients are expressions over the parameters {list(coefficients.names)}; "
                              f"the parameter space has {list(names)}")
    return coefficients


def _reject_pymor_terms(terms: Any) -> None:
    """TypeError pointing to ``certrb.interop.from_pymor`` for pyMOR operators or vector arrays as terms."""
    reject_pymor(terms, "terms")
    if isinstance(terms, Sequence):
        for q, t in enumerate(terms):
            reject_pymor(t, f"terms[{q}]")


def _common_dtype(arrays: Sequence) -> np.dtype:
    return np.result_type(np.float64, *[a.dtype for a in arrays])


@dataclass(frozen=True, eq=False)
class AffineOperator:
    """Affine operator ``A(mu) = sum_q theta_q(mu) A_q``.

    Parameters
    ----------
    terms : sequence of sparse matrices, each (n_h, n_h)
        Real or complex terms ``A_q``; stored as CSR.
    coefficients : callable or sequence of str
        ``coefficients(mus)`` with ``mus`` (n_mu, P) returns (n_mu, Q); or Q expressions
        over the parameter names (see :mod:`certrb.online.expressions`), e.g. ``["1", "mu1"]``.

    """

    terms: tuple[sp.csr_matrix, ...]
    coefficients: Coefficients

    def __init__(self, terms: Sequence, coefficients: Coefficients | Sequence[str]) -> None:
        _reject_pymor_terms(terms)
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
        coefficients = _coefficients(coefficients, len(mats))
        dtype = _common_dtype(mats)
        object.__setattr__(self, "terms", tuple(m.astype(dtype) for m in mats))
        object.__setattr__(self, "coefficients", coefficients)

    def bind(self, names: Sequence[str]) -> Self:
        """The operator with its expression coefficients bound to the parameter names.

        Parameters
        ----------
        names : sequence of str, length P

        Returns
        -------
        AffineOperator
            Same terms; string coefficients become ``ExpressionCoefficients(texts, names)``.
            ``self`` if the coefficients are a callable.

        Raises
        ------
        ExpressionError
            If an expression is outside the grammar or uses a name not in ``names``.

        """
        return _with_coefficients(self, _bind(self.coefficients, tuple(names), "operator"))

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
    coefficients : callable or sequence of str
        ``coefficients(mus)`` with ``mus`` (n_mu, P) returns (n_mu, Q); or Q expressions
        over the parameter names (see :mod:`certrb.online.expressions`), e.g. ``["sin(k)"]``.

    """

    terms: NDArray
    coefficients: Coefficients

    def __init__(self, terms: Sequence, coefficients: Coefficients | Sequence[str]) -> None:
        _reject_pymor_terms(terms)
        vecs = [np.asarray(t) for t in terms]
        if len(vecs) == 0:
            raise ShapeError("terms must hold at least one vector")
        if any(v.ndim != 1 for v in vecs):
            raise ShapeError(f"each term must be a 1-D vector; got shapes {[v.shape for v in vecs]}")
        if len({v.shape for v in vecs}) != 1:
            raise ShapeError(f"terms must have equal lengths; got {[v.shape[0] for v in vecs]}")
        coefficients = _coefficients(coefficients, len(vecs))
        arr = np.stack(vecs).astype(_common_dtype(vecs))
        if not np.all(np.isfinite(arr)):
            raise ShapeError("terms contain NaN or infinite values")
        arr.flags.writeable = False
        object.__setattr__(self, "terms", arr)
        object.__setattr__(self, "coefficients", coefficients)

    def bind(self, names: Sequence[str], what: str = "functional") -> Self:
        """The functional with its expression coefficients bound to the parameter names.

        Parameters
        ----------
        names : sequence of str, length P
        what : str
            Name used in error messages (``"rhs"``, ``"output"``).

        Returns
        -------
        AffineFunctional
            Same terms; string coefficients become ``ExpressionCoefficients(texts, names)``.
            ``self`` if the coefficients are a callable.

        Raises
        ------
        ExpressionError
            If an expression is outside the grammar or uses a name not in ``names``.

        """
        return _with_coefficients(self, _bind(self.coefficients, tuple(names), what))

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


def _with_coefficients(obj: Any, coefficients: Coefficients) -> Any:
    """``obj`` (an AffineOperator or AffineFunctional) with other coefficients; the terms are shared, not copied."""
    if coefficients is obj.coefficients:
        return obj
    out = copy.copy(obj)
    object.__setattr__(out, "coefficients", coefficients)
    return out

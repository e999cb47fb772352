"""The truth model: an affine problem ``A(mu) u = f(mu)`` with its inner product."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError, StabilityError
from ..online.coefficients import Conjugated
from ..online.parameters import ParameterSpace
from ..online.stability import check_stability
from .affine import AffineFunctional, AffineOperator
from .innerproduct import InnerProduct
from .stability import MinTheta, StabilityCallable

__all__ = ["Problem", "dual_problem"]

_CACHE_SIZE = 8


@dataclass(frozen=True, eq=False)
class Problem:
    """An affinely parametrized linear problem ``A(mu) u = f(mu)`` (the truth model).

    Parameters
    ----------
    operator : AffineOperator
        ``A(mu)``, size n_h. Coefficients given as expression strings (of the operator,
        ``rhs`` and ``output``) are bound here to ``parameter_space.names`` and become
        :class:`certrb.online.expressions.ExpressionCoefficients`.
    rhs : AffineFunctional
        ``f(mu)``, size n_h.
    inner_product : sparse matrix or InnerProduct, shape (n_h, n_h)
        Hermitian positive definite Gram matrix ``X`` of the truth space.
    parameter_space : ParameterSpace
    stability : MinTheta or callable
        ``MinTheta(mu_ref)`` or a callable ``mus (n_mu, P) -> (n_mu,)`` returning
        lower bounds of the coercivity / inf-sup constant w.r.t. ``X``.
    output : AffineFunctional, optional
        ``l(mu)``; the output is ``s(mu) = l(mu)^H u(mu)``.

    Raises
    ------
    ExpressionError
        If a coefficient expression is outside the grammar or names an unknown parameter.

    Notes
    -----
    Factorizations of ``A(mu)`` are kept for the last 8 distinct coefficient
    vectors, so solving again at a parameter (or one with the same ``theta``)
    reuses them. When the sparsity pattern of X holds those of all ``A_q`` (as
    for FEM), every ``A(mu)`` is factorized in the fill-reducing ordering already
    computed for X, from a copy of the terms permuted once (kept with the problem).

    """

    operator: AffineOperator
    rhs: AffineFunctional
    inner_product: InnerProduct
    parameter_space: ParameterSpace
    stability: StabilityCallable
    output: AffineFunctional | None = None
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _ext_terms: dict = field(default_factory=dict, repr=False)
    _ordering: dict = field(default_factory=dict, repr=False)
    _dtype: np.dtype = field(default=np.dtype(np.float64), repr=False)

    def __init__(
        self,
        operator: AffineOperator,
        rhs: AffineFunctional,
        inner_product: sp.spmatrix | InnerProduct,
        parameter_space: ParameterSpace,
        stability: MinTheta | Callable = None,  # type: ignore[assignment]
        output: AffineFunctional | None = None,
    ) -> None:
        if not isinstance(operator, AffineOperator):
            raise TypeError(f"operator must be an AffineOperator; got {type(operator).__name__}")
        if not isinstance(rhs, AffineFunctional):
            raise TypeError(f"rhs must be an AffineFunctional; got {type(rhs).__name__}")
        if not isinstance(parameter_space, ParameterSpace):
            raise TypeError("parameter_space must be a ParameterSpace")
        if output is not None and not isinstance(output, AffineFunctional):
            raise TypeError(f"output must be an AffineFunctional; got {type(output).__name__}")
        if stability is None:  # before any factorization
            raise TypeError("stability is missing: a certified build needs a lower bound of the stability constant; "
                            "pass stability=certrb.MinTheta(mu_ref) (coercive problems with non-negative "
                            "coefficients) or certrb.SCM(operator, inner_product, train, kind=...) (coercive or "
                            "inf-sup)")
        if not isinstance(stability, MinTheta) and not callable(stability):
            raise TypeError("stability must be MinTheta(mu_ref) or a callable mus -> (n_mu,) lower bounds")
        if isinstance(stability, MinTheta):
            mu_ref = parameter_space.validate(stability.mu_ref, name="MinTheta.mu_ref")
        names = parameter_space.names  # expressions are checked before any factorization
        operator, rhs = operator.bind(names), rhs.bind(names, "rhs")
        output = None if output is None else output.bind(names, "output")
        ip = inner_product if isinstance(inner_product, InnerProduct) else InnerProduct(inner_product)
        n = operator.size
        for name, size in (("rhs", rhs.size), ("inner_product", ip.size)):
            if size != n:
                raise ShapeError(f"{name} has size {size}; the operator has size {n}")
        if output is not None and output.size != n:
            raise ShapeError(f"output has size {output.size}; the operator has size {n}")
        if isinstance(stability, MinTheta):
            stability = stability.bind(operator, ip.matrix, mu_ref)
        center = ((parameter_space.lower + parameter_space.upper) / 2)[None, :]
        dtype = np.result_type(operator.dtype, rhs.dtype, operator.theta(center).dtype, rhs.theta(center).dtype)
        for key, value in (("_dtype", dtype), ("operator", operator), ("rhs", rhs), ("inner_product", ip),
                           ("parameter_space", parameter_space), ("stability", stability),
                           ("output", output), ("_cache", OrderedDict()), ("_ext_terms", {}),
                           ("_ordering", {})):
            object.__setattr__(self, key, value)

    @classmethod
    def from_spec(cls, path: str | os.PathLike[str]) -> Problem:
        """The problem described by a TOML spec naming matrix files (format: :mod:`certrb.offline.spec`).

        Raises
        ------
        SpecError
            If the spec or a file it names is invalid; the message names the section, key and file.

        """
        from .spec import load_spec

        return load_spec(path).problem

    def __reduce__(self) -> tuple:
        """Pickle as the defining data; factorizations and caches are rebuilt where it is unpickled."""
        return Problem, (self.operator, self.rhs, self.inner_product, self.parameter_space, self.stability,
                         self.output)

    @property
    def size(self) -> int:
        """Truth dimension n_h."""
        return self.operator.size

    @property
    def dtype(self) -> np.dtype:
        """Scalar type of the truth solutions: complex128 if any term or coefficient is complex."""
        return self._dtype

    def stability_lower_bound(self, mus: ArrayLike) -> NDArray[np.float64]:
        """Stability lower bounds for a batch, shape (n_mu,)."""
        m = self.parameter_space.validate(mus)
        return check_stability(self.stability(m), m.shape[0])

    def _factor(self, theta_row: NDArray) -> _Factorization:
        key = theta_row.tobytes()
        lu = self._cache.get(key)
        if lu is None:
            ordered = self._ordered_operator()
            try:
                if ordered is None:  # a symmetric fill-reducing ordering per matrix (A(mu) is structurally
                    # symmetric for FEM/BEM), threshold pivoting: half the fill of the default COLAMD
                    lu = _Factorization(spla.splu(self.operator.assemble(theta_row), permc_spec="MMD_AT_PLUS_A",
                                                  diag_pivot_thresh=0.1), None)
                else:
                    perm, op = ordered
                    lu = _Factorization(spla.splu(op.assemble(theta_row), permc_spec="NATURAL",
                                                  diag_pivot_thresh=0.1), perm)
            except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
                raise StabilityError(f"A(mu) is singular for theta = {theta_row.tolist()}: {exc}") from exc
            self._cache[key] = lu
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return lu

    def _ordered_operator(self) -> tuple[NDArray[np.intp], AffineOperator] | None:
        """X's fill-reducing ordering ``p`` and the terms ``A_q[p][:, p]``, if X's pattern holds every ``A_q``'s.

        Computed once per problem; it depends only on the problem (not on which
        parameters were solved first), so every worker process finds the same.
        """
        if "operator" not in self._ordering:
            X = _pattern(self.inner_product.matrix)
            union = X + sum(_pattern(a) for a in self.operator.terms)
            p = self.inner_product.ordering
            self._ordering["operator"] = None if union.nnz != X.nnz else (
                p, AffineOperator([sp.csc_matrix(sp.csr_matrix(a)[p][:, p]) for a in self.operator.terms],
                                  self.operator.coefficients))
        return self._ordering["operator"]

    def solve(self, mus: ArrayLike, *, refine: int = 0) -> NDArray:
        """Truth solutions ``u(mu)`` by a sparse direct solver.

        Parameters
        ----------
        mus : array_like, shape (n_mu, P)
        refine : int
            Iterative-refinement steps with residuals accumulated in extended
            precision (numpy.longdouble); with ``refine > 0`` the solutions are
            returned in extended precision.

        Returns
        -------
        U : ndarray, shape (n_mu, n_h)

        Raises
        ------
        StabilityError
            If ``A(mu)`` is exactly singular (the sparse LU meets a zero pivot).

        """
        m = self.parameter_space.validate(mus)
        theta = self.operator.theta(m)
        F = self.rhs.assemble(m)
        dtype = np.result_type(self.dtype, theta.dtype, F.dtype)
        out = np.empty((m.shape[0], self.size), dtype=_extended(dtype) if refine > 0 else dtype)
        for i in range(m.shape[0]):
            lu = self._factor(theta[i])
            u = lu.solve(F[i].astype(dtype))
            if refine > 0:
                u = self._refine(lu, theta[i], F[i], u, refine)
            out[i] = u
        return out

    def _refine(self, lu: _Factorization, theta_row: NDArray, f: NDArray, u: NDArray, steps: int) -> NDArray:
        ext = _extended(np.result_type(u.dtype, theta_row.dtype))
        u = u.astype(ext)
        for _ in range(steps):
            r = self.residual_extended(theta_row, f, u)
            u = u + lu.solve(r)
        return u

    def residual_extended(self, theta_row: NDArray, f: NDArray, u: NDArray) -> NDArray:
        """Residual ``f - sum_q theta_q A_q u`` accumulated in extended precision.

        Parameters
        ----------
        theta_row : ndarray, shape (Q,)
        f : ndarray, shape (n_h,)
        u : ndarray, shape (n_h,) or (n_h, k)

        Returns
        -------
        r : ndarray, same shape as ``u``, numpy.longdouble or clongdouble

        """
        ext = _extended(np.result_type(u.dtype, theta_row.dtype, f.dtype, self.operator.dtype))
        u = u.astype(ext, copy=False)
        r: NDArray = np.broadcast_to(f.astype(ext).reshape((-1,) + (1,) * (u.ndim - 1)), u.shape).copy()
        for t, a in zip(theta_row, self._extended_terms(ext), strict=True):
            r = r - ext(t) * (a @ u)
        return r

    def _extended_terms(self, ext: type) -> tuple[sp.csr_matrix, ...]:
        if ext not in self._ext_terms:
            self._ext_terms[ext] = tuple(a.astype(ext) for a in self.operator.terms)
        return self._ext_terms[ext]


def _extended(dtype: np.dtype) -> type:
    return np.clongdouble if np.issubdtype(dtype, np.complexfloating) else np.longdouble


def _pattern(a: sp.spmatrix | NDArray) -> sp.csr_matrix:
    """Sparsity pattern (stored entries, explicit zeros included) as a CSR matrix of ones."""
    m = sp.csr_matrix(a, copy=True)
    m.sum_duplicates()
    m.data = np.ones_like(m.data, dtype=np.float64)
    return m


@dataclass(frozen=True)
class _Factorization:
    """Sparse LU of ``A`` or, with an ordering ``p`` (n_h,), of ``A[p][:, p]``."""

    lu: spla.SuperLU
    perm: NDArray[np.intp] | None

    def solve(self, b: NDArray) -> NDArray:
        """``A^{-1} b`` for b (n_h,) or (n_h, k); float64 or complex128 (extended input is rounded)."""
        if self.perm is None:
            return _lu_solve(self.lu, b)
        y = _lu_solve(self.lu, b[self.perm])
        x = np.empty_like(y)
        x[self.perm] = y
        return x


def _lu_solve(lu: spla.SuperLU, b: NDArray) -> NDArray:
    complex_b = np.iscomplexobj(b)
    bd = b.astype(np.complex128 if complex_b else np.float64)
    if complex_b and lu.L.dtype.kind != "c":
        return lu.solve(np.ascontiguousarray(bd.real)) + 1j * lu.solve(np.ascontiguousarray(bd.imag))
    return lu.solve(bd)


def dual_problem(problem: Problem) -> Problem:
    """The dual (adjoint) problem of an output: ``A(mu)^H z(mu) = l(mu)``.

    With ``s(mu) = l(mu)^H u(mu)`` and ``A u = f``, ``s = z^H f``; a reduced dual
    solution gives the corrected output and the primal-dual output bound (see
    :class:`certrb.online.model.ReducedOutput`). The dual shares the inner product and the
    stability lower bound (``A`` and ``A^H`` have the same coercivity and inf-sup
    constants).

    Parameters
    ----------
    problem : Problem
        A problem with an output.

    Returns
    -------
    Problem
        Operator terms ``A_q^H`` with coefficients ``conj(theta_q)``, right-hand side ``l``.
    """
    if problem.output is None:
        raise ValueError("dual_problem needs a problem with an output")
    op = problem.operator
    adjoint = AffineOperator([a.conj().T for a in op.terms], Conjugated(op.coefficients))
    return Problem(adjoint, problem.output, problem.inner_product, problem.parameter_space,
                   stability=problem.stability)

"""The truth-space reference residual norm (E0) and true errors of a reduced model."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError
from ..online.model import ReducedModel
from ..online.residual import residual_coefficients
from .estimators.truth import residual_norms
from .problem import Problem

__all__ = ["true_error", "truth_residual_norm"]


def _basis(problem: Problem, model: ReducedModel) -> NDArray:
    """The model's basis (n_h, N), checked to be there and of the problem's size."""
    if model.basis is None:
        raise ShapeError("the truth reference needs a model that keeps its basis")
    if model.basis.shape[0] != problem.size:
        raise ShapeError(f"model basis has n_h = {model.basis.shape[0]}; problem has {problem.size}")
    return model.basis


def truth_residual_norm(
    problem: Problem, model: ReducedModel, mus: ArrayLike, *, n: int | None = None, precision: str = "double"
) -> NDArray[np.float64]:
    """E0: ``||f(mu) - A(mu) u_N(mu)||_{V'}`` computed in the truth space.

    Parameters
    ----------
    problem : Problem
    model : ReducedModel
        Must keep its basis.
    mus : array_like, shape (n_mu, P)
    n : int, optional
        Nested sub-model size.
    precision : {"double", "extended"}
        ``"extended"`` forms the residual in numpy.longdouble and refines the
        Riesz solve with extended-precision residuals.

    Returns
    -------
    eps : ndarray, shape (n_mu,)

    """
    basis = _basis(problem, model)
    m = problem.parameter_space.validate(mus)
    c = model.solve(m, n=n)
    x = residual_coefficients(problem.rhs.theta(m), problem.operator.theta(m), c)
    return residual_norms(problem, basis, x, precision=precision)


def true_error(
    problem: Problem, model: ReducedModel, mus: ArrayLike, *, n: int | None = None, refine: int = 2
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """True errors ``||u(mu) - u_N(mu)||_V`` and norms ``||u(mu)||_V``.

    The truth solutions are refined in extended precision (``refine`` steps, at least one),
    the difference and its X-norm are taken in extended precision (a double quadratic form
    loses up to ``u cond(X)`` on smooth vectors).

    Returns
    -------
    error, norm : ndarray, shape (n_mu,) each

    """
    basis = _basis(problem, model)
    m = problem.parameter_space.validate(mus)
    c = model.solve(m, n=n)
    n = c.shape[1]
    U = problem.solve(m, refine=max(int(refine), 1))
    E = U - (c.astype(U.dtype) @ basis[:, :n].T.astype(U.dtype))
    return _norms_extended(problem, E), _norms_extended(problem, U)


def _norms_extended(problem: Problem, rows: NDArray) -> NDArray[np.float64]:
    """X-norms of the rows (n_mu, n_h) of an extended-precision array, the quadratic form in extended precision."""
    X = problem.inner_product.matrix.astype(rows.dtype)
    return np.asarray(np.sqrt(np.maximum(np.einsum("mh,hm->m", rows.conj(), X @ rows.T).real, 0)), dtype=np.float64)

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

    The truth solutions are refined in extended precision (``refine`` steps)
    and the difference is taken in extended precision.

    Returns
    -------
    error, norm : ndarray, shape (n_mu,) each

    """
    basis = _basis(problem, model)
    m = problem.parameter_space.validate(mus)
    c = model.solve(m, n=n)
    n = c.shape[1]
    U = problem.solve(m, refine=refine)
    E = U - (c.astype(U.dtype) @ basis[:, :n].T.astype(U.dtype))
    ip = problem.inner_product
    return ip.norms(np.asarray(E.T, dtype=basis.dtype)), ip.norms(np.asarray(U.T, dtype=basis.dtype))

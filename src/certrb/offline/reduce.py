"""A reduced model for a given basis: :func:`reduce`."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ShapeError
from ..online.model import ReducedModel
from .builder import OfflineBuilder
from .problem import Problem

__all__ = ["as_builder", "reduce"]

_BUILDER_OPTIONS = ("estimators", "default", "precision", "certify", "dual", "refine", "snapshot_refine", "rtol",
                    "options", "rng")


def as_builder(builder_or_problem: OfflineBuilder | Problem, legacy: dict[str, Any], where: str) -> OfflineBuilder:
    """The builder to use: ``builder_or_problem`` itself, or a new one for a Problem.

    ``legacy`` holds builder options passed the old way (as keywords of ``where``); they
    are accepted for a Problem, with a DeprecationWarning, for one release.
    """
    if isinstance(builder_or_problem, OfflineBuilder):
        if legacy:
            raise TypeError(f"{where}: {sorted(legacy)} belong to the OfflineBuilder; set them there")
        return builder_or_problem
    if not isinstance(builder_or_problem, Problem):
        raise TypeError(f"{where} takes an OfflineBuilder or a Problem; got {type(builder_or_problem).__name__}")
    unknown = sorted(set(legacy) - set(_BUILDER_OPTIONS))
    if unknown:
        raise TypeError(f"{where} got unexpected keyword arguments {unknown}")
    if legacy:
        warnings.warn(f"passing {sorted(legacy)} to {where} is deprecated; set them on "
                      f"certrb.OfflineBuilder(problem, ...) and pass the builder", DeprecationWarning, stacklevel=3)
    return OfflineBuilder(builder_or_problem, **legacy)


def _is_orthonormal(builder: OfflineBuilder, V: NDArray, tol: float = 1e-10) -> bool:
    M = builder.problem.inner_product.gram(V)
    return bool(np.max(np.abs(M - np.eye(V.shape[1])), initial=0.0) <= tol)


def reduce(builder_or_problem: OfflineBuilder | Problem, basis: NDArray, estimators: Any = None, *,
           train: NDArray | None = None, keep_basis: bool = True, **legacy: Any) -> ReducedModel:
    """Build a certified reduced model for a given basis.

    Parameters
    ----------
    builder_or_problem : OfflineBuilder or Problem
        An empty builder (its options say how the model is built), or a Problem
        (default options).
    basis : ndarray, shape (n_h, N)
        Reduced basis; X-orthonormalized here unless it already is (to 1e-10). With
        ``precision="extended"`` it is always X-orthonormalized again, in extended precision.
    train : ndarray, shape (n_train, P), optional
        Training parameters of the EIM-based estimators (default: 200 random).
    keep_basis : bool
        Keep the (n_h, N) basis in the model (needed by ``reconstruct``).
    estimators, **legacy
        Deprecated: the builder's options (``estimators``, ``default``, ``precision``,
        ``certify``, ``dual``, ``refine``, ``options``, ``rng``) given here, with a Problem.

    Returns
    -------
    ReducedModel

    Raises
    ------
    ShapeError
        If the basis has the wrong shape, non-finite entries or dependent columns, or the
        builder already holds a basis.
    TypeError
        If ``builder_or_problem`` is neither an OfflineBuilder nor a Problem.

    Examples
    --------
    >>> from certrb.problems import diffusion1d
    >>> problem = diffusion1d(50)
    >>> V = problem.solve(problem.parameter_space.sample(4, rng=0)).T
    >>> certrb.reduce(certrb.OfflineBuilder(problem, ("orthonormal", "expanded")), V).n_basis
    4

    """
    if estimators is not None:
        legacy["estimators"] = estimators
    builder = as_builder(builder_or_problem, legacy, "reduce")
    problem = builder.problem
    V = np.asarray(basis)
    if V.ndim != 2 or V.shape[0] != problem.size or V.shape[1] == 0:
        raise ShapeError(f"basis must have shape ({problem.size}, N) with N >= 1; got {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ShapeError("basis contains NaN or infinite values")
    if builder.n_basis:
        raise ShapeError(f"reduce needs an empty builder; this one already holds N = {builder.n_basis}")
    if not builder.extended and _is_orthonormal(builder, V):
        builder.append_orthonormal(V.astype(np.result_type(V.dtype, problem.dtype)))
    elif builder.add_snapshots(V) < V.shape[1]:
        raise ShapeError("basis columns are linearly dependent")
    return builder.model(train=train, keep_basis=keep_basis)

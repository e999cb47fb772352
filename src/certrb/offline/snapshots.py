"""Truth snapshots for a parameter batch, on any backend of :class:`certrb.parallel.ParallelMap`."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..parallel import ParallelMap, Progress
from .problem import Problem

__all__ = ["solve_snapshots"]


def _solve_chunk(problem: Problem, chunk: NDArray[np.float64]) -> NDArray:
    return problem.solve(chunk)


def solve_snapshots(problem: Problem, mus: ArrayLike, *, parallel: ParallelMap | None = None,
                    progress: Progress | None = None) -> NDArray:
    """Truth solutions for a parameter batch, chunk by chunk on a :class:`ParallelMap`.

    Parameters
    ----------
    problem : Problem
    mus : array_like, shape (n_mu, P)
    parallel : ParallelMap, optional
        Backend; serial in this process by default.
    progress : callable, optional
        ``progress(done_chunks, total_chunks)``.

    Returns
    -------
    U : ndarray, shape (n_mu, n_h)
        Identical to ``problem.solve(mus)``, bit for bit, on every backend.

    Raises
    ------
    ParameterError
        If ``mus`` has the wrong shape or lies outside the parameter domain.

    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem; got {type(problem).__name__}")
    m = problem.parameter_space.validate(mus)
    pm = parallel if parallel is not None else ParallelMap()
    parts = pm.map(_solve_chunk, problem, m, progress=progress)
    if not parts:
        return np.empty((0, problem.size), dtype=problem.dtype)
    return np.concatenate(parts, axis=0)

"""Weak greedy construction of a reduced basis, driven by an error bound."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .affine import Coefficients, evaluate_coefficients
from .errors import ShapeError
from .estimators.base import Estimator, check_name
from .parallel import ParallelMap
from .problem import Problem
from .reduce import OfflineBuilder
from .rom import ReducedModel, check_stability, reduced_solve

__all__ = ["GreedyResult", "GreedyStep", "weak_greedy"]

log = logging.getLogger(__name__)

_BLOCK = 256  # training parameters per block of a sweep (as ReducedModel.evaluate's chunks)


@dataclass(frozen=True)
class GreedyStep:
    """One greedy iteration.

    Attributes
    ----------
    n : int
        Basis size N before the step (the bound below is that of the size-N model).
    mu : ndarray, shape (P,)
        Parameter with the largest bound, whose snapshot is added next.
    max_bound : float
        Largest (relative, if requested) bound over the training set.
    seconds : float
        Wall time of the step.

    """

    n: int
    mu: NDArray[np.float64]
    max_bound: float
    seconds: float


@dataclass(frozen=True)
class GreedyResult:
    """Outcome of :func:`weak_greedy`.

    Attributes
    ----------
    model : ReducedModel
    history : list of GreedyStep
    reason : str
        ``"tolerance"``, ``"max_basis"`` or ``"in_span"`` (the chosen snapshot
        was already in the span to round-off: the greedy cannot progress).

    """

    model: ReducedModel
    history: list[GreedyStep]
    reason: str

    @property
    def max_bounds(self) -> NDArray[np.float64]:
        """Largest training bound per step, shape (len(history),)."""
        return np.array([s.max_bound for s in self.history])


def weak_greedy(
    problem: Problem,
    train: ArrayLike,
    *,
    tol: float,
    max_basis: int,
    estimator: str = "orthonormal",
    relative: bool = True,
    estimators: tuple[str, ...] | None = None,
    refine: int | None = None,
    rng=None,
    options: Mapping | None = None,
    callback: Callable[[GreedyStep], None] | None = None,
    dual: ReducedModel | None = None,
    certify: bool = True,
    precision: str = "double",
    snapshot_refine: int | None = None,
    parallel: ParallelMap | None = None,
) -> GreedyResult:
    """Weak greedy: repeatedly add the truth snapshot where the bound is largest.

    Parameters
    ----------
    problem : Problem
    train : array_like, shape (n_train, P)
        Training parameters.
    tol : float
        Stop once the largest training bound is at most ``tol``.
    max_basis : int
        Largest basis size N.
    estimator : str
        Estimator driving the greedy. ``expanded`` and ``orthonormal`` are
        updated incrementally; the interpolation-based ones are rebuilt each step.
    relative : bool
        Use ``bound / ||u_N||_V`` rather than the absolute bound.
    estimators : tuple of str, optional
        Estimators attached to the final model (default: ``(estimator,)``).
    refine : int, optional
        Extended-precision refinement steps of offline Riesz solves (default 1 in
        double precision, 2 in extended precision).
    rng : Generator, int or None
        For the interpolation-based estimators' random choices.
    options : mapping, optional
        Per-estimator options.
    callback : callable, optional
        Called with each :class:`GreedyStep` (progress reporting).
    dual : ReducedModel, optional
        Reduced dual model attached to the final model (see :func:`certrb.reduce`).
    certify : bool
        Measure the round-off certificates of the final model's estimators (see
        :func:`certrb.reduce`; ignored with ``precision="extended"``).
    precision : {"double", "extended"}
        Working precision of the offline state, the training sweeps and the final
        model (see :class:`certrb.reduce.OfflineBuilder`). ``"extended"`` keeps the
        snapshots, the basis, the residual data and the reduced solves in
        numpy.longdouble; only the ``orthonormal`` and ``expanded`` estimators are
        available, without round-off certificates.
    snapshot_refine : int, optional
        Extended-precision refinement steps of the truth snapshot solves
        (:meth:`certrb.Problem.solve`); default 0 in double precision, 2 in
        extended precision (whose snapshots are then kept in longdouble).
    parallel : ParallelMap, optional
        Run the training-set sweeps (reduced solves and bounds) through this map: in
        chunks of its ``chunk_size`` on its backend (process pool or dask cluster; a
        lost worker's chunks are retried). The reduced data and the estimator are
        shipped at every step, so the coefficient functions must be picklable. The
        result does not depend on the backend, only on the chunk size.

    Returns
    -------
    GreedyResult

    Raises
    ------
    EstimatorError
        On an unknown estimator, or one not available in extended precision.
    ValueError
        On an unknown ``precision``, a negative ``tol`` or ``snapshot_refine``.

    """
    check_name(estimator)
    mus = problem.parameter_space.validate(train, name="train")
    if int(max_basis) != max_basis or max_basis < 1:
        raise ShapeError(f"max_basis must be a positive integer; got {max_basis!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be non-negative; got {tol!r}")
    builder = OfflineBuilder(problem, refine=refine, precision=precision)
    final = estimators if estimators is not None else (estimator,)
    for name in (estimator, *final):
        builder.check_estimator(name)
    steps = (2 if builder.extended else 0) if snapshot_refine is None else snapshot_refine
    if int(steps) != steps or steps < 0:
        raise ValueError(f"snapshot_refine must be a non-negative integer; got {snapshot_refine!r}")
    gen = np.random.default_rng(rng)
    beta = check_stability(problem.stability(mus), mus.shape[0])
    history: list[GreedyStep] = []
    reason = "max_basis"
    phi = problem.rhs.theta(mus)  # start where ||f(mu)||_2 is largest, from the small Gram of the f_p
    F = problem.rhs.terms
    i_next = int(np.argmax(np.einsum("mp,pq,mq->m", phi.conj(), F.conj() @ F.T, phi).real))
    while True:
        t0 = time.perf_counter()
        if builder.n_basis == 0:
            worst, i_max = np.inf, i_next
        else:
            bounds = _train_bounds(builder, mus, beta, estimator, relative, gen, options, parallel)
            i_max = int(np.argmax(bounds))
            worst = float(bounds[i_max])
        step = GreedyStep(builder.n_basis, mus[i_max].copy(), worst, 0.0)
        if worst <= tol:
            reason = "tolerance"
        elif builder.n_basis >= max_basis:
            reason = "max_basis"
        elif builder.add_snapshots(problem.solve(mus[i_max:i_max + 1], refine=int(steps)).T) == 0:
            reason = "in_span"
        else:
            reason = ""
        step = GreedyStep(step.n, step.mu, step.max_bound, time.perf_counter() - t0)
        history.append(step)
        log.info("greedy N=%d max bound %.3e", step.n, step.max_bound)
        if callback is not None:
            callback(step)
        if reason:
            break
    model = builder.model(final, default=estimator if estimator in final else None, train=mus, rng=gen,
                          options=options, dual=dual, certify=certify)
    return GreedyResult(model, history, reason)


@dataclass(frozen=True, eq=False)
class _Sweep:
    """What a training sweep needs: the reduced operators, the coefficient functions and the estimator.

    Small (no truth-size array), so that a parallel map ships it to its workers at every step.
    """

    A_N: NDArray
    f_N: NDArray
    theta: Coefficients
    phi: Coefficients
    estimator: Estimator
    relative: bool

    def __call__(self, chunk: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bounds for ``chunk`` (k, P + 1): parameters in the first P columns, stability lower bounds in the last.

        Evaluated in blocks of ``_BLOCK`` parameters, whose batched arrays stay in cache.
        """
        return np.concatenate([self._bounds(chunk[s:s + _BLOCK]) for s in range(0, chunk.shape[0], _BLOCK)])

    def _bounds(self, chunk: NDArray[np.float64]) -> NDArray[np.float64]:
        mus, beta = chunk[:, :-1], chunk[:, -1]
        n = self.A_N.shape[1]
        theta = evaluate_coefficients(self.theta, mus, self.A_N.shape[0], "operator")
        phi = evaluate_coefficients(self.phi, mus, self.f_N.shape[0], "functional")
        c, x = reduced_solve(self.A_N, self.f_N, theta, phi, n)
        bound = self.estimator.residual_norm(x, n) / beta
        if self.relative:
            bound = bound / np.maximum(np.linalg.norm(c, axis=1), np.finfo(float).tiny)
        return np.asarray(bound, dtype=np.float64)  # extended precision: longdouble norms, compared in double


def _train_bounds(builder: OfflineBuilder, mus: NDArray, beta: NDArray, name: str, relative: bool, gen,
                  options, parallel: ParallelMap | None) -> NDArray[np.float64]:
    est = builder.estimator(name, train=mus, rng=gen, options=options)
    problem = builder.problem
    sweep = _Sweep(builder.A_N, builder.f_N, problem.operator.coefficients, problem.rhs.coefficients, est, relative)
    chunk = np.column_stack([mus, beta])
    if parallel is None:
        return sweep(chunk)
    return np.concatenate(parallel.map(_Sweep.__call__, sweep, chunk))

"""Weak greedy construction of a reduced basis, driven by an error bound."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError
from ..online.evaluate import evaluate_batch
from ..online.model import ReducedModel
from ..online.stability import check_stability
from ..parallel import ParallelMap
from .builder import OfflineBuilder
from .problem import Problem
from .reduce import as_builder

__all__ = ["STAGNATION", "STOP_WORDS", "GreedyResult", "GreedyStep", "weak_greedy"]

log = logging.getLogger(__name__)

STAGNATION = (2.0, 3)
"""Default ``stagnation`` of :func:`weak_greedy`: stop once 3 snapshots together cut the bound by less than 2x.

Near the floor of a stable estimator (about 1e-13 of the first bound in double precision) a
cut below 2x over 3 steps is round-off, where more snapshots buy nothing (the 2x2 thermal
block: 2.3e-13 -> 8.1e-14 over 22 snapshots, after 1e3 in the 3 steps before). Far above it a
greedy may converge that slowly for real (an advection-diffusion problem: 1.96x in 3 steps
at 2e-9), hence :data:`STALL_LEVEL`.
"""

STALL_LEVEL = 1e6
"""The stagnation test applies only once the bound is below ``STALL_LEVEL * eps`` times the first finite bound.

``eps`` is the machine epsilon of the working precision (2.2e-16 in double: a level of 2.2e-10).
Above it a slow window is the greedy's own convergence (pre-asymptotic plateaus, slowly
converging problems), not round-off; the ``expanded`` estimator, whose floor is about
sqrt(eps), ends by the span or the cap as without the test.
"""

STOP_WORDS = {
    "tolerance": "tolerance reached",
    "max_basis": "basis size cap",
    "in_span": "next snapshot already in the span",
    "stagnation": "bound stagnated",
}
"""Plain words for each :attr:`GreedyResult.reason` code (the stagnation stop adds its numbers after a colon)."""

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
    stop : str
        Empty, except on the last step: why the greedy stopped, in plain words
        (:attr:`GreedyResult.stop`).

    """

    n: int
    mu: NDArray[np.float64]
    max_bound: float
    seconds: float
    stop: str = ""


@dataclass(frozen=True)
class GreedyResult:
    """Outcome of :func:`weak_greedy`.

    Attributes
    ----------
    model : ReducedModel
    history : list of GreedyStep
    reason : str
        The stop as a code: ``"tolerance"``, ``"max_basis"``, ``"in_span"`` (the chosen
        snapshot was already in the span to round-off: the greedy cannot progress) or
        ``"stagnation"`` (see ``stagnation`` of :func:`weak_greedy`).
    builder : OfflineBuilder
        The offline state the model was frozen from (grow it further, or freeze other models).
    stop : str
        The stop in plain words (:data:`STOP_WORDS`; for a stagnation, with the bounds and sizes).

    Notes
    -----
    After a stagnation stop the model keeps the basis of the step where the stalled window
    began, ``history[-1].n - steps`` vectors: the history still lists every sweep.

    """

    model: ReducedModel
    history: list[GreedyStep]
    reason: str
    builder: OfflineBuilder
    stop: str = ""

    @property
    def max_bounds(self) -> NDArray[np.float64]:
        """Largest training bound per step, shape (len(history),)."""
        return np.array([s.max_bound for s in self.history])


def weak_greedy(
    builder_or_problem: OfflineBuilder | Problem,
    train: ArrayLike,
    *,
    tol: float,
    max_basis: int,
    relative: bool = True,
    callback: Callable[[GreedyStep], None] | None = None,
    parallel: ParallelMap | None = None,
    stagnation: tuple[float, int] | None = STAGNATION,
    **legacy: Any,
) -> GreedyResult:
    """Weak greedy: repeatedly add the truth snapshot where the bound is largest.

    Parameters
    ----------
    builder_or_problem : OfflineBuilder or Problem
        The builder says how the model is built (estimators, precision, certificates,
        dual, options, rng); its default estimator drives the greedy (``expanded`` and
        ``orthonormal`` are updated incrementally, the interpolation-based ones rebuilt
        each step). A Problem gets a builder with default options.
    train : array_like, shape (n_train, P)
        Training parameters.
    tol : float
        Stop once the largest training bound is at most ``tol``.
    max_basis : int
        Largest basis size N.
    relative : bool
        Use ``bound / ||u_N||_V`` rather than the absolute bound.
    callback : callable, optional
        Called with each :class:`GreedyStep` (progress reporting).
    parallel : ParallelMap, optional
        Run the training-set sweeps (reduced solves and bounds) through this map: in
        chunks of its ``chunk_size`` on its backend (process pool or dask cluster; a
        lost worker's chunks are retried). The reduced model of the step is shipped
        at every step, so the coefficient functions must be picklable. The result does
        not depend on the backend, only on the chunk size.
    stagnation : (float, int) or None
        ``(factor, steps)``: stop when the ``steps`` latest snapshots together cut the largest
        training bound by less than ``factor`` (the best bound of the last ``steps`` sweeps is
        above the bound ``steps`` sweeps earlier divided by ``factor``), once that earlier bound
        is below :data:`STALL_LEVEL` ``* eps`` times the first finite one (2.2e-10 in double
        precision). The model then keeps the basis of that earlier sweep (the stalled
        snapshots are dropped), and ``reason`` is ``"stagnation"``. Default :data:`STAGNATION`
        = (2, 3); ``None`` runs on to the tolerance, the cap or the span (studies that drive
        greedies down to their floors).
    **legacy
        Deprecated: the builder's options given here (``estimator`` for the driving
        estimator, ``estimators``, ``refine``, ``rng``, ``options``, ``dual``, ``certify``,
        ``precision``, ``snapshot_refine``), with a Problem.

    Returns
    -------
    GreedyResult

    Raises
    ------
    EstimatorError
        On an unknown estimator, or one not available in extended precision.
    ValueError
        On a negative ``tol``, or a ``stagnation`` whose factor is not above 1 or whose
        steps are not a positive integer.

    Examples
    --------
    >>> from certrb.problems import diffusion1d
    >>> problem = diffusion1d(50)
    >>> builder = certrb.OfflineBuilder(problem, ("orthonormal", "expanded"))
    >>> result = certrb.weak_greedy(builder, problem.parameter_space.sample(100, rng=0), tol=1e-6, max_basis=10)
    >>> result.reason, result.model.n_basis <= 10
    ('tolerance', True)

    """
    builder = as_builder(builder_or_problem, _legacy_options(legacy), "weak_greedy")
    problem = builder.problem
    mus = problem.parameter_space.validate(train, name="train")
    if int(max_basis) != max_basis or max_basis < 1:
        raise ShapeError(f"max_basis must be a positive integer; got {max_basis!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be non-negative; got {tol!r}")
    stall = _check_stagnation(stagnation)
    level = STALL_LEVEL * float(np.finfo(builder.dtype).eps)
    beta = check_stability(problem.stability(mus), mus.shape[0])
    history: list[GreedyStep] = []
    phi = problem.rhs.theta(mus)  # start where ||f(mu)||_2 is largest, from the small Gram of the f_p
    F = problem.rhs.terms
    i_next = int(np.argmax(np.einsum("mp,pq,mq->m", phi.conj(), F.conj() @ F.T, phi).real))
    while True:
        t0, n = time.perf_counter(), builder.n_basis
        if n == 0:
            worst, i_max = np.inf, i_next
        else:
            bounds = _train_bounds(builder, mus, beta, relative, parallel)
            i_max = int(np.argmax(bounds))
            worst = float(bounds[i_max])
        bounds_so_far = [*(s.max_bound for s in history), worst]
        stalled = None if stall is None else _stalled(bounds_so_far, *stall, level)
        if worst <= tol:
            reason, stop = "tolerance", STOP_WORDS["tolerance"]
        elif stalled is not None:
            reason, stop = "stagnation", stalled
        elif n >= max_basis:
            reason, stop = "max_basis", STOP_WORDS["max_basis"]
        elif builder.add_snapshots_at(mus[i_max:i_max + 1]) == 0:
            reason, stop = "in_span", STOP_WORDS["in_span"]
        else:
            reason, stop = "", ""
        step = GreedyStep(n, mus[i_max].copy(), worst, time.perf_counter() - t0, stop)
        history.append(step)
        log.info("greedy N=%d max bound %.3e", step.n, step.max_bound)
        if callback is not None:
            callback(step)
        if reason:
            break
    if reason == "stagnation" and stall is not None:
        builder = _truncated(builder, n - stall[1])
    return GreedyResult(builder.model(train=mus), history, reason, builder, stop)


def _check_stagnation(stagnation: tuple[float, int] | None) -> tuple[float, int] | None:
    """Validate ``stagnation`` of :func:`weak_greedy`: None or (factor > 1, steps >= 1)."""
    if stagnation is None:
        return None
    try:
        factor, steps = stagnation
    except (TypeError, ValueError):
        raise ValueError(f"stagnation must be None or (factor, steps); got {stagnation!r}") from None
    if not float(factor) > 1.0:
        raise ValueError(f"the stagnation factor must be above 1; got {factor!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"the stagnation steps must be a positive integer; got {steps!r}")
    return float(factor), int(steps)


def _stalled(bounds: list[float], factor: float, steps: int, level: float) -> str | None:
    """The stagnation in plain words if the last ``steps`` of ``bounds`` (one per N = 0, 1, ..) stalled, else None.

    ``bounds[N]`` is the largest training bound of the size-N model (``inf`` for N = 0); the
    window must start at or below ``level`` times the first finite bound.
    """
    n = len(bounds) - 1
    finite = [b for b in bounds if np.isfinite(b)]
    if n - steps < 1 or not finite:
        return None
    start, best = bounds[n - steps], min(bounds[n - steps + 1:])
    if not (np.isfinite(start) and start <= level * finite[0] and best > start / factor):
        return None
    return (f"{STOP_WORDS['stagnation']}: {start:.2e} at N = {n - steps}, {best:.2e} at best by N = {n} "
            f"(less than {factor:g}x in {steps} snapshots); the model keeps N = {n - steps}")


def _truncated(builder: OfflineBuilder, n: int) -> OfflineBuilder:
    """A builder with the same options holding the first ``n`` basis vectors of ``builder``."""
    out = OfflineBuilder(builder.problem, builder.estimators, default=builder.default, precision=builder.precision,
                         certify=builder.certify, dual=builder.dual, refine=builder.refine,
                         snapshot_refine=builder.snapshot_refine, rtol=builder.rtol, options=builder.options,
                         rng=builder.rng)
    out.append_orthonormal(builder.basis[:, :n].copy())
    return out


def _legacy_options(legacy: dict[str, Any]) -> dict[str, Any]:
    """The old keywords of weak_greedy as OfflineBuilder options (``estimator`` drives, as the default)."""
    out = dict(legacy)
    driver = out.pop("estimator", None)
    if driver is not None or "estimators" in out:
        final = tuple(out.get("estimators") or (driver or "orthonormal",))
        driver = driver or "orthonormal"
        out["estimators"] = final if driver in final else (driver, *final)
        out["default"] = driver
    return out


def _precomputed(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """Stand-in stability of a sweep's model: the sweep passes the precomputed training values."""
    raise AssertionError("a training sweep evaluates with precomputed stability values")


@dataclass(frozen=True, eq=False)
class _Sweep:
    """A training sweep: the reduced model of the current step (small arrays only) and the kind of bound.

    Small, so that a parallel map ships it to its workers at every step.
    """

    model: ReducedModel
    relative: bool

    def __call__(self, chunk: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bounds for ``chunk`` (k, P + 1): parameters in the first P columns, stability lower bounds in the last."""
        model = self.model
        res = evaluate_batch(model, chunk[:, :-1], model.n_basis, model.estimators[model.default_estimator],
                             stability=chunk[:, -1], output=False)
        # extended precision: longdouble norms, compared in double
        return np.asarray(res.relative_bound if self.relative else res.bound, dtype=np.float64)


def _train_bounds(builder: OfflineBuilder, mus: NDArray, beta: NDArray, relative: bool,
                  parallel: ParallelMap | None) -> NDArray[np.float64]:
    est = builder.estimator(builder.default, train=mus)
    p = builder.problem
    model = ReducedModel(p.parameter_space, p.operator.coefficients, p.rhs.coefficients, builder.A_N, builder.f_N,
                         _precomputed, {builder.default: est}, builder.default)
    sweep, chunk = _Sweep(model, relative), np.column_stack([mus, beta])
    if parallel is None:
        return sweep(chunk)
    return np.concatenate(parallel.map(_Sweep.__call__, sweep, chunk))

"""Extended-precision truth references and violation counts of reduced models.

Shared by the certification tests and by ``benchmarks/certification.py``
(which loads this file by path), so that both count the same thing.

The reference error of a reduced solution ``u_N = V[:, :n] c`` is
``||u - u_N||_X`` where ``u`` is the truth solution refined with
extended-precision residuals (``Problem.solve(mus, refine=...)``) and the
difference ``u - V c`` is formed in extended precision (numpy.longdouble), and so
is its X-norm (a double quadratic form loses up to ``u cond(X)`` on smooth vectors:
2.6% at ``cond(X) ~ 1e15``). The refinement residuals ``f - sum_q theta_q A_q u`` are
formed term by term in extended precision with the exact affine sum
(``Problem.residual_extended``), never from an assembled ``A(mu)``.

A violation of a bound is ``not bound >= error`` (a NaN counts as a violation).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

import certrb
from certrb.online.stability import stability_certificate

__all__ = [
    "QUANTILES",
    "Certification",
    "StabilityLookup",
    "Tally",
    "TruthReference",
    "certify",
    "effectivity_quantiles",
    "format_table",
    "reference_errors",
    "tally",
    "truth_reference",
    "with_stability_lookup",
]

QUANTILES = (0.0, 0.001, 0.01, 0.5, 0.99, 1.0)


@dataclass(frozen=True)
class TruthReference:
    """Truth solutions of a parameter batch, refined in extended precision.

    Attributes
    ----------
    mus : ndarray, shape (n_mu, P)
    solutions : ndarray, shape (n_mu, n_h), numpy.longdouble or clongdouble
    norms : ndarray, shape (n_mu,)
        ``||u(mu)||_X``.
    double_error : ndarray, shape (n_mu,)
        ``||u_double - u||_X / ||u||_X`` of the plain double-precision solve:
        the truth floor that unrefined snapshots carry.

    """

    mus: NDArray[np.float64]
    solutions: NDArray
    norms: NDArray[np.float64]
    double_error: NDArray[np.float64]


def _x_norms(problem: certrb.Problem, rows: NDArray) -> NDArray[np.float64]:
    """X-norms of the rows (n_mu, n_h) of an extended-precision array, in extended precision; shape (n_mu,)."""
    X = problem.inner_product.matrix.astype(rows.dtype)
    quad = np.einsum("mh,hm->m", rows.conj(), X @ rows.T).real
    return np.asarray(np.sqrt(np.maximum(quad, 0)), dtype=np.float64)


def truth_reference(problem: certrb.Problem, mus: NDArray[np.float64], *, refine: int = 2,
                    solutions: NDArray | None = None) -> TruthReference:
    """Refined truth solutions of ``mus`` (n_mu, P) and the error of the unrefined ones.

    ``solutions`` (n_mu, n_h), extended precision, replaces the refined solve when given
    (a more accurate truth, e.g. ``illconditioned.exact_solutions``).
    """
    refined = problem.solve(mus, refine=refine) if solutions is None else solutions
    plain = problem.solve(mus)
    norms = _x_norms(problem, refined)
    diff = _x_norms(problem, plain.astype(refined.dtype) - refined)
    return TruthReference(mus, refined, norms, diff / np.where(norms > 0, norms, 1.0))


def reference_errors(basis: NDArray, coefficients: NDArray, reference: TruthReference,
                     problem: certrb.Problem) -> NDArray[np.float64]:
    """True errors ``||u - V[:, :n] c||_X`` for coefficients (n_mu, n), in extended precision; shape (n_mu,)."""
    ext = reference.solutions.dtype
    n = coefficients.shape[1]
    diff = reference.solutions - coefficients.astype(ext) @ basis[:, :n].T.astype(ext)
    return _x_norms(problem, diff)


@dataclass(frozen=True, eq=False)
class StabilityLookup:
    """Stability lower bounds computed once for a batch and then looked up by parameter row.

    Certification evaluates the same parameters at every N and for every
    estimator; an SCM bound costs a linear program per parameter, so its values
    are computed once (by the model's own stability callable) and reused.

    Attributes
    ----------
    table : dict
        Parameter row bytes -> lower bound.
    certificate : str
        The certificate of the bound whose values the table holds.

    """

    table: dict[bytes, float]
    certificate: str

    def __call__(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        """Lower bounds of rows of ``mus`` (n_mu, P) seen before, shape (n_mu,)."""
        rows = np.ascontiguousarray(mus, dtype=float)
        return np.array([self.table[row.tobytes()] for row in rows])


def with_stability_lookup(model: certrb.ReducedModel, mus: NDArray[np.float64]) -> certrb.ReducedModel:
    """The model with its stability callable replaced by a :class:`StabilityLookup` over ``mus`` (n_mu, P).

    Bounds computed from the operator coefficients (min-theta) are cheap and kept as they are.
    """
    if hasattr(model.stability, "from_theta"):
        return model
    rows = np.ascontiguousarray(mus, dtype=float)
    values = np.asarray(model.stability(rows), dtype=float)
    table = {row.tobytes(): float(v) for row, v in zip(rows, values, strict=True)}
    return dataclasses.replace(model, stability=StabilityLookup(table, stability_certificate(model.stability)))


def effectivity_quantiles(bound: NDArray, error: NDArray, quantiles: Sequence[float] = QUANTILES
                          ) -> dict[str, float]:
    """Quantiles of ``bound / error`` (inf where the error is 0), keyed ``"q0"``, ``"q0.01"``, ...

    Parameters
    ----------
    bound, error : ndarray, shape (n_mu,)
    quantiles : sequence of float in [0, 1]

    """
    eff = np.divide(bound, error, out=np.full(bound.shape, np.inf), where=error > 0)
    eff = np.where(np.isnan(bound), -np.inf, eff)  # a NaN bound is the worst case
    values = np.quantile(eff, quantiles) if eff.size else np.full(len(quantiles), np.nan)
    return {f"q{q:g}": float(v) for q, v in zip(quantiles, values, strict=True)}


@dataclass(frozen=True)
class Tally:
    """Violation counts of one estimator at one reduced dimension.

    Attributes
    ----------
    estimator : str
    n : int
    n_mu : int
    rigorous : bool
        Whether every evaluation was certified (``OnlineResult.rigorous``: a finite round-off term).
    bound_violations, estimate_violations : int
        Parameters with ``not bound >= error`` and ``not estimate >= error``.
    max_relative_error, median_relative_error : float
        Of the true error ``||u - u_N||_X / ||u||_X``.
    effectivity, estimate_effectivity : dict
        Quantiles of ``bound / error`` and ``estimate / error``.
    bound_over_estimate : float
        Largest ratio ``bound / estimate`` (the price of rigor).
    worst : dict
        The parameter with the smallest ``bound / error``: ``mu``, ``bound``,
        ``estimate``, ``roundoff``, ``stability``, ``error``.

    """

    estimator: str
    n: int
    n_mu: int
    rigorous: bool
    bound_violations: int
    estimate_violations: int
    max_relative_error: float
    median_relative_error: float
    effectivity: dict[str, float]
    estimate_effectivity: dict[str, float]
    bound_over_estimate: float
    worst: dict[str, Any]


@dataclass(frozen=True)
class Certification:
    """Outcome of :func:`certify`.

    Attributes
    ----------
    tallies : list of Tally
        One per (estimator, n), estimator-major.
    n_mu : int
    n_basis : int
    double_error : dict
        ``max`` and ``median`` of :attr:`TruthReference.double_error` (the truth floor of double solves).
    errors : dict
        ``n -> (n_mu,)`` true errors (of the first estimator's coefficients).
    norms : ndarray, shape (n_mu,)
        ``||u||_X``.
    samples : dict
        ``(estimator, n) -> {"bound", "estimate", "roundoff", "stability", "error"}``, arrays of shape (n_mu,).
    seconds : float

    """

    tallies: list[Tally]
    n_mu: int
    n_basis: int
    double_error: dict[str, float]
    errors: dict[int, NDArray[np.float64]] = field(repr=False)
    norms: NDArray[np.float64] = field(repr=False)
    samples: dict[tuple[str, int], dict[str, NDArray]] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    def violations(self, *, rigorous_only: bool = True) -> dict[str, int]:
        """Total ``bound`` violations per estimator (only rigorous estimators by default)."""
        out: dict[str, int] = {}
        for t in self.tallies:
            if t.rigorous or not rigorous_only:
                out[t.estimator] = out.get(t.estimator, 0) + t.bound_violations
        return out


@dataclass
class _Collected:
    bound: list[NDArray] = field(default_factory=list)
    estimate: list[NDArray] = field(default_factory=list)
    roundoff: list[NDArray] = field(default_factory=list)
    stability: list[NDArray] = field(default_factory=list)
    error: list[NDArray] = field(default_factory=list)
    rigorous: bool = True


def _collect(model: certrb.ReducedModel, problem: certrb.Problem, ref: TruthReference, names: Sequence[str],
             sizes: Sequence[int], store: dict) -> None:
    """Evaluate every (estimator, n) on one reference chunk and append to ``store``."""
    for n in sizes:
        err = coefficients = None
        for name in names:
            res = model.evaluate(ref.mus, estimator=name, n=n)
            if coefficients is None or not np.array_equal(coefficients, res.coefficients):
                coefficients = res.coefficients
                err = reference_errors(model.basis, coefficients, ref, problem)
            entry = store.setdefault((name, n), _Collected())
            entry.rigorous &= res.rigorous
            entry.bound.append(res.bound)
            entry.estimate.append(res.estimate)
            entry.roundoff.append(np.full(res.bound.shape, np.nan) if res.roundoff is None else res.roundoff)
            entry.stability.append(res.stability)
            entry.error.append(err)


def tally(estimator: str, n: int, bound: NDArray, estimate: NDArray, error: NDArray, norms: NDArray,
          mus: NDArray, *, rigorous: bool, roundoff: NDArray | None = None,
          stability: NDArray | None = None) -> Tally:
    """Count violations of one (estimator, n) from per-parameter arrays, each shape (n_mu,)."""
    nan = np.full(bound.shape, np.nan)
    roundoff = nan if roundoff is None else roundoff
    stability = nan if stability is None else stability
    rel = error / np.where(norms > 0, norms, 1.0)
    eff = np.divide(bound, error, out=np.full(bound.shape, np.inf), where=error > 0)
    i = int(np.argmin(np.where(np.isnan(eff), -np.inf, eff)))
    ratio = np.divide(bound, estimate, out=np.ones_like(bound), where=estimate > 0)
    worst = {"mu": mus[i].tolist(), "bound": float(bound[i]), "estimate": float(estimate[i]),
             "roundoff": float(roundoff[i]), "stability": float(stability[i]), "error": float(error[i])}
    return Tally(estimator, n, int(bound.size), rigorous, int(np.sum(~(bound >= error))),
                 int(np.sum(~(estimate >= error))), float(np.max(rel)), float(np.median(rel)),
                 effectivity_quantiles(bound, error), effectivity_quantiles(estimate, error),
                 float(np.max(ratio)), worst)


def certify(problem: certrb.Problem, model: certrb.ReducedModel, mus: NDArray[np.float64], *,
            estimators: Sequence[str] | None = None, sizes: Sequence[int] | None = None, chunk: int = 2000,
            refine: int = 2, reference: TruthReference | None = None) -> Certification:
    """Count bound violations of a model against the extended-precision truth.

    Parameters
    ----------
    problem : certrb.Problem
    model : certrb.ReducedModel
        Keeps its basis; its nested sub-models are evaluated.
    mus : ndarray, shape (n_mu, P)
        Test parameters.
    estimators : sequence of str, optional
        Default: every estimator attached to the model.
    sizes : sequence of int, optional
        Reduced dimensions (default: every ``n = 1 .. N``).
    chunk : int
        Parameters per truth-reference chunk (bounds the extended-precision memory).
    refine : int
        Refinement steps of the truth reference.
    reference : TruthReference, optional
        A precomputed reference of ``mus`` (then used as a single chunk).

    Returns
    -------
    Certification

    """
    t0 = time.perf_counter()
    names = list(model.estimators) if estimators is None else list(estimators)
    sizes = list(range(1, model.n_basis + 1)) if sizes is None else list(sizes)
    store: dict[tuple[str, int], _Collected] = {}
    norms, double_error = [], []
    for start in range(0, mus.shape[0], chunk if reference is None else mus.shape[0]):
        part = mus[start:start + chunk] if reference is None else mus
        ref = truth_reference(problem, part, refine=refine) if reference is None else reference
        norms.append(ref.norms)
        double_error.append(ref.double_error)
        _collect(with_stability_lookup(model, part), problem, ref, names, sizes, store)
    all_norms = np.concatenate(norms)
    all_errors = {n: np.concatenate(store[names[0], n].error) for n in sizes}
    samples = {key: {k: np.concatenate(getattr(entry, k))
                     for k in ("bound", "estimate", "roundoff", "stability", "error")} for key, entry in store.items()}
    tallies = [tally(name, n, *(samples[name, n][k] for k in ("bound", "estimate", "error")), all_norms, mus,
                     rigorous=store[name, n].rigorous, roundoff=samples[name, n]["roundoff"],
                     stability=samples[name, n]["stability"]) for name in names for n in sizes]
    dbl = np.concatenate(double_error)
    return Certification(tallies, int(mus.shape[0]), model.n_basis,
                         {"max": float(np.max(dbl)), "median": float(np.median(dbl))},
                         all_errors, all_norms, samples, time.perf_counter() - t0)


def format_table(cert: Certification) -> str:
    """Plain-text table: one line per (estimator, n)."""
    head = (f"{'estimator':>15} {'n':>3} {'rig':>3} {'viol':>5} {'viol_est':>8} {'max rel err':>11} "
            f"{'med rel err':>11} {'eff min':>8} {'eff q0.01':>9} {'eff median':>10} {'eff max':>9} "
            f"{'est min':>8} {'b/e max':>8}")
    lines = [head]
    for t in cert.tallies:
        e, s = t.effectivity, t.estimate_effectivity
        lines.append(f"{t.estimator:>15} {t.n:>3} {'y' if t.rigorous else 'n':>3} {t.bound_violations:>5} "
                     f"{t.estimate_violations:>8} {t.max_relative_error:>11.2e} {t.median_relative_error:>11.2e} "
                     f"{e['q0']:>8.3g} {e['q0.01']:>9.3g} {e['q0.5']:>10.3g} {e['q1']:>9.3g} {s['q0']:>8.3g} "
                     f"{t.bound_over_estimate:>8.3g}")
    lines.append(f"n_mu = {cert.n_mu}, N = {cert.n_basis}, double truth floor max {cert.double_error['max']:.2e} "
                 f"(median {cert.double_error['median']:.2e}), {cert.seconds:.1f} s")
    return "\n".join(lines)

"""The online evaluation: a batch of parameters -> coefficients, residual norms, certified bounds, outputs.

:func:`evaluate_batch` is the one evaluation of a reduced model; :meth:`ReducedModel.evaluate
<certrb.online.model.ReducedModel.evaluate>` and the greedy's training sweeps both call it.
Large batches go in blocks of :data:`BLOCK` parameters, whose batched arrays stay in cache.
One real parameter takes the lean path of :func:`_evaluate_one` (the compiled kernels behind
:meth:`~certrb.online.solve.ReducedOperators.solve` and the estimator, then Python floats):
same formulas, same IEEE operations, fewer numpy calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .coefficients import evaluate_coefficients
from .estimators import Estimator, norm_and_roundoff
from .stability import check_stability

if TYPE_CHECKING:
    from .model import ReducedModel

__all__ = ["BLOCK", "OnlineResult", "evaluate_batch", "with_output"]

BLOCK = 256
"""Parameters per block of a large batch (about twice as fast as one huge batched solve)."""

ROUND_UP = 1.0 + 4 * float(np.finfo(np.float64).eps)
"""Covers the rounding of a sum, a division and a product in the bound arithmetic."""

_FIELDS = ("coefficients", "residual_norm", "stability", "bound", "relative_bound", "output", "output_bound",
           "interpolation_error", "roundoff", "estimate")


@dataclass(eq=False, slots=True)
class OnlineResult:
    """Batched online evaluation.

    Attributes
    ----------
    coefficients : ndarray, shape (n_mu, n)
        Reduced coefficients (the basis is X-orthonormal, so ``||u_N||_V = ||c||_2``).
    residual_norm : ndarray, shape (n_mu,)
        Estimated ``||r(mu)||_{V'}`` (``eps_hat``).
    stability : ndarray, shape (n_mu,)
        Stability lower bounds ``beta_LB(mu)``.
    bound : ndarray, shape (n_mu,)
        Error bound on ``||u - u_N||_V``: ``(residual_norm + roundoff) / stability``
        (rounded up), rigorous under the assumptions of docs/roundoff.md when the
        estimator carries a round-off certificate (``rigorous``); otherwise ``estimate``.
    relative_bound : ndarray, shape (n_mu,)
        ``bound / ||u_N||_V`` (inf where ``u_N = 0``).
    output, output_bound : ndarray, shape (n_mu,), or None
        ``s_N(mu) = l(mu)^H u_N(mu)`` and the bound ``||l(mu)||_{V'} * bound``, or,
        with a dual model, the corrected output and the primal-dual bound
        (see :class:`~certrb.online.model.ReducedOutput`).
    estimator : str
    n : int
    interpolation_error : ndarray, shape (n_mu,), or None
        Indicator of the operator's interpolation error (non-affine models), included in ``bound``
        and ``estimate`` (an indicator: such a bound is not rigorous).
    roundoff : ndarray, shape (n_mu,), or None
        Bound ``delta_fp`` of the floating-point error of ``residual_norm`` (NaN
        for estimators without a certificate).
    estimate : ndarray, shape (n_mu,), or None
        The plain error estimate ``residual_norm / stability``, without ``roundoff``.
    certificate : str
        What ``stability`` rests on: ``"min-theta (certified)"``, ``"SCM (certified)"``, or the
        same names with ``(assumed)`` (a reference constant, SCM data or a user callable that
        certrb did not prove; see :func:`~certrb.online.stability.stability_certificate`).

    """

    coefficients: NDArray
    residual_norm: NDArray[np.float64]
    stability: NDArray[np.float64]
    bound: NDArray[np.float64]
    relative_bound: NDArray[np.float64]
    output: NDArray | None
    output_bound: NDArray[np.float64] | None
    estimator: str
    n: int
    interpolation_error: NDArray[np.float64] | None = None
    roundoff: NDArray[np.float64] | None = None
    estimate: NDArray[np.float64] | None = None
    certificate: str = "user callable (assumed)"

    @property
    def rigorous(self) -> bool:
        """Whether ``bound`` is proved: finite ``roundoff``, no indicator, certified ``stability``.

        The stability lower bound is certified when ``certificate`` ends in ``(certified)``.
        """
        return self.roundoff is not None and self.interpolation_error is None and bool(
            np.isfinite(self.roundoff).all()) and self.certificate.endswith("(certified)")


def evaluate_batch(model: ReducedModel, mus: NDArray[np.float64], n: int, estimator: Estimator, *,
                   stability: NDArray[np.float64] | None = None, output: bool = True,
                   coefficients: tuple[NDArray, NDArray] | None = None) -> OnlineResult:
    """Evaluate the size-``n`` sub-model of ``model`` at validated parameters ``mus`` (n_mu, P).

    Parameters
    ----------
    model : ReducedModel
    mus : ndarray of float64, shape (n_mu, P)
        Parameters inside the model's parameter space (not checked here).
    n : int
        Sub-model size, ``1 <= n <= N``.
    estimator : Estimator
        Residual-norm estimator.
    stability : ndarray of float64, shape (n_mu,), optional
        Precomputed stability lower bounds (the greedy's training set); by default
        ``model.stability`` is evaluated.
    output : bool
        Evaluate the output and its bound, if the model has one.
    coefficients : (ndarray (n_mu, Q_a), ndarray (n_mu, Q_f)), optional
        The operator and right-hand side coefficients at ``mus``, already evaluated (models that
        share the coefficient functions share them; at most ``BLOCK`` parameters).

    Returns
    -------
    OnlineResult

    """
    if mus.shape[0] <= BLOCK:
        return _evaluate_block(model, mus, n, estimator, stability, output, coefficients)
    parts = [_evaluate_block(model, mus[s:s + BLOCK], n, estimator,
                             None if stability is None else stability[s:s + BLOCK], output)
             for s in range(0, mus.shape[0], BLOCK)]
    joined: dict[str, Any] = {f: None if getattr(parts[0], f) is None else
                              np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS}
    return OnlineResult(**joined, estimator=estimator.name, n=n, certificate=parts[0].certificate)


def _evaluate_block(model: ReducedModel, m: NDArray[np.float64], n: int, est: Estimator,
                    beta: NDArray[np.float64] | None, output: bool,
                    coefficients: tuple[NDArray, NDArray] | None = None) -> OnlineResult:
    if coefficients is None:
        theta = evaluate_coefficients(model.operator_coefficients, m, model.A_N.shape[0], "operator")
        phi = evaluate_coefficients(model.rhs_coefficients, m, model.f_N.shape[0], "rhs")
    else:
        theta, phi = coefficients
    c, x = model.operators.solve(theta, phi, n)
    eps, fp = norm_and_roundoff(est, x, n)
    if beta is None:
        from_theta = getattr(model.stability, "from_theta", None)  # min-theta reuses the coefficients
        beta = from_theta(theta) if from_theta is not None else model.stability(m)
    if model.interpolation is None and c.shape[0] == 1 and c.dtype == np.float64:
        return _evaluate_one(model, m, theta, phi, c, eps, fp, beta, est.name, output)
    beta = check_stability(beta, m.shape[0])
    delta = None if model.interpolation is None else model.interpolation(m, c)
    plain, certified = _residual_bounds(eps, delta, fp)
    estimate = plain / beta
    # (eps + delta_fp [+ indicator]) / beta, rounded up past the three roundings; without a
    # round-off certificate the bound is the estimate
    bound = estimate if certified is None else certified / beta * ROUND_UP
    certified = plain if certified is None else certified
    norm_u = np.sqrt(np.einsum("mn,mn->m", c.conj(), c).real)
    rel = np.divide(bound, norm_u, out=np.full_like(bound, np.inf), where=norm_u > 0)
    out = out_bound = None
    if output and model.output is not None:
        out, out_bound = model.output.evaluate(m, theta, phi, c, certified * ROUND_UP, beta)
    return OnlineResult(c, eps, beta, bound, rel, out, out_bound, est.name, n, delta, fp, estimate,
                        model.certificate)


def _residual_bounds(eps: NDArray, delta: NDArray | None, fp: NDArray | None) -> tuple[NDArray, NDArray | None]:
    """``(plain, certified)``: ``eps [+ indicator]``, and that plus ``delta_fp`` (None without a round-off bound)."""
    plain = eps if delta is None else eps + delta
    return plain, None if fp is None or (fp.size and np.isnan(fp[0])) else plain + fp


def with_output(model: ReducedModel, mus: NDArray[np.float64], result: OnlineResult,
                coefficients: tuple[NDArray, NDArray] | None = None) -> OnlineResult:
    """``result``, evaluated with ``output=False`` at validated ``mus`` (n_mu, P), with the output and its bound.

    The same output and bound :func:`evaluate_batch` computes with ``output=True``; a model
    without an output returns ``result`` unchanged. ``coefficients`` as in :func:`evaluate_batch`.
    """
    if model.output is None:
        return result
    if coefficients is None:
        coefficients = (evaluate_coefficients(model.operator_coefficients, mus, model.A_N.shape[0], "operator"),
                        evaluate_coefficients(model.rhs_coefficients, mus, model.f_N.shape[0], "rhs"))
    plain, certified = _residual_bounds(result.residual_norm, result.interpolation_error, result.roundoff)
    out, out_bound = model.output.evaluate(mus, *coefficients, result.coefficients,
                                           (plain if certified is None else certified) * ROUND_UP, result.stability)
    return replace(result, output=out, output_bound=out_bound)


def _evaluate_one(model: ReducedModel, m: NDArray, theta: NDArray, phi: NDArray, c: NDArray, eps: NDArray,
                  fp: NDArray, beta: Any, name: str, output: bool) -> OnlineResult:
    """:func:`_evaluate_block` for one real parameter of an interpolation-free model, on Python floats.

    The same formulas and IEEE operations as the batched path (stability check, bounds, and the
    output without a dual model), with fewer numpy calls.
    """
    b = _one_stability(beta)
    e, f, row = float(eps[0]), float(fp[0]), c[0]
    estimate = e / b
    certified, bound = (e, estimate) if f != f else (e + f, (e + f) / b * ROUND_UP)
    norm_u = math.sqrt(row @ row)
    values = np.array([estimate, bound, bound / norm_u if norm_u > 0 else math.inf, b])
    out = out_bound = None
    spec = model.output if output else None
    if spec is not None and spec.dual is None:
        psi = evaluate_coefficients(spec.coefficients, m, spec.l_N.shape[0], "output")
        if psi.dtype == np.float64:
            p = psi[0]
            l_norm = math.sqrt(max(float(p @ spec.dual_gram @ p), 0.0))
            out = np.array([p @ spec.l_N[:, : row.size] @ row])
            out_bound = np.array([l_norm * certified * ROUND_UP / b])
            spec = None
    if spec is not None:
        out, out_bound = spec.evaluate(m, theta, phi, c, np.array([certified * ROUND_UP]), values[3:4])
    return OnlineResult(c, eps, values[3:4], values[1:2], values[2:3], out, out_bound, name, c.shape[1], None, fp,
                        values[0:1], model.certificate)


def _one_stability(values: Any) -> float:
    """One stability lower bound as a float, checked as :func:`check_stability` checks a batch."""
    if isinstance(values, np.ndarray) and values.shape == (1,) and values.dtype == np.float64:
        b = float(values[0])
        if 0.0 < b < math.inf:
            return b
    return float(check_stability(values, 1)[0])

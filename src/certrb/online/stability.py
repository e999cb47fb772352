"""Stability lower bounds online: checks, and the min-theta bound ``alpha_LB(mu)``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import StabilityError
from .coefficients import Coefficients, evaluate_coefficients
from .lipschitz import LipschitzBound
from .scm import SCMBound

__all__ = ["MinThetaBound", "check_stability", "real_nonnegative", "stability_certificate"]

_EPS = float(np.finfo(np.float64).eps)


def check_stability(values: ArrayLike, n_mu: int) -> NDArray[np.float64]:
    """Check the output of a stability lower bound: shape (n_mu,), finite, positive."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StabilityError(f"stability must return numbers; got {type(values).__name__}: {exc}") from exc
    if arr.shape != (n_mu,):
        raise StabilityError(f"stability must return shape ({n_mu},); got {arr.shape}")
    if not ((arr > 0) & (arr < np.inf)).all():  # NaN fails both
        raise StabilityError("stability lower bound must be finite and positive for every parameter")
    return arr


def stability_certificate(stability: object) -> str:
    """What a stability lower bound rests on: ``"<kind> (certified)"`` or ``"<kind> (assumed)"``.

    ``kind`` is ``"min-theta"`` for :class:`MinThetaBound`, ``"SCM"`` for
    :class:`~certrb.online.scm.SCMBound`, ``"Lipschitz grid"`` for
    :class:`~certrb.online.lipschitz.LipschitzBound`, else ``"user callable"``; certified when the object
    carries ``certified=True`` (set by the certified offline builders). An object with a
    ``certificate`` string attribute (a wrapper of another bound, such as a cache of its
    values) is taken to forward that bound's certificate.
    """
    forwarded = getattr(stability, "certificate", None)
    if isinstance(forwarded, str):  # a wrapper (e.g. a cache of a certified bound's values) forwards its source's
        return forwarded
    kinds = ((MinThetaBound, "min-theta"), (SCMBound, "SCM"), (LipschitzBound, "Lipschitz grid"))
    kind = next((name for cls, name in kinds if isinstance(stability, cls)), "user callable")
    return f"{kind} ({'certified' if getattr(stability, 'certified', False) is True else 'assumed'})"


def real_nonnegative(theta: NDArray) -> NDArray[np.float64]:
    """``theta`` (n_mu, Q) as real non-negative values, else StabilityError (min-theta needs them)."""
    if theta.dtype.kind == "c":
        if theta.imag.any():
            raise StabilityError("MinTheta needs real operator coefficients")
        theta = theta.real
    if (theta < 0).any():
        raise StabilityError("MinTheta needs non-negative operator coefficients theta_q(mu)")
    return theta


@dataclass(frozen=True, eq=False)
class MinThetaBound:
    """Online min-theta bound: ``alpha_ref * min_{q in S} theta_q(mu) / theta_q(mu_ref)``.

    Parameters
    ----------
    coefficients : callable
        The operator's coefficient function, (n_mu, P) -> (n_mu, Q).
    theta_ref : ndarray, shape (Q,)
        Coefficients at the reference parameter.
    alpha_ref : float
        Coercivity constant at the reference parameter.
    shifts : ndarray, shape (Q,), optional
        ``eps_q >= 0`` with ``(A_q + A_q^H) / 2 + eps_q X`` positive semi-definite; the bound
        is then ``min_q theta_q(mu) (alpha_ref + theta_ref . eps) / theta_q(mu_ref) - theta(mu) . eps``.
    certified : bool
        ``alpha_ref`` and the shifts are proved (:class:`certrb.offline.stability.MinTheta`
        sets it); a bound without the flag is an assumption.

    Raises
    ------
    StabilityError
        If ``theta_ref`` is not a finite, non-negative float64 vector with a positive entry,
        or ``alpha_ref`` is not a finite positive number.

    """

    coefficients: Coefficients
    theta_ref: NDArray[np.float64]
    alpha_ref: float
    shifts: NDArray[np.float64] | None = None
    certified: bool = False
    _active: NDArray[np.intp] = field(init=False, repr=False)
    _scale: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ref = np.asarray(self.theta_ref)
        if ref.dtype != np.float64 or ref.ndim != 1 or not (np.isfinite(ref).all() and (ref >= 0).all()
                                                             and (ref > 0).any()):
            raise StabilityError(f"theta_ref must be a finite non-negative float64 vector (Q,) with a positive "
                                 f"entry; got {ref.dtype} {ref.shape}")
        if not (isinstance(self.alpha_ref, float | int) and 0 < self.alpha_ref < np.inf):
            raise StabilityError(f"alpha_ref must be a finite positive number; got {self.alpha_ref!r}")
        if self.shifts is not None:
            shifts = np.asarray(self.shifts)
            if shifts.dtype != np.float64 or shifts.shape != ref.shape or not (np.isfinite(shifts).all()
                                                                                and (shifts >= 0).all()):
                raise StabilityError(f"shifts must be a finite non-negative float64 vector {ref.shape}; got "
                                     f"{shifts.dtype} {shifts.shape}")
        active = np.flatnonzero(ref > 0)
        object.__setattr__(self, "_active", active)
        top = self.alpha_ref + (0.0 if self.shifts is None else float(np.asarray(self.theta_ref) @ self.shifts))
        object.__setattr__(self, "_scale", top / np.asarray(self.theta_ref)[active])

    def __call__(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        """Lower bounds for a batch ``mus`` (n_mu, P), shape (n_mu,)."""
        return self.from_theta(evaluate_coefficients(self.coefficients, mus, self.theta_ref.size, "operator"))

    def from_theta(self, theta: NDArray) -> NDArray[np.float64]:
        """Lower bounds from already evaluated operator coefficients (n_mu, Q), shape (n_mu,)."""
        theta = real_nonnegative(theta)
        active = theta if self._active.size == theta.shape[1] else theta[:, self._active]
        low = (active * self._scale).min(axis=1) * (1 - 4 * _EPS)
        if self.shifts is not None:  # rounded down past the products, the dot product and the difference
            low = low - (theta @ self.shifts) * (1 + (theta.shape[1] + 4) * _EPS)
        return low * np.where(low > 0, 1 - 2 * _EPS, 1 + 2 * _EPS)

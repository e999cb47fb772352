"""The online protocol of the residual-norm estimators."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Estimator", "norm_and_roundoff"]

@runtime_checkable
class Estimator(Protocol):
    """Online residual-norm estimator (holds small arrays only)."""

    @property
    def name(self) -> str:
        """The estimator's name (a key of :data:`certrb.online.estimators.EVALUATORS`)."""
        ...

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """Dual norms ``||r(mu)||_{V'}`` from coefficients ``x`` (n_mu, Q_f + Q_a n), shape (n_mu,)."""
        ...

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bound of ``||r(mu)||_{V'} - eps`` for ``eps = residual_norm(x, n)``, shape (n_mu,).

        NaN where the estimator has no certificate (its bound is then not rigorous).
        """
        ...

    def to_arrays(self) -> dict[str, NDArray]:
        """The arrays that define the estimator (for saving); ``from_arrays`` (a classmethod) inverts it."""
        ...


def norm_and_roundoff(est: Estimator, x: NDArray, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``eps = est.residual_norm(x, n)`` and ``est.roundoff(x, n, eps)``, shapes (n_mu,).

    An estimator may define ``norm_and_roundoff(x, n)`` to compute both at once (E5 does, in
    one compiled call for a single parameter); this is used when present.
    """
    both = getattr(est, "norm_and_roundoff", None)
    if both is not None:
        return both(x, n)
    eps = est.residual_norm(x, n)
    return eps, est.roundoff(x, n, eps)

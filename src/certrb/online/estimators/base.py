"""The online protocol of the residual-norm estimators."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ...errors import ShapeError

__all__ = ["Estimator", "check_keys", "norm_and_roundoff", "stored", "upper_trapezoidal"]

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


_DTYPES = {
    "value": (np.float64, np.longdouble, np.complex128, np.clongdouble),  # double or extended data
    "real": (np.float64,),
    "int": (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64),
    "bool": (np.bool_,),
}


def stored(arrays: Mapping[str, NDArray], key: str, kind: str, shape: tuple[int | None, ...], *,
           nonnegative: bool = False) -> NDArray:
    """The array ``arrays[key]``, checked for :meth:`Estimator.from_arrays`.

    Parameters
    ----------
    arrays : mapping str -> ndarray
    key : str
    kind : {"value", "real", "int", "bool"}
        Float64, long double or their complex types; float64; an integer type; bool.
    shape : tuple of int or None
        Expected shape, None where any length is allowed.
    nonnegative : bool
        Require every entry ``>= 0``.

    Raises
    ------
    ValueError
        If ``key`` is missing, of another dtype, or not finite (or negative) everywhere.
    ShapeError
        If the shape differs.

    """
    if key not in arrays:
        raise ValueError(f"missing array {key!r}")
    arr = np.asarray(arrays[key])
    if arr.dtype.type not in _DTYPES[kind]:
        raise ValueError(f"array {key!r} has dtype {arr.dtype}; expected {kind} data")
    if arr.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, arr.shape, strict=True)):
        want = tuple("*" if n is None else n for n in shape)
        raise ShapeError(f"array {key!r} has shape {arr.shape}; expected {want}".replace("'*'", "*"))
    if kind in ("value", "real") and not np.isfinite(arr).all():
        raise ValueError(f"array {key!r} is not finite everywhere")
    if nonnegative and not (arr >= 0).all():
        raise ValueError(f"array {key!r} has negative entries")
    return arr


def upper_trapezoidal(arrays: Mapping[str, NDArray], key: str, columns: int | None) -> NDArray:
    """``stored(arrays, key, "value", (None, columns))``, also checked to be upper trapezoidal (ValueError)."""
    R = stored(arrays, key, "value", (None, columns))
    if not np.array_equal(R, np.triu(R)):
        raise ValueError(f"array {key!r} is not upper trapezoidal")
    return R


def check_keys(arrays: Mapping[str, NDArray], allowed: Iterable[str]) -> None:
    """Raise ValueError if ``arrays`` holds a key outside ``allowed``."""
    extra = sorted(set(arrays) - set(allowed))
    if extra:
        raise ValueError(f"unexpected arrays {extra}")

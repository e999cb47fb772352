"""Parameter domains: a box in R^P with linear or logarithmic scaling per axis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ParameterError

__all__ = ["ParameterSpace"]

_SCALES = ("linear", "log")


@dataclass(frozen=True, eq=False)
class ParameterSpace:
    """A box ``[lower, upper]`` of ``P`` named parameters.

    Parameters
    ----------
    names : sequence of str, length P
        Parameter names.
    lower, upper : array_like, shape (P,)
        Box bounds, ``lower <= upper``, finite.
    scale : str or sequence of str, default "linear"
        ``"linear"`` or ``"log"`` per parameter; a log axis needs ``lower > 0``
        and is sampled uniformly in ``log(mu)``.

    Notes
    -----
    A batch of parameters is always an array of shape ``(n_mu, P)``.

    Examples
    --------
    >>> space = ParameterSpace(["k", "c"], [0.0, 1.0], [1.0, 10.0], scale=["linear", "log"])
    >>> space.sample(4, rng=0).shape
    (4, 2)

    """

    names: tuple[str, ...]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    scale: tuple[str, ...]

    def __init__(
        self,
        names: Sequence[str],
        lower: ArrayLike,
        upper: ArrayLike,
        scale: str | Sequence[str] = "linear",
    ) -> None:
        names_t = (names,) if isinstance(names, str) else tuple(str(n) for n in names)
        lo = np.atleast_1d(np.asarray(lower, dtype=float)).copy()
        hi = np.atleast_1d(np.asarray(upper, dtype=float)).copy()
        p = len(names_t)
        if lo.shape != (p,) or hi.shape != (p,):
            raise ParameterError(
                f"lower and upper must have shape ({p},) to match names; "
                f"got {lo.shape} and {hi.shape}"
            )
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ParameterError("lower and upper must be finite")
        if np.any(lo > hi):
            raise ParameterError(f"lower must not exceed upper; got lower={lo}, upper={hi}")
        scales = (scale,) * p if isinstance(scale, str) else tuple(scale)
        if len(scales) != p or any(s not in _SCALES for s in scales):
            raise ParameterError(f"scale must be one of {_SCALES} (or one per parameter); got {scale!r}")
        if any(s == "log" and lo[i] <= 0 for i, s in enumerate(scales)):
            raise ParameterError("a 'log' scaled parameter needs lower > 0")
        lo.flags.writeable = False
        hi.flags.writeable = False
        object.__setattr__(self, "names", names_t)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "scale", scales)

    @property
    def dim(self) -> int:
        """Number of parameters P."""
        return len(self.names)

    def __repr__(self) -> str:
        axes = ", ".join(
            f"{n} in [{lo:g}, {hi:g}]{' (log)' if s == 'log' else ''}"
            for n, lo, hi, s in zip(self.names, self.lower, self.upper, self.scale, strict=True)
        )
        return f"ParameterSpace({axes})"

    def sample(self, n: int, *, rng: np.random.Generator | int | None = None) -> NDArray[np.float64]:
        """Draw ``n`` parameters uniformly (in log coordinates on log axes).

        Parameters
        ----------
        n : int
            Number of parameters, ``n >= 0``.
        rng : numpy.random.Generator, int or None
            Source of randomness (seed or generator).

        Returns
        -------
        mus : ndarray, shape (n, P), float64

        """
        if int(n) != n or n < 0:
            raise ParameterError(f"n must be a non-negative integer; got {n!r}")
        gen = np.random.default_rng(rng)
        u = gen.random((int(n), self.dim))
        return self.from_unit(u)

    def grid(self, n_per_axis: int | Sequence[int]) -> NDArray[np.float64]:
        """Tensor grid with ``n_per_axis`` points per axis (scaled as the axis).

        Returns
        -------
        mus : ndarray, shape (prod(n_per_axis), P), float64

        """
        counts = [int(n_per_axis)] * self.dim if isinstance(n_per_axis, int | np.integer) else \
            [int(c) for c in n_per_axis]
        axes = [np.linspace(0.0, 1.0, int(c)) if c > 1 else np.array([0.5]) for c in counts]
        u = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
        return self.from_unit(u)

    def to_unit(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        """Parameters (n, P) to unit-box coordinates (log axes in ``log mu``); float64, same shape."""
        lo, hi = self.lower.copy(), self.upper.copy()
        m = np.array(mus, dtype=np.float64)
        for i, s in enumerate(self.scale):
            if s == "log":
                lo[i], hi[i], m[:, i] = np.log(lo[i]), np.log(hi[i]), np.log(m[:, i])
        width = np.where(hi > lo, hi - lo, 1.0)
        return (m - lo) / width

    def from_unit(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """Unit-box coordinates (n, P) to parameters (n, P), each axis in its scale (inverse of :meth:`to_unit`)."""
        out = np.empty_like(u)
        for i, s in enumerate(self.scale):
            lo, hi = self.lower[i], self.upper[i]
            if s == "log":
                out[:, i] = np.exp(np.log(lo) + u[:, i] * (np.log(hi) - np.log(lo)))
            else:
                out[:, i] = lo + u[:, i] * (hi - lo)
        return np.clip(out, self.lower, self.upper)

    def validate(self, mus: ArrayLike, *, name: str = "mus") -> NDArray[np.float64]:
        """Check a parameter batch and return it as a float array.

        Parameters
        ----------
        mus : array_like, shape (n_mu, P) or (P,)
            A single parameter of shape (P,) is promoted to (1, P).
        name : str
            Argument name used in error messages.

        Returns
        -------
        mus : ndarray, shape (n_mu, P), float64

        Raises
        ------
        ParameterError
            On a wrong shape, a non-finite value, or a value outside the box.

        """
        if isinstance(mus, np.ndarray) and mus.dtype == np.float64 and mus.ndim == 2 and mus.shape[1] == self.dim:
            arr = mus  # fast path: one vectorized test covers NaN (comparisons are False) and the box
        else:
            arr = self._as_batch(mus, name)
        if not ((arr >= self.lower) & (arr <= self.upper)).all():  # NaN fails every comparison
            self._raise_invalid(arr, name)
        return arr

    def _as_batch(self, mus: ArrayLike, name: str) -> NDArray[np.float64]:
        try:
            raw = np.asarray(mus)
            if np.iscomplexobj(raw):
                raise ParameterError(f"{name} must be real; got a complex array")
            arr = raw.astype(float)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(f"{name} must be a real array of shape (n_mu, {self.dim})") from exc
        if arr.ndim == 1 and arr.shape[0] == self.dim:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ParameterError(f"{name} must have shape (n_mu, {self.dim}); got {arr.shape}")
        return arr

    def _raise_invalid(self, arr: NDArray[np.float64], name: str) -> None:
        if not np.all(np.isfinite(arr)):
            raise ParameterError(f"{name} contains NaN or infinite values")
        i = int(np.argmax(np.any((arr < self.lower) | (arr > self.upper), axis=1)))
        raise ParameterError(f"{name}[{i}] = {arr[i].tolist()} lies outside the parameter domain {self!r}")


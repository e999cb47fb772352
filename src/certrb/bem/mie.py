r"""Exact (Mie series) surface field of a plane wave scattered by the sound-soft unit sphere.

Conventions: time dependence ``exp(-i omega t)``; incident wave
``u_inc(x) = exp(i k x . d)``; scattered field outgoing, expanded in spherical
Hankel functions of the first kind ``h_n = h_n^(1) = j_n + i y_n``; sound-soft
(Dirichlet) sphere of radius 1, ``u_tot = u_inc + u_s = 0`` on ``|x| = 1``;
``n`` is the outward unit normal of the sphere (pointing into the propagation
domain) and ``theta`` the angle between ``x`` and ``d``.

With ``u_inc = sum_n (2n+1) i^n j_n(k r) P_n(cos theta)`` the scattered field is
``u_s = -sum_n (2n+1) i^n [j_n(k) / h_n(k)] h_n(k r) P_n(cos theta)``. The
Neumann trace of the total field is
``phi = d u_tot / d n = k sum_n (2n+1) i^n [j_n'(k) h_n(k) - j_n(k) h_n'(k)] / h_n(k) P_n``;
the Wronskian ``j_n y_n' - j_n' y_n = 1 / x^2`` gives
``j_n' h_n - j_n h_n' = -i / k^2``, hence

.. math:: \varphi(\theta) = -\frac{i}{k} \sum_{n \ge 0} \frac{(2n+1)\, i^n}{h_n^{(1)}(k)} P_n(\cos\theta).

For ``n > k`` the terms decay super-exponentially (``|h_n(k)|`` grows like
``(2n-1)!! / k^{n+1}``); the series is summed to
``n_max = ceil(k + 10 + 4 k^(1/3))``, extended by 10 terms at a time (up to
``4 n_max``) until the last three retained terms are below ``tol`` relative to
the largest one (else :class:`MieConvergenceError`). Low-frequency limit: ``phi -> 1`` as ``k -> 0``
(the static field ``1 - 1/r``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import spherical_jn, spherical_yn

from ..errors import CertRBError

__all__ = ["MieConvergenceError", "mie_coefficients", "mie_neumann_trace", "mie_order", "scattering_cross_section"]


class MieConvergenceError(CertRBError, ArithmeticError):
    """The truncated Mie series did not reach the requested tolerance."""


def mie_order(k: float) -> int:
    """Truncation order ``n_max = ceil(k + 10 + 4 k^(1/3))`` of the series."""
    return int(np.ceil(k + 10.0 + 4.0 * np.cbrt(k)))


def _check_k(k: float) -> float:
    k = float(k)
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"the wavenumber k must be positive and finite; got k = {k}")
    return k


def mie_coefficients(k: float, *, tol: float = 1e-14) -> NDArray[np.complex128]:
    """Coefficients ``c_n = -(i/k) (2n+1) i^n / h_n(k)``, shape (n_max + 1,), with ``phi = sum_n c_n P_n``.

    Raises
    ------
    ValueError
        If ``k`` is not positive and finite.
    MieConvergenceError
        If the last three coefficients stay above ``tol`` relative to the largest.
    """
    k = _check_k(k)
    n_max = mie_order(k)
    while True:
        c = _raw_coefficients(k, n_max)
        tail = np.max(np.abs(c[-3:])) / np.max(np.abs(c))
        if tail <= tol:
            return c
        if n_max >= 4 * mie_order(k):
            raise MieConvergenceError(f"Mie series at k = {k} not converged with {n_max + 1} terms: "
                                      f"tail {tail:.2e} > {tol}")
        n_max += 10


def _raw_coefficients(k: float, n_max: int) -> NDArray[np.complex128]:
    n = np.arange(n_max + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        h = spherical_jn(n, k) + 1j * spherical_yn(n, k)
        c = -1j / k * (2 * n + 1) * (1j) ** n / h  # |h| = inf for huge n gives 0
    c[~np.isfinite(h)] = 0.0
    return c


def _legendre(n_max: int, t: NDArray[np.float64]) -> NDArray[np.float64]:
    """``P_n(t)`` for ``n = 0..n_max`` by the three-term recurrence, shape (n_max + 1, *t.shape)."""
    P = np.empty((n_max + 1, *t.shape))
    P[0] = 1.0
    if n_max >= 1:
        P[1] = t
    for n in range(1, n_max):
        P[n + 1] = ((2 * n + 1) * t * P[n] - n * P[n - 1]) / (n + 1)
    return P


def mie_neumann_trace(cos_theta: ArrayLike, k: float, *, tol: float = 1e-14) -> NDArray[np.complex128]:
    """Neumann trace ``d u_tot / d n`` on the sound-soft unit sphere (formula in the module docstring).

    Parameters
    ----------
    cos_theta : array_like
        Cosine of the angle between the surface point and the incident direction, in [-1, 1].
    k : float
        Wavenumber, > 0.
    tol : float
        Relative size of the discarded tail terms that is accepted.

    Returns
    -------
    complex array, shape of ``cos_theta``

    Raises
    ------
    ValueError
        If ``k <= 0`` or ``cos_theta`` leaves [-1, 1] by more than round-off.

    Examples
    --------
    >>> bool(abs(mie_neumann_trace(0.3, 1e-6) - 1) < 1e-5)
    True
    """
    t = np.asarray(cos_theta, dtype=float)
    if np.any(np.abs(t) > 1 + 1e-12):
        raise ValueError(f"cos_theta must lie in [-1, 1]; got values up to {np.max(np.abs(t))}")
    c = mie_coefficients(k, tol=tol)
    P = _legendre(c.size - 1, np.clip(t, -1.0, 1.0))
    return np.tensordot(c, P, axes=(0, 0))


def scattering_cross_section(k: float) -> float:
    """Total scattering cross section ``(4 pi / k^2) sum_n (2n+1) |j_n(k) / h_n(k)|^2`` (independent check)."""
    k = _check_k(k)
    n = np.arange(mie_order(k) + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        r = spherical_jn(n, k) / (spherical_jn(n, k) + 1j * spherical_yn(n, k))
    r[~np.isfinite(r)] = 0.0
    return float(4 * np.pi / k**2 * np.sum((2 * n + 1) * np.abs(r) ** 2))

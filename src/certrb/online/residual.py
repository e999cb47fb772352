"""The affine residual ``r(mu) = sum_k x_k(mu) g_k`` of a reduced solution.

Components are ordered so that the first ``K_n = Q_f + Q_a n`` of them belong
to the nested sub-model of the first ``n`` basis vectors:

``g = [f_1 .. f_Qf, A_1 v_1 .. A_Qa v_1, A_1 v_2 .. A_Qa v_2, .., A_Qa v_N]``

with coefficients ``x(mu) = [phi(mu), -theta(mu) c_1(mu), .., -theta(mu) c_N(mu)]``.
This module is online-safe: it never touches an n_h-sized array.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["n_components", "pad_coefficients", "residual_coefficients"]


def n_components(q_f: int, q_a: int, n: int) -> int:
    """Number of residual components ``K = Q_f + Q_a n``."""
    return q_f + q_a * n


def residual_coefficients(phi: NDArray, theta: NDArray, c: NDArray) -> NDArray:
    """Residual coefficient vectors ``x(mu)``.

    Parameters
    ----------
    phi : ndarray, shape (n_mu, Q_f)
        Right-hand-side coefficients.
    theta : ndarray, shape (n_mu, Q_a)
        Operator coefficients.
    c : ndarray, shape (n_mu, n)
        Reduced coefficients.

    Returns
    -------
    x : ndarray, shape (n_mu, Q_f + Q_a n)

    """
    n_mu = c.shape[0]
    prod = -(c[:, :, None] * theta[:, None, :]).reshape(n_mu, c.shape[1] * theta.shape[1])  # n_mu may be 0
    return np.concatenate([phi.astype(prod.dtype, copy=False), prod], axis=1)


def pad_coefficients(x: NDArray, k: int) -> NDArray:
    """Zero-pad coefficient vectors (n_mu, K_n) of a sub-model to (n_mu, k)."""
    if x.shape[1] == k:
        return x
    out = np.zeros((x.shape[0], k), dtype=x.dtype)
    out[:, : x.shape[1]] = x
    return out

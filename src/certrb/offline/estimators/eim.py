"""E3 ``eim`` and E4 ``eim-stabilized`` offline: the EIM of the residual coefficients and its residual factor.

An EIM greedy over training coefficient vectors ``x(mu)`` (of the model and,
so that nested sub-models are served too, of its sub-models, zero-padded)
selects vectors ``q_j`` and magic indices ``k_j``. The residual of each ``q_j``,
``s_j = sum_k (q_j)_k g_k``, is formed in the truth space in extended precision
and its Riesz representative X-orthonormalized: ``X^{-1} S = Psi R_s``. The online
evaluator is :class:`~certrb.online.estimators.eim.EIMEstimator`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ...online.estimators.eim import EIMEstimator
from ...online.residual import pad_coefficients
from ..eim import eim_greedy
from .base import OfflineData
from .orthonormal import extend_factor
from .roundoff import factor_certificate
from .truth import combine_components

__all__ = ["RTOL", "build", "build_stabilized"]

# Default stop of the greedy: a remainder below one unit of round-off of the largest
# coefficient changes the residual no more than rounding x itself. (The generic EIM default,
# 10 K eps, left residual errors of ~1e-12 ||f|| on advection2d, 70x the double-precision truth floor.)
RTOL = float(np.finfo(float).eps)


def _family(data: OfflineData, nested: bool, max_train: int | None) -> NDArray:
    k = data.q_f + data.q_a * data.n_basis
    train = data.train
    if max_train is not None and train.shape[0] > max_train:
        train = train[data.rng.choice(train.shape[0], size=int(max_train), replace=False)]
    sizes = range(1, data.n_basis + 1) if nested else [data.n_basis]
    return np.concatenate([pad_coefficients(data.solve_reduced(train, n)[1], k) for n in sizes])


def _build(data: OfflineData, stabilized: bool) -> EIMEstimator:
    opts = data.options.get("eim-stabilized" if stabilized else "eim", {})
    family = _family(data, opts.get("nested", True), opts.get("max_train"))
    basis = eim_greedy(family, max_terms=opts.get("max_terms"), rtol=opts.get("rtol", RTOL), stabilized=stabilized)
    ip = data.problem.inner_product
    S = combine_components(data.problem, data.basis, basis.vectors, precision="extended")
    Z = ip.riesz(S if data.refine > 0 else S.astype(data.riesz.dtype), refine=2 if data.refine > 0 else 0)
    Z = np.asarray(Z, dtype=np.result_type(data.riesz.dtype, basis.vectors.dtype))
    empty = np.zeros((Z.shape[0], 0), dtype=Z.dtype)
    psi, R = extend_factor(empty, np.zeros((0, 0), dtype=Z.dtype), Z, ip)
    if not data.certify:
        return EIMEstimator(basis.vectors, basis.indices, basis.matrix, R, stabilized, basis.errors)
    return EIMEstimator(basis.vectors, basis.indices, basis.matrix, R, stabilized, basis.errors,
                        factor_certificate(ip, S, Z, psi, R), data.remainder())


def build(data: OfflineData) -> EIMEstimator:
    """Build E3 (plain EIM).

    Options (``data.options["eim"]``): ``nested`` (default True: the family also
    holds the zero-padded coefficient vectors of the sub-models 1..N-1, so that
    nested evaluation is exact in exact arithmetic), ``max_train`` (random
    subset of the training set), ``max_terms``, ``rtol`` (see :func:`certrb.offline.eim.eim_greedy`;
    default :data:`RTOL`, machine epsilon: the remainder ``delta`` enters the residual as
    ``sum_k delta_k g_k``, so it must be as small as the rounding of ``x`` itself).
    """
    return _build(data, stabilized=False)


def build_stabilized(data: OfflineData) -> EIMEstimator:
    """Build E4 (stabilized EIM). Options as for :func:`build`."""
    return _build(data, stabilized=True)

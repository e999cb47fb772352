"""Residual-norm estimators.

Each estimator has an online object (small arrays only) exposing
``residual_norm(x, n) -> (n_mu,)`` for residual coefficient vectors ``x`` of
shape (n_mu, Q_f + Q_a n) of the nested sub-model of size ``n``, and an
offline ``build`` function taking an :class:`~certrb.estimators.base.OfflineData`.

Names: ``expanded`` (E1), ``point-basis`` (E2), ``eim`` (E3),
``eim-stabilized`` (E4), ``orthonormal`` (E5). The truth-space reference (E0)
is :func:`certrb.truth_residual_norm`.
"""

from .base import ESTIMATOR_NAMES, Estimator, OfflineData

__all__ = ["ESTIMATOR_NAMES", "Estimator", "OfflineData"]

"""Residual-norm estimators, online half: small arrays in, ``||r(mu)||_{V'}`` out.

Each evaluator exposes ``residual_norm(x, n) -> (n_mu,)`` for residual coefficient
vectors ``x`` of shape (n_mu, Q_f + Q_a n) of the nested sub-model of size ``n``,
``roundoff(x, n, eps)`` (its floating-point error bound, NaN without a certificate),
and ``to_arrays()`` / ``from_arrays()`` for model files. :data:`EVALUATORS` maps each
estimator name to its evaluator class; the offline builders are in
:data:`certrb.offline.estimators.BUILDERS`, keyed by the same names.

Names: ``expanded`` (E1), ``point-basis`` (E2; ``point-basis-square``: its square system as
written), ``eim`` (E3), ``eim-stabilized``
(E4), ``orthonormal`` (E5). The truth-space reference (E0) is
:func:`certrb.truth_residual_norm`.
"""

from __future__ import annotations

from typing import Any

from ...errors import EstimatorError
from .base import Estimator, norm_and_roundoff
from .eim import EIMEstimator
from .expanded import ExpandedEstimator
from .orthonormal import OrthonormalEstimator
from .point_basis import PointBasisEstimator
from .point_basis_square import PointBasisSquareEstimator

__all__ = ["ESTIMATOR_NAMES", "EVALUATORS", "Estimator", "check_name", "norm_and_roundoff"]

EVALUATORS: dict[str, Any] = {
    "expanded": ExpandedEstimator,
    "point-basis": PointBasisEstimator,
    "point-basis-square": PointBasisSquareEstimator,
    "eim": EIMEstimator,
    "eim-stabilized": EIMEstimator,
    "orthonormal": OrthonormalEstimator,
}
"""Estimator name -> online evaluator class (with ``to_arrays`` / ``from_arrays``)."""

ESTIMATOR_NAMES = tuple(EVALUATORS)


def check_name(name: str) -> str:
    """Return ``name`` if it is a known estimator, else raise EstimatorError."""
    if name not in EVALUATORS:
        raise EstimatorError(f"unknown estimator {name!r}; choose one of {ESTIMATOR_NAMES}")
    return name

"""Residual-norm estimators, offline half: builders of the online evaluators from truth-size data.

:data:`BUILDERS` maps each estimator name to its builder, a function
``OfflineData -> evaluator`` (the evaluators and their table are in
:mod:`certrb.online.estimators`, keyed by the same names), and says whether it is
available with ``precision="extended"``. The truth-space reference E0 is in
:mod:`certrb.offline.estimators.truth`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...online.estimators import Estimator
from . import eim, expanded, orthonormal, point_basis, point_basis_square
from .base import OfflineData

__all__ = ["BUILDERS", "Builder", "OfflineData"]


@dataclass(frozen=True)
class Builder:
    """An estimator's offline builder and whether it runs in extended precision (without certificate)."""

    build: Callable[[OfflineData], Estimator]
    extended: bool = False


BUILDERS: dict[str, Builder] = {
    "expanded": Builder(expanded.build, extended=True),
    "point-basis": Builder(point_basis.build),
    "point-basis-square": Builder(point_basis_square.build),
    "eim": Builder(eim.build),
    "eim-stabilized": Builder(eim.build_stabilized),
    "orthonormal": Builder(orthonormal.build, extended=True),
}
"""Estimator name -> offline builder."""

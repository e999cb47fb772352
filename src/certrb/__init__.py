"""certrb: certified reduced basis models with round-off-robust error bounds.

The package is split by stage: :mod:`certrb.online` (the reduced model and everything it
evaluates with: small arrays only) and :mod:`certrb.offline` (truth problems, builders,
greedies, certificates). Online code never imports offline code, and the public names
below are imported on first use, so that ``import certrb.online.model`` or loading a
model file pulls in nothing of the offline stage (nor scipy.sparse).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

_PUBLIC = {
    "certrb.errors": ("CertRBError", "EstimatorError", "ExpressionError", "InnerProductError", "InteropError",
                      "ModelFileError", "ParameterError", "ShapeError", "SpecError", "StabilityError"),
    "certrb.io": ("load", "save"),
    "certrb.io.dictionary": ("load_dictionary", "save_dictionary"),
    "certrb.online.dictionary": ("Dictionary", "DictionaryResult"),
    "certrb.online.estimators": ("ESTIMATOR_NAMES",),
    "certrb.online.evaluate": ("OnlineResult",),
    "certrb.online.expressions": ("ExpressionCoefficients",),
    "certrb.online.lipschitz": ("LipschitzBound",),
    "certrb.online.model": ("ReducedModel",),
    "certrb.online.parameters": ("ParameterSpace",),
    "certrb.offline.affine": ("AffineFunctional", "AffineOperator"),
    "certrb.offline.basis": ("extend", "gram_schmidt", "pod"),
    "certrb.offline.builder": ("OfflineBuilder",),
    "certrb.offline.dictionary": ("build_dictionary",),
    "certrb.offline.eim": ("deim", "eim_greedy", "interpolation_coefficients_ls", "remove_point", "symmetric_eim"),
    "certrb.offline.greedy": ("GreedyResult", "GreedyStep", "weak_greedy"),
    "certrb.offline.innerproduct": ("InnerProduct",),
    "certrb.offline.lipschitz": ("continuity_constants", "lipschitz_grid"),
    "certrb.offline.matrix_eim": ("MatrixEIM", "matrix_eim", "vector_eim"),
    "certrb.offline.nonaffine": ("eim_functional", "eim_operator", "interpolation_indicator"),
    "certrb.offline.problem": ("Problem", "dual_problem"),
    "certrb.offline.reduce": ("reduce",),
    "certrb.offline.scm": ("SCM",),
    "certrb.offline.spec": ("Reduction", "Spec", "load_spec"),
    "certrb.offline.snapshots": ("solve_snapshots",),
    "certrb.offline.stability": ("MinTheta",),
    "certrb.offline.truth": ("true_error", "truth_residual_norm"),
    "certrb.parallel": ("ParallelMap",),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_WHERE)

try:
    __version__ = version("certrb")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'certrb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

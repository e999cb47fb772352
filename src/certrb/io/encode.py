"""A model as datasets and root attributes: functions as data or by checked import path."""

from __future__ import annotations

import importlib
import json
import types
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..online import nonaffine
from ..online.coefficients import Conjugated
from ..online.estimators import ESTIMATOR_NAMES, EVALUATORS, Estimator
from ..online.expressions import ExpressionCoefficients
from ..online.lipschitz import LipschitzBound
from ..online.model import ReducedModel, ReducedOutput
from ..online.scm import SCMBound
from ..online.stability import MinThetaBound
from .layout import (
    CONJ,
    DUAL_ATTR,
    DUAL_DATA,
    EXPR,
    FORMAT,
    FUNCTION_DATA,
    HEADER,
    INTERPOLATION,
    RECORD,
    VERSION,
    Attrs,
    Datasets,
)

_SCM_ARRAYS = ("box", "points", "values", "lower_values", "y", "history", "scaling")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("certrb")
    except PackageNotFoundError:
        return "0+unknown"


def encode(model: ReducedModel, online_only: bool) -> tuple[Datasets, Attrs]:
    """Flatten a model into datasets {path: array} and root attributes {name: str | int}."""
    space = model.parameter_space
    data: Datasets = {"parameter_space/lower": space.lower, "parameter_space/upper": space.upper,
                      "A_N": model.A_N, "f_N": model.f_N}
    attrs: Attrs = {"format": FORMAT, "version": VERSION, "certrb_version": _version(),
                    "parameter_names": json.dumps(list(space.names)),
                    "parameter_scale": json.dumps(list(space.scale)),
                    "operator_coefficients": _encode_function(model.operator_coefficients, "operator_coefficients",
                                                              data),
                    "rhs_coefficients": _encode_function(model.rhs_coefficients, "rhs_coefficients", data),
                    "default_estimator": model.default_estimator}
    if not online_only and model.basis is not None:
        data["basis"] = model.basis
        if model.reconstruction_weights is not None:
            data["reconstruction_weights"] = model.reconstruction_weights
    if model.output is not None:
        attrs["output_coefficients"] = _encode_function(model.output.coefficients, "output_coefficients", data)
        data["output/l_N"] = model.output.l_N
        data["output/dual_gram"] = model.output.dual_gram
        if model.output.dual is not None:
            _encode_dual(model.output, online_only, data, attrs)
    if model.interpolation is not None:
        attrs[INTERPOLATION] = _encode_record(model.interpolation, INTERPOLATION, data)
    _encode_stability(model.stability, data, attrs)
    attrs["estimators"] = json.dumps(_encode_estimators(model.estimators, data))
    data = {key: _native(value, key) for key, value in data.items()}
    attrs["datasets"] = json.dumps(sorted(data))
    return data, attrs


def _encode_dual(output: ReducedOutput, online_only: bool, data: Datasets, attrs: Attrs) -> None:
    """Store the dual model under ``output/dual/`` (datasets) and ``dual/`` (attributes)."""
    dual_data, dual_attrs = encode(output.dual, online_only)  # type: ignore[arg-type]
    data.update({f"{DUAL_DATA}{key}": value for key, value in dual_data.items()})
    attrs.update({f"{DUAL_ATTR}{key}": value for key, value in dual_attrs.items() if key not in HEADER})
    data["output/dual_rhs"] = output.dual_rhs  # type: ignore[assignment]
    data["output/dual_operator"] = output.dual_operator  # type: ignore[assignment]


def _encode_stability(stability: Callable, data: Datasets, attrs: Attrs) -> None:
    if isinstance(stability, MinThetaBound):
        attrs["stability_kind"] = "min-theta"
        attrs["stability"] = _encode_function(stability.coefficients, "stability", data)
        data["stability/theta_ref"] = np.asarray(stability.theta_ref)
        data["stability/alpha_ref"] = np.asarray(stability.alpha_ref, dtype=np.float64)
        if stability.shifts is not None:
            data["stability/shifts"] = np.asarray(stability.shifts, dtype=np.float64)
        data["stability/certified"] = np.asarray(float(stability.certified))
    elif isinstance(stability, SCMBound):
        attrs["stability_kind"] = "scm"
        attrs["stability"] = _encode_function(stability.coefficients, "stability", data)
        attrs["scm"] = json.dumps({"kind": stability.kind, "n_terms": int(stability.n_terms),
                                   "imag_terms": bool(stability.imag_terms),
                                   "n_neighbors": int(stability.n_neighbors)})
        for key in _SCM_ARRAYS:
            data[f"stability/{key}"] = np.asarray(getattr(stability, key))
        data["stability/certified"] = np.asarray(float(stability.certified))
    elif isinstance(stability, LipschitzBound):
        attrs["stability_kind"] = "lipschitz"
        attrs["stability"] = _encode_function(stability.coefficients, "stability", data)
        for key, value in stability.to_arrays().items():
            data[f"stability/{key}"] = np.asarray(value)
    else:
        attrs["stability_kind"] = "callable"
        attrs["stability"] = _encode_function(stability, "stability", data)


def _encode_estimators(estimators: Mapping[str, Estimator], data: Datasets) -> list[list[str]]:
    keys = []
    for key, est in estimators.items():
        if key not in EVALUATORS or type(est) is not EVALUATORS[key] or est.name != key:
            raise ValueError(f"cannot save estimator {key!r} of type {type(est).__name__}; only certrb's "
                             f"estimators, attached under their names {ESTIMATOR_NAMES}, can be saved")
        for array_name, value in est.to_arrays().items():
            data[f"estimators/{key}/{array_name}"] = np.asarray(value)
        keys.append([key, est.name])
    return keys


def _native(value: NDArray, key: str) -> NDArray:
    """Numeric array as C-contiguous native-endian data, so the checksummed bytes are those read back."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"cannot save array {key!r} of dtype {arr.dtype}; expected a numeric array")
    return np.asarray(arr, dtype=arr.dtype.newbyteorder("="), order="C")


def _record_kind(obj: object) -> str | None:
    """The ``kind`` of a data-backed object of :data:`certrb.online.nonaffine.RECORDS`, else None."""
    kind = getattr(type(obj), "kind", None)
    return kind if isinstance(kind, str) and nonaffine.RECORDS.get(kind) is type(obj) else None


def _encode_record(obj: object, key: str, data: Datasets) -> str:
    """``"record:<kind>"``; the object's arrays go under ``key/``."""
    kind = _record_kind(obj)
    if kind is None:
        raise ValueError(f"cannot save {key} {obj!r}: only the data-backed kinds {sorted(nonaffine.RECORDS)} "
                         f"of certrb.online.nonaffine can be saved as {key}")
    data.update({f"{key}/{name}": np.asarray(value) for name, value in obj.to_arrays().items()})  # type: ignore[attr-defined]
    return RECORD + kind


def _encode_function(func: Callable, key: str, data: Datasets) -> str:
    """Text of the function stored under attribute ``key``: ``"conj:"`` prefixes, then its kind.

    Expressions as ``"expr:" + JSON``, data-backed objects as ``"record:<kind>"`` with their
    arrays under ``functions/<key>/``, other callables by import path.
    """
    if isinstance(func, Conjugated):
        return CONJ + _encode_function(func.func, key, data)
    if isinstance(func, ExpressionCoefficients):
        return EXPR + json.dumps({"names": list(func.names), "texts": list(func.texts)})
    if _record_kind(func) is not None:
        return _encode_record(func, f"{FUNCTION_DATA}{key}", data)
    return _import_path(func, key)


def _import_path(func: Callable, what: str) -> str:
    """``"module:qualname"`` of a module-level function of an importable module, checked to re-import to it."""
    hint = (f"give {what} as expression coefficients over the parameter names instead, e.g. "
            f"AffineOperator(terms, [\"1\", \"mu1\"]) (see certrb.ExpressionCoefficients): they are stored as "
            f"text and load anywhere; or define it as a module-level function of an importable module")
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if isinstance(func, types.MethodType):
        reason = "a bound method"
    elif not isinstance(module, str) or not isinstance(qualname, str):
        reason = f"a callable object of type {type(func).__name__}, not one of certrb's data kinds"
    elif "<" in qualname:
        reason = "a lambda" if "<lambda>" in qualname else "a nested function or closure"
    elif module == "__main__":
        reason = "defined in the script being run (__main__), which no other process can import"
    else:
        reason = ""
    if reason:
        raise ValueError(f"cannot save {what} {func!r}: it is {reason}; {hint}")
    path = f"{module}:{qualname}"
    try:
        resolved = resolve(path)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot save {what}: {path!r} is not importable ({exc}); {hint}") from exc
    if resolved is not func:
        raise ValueError(f"cannot save {what}: {path!r} resolves to a different object; {hint}")
    return path


def resolve(path: str) -> Any:
    """The object an import path ``"module:qualname"`` names (importing the module)."""
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj

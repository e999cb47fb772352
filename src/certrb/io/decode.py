"""A model from checked datasets and attributes: every array against the others, functions last."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ExpressionError, ModelFileError, ParameterError
from ..online import nonaffine
from ..online.coefficients import Conjugated
from ..online.estimators import ESTIMATOR_NAMES, EVALUATORS, Estimator
from ..online.estimators.eim import EIMEstimator
from ..online.estimators.expanded import ExpandedEstimator
from ..online.estimators.orthonormal import OrthonormalEstimator
from ..online.estimators.point_basis import PointBasisEstimator
from ..online.estimators.point_basis_square import PointBasisSquareEstimator
from ..online.expressions import ExpressionCoefficients
from ..online.lipschitz import LipschitzBound
from ..online.model import ReducedModel, ReducedOutput
from ..online.parameters import ParameterSpace
from ..online.scm import SCMBound
from ..online.stability import MinThetaBound
from .encode import resolve
from .layout import DUAL_ATTR, DUAL_DATA, EXPR, FUNCTION_DATA, FUNCTIONS, INTERPOLATION, RECORD, Attrs, Datasets
from .trust import unconjugated

_DOUBLE = (np.float64, np.complex128)
_EXTENDED = (np.longdouble, np.clongdouble)
_REAL = (np.float64,)
_VALUE_ARRAYS = ("R", "G", "vectors", "matrix", "remainder_G")  # estimator arrays in the model's precision
_SCM_DIMS = {"box": 2, "points": 2, "values": 1, "lower_values": 1, "y": 2, "history": 1, "scaling": 2}
_SCM_SPEC = {"kind": str, "n_terms": int, "imag_terms": bool, "n_neighbors": int}


@dataclass(frozen=True)
class Context:
    """What decoding needs besides the data: the file's name, trust, given functions, and the dual prefixes."""

    name: str
    trusted: bool
    given: Mapping[str, Callable]
    attr_prefix: str = ""
    data_prefix: str = ""

    def error(self, key: str, message: str) -> ModelFileError:
        """The error naming dataset ``key`` (under the dual prefix)."""
        return ModelFileError(f"{self.name}: dataset {self.data_prefix + key!r} {message}")

    def attr_error(self, key: str, message: str) -> ModelFileError:
        """The error naming attribute ``key`` (under the dual prefix)."""
        return ModelFileError(f"{self.name}: attribute {self.attr_prefix + key!r} {message}")

    def dual(self) -> Context:
        """The context of the dual model stored inside this one."""
        return dataclasses.replace(self, attr_prefix=self.attr_prefix + DUAL_ATTR,
                                   data_prefix=self.data_prefix + DUAL_DATA)


def _attr(attrs: Attrs, key: str, ctx: Context) -> str:
    value = attrs.get(key)
    if not isinstance(value, str):
        raise ctx.attr_error(key, "is missing or not a string")
    return value


def _attr_json(attrs: Attrs, key: str, ctx: Context) -> Any:
    try:
        return json.loads(_attr(attrs, key, ctx))
    except ValueError:
        raise ctx.attr_error(key, "is not valid JSON") from None


def _array(data: Datasets, key: str, ctx: Context, dtypes: tuple[type, ...], shape: tuple[int | None, ...],
           *, finite: bool = True) -> NDArray:
    """``data[key]``, checked: one of ``dtypes``, ``shape`` (None: any length), finite."""
    if key not in data:
        raise ModelFileError(f"{ctx.name}: missing dataset {ctx.data_prefix + key!r}")
    arr = data[key]
    if arr.dtype.type not in dtypes:
        raise ctx.error(key, f"has dtype {arr.dtype}; expected {' or '.join(np.dtype(t).name for t in dtypes)}")
    if arr.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("*" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ctx.error(key, f"has shape {arr.shape}; expected {want}")
    if finite and not np.isfinite(arr).all():
        raise ctx.error(key, "is not finite everywhere")
    return arr


def decode(data: Datasets, attrs: Attrs, ctx: Context) -> ReducedModel:
    """Check every dataset and attribute against each other, then build the model (functions last)."""
    space = _decode_space(data, attrs, ctx)
    a_type = data["A_N"].dtype.type if "A_N" in data else np.float64
    family = _EXTENDED if a_type in _EXTENDED and a_type not in _DOUBLE else _DOUBLE  # the model's precision
    A_N = _array(data, "A_N", ctx, family, (None, None, None))
    q_a, n = A_N.shape[:2]
    if min(q_a, n) < 1 or A_N.shape[2] != n:
        raise ctx.error("A_N", f"has shape {A_N.shape}; expected (Q_a, N, N) with Q_a, N >= 1")
    f_N = _array(data, "f_N", ctx, family, (None, n))
    basis = _array(data, "basis", ctx, family, (None, n)) if "basis" in data else None
    weights = None
    if "reconstruction_weights" in data:
        if basis is None:
            raise ctx.error("reconstruction_weights", "is stored without the basis it belongs to")
        weights = _array(data, "reconstruction_weights", ctx, (np.float64,), (n, n))
        if (weights < 0).any():
            raise ctx.error("reconstruction_weights", "has negative entries (it bounds |V|^T |X| |V|)")
    for key, arr in (("f_N", f_N), ("basis", basis)):  # a real A_N comes from a real basis: all real
        if arr is not None and (arr.size == 0 or (arr.dtype.kind == "c" and A_N.dtype.kind != "c")):
            raise ctx.error(key, f"is empty or complex ({arr.dtype}) while A_N is real ({A_N.dtype})")
    estimators = _decode_estimators(data, attrs, ctx, family,
                                    (f_N.shape[0] + q_a * n, n, space.dim, A_N.dtype.kind == "c"))
    default = _attr(attrs, "default_estimator", ctx)
    if default not in estimators:
        raise ctx.attr_error("default_estimator", f"names {default!r}, which is not stored")
    interpolation = None
    if INTERPOLATION in attrs:
        text = _attr(attrs, INTERPOLATION, ctx)
        if not text.startswith(RECORD):
            raise ctx.attr_error(INTERPOLATION, "is not a stored record")
        interpolation = _decode_record(data, text[len(RECORD):], INTERPOLATION, ctx)
    kind, stability_data, stability_terms = _stability_data(data, attrs, ctx, q_a, space.dim)
    _check_described(data, attrs, ctx, kind != "callable")
    output_data = _output_data(data, attrs, ctx, family, A_N.shape, f_N.shape[0])
    # functions last: here alone may a module be imported (trusted=True)
    names = space.names
    theta = _function(data, attrs, "operator_coefficients", ctx, names, q_a)
    phi = _function(data, attrs, "rhs_coefficients", ctx, names, f_N.shape[0])
    output = None if output_data is None else ReducedOutput(
        _function(data, attrs, "output_coefficients", ctx, names, output_data[0].shape[0]), *output_data)
    stability = _make_stability(kind, _function(data, attrs, "stability", ctx, names, stability_terms),
                                stability_data, space, ctx)
    return ReducedModel(space, theta, phi, A_N, f_N, stability, estimators, default, output, basis, interpolation,
                        weights)


def _check_described(data: Datasets, attrs: Attrs, ctx: Context, stability_data: bool) -> None:
    """Refuse datasets the attributes do not describe (an output, estimator or record whose attribute is gone)."""
    exact = {"parameter_space/lower", "parameter_space/upper", "A_N", "f_N", "basis", "reconstruction_weights"}
    folders = [f"estimators/{key}/" for key, _ in json.loads(attrs["estimators"])]
    folders += ["stability/"] if stability_data else []
    if "output_coefficients" in attrs:
        exact |= {"output/l_N", "output/dual_gram"}
        if f"{DUAL_ATTR}operator_coefficients" in attrs:
            exact |= {"output/dual_rhs", "output/dual_operator"}
            folders.append(DUAL_DATA)
    folders += [f"{INTERPOLATION}/"] if str(attrs.get(INTERPOLATION, "")).startswith(RECORD) else []
    folders += [f"{FUNCTION_DATA}{key}/" for key in FUNCTIONS
                if unconjugated(str(attrs.get(key, "")))[0].startswith(RECORD)]
    for key in data:
        if key not in exact and not key.startswith(tuple(folders)):
            raise ctx.error(key, "is not part of the model its attributes describe")


def _decode_space(data: Datasets, attrs: Attrs, ctx: Context) -> ParameterSpace:
    names, scale = _attr_json(attrs, "parameter_names", ctx), _attr_json(attrs, "parameter_scale", ctx)
    if not (isinstance(names, list) and names and all(isinstance(x, str) for x in names)
            and len(set(names)) == len(names)):
        raise ctx.attr_error("parameter_names", "must be a non-empty list of distinct strings")
    if not (isinstance(scale, list) and len(scale) == len(names) and all(isinstance(x, str) for x in scale)):
        raise ctx.attr_error("parameter_scale", f"must be a list of {len(names)} strings")
    lower, upper = (_array(data, f"parameter_space/{key}", ctx, _REAL, (len(names),)) for key in ("lower", "upper"))
    try:
        return ParameterSpace(names, lower, upper, scale)
    except ParameterError as exc:
        raise ctx.error("parameter_space", f"with the attributes parameter_names and parameter_scale: {exc}") from None


def _decode_estimators(data: Datasets, attrs: Attrs, ctx: Context, family: tuple[type, ...],
                       sizes: tuple[int, int, int, bool]) -> dict[str, Estimator]:
    """The stored estimators, each checked by its ``from_arrays`` and against the model (K, N, P, complex)."""
    listed = _attr_json(attrs, "estimators", ctx)
    if not (isinstance(listed, list) and listed and all(
            isinstance(e, list) and len(e) == 2 and e[0] == e[1] and e[0] in EVALUATORS for e in listed)
            and len({e[0] for e in listed}) == len(listed)):
        raise ctx.attr_error("estimators", f"must list distinct [name, name] pairs of names in {ESTIMATOR_NAMES}")
    out = {}
    for key, _ in listed:
        prefix = f"estimators/{key}/"
        try:
            est = EVALUATORS[key].from_arrays({k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)})
        except (ValueError, TypeError) as exc:
            raise ctx.error(prefix[:-1], f"is invalid: {exc}") from None
        if est.name != key:
            raise ctx.error(prefix[:-1], f"holds a {est.name!r} estimator")
        _check_estimator(est, prefix, ctx, family, sizes)
        out[key] = est
    return out


def _check_estimator(est: Estimator, prefix: str, ctx: Context, family: tuple[type, ...],
                     sizes: tuple[int, int, int, bool]) -> None:
    """An estimator's data against the model: precision, field, K components (sub-model sizes N, P)."""
    k, n, p, complex_ = sizes
    arrays = est.to_arrays()
    for key in _VALUE_ARRAYS:  # the Riesz representatives of the f_p and A_q v_i are complex iff A_N is
        if key in arrays and (arrays[key].dtype.type not in family or (arrays[key].dtype.kind == "c") != complex_):
            raise ctx.error(prefix + key, f"has dtype {arrays[key].dtype}; the model's data (A_N) are "
                                          f"{'complex' if complex_ else 'real'} of "
                                          f"{' or '.join(np.dtype(t).name for t in family)}")
    if isinstance(est, PointBasisSquareEstimator):
        if est.points.shape[1] != p:
            raise ctx.error(prefix + "points", f"must have {p} columns")
        components = est.n_components
    elif isinstance(est, PointBasisEstimator):
        if est.points.shape[1] != p or est.sizes.max() > n:
            raise ctx.error(prefix + "points", f"must have {p} columns, and sizes be at most N = {n}")
        components = est.n_components
    else:
        matrix = {ExpandedEstimator: "G", OrthonormalEstimator: "R", EIMEstimator: "vectors"}[type(est)]
        components = arrays[matrix].shape[1]
    if components != k:
        raise ctx.error(prefix[:-1], f"has {components} residual components; the model has K = Q_f + Q_a N = {k}")


def _decode_record(data: Datasets, kind: str, prefix: str, ctx: Context) -> Any:
    """A data-backed object of :data:`certrb.online.nonaffine.RECORDS` from its arrays under ``prefix/``."""
    cls = nonaffine.RECORDS.get(kind)
    if cls is None:
        raise ctx.error(prefix, f"holds an unknown kind of data {kind!r}; known: {sorted(nonaffine.RECORDS)}")
    arrays = {k[len(prefix) + 1:]: v for k, v in data.items() if k.startswith(prefix + "/")}
    try:
        return cls.from_arrays(arrays)  # type: ignore[attr-defined]
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ctx.error(prefix, f"holds invalid {kind} data: {exc}") from None


def _stability_data(data: Datasets, attrs: Attrs, ctx: Context, q_a: int,
                    p: int) -> tuple[str, dict[str, Any], int | None]:
    """Stability kind, its checked data, and the number of terms of its coefficients (None: a callable)."""
    kind = _attr(attrs, "stability_kind", ctx)
    if kind == "callable":
        return kind, {}, None
    if kind == "min-theta":
        theta_ref = _array(data, "stability/theta_ref", ctx, _REAL, (q_a,))
        shifts = _array(data, "stability/shifts", ctx, _REAL, (q_a,)) if "stability/shifts" in data else None
        return kind, {"theta_ref": theta_ref, "shifts": shifts, "certified": _certified_flag(data, ctx),
                      "alpha_ref": float(_array(data, "stability/alpha_ref", ctx, _REAL, ())[()])}, q_a
    if kind == "lipschitz":
        values = _array(data, "stability/values", ctx, _REAL, (None,) * p)
        return kind, {"values": values, "theta": _array(data, "stability/theta", ctx, _DOUBLE, (values.size, q_a)),
                      "gamma": _array(data, "stability/gamma", ctx, _REAL, (q_a,)),
                      "quality": float(_array(data, "stability/quality", ctx, _REAL, (), finite=False)[()]),
                      "certified": _certified_flag(data, ctx)}, q_a
    if kind != "scm":
        raise ctx.attr_error("stability_kind", f"is {kind!r}; expected 'callable', 'min-theta', 'scm' or 'lipschitz'")
    spec = _attr_json(attrs, "scm", ctx)
    if not (isinstance(spec, dict) and spec.keys() == _SCM_SPEC.keys() and all(
            type(spec[key]) is t for key, t in _SCM_SPEC.items())):
        raise ctx.attr_error("scm", f"must be an object of {list(_SCM_SPEC)} typed {list(_SCM_SPEC.values())}")
    fields = {key: _array(data, f"stability/{key}", ctx, _REAL, (None,) * ndim, finite=key != "history")
              for key, ndim in _SCM_DIMS.items()}
    if fields["points"].shape[1] != p:
        raise ctx.error("stability/points", f"has {fields['points'].shape[1]} columns; the model has {p} parameters")
    return kind, {**spec, **fields, "certified": _certified_flag(data, ctx)}, spec["n_terms"]


def _certified_flag(data: Datasets, ctx: Context) -> bool:
    """The stability bound's ``certified`` flag, stored as exactly 1.0 (proved) or 0.0 (assumed)."""
    flag = float(_array(data, "stability/certified", ctx, _REAL, ())[()])
    if flag not in (0.0, 1.0):
        raise ctx.error("stability/certified", f"is {flag}; expected 1.0 (certified) or 0.0 (assumed)")
    return flag == 1.0


def _make_stability(kind: str, coefficients: Callable, fields: dict[str, Any], space: ParameterSpace,
                    ctx: Context) -> Callable:
    if kind == "callable":
        if isinstance(coefficients, ExpressionCoefficients | Conjugated):
            raise ctx.attr_error("stability", "holds coefficients (n_mu, Q), not a stability bound (n_mu,)")
        return coefficients
    try:
        if kind == "min-theta":
            return MinThetaBound(coefficients, **fields)
        if kind == "lipschitz":
            return LipschitzBound(coefficients, space, **fields)
        return SCMBound.from_data(coefficients, **fields)
    except ValueError as exc:
        raise ctx.error("stability", f"is invalid: {exc}") from None


def _output_data(data: Datasets, attrs: Attrs, ctx: Context, family: tuple[type, ...],
                 operator_shape: tuple[int, ...], q_f: int) -> tuple[Any, ...] | None:
    """``(l_N, dual_gram, dual, dual_rhs, dual_operator)`` of the output, checked; None without one."""
    if "output_coefficients" not in attrs:
        return None
    q_a, n = operator_shape[:2]
    l_N = _array(data, "output/l_N", ctx, family, (None, n))
    gram = _array(data, "output/dual_gram", ctx, _DOUBLE, (l_N.shape[0], l_N.shape[0]))  # double in any model
    if l_N.shape[0] < 1 or not np.array_equal(gram, gram.conj().T) or not (gram.diagonal().real >= 0).all():
        raise ctx.error("output/dual_gram", "is not Hermitian with a non-negative diagonal (or the output is empty)")
    if f"{DUAL_ATTR}operator_coefficients" not in attrs:
        return l_N, gram, None, None, None
    dual = decode({k[len(DUAL_DATA):]: v for k, v in data.items() if k.startswith(DUAL_DATA)},
                   {k[len(DUAL_ATTR):]: v for k, v in attrs.items() if k.startswith(DUAL_ATTR)}, ctx.dual())
    dual_rhs = _array(data, "output/dual_rhs", ctx, _DOUBLE + family, (q_f, dual.n_basis))
    dual_operator = _array(data, "output/dual_operator", ctx, _DOUBLE + family, (q_a, dual.n_basis, n))
    return l_N, gram, dual, dual_rhs, dual_operator


def _function(data: Datasets, attrs: Attrs, key: str, ctx: Context, names: tuple[str, ...],
              terms: int | None) -> Callable:
    """The function stored under attribute ``key``; expressions over ``names`` with ``terms`` columns."""
    text, n_conj = unconjugated(_attr(attrs, key, ctx))
    func: Callable
    if text.startswith(EXPR):
        func = _expression(text, key, ctx, names, terms)
    elif text.startswith(RECORD):
        func = _decode_record(data, text[len(RECORD):], f"{FUNCTION_DATA}{key}", ctx)
    elif ctx.attr_prefix + key in ctx.given:
        func = ctx.given[ctx.attr_prefix + key]
    elif ctx.trusted:
        func = _imported(text, key, ctx)
    else:  # check_trust refused the file already
        raise ctx.attr_error(key, f"names {text!r} by import path; load(path, trusted=True) imports it")
    for _ in range(n_conj):
        func = Conjugated(func)
    return func


def _expression(text: str, key: str, ctx: Context, names: tuple[str, ...],
                terms: int | None) -> ExpressionCoefficients:
    """Parse ``"expr:" + JSON`` (nothing is imported or evaluated but the checked expressions)."""
    where = f"{ctx.name}: attribute {ctx.attr_prefix + key!r}"
    try:
        spec = json.loads(text[len(EXPR):])
    except ValueError as exc:
        raise ModelFileError(f"{ctx.name}: malformed expressions in attribute {key!r}: {exc}") from None
    if not isinstance(spec, dict) or sorted(spec) != ["names", "texts"]:
        raise ModelFileError(f"{ctx.name}: malformed expressions in attribute {key!r}: expected an object with "
                             f"'names' and 'texts'")
    if not isinstance(spec["names"], list) or not isinstance(spec["texts"], list):
        raise ModelFileError(f"{ctx.name}: malformed expressions in attribute {key!r}: 'names' and 'texts' must "
                             f"be lists")
    try:
        func = ExpressionCoefficients(spec["texts"], spec["names"])
    except ExpressionError as exc:
        raise ModelFileError(f"{ctx.name}: invalid expressions in attribute {key!r}: {exc}") from None
    if func.names != names:
        raise ModelFileError(f"{where}: the expressions are over the parameters {list(func.names)}; the file's "
                             f"parameter space has {list(names)}")
    if terms is not None and len(func.texts) != terms:
        raise ModelFileError(f"{where}: {len(func.texts)} expressions for {terms} terms")
    return func


def _imported(path: str, key: str, ctx: Context) -> Callable:
    try:
        func = resolve(path)
    except Exception as exc:
        raise ModelFileError(f"{ctx.name}: cannot import {ctx.attr_prefix + key} {path!r}: {exc}") from exc
    if not callable(func):
        raise ModelFileError(f"{ctx.name}: {ctx.attr_prefix + key} {path!r} is not callable")
    return func

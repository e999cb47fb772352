"""Saving and loading reduced models: versioned, checksummed HDF5 files.

Layout of a file (format ``"certrb-model"``, version 1)::

    /                        attrs: format, version, checksum, certrb_version,
                             parameter_names, parameter_scale (JSON lists),
                             operator_coefficients, rhs_coefficients,
                             output_coefficients (optional), stability_kind,
                             stability, default_estimator,
                             estimators (JSON list of [key, name]),
                             datasets (JSON list of every dataset path)
    /parameter_space/lower, /parameter_space/upper     (P,)
    /A_N (Q_a, N, N), /f_N (Q_f, N), /basis (n_h, N) unless online-only
    /output/l_N (Q_l, N), /output/dual_gram (Q_l, Q_l) if there is an output
    /stability/theta_ref (Q_a,), /stability/alpha_ref ()   for min-theta bounds
    /estimators/<key>/<array>                           ``Estimator.to_arrays()``

Root attributes are fixed-length UTF-8 strings (``version`` is an integer), so
h5py reads them back as ``bytes``. Expression coefficients
(:class:`certrb.online.expressions.ExpressionCoefficients`) are stored as text,
``"expr:" + json.dumps({"names": [...], "texts": [...]})``, and parsed on load,
which imports nothing; other callables are stored by import path ``"module:qualname"``
and re-imported on load. A :class:`certrb.online.coefficients.Conjugated` wrapper of
either is stored as ``"conj:"`` followed by its function's text. The checksum is
the SHA-256 of every dataset (path, dtype, shape and bytes, in sorted path order)
followed by every root attribute but the checksum itself (sorted by name).

Models built with ``precision="extended"`` store ``A_N``, ``f_N``, the basis and
the estimator data as numpy.longdouble / numpy.clongdouble, which HDF5 keeps
natively; such files are read back on platforms with the same long double
format. The 80-bit x87 format is padded to 16 bytes whose last 6 are arbitrary:
the checksum covers the 10 bytes of each value only.

h5py is needed (``pip install "certrb[io]"``) and imported only here.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import ExpressionError, ModelFileError
from .online.coefficients import Conjugated
from .online.estimators import ESTIMATOR_NAMES, EVALUATORS, Estimator
from .online.expressions import ExpressionCoefficients
from .online.model import ReducedModel, ReducedOutput
from .online.parameters import ParameterSpace
from .online.scm import SCMBound
from .online.stability import MinThetaBound

__all__ = ["FORMAT", "VERSION", "load", "save"]

FORMAT = "certrb-model"
VERSION = 1

_SCM_ARRAYS = ("box", "points", "values", "lower_values", "y", "history", "scaling")
_CONJ = "conj:"  # prefix of a Conjugated coefficient function
_EXPR = "expr:"  # prefix of expression coefficients, followed by a JSON object (so never an import path)
_DUAL_DATA, _DUAL_ATTR = "output/dual/", "dual/"  # where a dual model is stored
_HEADER = ("format", "version", "certrb_version", "datasets", "checksum")  # root-only attributes

# x86 long double: 10 bytes of value (64-bit mantissa with explicit integer bit) padded to 12 or 16
_X87_BYTES = 10
_X87_PADDED = (np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize > _X87_BYTES
               and sys.byteorder == "little")

# errors h5py raises on unreadable, truncated or malformed files
_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)

Datasets = dict[str, NDArray]
Attrs = dict[str, Any]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("certrb")
    except PackageNotFoundError:
        return "0+unknown"


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError('saving and loading models needs h5py: pip install "certrb[io]"') from exc
    return h5py


def save(model: ReducedModel, path: str | os.PathLike[str], *, online_only: bool = False) -> None:
    """Write a reduced model to an HDF5 file, atomically.

    The file is written to a temporary file in the destination directory,
    flushed to disk and renamed over ``path``; on failure the temporary file is
    removed and an existing file at ``path`` is left untouched.

    Parameters
    ----------
    model : ReducedModel
        Its arrays (``A_N`` (Q_a, N, N), ``f_N`` (Q_f, N), the basis (n_h, N),
        output and estimator data) are stored with their dtypes.
    path : str or path-like
        Destination file.
    online_only : bool, default False
        Leave out the (n_h, N) basis: the loaded model evaluates but cannot
        ``reconstruct``.

    Raises
    ------
    TypeError
        If ``model`` is not a ReducedModel.
    ValueError
        If a coefficient or stability function is neither expressions
        (:class:`certrb.ExpressionCoefficients`) nor re-importable by its
        ``module:qualname`` path (a lambda, a nested function, a callable
        object), or an estimator is not one of certrb's.
    ImportError
        If h5py is not installed.

    Examples
    --------
    >>> certrb.save(model, "model.h5", online_only=True)  # doctest: +SKIP

    """
    if not isinstance(model, ReducedModel):
        raise TypeError(f"model must be a ReducedModel; got {type(model).__name__}")
    h5py = _h5py()
    datasets, attrs = _encode(model, online_only)
    attrs["checksum"] = _checksum(datasets, attrs)
    _write_atomic(h5py, os.fspath(path), datasets, attrs)


def load(path: str | os.PathLike[str]) -> ReducedModel:
    """Read a reduced model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ReducedModel
        Arrays bit-identical to the saved ones; ``basis`` is None for an
        online-only file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        If the file is not a readable HDF5 file, not a certrb model, of an
        unknown version, misses a dataset, fails its checksum, or names a
        callable that cannot be imported.
    ImportError
        If h5py is not installed.

    Notes
    -----
    Expression coefficients are parsed, not imported. Loading imports the modules
    named by the file's other callables; load such files from trusted sources only.

    """
    h5py = _h5py()
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(2, "no such model file", name)
    datasets, attrs = _read(h5py, name)
    _check_manifest(datasets, attrs, name)
    if _checksum(datasets, attrs) != attrs.get("checksum"):
        raise ModelFileError(f"{name}: checksum mismatch, the file is corrupted or was modified")
    return _decode(datasets, attrs, name)


# --- encoding ----------------------------------------------------------------------------------------


def _encode(model: ReducedModel, online_only: bool) -> tuple[Datasets, Attrs]:
    """Flatten a model into datasets {path: array} and root attributes {name: str | int}."""
    if model.interpolation is not None:
        raise ValueError("models with an interpolation-error indicator (matrix EIM) cannot be saved yet")
    space = model.parameter_space
    data: Datasets = {"parameter_space/lower": space.lower, "parameter_space/upper": space.upper,
                      "A_N": model.A_N, "f_N": model.f_N}
    attrs: Attrs = {"format": FORMAT, "version": VERSION, "certrb_version": _version(),
                    "parameter_names": json.dumps(list(space.names)),
                    "parameter_scale": json.dumps(list(space.scale)),
                    "operator_coefficients": _encode_function(model.operator_coefficients, "operator_coefficients"),
                    "rhs_coefficients": _encode_function(model.rhs_coefficients, "rhs_coefficients"),
                    "default_estimator": model.default_estimator}
    if not online_only and model.basis is not None:
        data["basis"] = model.basis
    if model.output is not None:
        attrs["output_coefficients"] = _encode_function(model.output.coefficients, "output coefficients")
        data["output/l_N"] = model.output.l_N
        data["output/dual_gram"] = model.output.dual_gram
        if model.output.dual is not None:
            _encode_dual(model.output, online_only, data, attrs)
    _encode_stability(model.stability, data, attrs)
    attrs["estimators"] = json.dumps(_encode_estimators(model.estimators, data))
    data = {key: _native(value, key) for key, value in data.items()}
    attrs["datasets"] = json.dumps(sorted(data))
    return data, attrs


def _encode_dual(output: ReducedOutput, online_only: bool, data: Datasets, attrs: Attrs) -> None:
    """Store the dual model under ``output/dual/`` (datasets) and ``dual/`` (attributes)."""
    dual_data, dual_attrs = _encode(output.dual, online_only)  # type: ignore[arg-type]
    data.update({f"{_DUAL_DATA}{key}": value for key, value in dual_data.items()})
    attrs.update({f"{_DUAL_ATTR}{key}": value for key, value in dual_attrs.items() if key not in _HEADER})
    data["output/dual_rhs"] = output.dual_rhs  # type: ignore[assignment]
    data["output/dual_operator"] = output.dual_operator  # type: ignore[assignment]


def _encode_stability(stability: Callable, data: Datasets, attrs: Attrs) -> None:
    if isinstance(stability, MinThetaBound):
        attrs["stability_kind"] = "min-theta"
        attrs["stability"] = _encode_function(stability.coefficients, "stability (MinThetaBound) coefficients")
        data["stability/theta_ref"] = np.asarray(stability.theta_ref)
        data["stability/alpha_ref"] = np.asarray(stability.alpha_ref, dtype=np.float64)
    elif isinstance(stability, SCMBound):
        attrs["stability_kind"] = "scm"
        attrs["stability"] = _encode_function(stability.coefficients, "stability (SCM) coefficients")
        attrs["scm"] = json.dumps({"kind": stability.kind, "n_terms": int(stability.n_terms),
                                   "imag_terms": bool(stability.imag_terms),
                                   "n_neighbors": int(stability.n_neighbors)})
        for key in _SCM_ARRAYS:
            data[f"stability/{key}"] = np.asarray(getattr(stability, key))
    else:
        attrs["stability_kind"] = "callable"
        attrs["stability"] = _encode_function(stability, "stability")


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


def _encode_function(func: Callable, what: str) -> str:
    """Text of a coefficient or stability function: ``"conj:"`` prefixes, then an expression or an import path."""
    if isinstance(func, Conjugated):
        return _CONJ + _encode_function(func.func, what)
    if isinstance(func, ExpressionCoefficients):
        return _EXPR + json.dumps({"names": list(func.names), "texts": list(func.texts)})
    return _import_path(func, what)


def _import_path(func: Callable, what: str) -> str:
    """``"module:qualname"`` of a module-level callable, checked to re-import to the same object."""
    hint = (f"define {what} as a module-level function (not a lambda, a nested function or a callable "
            f"object) so that it can be saved by import path")
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise ValueError(f"cannot save {what} {func!r}: {hint}")
    path = f"{module}:{qualname}"
    try:
        resolved = _resolve(path)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot save {what}: {path!r} is not importable ({exc}); {hint}") from exc
    if resolved is not func:
        raise ValueError(f"cannot save {what}: {path!r} resolves to a different object; {hint}")
    return path


def _resolve(path: str) -> Any:
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _value_bytes(arr: NDArray) -> bytes:
    """The bytes of an array's values; x87 long doubles without their (arbitrary) padding bytes."""
    if arr.dtype.type not in (np.longdouble, np.clongdouble) or not _X87_PADDED:
        return arr.tobytes()
    real = np.ascontiguousarray(arr).reshape(-1).view(np.longdouble)  # complex: (re, im) pairs
    return real.view(np.uint8).reshape(-1, real.itemsize)[:, :_X87_BYTES].tobytes()


def _checksum(data: Mapping[str, NDArray], attrs: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of every dataset and every root attribute except ``checksum``."""
    h = hashlib.sha256()
    for key in sorted(data):
        arr = np.asarray(data[key])
        h.update(f"D\0{key}\0{arr.dtype.str}\0{arr.shape}\0{arr.nbytes}\0".encode())
        h.update(_value_bytes(arr))
    for key in sorted(k for k in attrs if k != "checksum"):
        value = attrs[key]
        text = str(int(value)) if isinstance(value, int | np.integer) else str(value)
        h.update(f"A\0{key}\0{len(text)}\0{text}".encode())
    return h.hexdigest()


# --- writing -----------------------------------------------------------------------------------------


def _write_atomic(h5py: Any, path: str, data: Datasets, attrs: Attrs) -> None:
    """Write to a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    # created with mode 0o666 so the umask applies as for any new file; O_EXCL never clobbers
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        with h5py.File(tmp, "w") as f:
            _write(h5py, f, data, attrs)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _write(h5py: Any, f: Any, data: Datasets, attrs: Attrs) -> None:
    for key in sorted(data):
        f.create_dataset(key, data=data[key])
    for key, value in attrs.items():
        if isinstance(value, str):
            # fixed-length strings live in the attribute message itself: no global heap to corrupt
            encoded = value.encode("utf-8")
            f.attrs.create(key, np.bytes_(encoded), dtype=h5py.string_dtype("utf-8", len(encoded)))
        else:
            f.attrs[key] = value
    f.flush()


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows syncing a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# --- reading -----------------------------------------------------------------------------------------


def _read(h5py: Any, name: str) -> tuple[Datasets, Attrs]:
    """Every dataset and root attribute of a certrb model file (header checked first)."""
    try:
        with h5py.File(name, "r") as f:
            attrs = {key: _text(value) for key, value in f.attrs.items()}
            _check_header(attrs, name)
            data: Datasets = {}
            f.visititems(lambda key, obj: _collect(h5py, data, key, obj))
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{name}: not a readable HDF5 model file (truncated or corrupted?): {exc}") from exc
    return data, attrs


def _text(value: Any) -> Any:
    """Fixed-length string attributes read back as bytes; return them as str where they decode."""
    if isinstance(value, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            return value.decode("utf-8")
    return value


def _collect(h5py: Any, data: Datasets, key: str, obj: Any) -> None:
    if isinstance(obj, h5py.Dataset):
        data[key] = np.asarray(obj[()])


def _check_header(attrs: Attrs, name: str) -> None:
    fmt = attrs.get("format")
    if fmt != FORMAT:
        raise ModelFileError(f"{name}: not a certrb model file (format attribute {fmt!r}, expected {FORMAT!r})")
    version = attrs.get("version")
    if not isinstance(version, int | np.integer) or int(version) != VERSION:
        raise ModelFileError(f"{name}: unsupported certrb model file version {version!r}; "
                             f"this certrb reads version {VERSION}")


def _check_manifest(data: Datasets, attrs: Attrs, name: str) -> None:
    manifest = _json(attrs, "datasets", name)
    if not isinstance(manifest, list) or not all(isinstance(k, str) for k in manifest):
        raise ModelFileError(f"{name}: malformed attribute 'datasets'")
    missing = sorted(set(manifest) - set(data))
    if missing:
        raise ModelFileError(f"{name}: missing dataset(s) {missing} listed in the file's manifest")


def _json(attrs: Attrs, key: str, name: str) -> Any:
    try:
        return json.loads(attrs[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{name}: missing or malformed attribute {key!r}") from exc


def _attr(attrs: Attrs, key: str, name: str) -> str:
    value = attrs.get(key)
    if not isinstance(value, str):
        raise ModelFileError(f"{name}: missing or malformed attribute {key!r}")
    return value


def _take(data: Datasets, key: str, name: str) -> NDArray:
    try:
        return data[key]
    except KeyError:
        raise ModelFileError(f"{name}: missing dataset {key!r}") from None


def _callable(attrs: Attrs, key: str, name: str, names: tuple[str, ...]) -> Callable:
    """The function stored under ``key``; expressions must be over the parameter ``names``."""
    text = _attr(attrs, key, name)
    n_conj = 0
    while text.startswith(_CONJ):
        text, n_conj = text[len(_CONJ):], n_conj + 1
    func = _expression(text, key, name, names) if text.startswith(_EXPR + "{") else _imported(text, key, name)
    for _ in range(n_conj):
        func = Conjugated(func)
    return func


def _expression(text: str, key: str, name: str, names: tuple[str, ...]) -> ExpressionCoefficients:
    """Parse ``"expr:" + JSON`` (nothing is imported or evaluated but the checked expressions)."""
    try:
        spec = json.loads(text[len(_EXPR):])
    except ValueError as exc:
        raise ModelFileError(f"{name}: malformed expressions in attribute {key!r}: {exc}") from None
    if not isinstance(spec, dict) or sorted(spec) != ["names", "texts"]:
        raise ModelFileError(f"{name}: malformed expressions in attribute {key!r}: expected an object with "
                             f"'names' and 'texts'")
    if not isinstance(spec["names"], list) or not isinstance(spec["texts"], list):
        raise ModelFileError(f"{name}: malformed expressions in attribute {key!r}: 'names' and 'texts' must be lists")
    try:
        func = ExpressionCoefficients(spec["texts"], spec["names"])
    except ExpressionError as exc:
        raise ModelFileError(f"{name}: invalid expressions in attribute {key!r}: {exc}") from None
    if func.names != names:
        raise ModelFileError(f"{name}: the expressions in attribute {key!r} are over the parameters "
                             f"{list(func.names)}; the file's parameter space has {list(names)}")
    return func


def _imported(path: str, key: str, name: str) -> Callable:
    try:
        func = _resolve(path)
    except Exception as exc:
        raise ModelFileError(f"{name}: cannot import {key} {path!r}: {exc}") from exc
    if not callable(func):
        raise ModelFileError(f"{name}: {key} {path!r} is not callable")
    return func


# --- decoding ----------------------------------------------------------------------------------------


def _decode(data: Datasets, attrs: Attrs, name: str) -> ReducedModel:
    space = ParameterSpace(_json(attrs, "parameter_names", name), _take(data, "parameter_space/lower", name),
                           _take(data, "parameter_space/upper", name), _json(attrs, "parameter_scale", name))
    output = None
    if "output_coefficients" in attrs:
        dual = dual_rhs = dual_operator = None
        if f"{_DUAL_ATTR}operator_coefficients" in attrs:
            dual = _decode({k[len(_DUAL_DATA):]: v for k, v in data.items() if k.startswith(_DUAL_DATA)},
                           {k[len(_DUAL_ATTR):]: v for k, v in attrs.items() if k.startswith(_DUAL_ATTR)}, name)
            dual_rhs, dual_operator = _take(data, "output/dual_rhs", name), _take(data, "output/dual_operator", name)
        output = ReducedOutput(_callable(attrs, "output_coefficients", name, space.names),
                               _take(data, "output/l_N", name), _take(data, "output/dual_gram", name), dual,
                               dual_rhs, dual_operator)
    estimators = {key: _decode_estimator(data, key, est_name, name)
                  for key, est_name in _json(attrs, "estimators", name)}
    return ReducedModel(space, _callable(attrs, "operator_coefficients", name, space.names),
                        _callable(attrs, "rhs_coefficients", name, space.names), _take(data, "A_N", name),
                        _take(data, "f_N", name), _decode_stability(data, attrs, name, space.names), estimators,
                        _attr(attrs, "default_estimator", name), output, data.get("basis"))


def _decode_stability(data: Datasets, attrs: Attrs, name: str, names: tuple[str, ...]) -> Callable:
    kind = _attr(attrs, "stability_kind", name)
    if kind == "callable":
        return _callable(attrs, "stability", name, names)
    if kind == "min-theta":
        return MinThetaBound(_callable(attrs, "stability", name, names), _take(data, "stability/theta_ref", name),
                             float(_take(data, "stability/alpha_ref", name)[()]))
    if kind == "scm":
        fields: dict[str, Any] = {key: _take(data, f"stability/{key}", name) for key in _SCM_ARRAYS}
        fields.update(_json(attrs, "scm", name))
        return SCMBound.from_data(_callable(attrs, "stability", name, names), **fields)
    raise ModelFileError(f"{name}: unknown stability kind {kind!r}")


def _decode_estimator(data: Datasets, key: str, est_name: str, name: str) -> Any:
    if est_name not in EVALUATORS or est_name != key:
        raise ModelFileError(f"{name}: unknown estimator {est_name!r} under {key!r}")
    prefix = f"estimators/{key}/"
    arrays = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
    try:
        return EVALUATORS[est_name].from_arrays(arrays)
    except KeyError as exc:
        raise ModelFileError(f"{name}: missing dataset {prefix}{exc.args[0]}") from None

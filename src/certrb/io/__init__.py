"""Saving and loading reduced models: versioned, checksummed HDF5 files.

Layout of a file (format ``"certrb-model"``, version 2)::

    /                        attrs: format, version, checksum, certrb_version,
                             parameter_names, parameter_scale (JSON lists),
                             operator_coefficients, rhs_coefficients,
                             output_coefficients (optional), stability_kind,
                             stability, scm (SCM bounds), interpolation
                             (optional), default_estimator,
                             estimators (JSON list of [key, name]),
                             datasets (JSON list of every dataset path)
    /parameter_space/lower, /parameter_space/upper     (P,)
    /A_N (Q_a, N, N), /f_N (Q_f, N), /basis (n_h, N) unless online-only
    /output/l_N (Q_l, N), /output/dual_gram (Q_l, Q_l) if there is an output
    /stability/theta_ref (Q_a,), /stability/alpha_ref ()   for min-theta bounds,
    /stability/shifts (Q_a,) (optional), /stability/certified () (1.0 if proved, 0.0 if assumed)
    /estimators/<key>/<array>                           ``Estimator.to_arrays()``
    /functions/<attribute>/<array>, /interpolation/<array>   data-backed objects (records)

Root attributes are fixed-length UTF-8 strings (``version`` is an integer), so
h5py reads them back as ``bytes``. A function is stored as data where it can be:
expression coefficients (:class:`certrb.online.expressions.ExpressionCoefficients`)
as ``"expr:" + json.dumps({"names": [...], "texts": [...]})``, parsed on load; an
object of a class in :data:`certrb.online.nonaffine.RECORDS` (a matrix-EIM
coefficient function or interpolation indicator) as ``"record:<kind>"`` with its
``to_arrays()`` under ``functions/<attribute>/`` (``interpolation/`` for the
model's ``interpolation``), rebuilt by ``from_arrays``. Any other callable is
stored by import path ``"module:qualname"``; :func:`save` refuses one that another
process cannot import. A :class:`certrb.online.coefficients.Conjugated` wrapper is
stored as ``"conj:"`` followed by its function's text. The checksum is the SHA-256
of every dataset (path, dtype, shape and bytes, in sorted path order) followed by
every root attribute but the checksum itself (sorted by name).

Trust: the checksum detects accidents, not crafted files (anyone can recompute
it). :func:`load` therefore imports nothing named by a file unless asked
(``trusted=True``, or the functions passed as ``coefficients=``), and checks every
dataset against the metadata and the others (dtype, shape, finiteness, signs,
triangularity, the sizes N, K = Q_f + Q_a N, Q, m, P) before it builds the model.

Models built with ``precision="extended"`` store ``A_N``, ``f_N``, the basis and
the estimator data as numpy.longdouble / numpy.clongdouble, which HDF5 keeps
natively; such files are read back on platforms with the same long double
format. The 80-bit x87 format is padded to 16 bytes whose last 6 are arbitrary:
the checksum covers the 10 bytes of each value only.

h5py is needed (``pip install "certrb[io]"``) and imported only here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import importlib
import json
import os
import secrets
import sys
import types
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
from ..online.expressions import ExpressionCoefficients
from ..online.model import ReducedModel, ReducedOutput
from ..online.parameters import ParameterSpace
from ..online.scm import SCMBound
from ..online.stability import MinThetaBound

__all__ = ["FORMAT", "VERSION", "load", "save"]

FORMAT = "certrb-model"
VERSION = 2

_SCM_ARRAYS = ("box", "points", "values", "lower_values", "y", "history", "scaling")
_CONJ = "conj:"  # prefix of a Conjugated coefficient function
_EXPR = "expr:"  # prefix of expression coefficients, followed by a JSON object (so never an import path)
_RECORD = "record:"  # prefix of a data-backed object (certrb.online.nonaffine.RECORDS), followed by its kind
_FUNCTION_DATA = "functions/"  # datasets of data-backed coefficient functions: functions/<attribute>/<array>
_INTERPOLATION = "interpolation"  # attribute and dataset folder of a data-backed interpolation indicator
_FUNCTIONS = ("operator_coefficients", "rhs_coefficients", "output_coefficients", "stability")
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

    The file is written to a temporary file in the destination directory (an
    unnamed one on Linux, so that a killed process leaves nothing behind), flushed
    to disk and renamed over ``path``; on any failure or interrupt the temporary
    file is removed and an existing file at ``path`` is left untouched.

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
        (:class:`certrb.ExpressionCoefficients`), nor a data-backed object of
        :data:`certrb.online.nonaffine.RECORDS`, nor a module-level function another
        process can import by its ``module:qualname`` path (refused: functions of
        ``__main__``, lambdas, nested functions and closures, bound methods, other
        callable objects); if ``model.interpolation`` is not such an object; or if an
        estimator is not one of certrb's.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    KeyboardInterrupt
        Re-raised after an interrupt, an existing file at ``path`` left untouched.
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


def load(path: str | os.PathLike[str], *, trusted: bool = False,
         coefficients: Mapping[str, Callable] | None = None) -> ReducedModel:
    """Read a reduced model written by :func:`save`, checking every dataset first.

    Parameters
    ----------
    path : str or path-like
    trusted : bool, default False
        Import the functions the file names by import path (``module:qualname``). Only
        for files from a trusted source: importing a module runs its code.
    coefficients : mapping str -> callable, optional
        The functions the file names by import path, given by the caller instead, keyed by
        the file's attribute names: ``"operator_coefficients"``, ``"rhs_coefficients"``,
        ``"output_coefficients"``, ``"stability"`` and, for a dual model, the same names
        prefixed by ``"dual/"`` (the function the stored path names; a stored conjugation
        is applied on top). Nothing is imported for them.

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
        If the file is not a readable HDF5 file, not a certrb model, of an unknown version,
        misses a dataset, fails its checksum, holds a dataset or attribute inconsistent with
        the others (wrong dtype, shape, non-finite or out-of-range values; the message names
        it), or names a function by import path while neither ``trusted`` nor
        ``coefficients`` provides it (the message says how to load it).
    ValueError
        If ``coefficients`` names an attribute the file does not store by import path.
    TypeError
        If a value of ``coefficients`` is not callable.
    ImportError
        If h5py is not installed.

    Notes
    -----
    Expression coefficients and data-backed objects are stored as data and read without
    importing anything; by default, so is every file :func:`save` writes from them.

    """
    h5py = _h5py()
    given = dict(coefficients or {})
    for key, func in given.items():
        if not callable(func):
            raise TypeError(f"coefficients[{key!r}] must be callable; got {type(func).__name__}")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(2, "no such model file", name)
    datasets, attrs = _read(h5py, name)
    _check_manifest(datasets, attrs, name)
    if _checksum(datasets, attrs) != attrs.get("checksum"):
        raise ModelFileError(f"{name}: checksum mismatch, the file is corrupted or was modified")
    _check_trust(attrs, name, trusted, given)
    try:
        return _decode(datasets, attrs, _Context(name, trusted, given))
    except ModelFileError:
        raise
    except Exception as exc:  # a failure no check names: still a bad file, reported as one
        raise ModelFileError(f"{name}: invalid model data: {type(exc).__name__}: {exc}") from exc


# --- encoding ----------------------------------------------------------------------------------------


def _encode(model: ReducedModel, online_only: bool) -> tuple[Datasets, Attrs]:
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
        attrs[_INTERPOLATION] = _encode_record(model.interpolation, _INTERPOLATION, data)
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
    return _RECORD + kind


def _encode_function(func: Callable, key: str, data: Datasets) -> str:
    """Text of the function stored under attribute ``key``: ``"conj:"`` prefixes, then its kind.

    Expressions as ``"expr:" + JSON``, data-backed objects as ``"record:<kind>"`` with their
    arrays under ``functions/<key>/``, other callables by import path.
    """
    if isinstance(func, Conjugated):
        return _CONJ + _encode_function(func.func, key, data)
    if isinstance(func, ExpressionCoefficients):
        return _EXPR + json.dumps({"names": list(func.names), "texts": list(func.texts)})
    if _record_kind(func) is not None:
        return _encode_record(func, f"{_FUNCTION_DATA}{key}", data)
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
    """Write the file complete, fsync it, then rename it over ``path``; nothing of it is left on failure.

    On Linux the data go to an unnamed ``O_TMPFILE`` file in the destination folder, linked
    to a temporary name only once complete, so a killed process leaves no partial file
    behind; elsewhere to a named temporary file. An existing ``path`` keeps its permissions;
    a new file gets ``0o666`` less the umask, as :func:`open` gives.
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "the folder of the model file does not exist", path)
    try:
        mode: int | None = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(8)}.tmp")
    fd = _unnamed_file(directory, path)
    linked = fd is None
    if fd is None:  # created with mode 0o666 so the umask applies as for any new file; O_EXCL never clobbers
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with _FileObject(os.fdopen(fd, "w+b")) as fh:
            fh.write_model(h5py, data, attrs)
            os.fsync(fd)
            if mode is not None:
                os.fchmod(fd, mode)
            if not linked:
                _link(fd, tmp)
                linked = True
        os.replace(tmp, target)
    except BaseException:
        if linked:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        raise
    _fsync_directory(directory)


def _unnamed_file(directory: str, path: str) -> int | None:
    """A descriptor of a new unnamed file in ``directory`` (Linux ``O_TMPFILE``), or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):  # a file system without O_TMPFILE
            return None
        raise type(exc)(exc.errno, f"cannot write the model file: {exc.strerror}", path) from exc


def _link(fd: int, name: str) -> None:
    """Give the unnamed file ``fd`` the name ``name`` (``linkat`` of ``/proc/self/fd/<fd>``, following the link)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


class _FileObject:
    """A binary file for h5py's file-object driver that keeps the first exception its methods raise.

    h5py turns an exception raised inside a driver call (a KeyboardInterrupt, say) into its own
    OSError; :meth:`write_model` re-raises the original instead.
    """

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.error: BaseException | None = None

    def __enter__(self) -> _FileObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._fh, method)(*args)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def read(self, *args: Any) -> Any:
        return self._call("read", *args)

    def readinto(self, buffer: Any) -> Any:
        return self._call("readinto", buffer)

    def write(self, buffer: Any) -> Any:
        return self._call("write", buffer)

    def seek(self, *args: Any) -> Any:
        return self._call("seek", *args)

    def tell(self) -> Any:
        return self._call("tell")

    def truncate(self, *args: Any) -> Any:
        return self._call("truncate", *args)

    def flush(self) -> Any:
        return self._call("flush")

    def write_model(self, h5py: Any, data: Datasets, attrs: Attrs) -> None:
        """Write the datasets and root attributes through h5py and flush them to the file."""
        try:
            with h5py.File(self, "w") as f:
                _write(h5py, f, data, attrs)
        except BaseException as exc:
            if self.error is not None and self.error is not exc:
                raise self.error from exc
            raise
        self.flush()


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
    extra = sorted(set(data) - set(manifest))
    if extra:
        raise ModelFileError(f"{name}: dataset(s) {extra} not listed in the file's manifest")


def _json(attrs: Attrs, key: str, name: str) -> Any:
    try:
        return json.loads(attrs[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{name}: missing or malformed attribute {key!r}") from exc


# --- trust -------------------------------------------------------------------------------------------


def _unconjugated(text: str) -> tuple[str, int]:
    """A function's text without its ``"conj:"`` prefixes, and their number."""
    n_conj = 0
    while text.startswith(_CONJ):
        text, n_conj = text[len(_CONJ):], n_conj + 1
    return text, n_conj


def _stored_paths(attrs: Attrs) -> dict[str, str]:
    """Attribute -> import path, for every function the file names by import path (nothing is imported)."""
    paths = {}
    for key, value in attrs.items():
        if key.rpartition("/")[2] in _FUNCTIONS and isinstance(value, str):
            text = _unconjugated(value)[0]
            if not text.startswith((_EXPR, _RECORD)):
                paths[key] = text
    return paths


def _check_trust(attrs: Attrs, name: str, trusted: bool, given: Mapping[str, Callable]) -> None:
    """Refuse a file naming functions by import path unless ``trusted`` or the caller ``given`` them."""
    paths = _stored_paths(attrs)
    unknown = sorted(set(given) - set(paths))
    if unknown:
        raise ValueError(f"coefficients names {unknown}, which {name} does not store by import path; "
                         f"the attributes it stores so are {sorted(paths)}")
    missing = {key: path for key, path in sorted(paths.items()) if key not in given}
    if missing and not trusted:
        listed = ", ".join(f"{key} = {path!r}" for key, path in missing.items())
        example = ", ".join(f"{key!r}: ..." for key in missing)
        raise ModelFileError(
            f"{name}: the file names functions by import path ({listed}) and load imports no code named by a "
            f"file unless told to. If you trust the file and can import those modules, use "
            f"certrb.load(path, trusted=True); or pass the functions yourself: certrb.load(path, "
            f"coefficients={{{example}}}). A model built with expression coefficients, e.g. "
            f"AffineOperator(terms, [\"1\", \"mu1\"]), is stored as data and needs neither.")


# --- decoding ----------------------------------------------------------------------------------------

_DOUBLE = (np.float64, np.complex128)
_EXTENDED = (np.longdouble, np.clongdouble)
_REAL = (np.float64,)
_VALUE_ARRAYS = ("R", "G", "vectors", "matrix", "remainder_G")  # estimator arrays in the model's precision
_SCM_DIMS = {"box": 2, "points": 2, "values": 1, "lower_values": 1, "y": 2, "history": 1, "scaling": 2}
_SCM_SPEC = {"kind": str, "n_terms": int, "imag_terms": bool, "n_neighbors": int}


@dataclass(frozen=True)
class _Context:
    """What decoding needs besides the data: the file's name, trust, given functions, and the dual prefixes."""

    name: str
    trusted: bool
    given: Mapping[str, Callable]
    attr_prefix: str = ""
    data_prefix: str = ""

    def error(self, key: str, message: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: dataset {self.data_prefix + key!r} {message}")

    def attr_error(self, key: str, message: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: attribute {self.attr_prefix + key!r} {message}")

    def dual(self) -> _Context:
        return dataclasses.replace(self, attr_prefix=self.attr_prefix + _DUAL_ATTR,
                                   data_prefix=self.data_prefix + _DUAL_DATA)


def _attr(attrs: Attrs, key: str, ctx: _Context) -> str:
    value = attrs.get(key)
    if not isinstance(value, str):
        raise ctx.attr_error(key, "is missing or not a string")
    return value


def _attr_json(attrs: Attrs, key: str, ctx: _Context) -> Any:
    try:
        return json.loads(_attr(attrs, key, ctx))
    except ValueError:
        raise ctx.attr_error(key, "is not valid JSON") from None


def _array(data: Datasets, key: str, ctx: _Context, dtypes: tuple[type, ...], shape: tuple[int | None, ...],
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


def _decode(data: Datasets, attrs: Attrs, ctx: _Context) -> ReducedModel:
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
    if _INTERPOLATION in attrs:
        text = _attr(attrs, _INTERPOLATION, ctx)
        if not text.startswith(_RECORD):
            raise ctx.attr_error(_INTERPOLATION, "is not a stored record")
        interpolation = _decode_record(data, text[len(_RECORD):], _INTERPOLATION, ctx)
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
                                stability_data, ctx)
    return ReducedModel(space, theta, phi, A_N, f_N, stability, estimators, default, output, basis, interpolation,
                        weights)


def _check_described(data: Datasets, attrs: Attrs, ctx: _Context, stability_data: bool) -> None:
    """Refuse datasets the attributes do not describe (an output, estimator or record whose attribute is gone)."""
    exact = {"parameter_space/lower", "parameter_space/upper", "A_N", "f_N", "basis", "reconstruction_weights"}
    folders = [f"estimators/{key}/" for key, _ in json.loads(attrs["estimators"])]
    folders += ["stability/"] if stability_data else []
    if "output_coefficients" in attrs:
        exact |= {"output/l_N", "output/dual_gram"}
        if f"{_DUAL_ATTR}operator_coefficients" in attrs:
            exact |= {"output/dual_rhs", "output/dual_operator"}
            folders.append(_DUAL_DATA)
    folders += [f"{_INTERPOLATION}/"] if str(attrs.get(_INTERPOLATION, "")).startswith(_RECORD) else []
    folders += [f"{_FUNCTION_DATA}{key}/" for key in _FUNCTIONS
                if _unconjugated(str(attrs.get(key, "")))[0].startswith(_RECORD)]
    for key in data:
        if key not in exact and not key.startswith(tuple(folders)):
            raise ctx.error(key, "is not part of the model its attributes describe")


def _decode_space(data: Datasets, attrs: Attrs, ctx: _Context) -> ParameterSpace:
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


def _decode_estimators(data: Datasets, attrs: Attrs, ctx: _Context, family: tuple[type, ...],
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


def _check_estimator(est: Estimator, prefix: str, ctx: _Context, family: tuple[type, ...],
                     sizes: tuple[int, int, int, bool]) -> None:
    """An estimator's data against the model: precision, field, K components (sub-model sizes N, P)."""
    k, n, p, complex_ = sizes
    arrays = est.to_arrays()
    for key in _VALUE_ARRAYS:  # the Riesz representatives of the f_p and A_q v_i are complex iff A_N is
        if key in arrays and (arrays[key].dtype.type not in family or (arrays[key].dtype.kind == "c") != complex_):
            raise ctx.error(prefix + key, f"has dtype {arrays[key].dtype}; the model's data (A_N) are "
                                          f"{'complex' if complex_ else 'real'} of "
                                          f"{' or '.join(np.dtype(t).name for t in family)}")
    if isinstance(est, PointBasisEstimator):
        if est.points.shape[1] != p or est.sizes.max() > n:
            raise ctx.error(prefix + "points", f"must have {p} columns, and sizes be at most N = {n}")
        components = est.n_components
    else:
        matrix = {ExpandedEstimator: "G", OrthonormalEstimator: "R", EIMEstimator: "vectors"}[type(est)]
        components = arrays[matrix].shape[1]
    if components != k:
        raise ctx.error(prefix[:-1], f"has {components} residual components; the model has K = Q_f + Q_a N = {k}")


def _decode_record(data: Datasets, kind: str, prefix: str, ctx: _Context) -> Any:
    """A data-backed object of :data:`certrb.online.nonaffine.RECORDS` from its arrays under ``prefix/``."""
    cls = nonaffine.RECORDS.get(kind)
    if cls is None:
        raise ctx.error(prefix, f"holds an unknown kind of data {kind!r}; known: {sorted(nonaffine.RECORDS)}")
    arrays = {k[len(prefix) + 1:]: v for k, v in data.items() if k.startswith(prefix + "/")}
    try:
        return cls.from_arrays(arrays)  # type: ignore[attr-defined]
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ctx.error(prefix, f"holds invalid {kind} data: {exc}") from None


def _stability_data(data: Datasets, attrs: Attrs, ctx: _Context, q_a: int,
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
    if kind != "scm":
        raise ctx.attr_error("stability_kind", f"is {kind!r}; expected 'callable', 'min-theta' or 'scm'")
    spec = _attr_json(attrs, "scm", ctx)
    if not (isinstance(spec, dict) and spec.keys() == _SCM_SPEC.keys() and all(
            type(spec[key]) is t for key, t in _SCM_SPEC.items())):
        raise ctx.attr_error("scm", f"must be an object of {list(_SCM_SPEC)} typed {list(_SCM_SPEC.values())}")
    fields = {key: _array(data, f"stability/{key}", ctx, _REAL, (None,) * ndim, finite=key != "history")
              for key, ndim in _SCM_DIMS.items()}
    if fields["points"].shape[1] != p:
        raise ctx.error("stability/points", f"has {fields['points'].shape[1]} columns; the model has {p} parameters")
    return kind, {**spec, **fields, "certified": _certified_flag(data, ctx)}, spec["n_terms"]


def _certified_flag(data: Datasets, ctx: _Context) -> bool:
    """The stability bound's ``certified`` flag, stored as exactly 1.0 (proved) or 0.0 (assumed)."""
    flag = float(_array(data, "stability/certified", ctx, _REAL, ())[()])
    if flag not in (0.0, 1.0):
        raise ctx.error("stability/certified", f"is {flag}; expected 1.0 (certified) or 0.0 (assumed)")
    return flag == 1.0


def _make_stability(kind: str, coefficients: Callable, fields: dict[str, Any], ctx: _Context) -> Callable:
    if kind == "callable":
        if isinstance(coefficients, ExpressionCoefficients | Conjugated):
            raise ctx.attr_error("stability", "holds coefficients (n_mu, Q), not a stability bound (n_mu,)")
        return coefficients
    try:
        if kind == "min-theta":
            return MinThetaBound(coefficients, **fields)
        return SCMBound.from_data(coefficients, **fields)
    except ValueError as exc:
        raise ctx.error("stability", f"is invalid: {exc}") from None


def _output_data(data: Datasets, attrs: Attrs, ctx: _Context, family: tuple[type, ...],
                 operator_shape: tuple[int, ...], q_f: int) -> tuple[Any, ...] | None:
    """``(l_N, dual_gram, dual, dual_rhs, dual_operator)`` of the output, checked; None without one."""
    if "output_coefficients" not in attrs:
        return None
    q_a, n = operator_shape[:2]
    l_N = _array(data, "output/l_N", ctx, family, (None, n))
    gram = _array(data, "output/dual_gram", ctx, _DOUBLE, (l_N.shape[0], l_N.shape[0]))  # double in any model
    if l_N.shape[0] < 1 or not np.array_equal(gram, gram.conj().T) or not (gram.diagonal().real >= 0).all():
        raise ctx.error("output/dual_gram", "is not Hermitian with a non-negative diagonal (or the output is empty)")
    if f"{_DUAL_ATTR}operator_coefficients" not in attrs:
        return l_N, gram, None, None, None
    dual = _decode({k[len(_DUAL_DATA):]: v for k, v in data.items() if k.startswith(_DUAL_DATA)},
                   {k[len(_DUAL_ATTR):]: v for k, v in attrs.items() if k.startswith(_DUAL_ATTR)}, ctx.dual())
    dual_rhs = _array(data, "output/dual_rhs", ctx, _DOUBLE + family, (q_f, dual.n_basis))
    dual_operator = _array(data, "output/dual_operator", ctx, _DOUBLE + family, (q_a, dual.n_basis, n))
    return l_N, gram, dual, dual_rhs, dual_operator


def _function(data: Datasets, attrs: Attrs, key: str, ctx: _Context, names: tuple[str, ...],
              terms: int | None) -> Callable:
    """The function stored under attribute ``key``; expressions over ``names`` with ``terms`` columns."""
    text, n_conj = _unconjugated(_attr(attrs, key, ctx))
    func: Callable
    if text.startswith(_EXPR):
        func = _expression(text, key, ctx, names, terms)
    elif text.startswith(_RECORD):
        func = _decode_record(data, text[len(_RECORD):], f"{_FUNCTION_DATA}{key}", ctx)
    elif ctx.attr_prefix + key in ctx.given:
        func = ctx.given[ctx.attr_prefix + key]
    elif ctx.trusted:
        func = _imported(text, key, ctx)
    else:  # _check_trust refused the file already
        raise ctx.attr_error(key, f"names {text!r} by import path; load(path, trusted=True) imports it")
    for _ in range(n_conj):
        func = Conjugated(func)
    return func


def _expression(text: str, key: str, ctx: _Context, names: tuple[str, ...],
                terms: int | None) -> ExpressionCoefficients:
    """Parse ``"expr:" + JSON`` (nothing is imported or evaluated but the checked expressions)."""
    where = f"{ctx.name}: attribute {ctx.attr_prefix + key!r}"
    try:
        spec = json.loads(text[len(_EXPR):])
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


def _imported(path: str, key: str, ctx: _Context) -> Callable:
    try:
        func = _resolve(path)
    except Exception as exc:
        raise ModelFileError(f"{ctx.name}: cannot import {ctx.attr_prefix + key} {path!r}: {exc}") from exc
    if not callable(func):
        raise ModelFileError(f"{ctx.name}: {ctx.attr_prefix + key} {path!r} is not callable")
    return func

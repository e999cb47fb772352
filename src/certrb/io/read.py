"""Reading a model file: every dataset and root attribute, header and manifest checked."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np

from ..errors import ModelFileError
from .layout import FORMAT, VERSION, Attrs, Datasets

# errors h5py raises on unreadable, truncated or malformed files
_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def read_model(h5py: Any, name: str, *, fmt: str = FORMAT, version: int = VERSION) -> tuple[Datasets, Attrs]:
    """Every dataset and root attribute of a certrb file of format ``fmt`` (header checked first)."""
    try:
        with h5py.File(name, "r") as f:
            attrs = {key: _text(value) for key, value in f.attrs.items()}
            _check_header(attrs, name, fmt, version)
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


def _check_header(attrs: Attrs, name: str, expected: str, supported: int) -> None:
    fmt = attrs.get("format")
    if fmt != expected:
        raise ModelFileError(f"{name}: not a {expected} file (format attribute {fmt!r}, expected {expected!r})")
    version = attrs.get("version")
    if not isinstance(version, int | np.integer) or int(version) != supported:
        raise ModelFileError(f"{name}: unsupported {expected} file version {version!r}; "
                             f"this certrb reads version {supported}")


def check_manifest(data: Datasets, attrs: Attrs, name: str) -> None:
    """Refuse a file whose datasets are not exactly those its ``datasets`` attribute lists."""
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

"""The checksum of a model file: SHA-256 of its datasets and root attributes."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

# x86 long double: 10 bytes of value (64-bit mantissa with explicit integer bit) padded to 12 or 16
_X87_BYTES = 10
_X87_PADDED = (np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize > _X87_BYTES
               and sys.byteorder == "little")


def _value_bytes(arr: NDArray) -> bytes:
    """The bytes of an array's values; x87 long doubles without their (arbitrary) padding bytes."""
    if arr.dtype.type not in (np.longdouble, np.clongdouble) or not _X87_PADDED:
        return arr.tobytes()
    real = np.ascontiguousarray(arr).reshape(-1).view(np.longdouble)  # complex: (re, im) pairs
    return real.view(np.uint8).reshape(-1, real.itemsize)[:, :_X87_BYTES].tobytes()


def checksum(data: Mapping[str, NDArray], attrs: Mapping[str, Any]) -> str:
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

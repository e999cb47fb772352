"""Translators from other libraries' models to certrb problems (offline side).

:func:`from_pymor` turns a pyMOR ``StationaryModel`` into a :class:`certrb.Problem` on its free
degrees of freedom. The translators import their library inside the call only, so certrb imports
without them; the public names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {"certrb.interop.pymor": ("PymorProblem", "from_pymor")}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'certrb.interop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

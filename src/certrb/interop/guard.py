"""Refuse objects of another library where certrb expects arrays, pointing to the translator.

Detection is by the module name of the object's class (and its bases), so pyMOR is never imported here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_pymor", "reject_pymor"]


def is_pymor(obj: Any) -> bool:
    """Whether ``obj`` is an instance of a pyMOR class (a VectorArray, an Operator, a ParameterFunctional, ...)."""
    return any(cls.__module__.split(".")[0] == "pymor" for cls in type(obj).__mro__)


def reject_pymor(obj: Any, what: str) -> None:
    """Raise TypeError if ``obj`` is a pyMOR object.

    Parameters
    ----------
    obj : object
    what : str
        Name of the argument, for the message (e.g. ``"terms[2]"``).

    Raises
    ------
    TypeError
        Naming the pyMOR class and :func:`certrb.interop.from_pymor`.

    """
    if is_pymor(obj):
        raise TypeError(f"{what} is a pyMOR {type(obj).__name__}; certrb expects arrays, sparse matrices and "
                        f"expression strings here. Translate the whole pyMOR model with "
                        f"certrb.interop.from_pymor(fom, parameter_space=...)")

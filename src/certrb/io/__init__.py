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
    /stability/values (n_1, .., n_P), /stability/theta (n_nodes, Q_a), /stability/gamma (Q_a,),
    /stability/quality ()                               for Lipschitz grid bounds
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

import os
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ModelFileError
from ..online.model import ReducedModel
from .checksum import checksum
from .decode import Context, decode
from .encode import encode
from .layout import FORMAT, VERSION
from .read import check_manifest, read_model
from .trust import check_trust
from .write import write_atomic

__all__ = ["FORMAT", "VERSION", "load", "save"]


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
    datasets, attrs = encode(model, online_only)
    attrs["checksum"] = checksum(datasets, attrs)
    write_atomic(h5py, os.fspath(path), datasets, attrs)


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
    datasets, attrs = read_model(h5py, name)
    check_manifest(datasets, attrs, name)
    if checksum(datasets, attrs) != attrs.get("checksum"):
        raise ModelFileError(f"{name}: checksum mismatch, the file is corrupted or was modified")
    check_trust(attrs, name, trusted, given)
    try:
        return decode(datasets, attrs, Context(name, trusted, given))
    except ModelFileError:
        raise
    except Exception as exc:  # a failure no check names: still a bad file, reported as one
        raise ModelFileError(f"{name}: invalid model data: {type(exc).__name__}: {exc}") from exc

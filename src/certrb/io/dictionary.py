"""Saving and loading a dictionary of reduced models as one checksummed HDF5 file.

Layout (format ``"certrb-dictionary"``, version 1)::

    /                     attrs: format, version, checksum, certrb_version, datasets (manifest),
                          selection, n_candidates, n_models,
                          models/<i>/<attribute>   every root attribute of model i's own file
    /centers              (n_models, P) float64
    /models/<i>/<path>    every dataset of model i's own file

Each model is encoded exactly as :func:`certrb.save` encodes it (its own manifest and checksum
kept under its prefix) and decoded as :func:`certrb.load` decodes it, with the same checks and
the same trust rule: nothing named by the file is imported unless ``trusted=True`` or given as
``coefficients=``. The file's checksum covers every dataset and attribute. Models whose stored
stability data are identical share one stability object after loading (it is evaluated once per
parameter online).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

import numpy as np

from ..errors import ModelFileError
from ..online.dictionary import Dictionary
from ..online.model import ReducedModel
from .checksum import checksum
from .decode import Context, decode
from .encode import _version, encode
from .layout import FORMAT, VERSION, Attrs, Datasets
from .read import check_manifest, read_model
from .trust import check_trust
from .write import write_atomic

__all__ = ["DICTIONARY_FORMAT", "DICTIONARY_VERSION", "load_dictionary", "save_dictionary"]

DICTIONARY_FORMAT = "certrb-dictionary"
DICTIONARY_VERSION = 1
_MODELS = "models/"
_STABILITY_ATTRS = ("stability", "stability_kind", "scm")


def _h5py():
    from . import _h5py

    return _h5py()


def save_dictionary(dictionary: Dictionary, path: str | os.PathLike[str], *, online_only: bool = False) -> None:
    """Write a dictionary to one HDF5 file, atomically (as :func:`certrb.save` writes a model).

    Parameters
    ----------
    dictionary : Dictionary
    path : str or path-like
    online_only : bool
        Leave out every model's (n_h, N) basis.

    Raises
    ------
    TypeError
        If ``dictionary`` is not a Dictionary.
    ValueError
        If a model holds a function :func:`certrb.save` refuses.

    """
    if not isinstance(dictionary, Dictionary):
        raise TypeError(f"dictionary must be a Dictionary; got {type(dictionary).__name__}")
    h5py = _h5py()
    data: Datasets = {"centers": np.ascontiguousarray(dictionary.centers, dtype=np.float64)}
    attrs: Attrs = {"format": DICTIONARY_FORMAT, "version": DICTIONARY_VERSION, "certrb_version": _version(),
                    "selection": dictionary.selection, "n_candidates": int(dictionary.n_candidates),
                    "n_models": len(dictionary.models)}
    for i, model in enumerate(dictionary.models):
        d, a = encode(model, online_only)
        a["checksum"] = checksum(d, a)
        data.update({f"{_MODELS}{i}/{k}": v for k, v in d.items()})
        attrs.update({f"{_MODELS}{i}/{k}": v for k, v in a.items()})
    attrs["datasets"] = json.dumps(sorted(data))
    attrs["checksum"] = checksum(data, attrs)
    write_atomic(h5py, os.fspath(path), data, attrs)


def load_dictionary(path: str | os.PathLike[str], *, trusted: bool = False,
                    coefficients: Mapping[str, Callable] | None = None) -> Dictionary:
    """Read a dictionary written by :func:`save_dictionary`, every model checked as :func:`certrb.load` does.

    Parameters
    ----------
    path : str or path-like
    trusted : bool
        Import the functions the models name by import path (trusted files only).
    coefficients : mapping str -> callable, optional
        Those functions given instead, keyed as for :func:`certrb.load`; used for every model.

    Returns
    -------
    Dictionary

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        If the file is not a certrb dictionary, fails a checksum, holds an inconsistent model,
        or names functions by import path while neither ``trusted`` nor ``coefficients`` provides them.

    """
    h5py = _h5py()
    given = dict(coefficients or {})
    for key, func in given.items():
        if not callable(func):
            raise TypeError(f"coefficients[{key!r}] must be callable; got {type(func).__name__}")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(2, "no such dictionary file", name)
    data, attrs = read_model(h5py, name, fmt=DICTIONARY_FORMAT, version=DICTIONARY_VERSION)
    check_manifest(data, attrs, name)
    if checksum(data, attrs) != attrs.get("checksum"):
        raise ModelFileError(f"{name}: checksum mismatch, the file is corrupted or was modified")
    n_models = attrs.get("n_models")
    if not isinstance(n_models, int | np.integer) or n_models < 1:
        raise ModelFileError(f"{name}: attribute 'n_models' must be a positive integer; got {n_models!r}")
    _check_prefixes(data, attrs, int(n_models), name)
    models: list[ReducedModel] = []
    shared: dict[str, Callable] = {}
    for i in range(int(n_models)):
        model, key = _load_model(data, attrs, f"{_MODELS}{i}/", name, trusted, given)
        stability = shared.setdefault(key, model.stability)
        models.append(model if stability is model.stability else _with_stability(model, stability))
    selection, n_candidates = attrs.get("selection"), attrs.get("n_candidates")
    if "centers" not in data:
        raise ModelFileError(f"{name}: missing dataset 'centers'")
    try:
        return Dictionary(models, data["centers"], selection, n_candidates)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{name}: invalid dictionary data: {exc}") from exc


def _check_prefixes(data: Datasets, attrs: Attrs, n_models: int, name: str) -> None:
    """Refuse datasets or attributes under ``models/<i>/`` with ``i`` not in ``0 .. n_models - 1``."""
    for key in (*data, *attrs):
        if key.startswith(_MODELS):
            index, slash, _ = key[len(_MODELS):].partition("/")
            if not (slash and index.isdecimal() and int(index) < n_models and str(int(index)) == index):
                raise ModelFileError(f"{name}: {key!r} belongs to no model (the file has {n_models})")


def _load_model(data: Datasets, attrs: Attrs, prefix: str, name: str, trusted: bool,
                given: Mapping[str, Callable]) -> tuple[ReducedModel, str]:
    """Model under ``prefix`` and the fingerprint of its stored stability data."""
    d = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
    a = {k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)}
    where = f"{name} [{prefix[:-1]}]"
    if a.get("format") != FORMAT or a.get("version") != VERSION:
        raise ModelFileError(f"{where}: not a certrb model of version {VERSION}")
    check_manifest(d, a, where)
    if checksum(d, a) != a.get("checksum"):
        raise ModelFileError(f"{where}: checksum mismatch")
    check_trust(a, where, trusted, given)
    ctx = Context(name, trusted, {prefix + k: f for k, f in given.items()}, attr_prefix=prefix, data_prefix=prefix)
    try:
        model = decode(d, a, ctx)
    except ModelFileError:
        raise
    except Exception as exc:  # a failure no check names: still a bad file, reported as one
        raise ModelFileError(f"{where}: invalid model data: {type(exc).__name__}: {exc}") from exc
    stab_data = {k: v for k, v in d.items() if k.startswith(("stability/", "functions/stability/"))}
    stab_attrs = {k: a[k] for k in _STABILITY_ATTRS if k in a}
    return model, checksum(stab_data, stab_attrs)


def _with_stability(model: ReducedModel, stability: Callable) -> ReducedModel:
    """``model`` evaluated with another (identical) stability object."""
    return ReducedModel(model.parameter_space, model.operator_coefficients, model.rhs_coefficients, model.A_N,
                        model.f_N, stability, model.estimators, model.default_estimator, model.output, model.basis,
                        model.interpolation, model.reconstruction_weights)

"""Crafted dictionary files: checksums, structure and the trust rule.

Each case saves a small dictionary, changes one dataset or attribute, rewrites the file (with
a valid outer checksum and manifest unless the case is about the checksum) and asserts that
``load_dictionary`` raises ModelFileError naming the problem; nothing named by the file is
imported unless trusted.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import certrb
from certrb import io
from certrb.errors import ModelFileError
from certrb.io.checksum import checksum
from certrb.io.dictionary import DICTIONARY_FORMAT, load_dictionary, save_dictionary
from certrb.io.read import read_model
from certrb.io.write import write_atomic
from certrb.problems.diffusion1d import diffusion1d


def _models(expressions: bool):
    p = diffusion1d(20)
    if expressions:  # stored as data: loading needs no trust
        p = certrb.Problem(certrb.AffineOperator(p.operator.terms, ["1", "mu1", "mu2"]),
                           certrb.AffineFunctional(p.rhs.terms, ["1"]), p.inner_product, p.parameter_space,
                           stability=certrb.MinTheta([1.0, 1.0], alpha_ref=1.0))
    space = p.parameter_space
    centers = space.sample(2, rng=0)
    models = []
    for c in centers:
        near = np.clip(c + 0.05 * (space.upper - space.lower) * np.array([[0.0, 0.0], [1.0, -1.0]]),
                       space.lower, space.upper)
        models.append(certrb.reduce(certrb.OfflineBuilder(p), p.solve(near).T))
    return certrb.Dictionary(models, centers), p


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d, p = _models(expressions=True)
    path = tmp_path_factory.mktemp("dict") / "d.h5"
    save_dictionary(d, path)
    data, attrs = read_model(io._h5py(), str(path), fmt=DICTIONARY_FORMAT, version=1)
    return d, p, path, data, attrs


def _write(path, data, attrs, *, outer=True):
    attrs["datasets"] = json.dumps(sorted(data))
    if outer:
        attrs["checksum"] = checksum(data, attrs)
    write_atomic(io._h5py(), str(path), data, attrs)


def _model_checksum(data, attrs, i):
    prefix = f"models/{i}/"
    d = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
    a = {k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)}
    a["datasets"] = json.dumps(sorted(d))
    attrs[prefix + "datasets"] = a["datasets"]
    attrs[prefix + "checksum"] = checksum(d, {k: v for k, v in a.items() if k != "checksum"})


def test_the_saved_file_loads_without_trust(saved):
    d, p, path, _, _ = saved
    loaded = load_dictionary(path)
    mus = p.parameter_space.sample(6, rng=1)
    for rule in ("nearest", "bound", "nearest-then-bound"):
        a, b = d.evaluate(mus, selection=rule), loaded.evaluate(mus, selection=rule)
        assert np.array_equal(a.model, b.model)
        assert np.array_equal(a.bound, b.bound)


def test_a_changed_value_fails_the_outer_checksum(saved, tmp_path):
    _, _, _, data, attrs = saved
    data, attrs = dict(data), dict(attrs)
    data["centers"] = data["centers"] * (1 + 1e-12)
    _write(tmp_path / "x.h5", data, attrs, outer=False)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_dictionary(tmp_path / "x.h5")


def test_a_changed_model_fails_its_own_checksum_when_the_outer_one_is_recomputed(saved, tmp_path):
    _, _, _, data, attrs = saved
    data, attrs = dict(data), dict(attrs)
    data["models/1/A_N"] = data["models/1/A_N"] + 1.0
    _write(tmp_path / "x.h5", data, attrs)
    with pytest.raises(ModelFileError, match=r"\[models/1\]: checksum mismatch"):
        load_dictionary(tmp_path / "x.h5")


def _drop_centers(data, attrs):
    del data["centers"]


CASES = {
    "no centers": (_drop_centers, "missing dataset 'centers'"),
    "centers rows": (lambda d, a: d.update(centers=np.vstack([d["centers"]] * 2)), "one row per model"),
    "centers outside": (lambda d, a: d.update(centers=d["centers"] + 1e6), "invalid dictionary data"),
    "centers NaN": (lambda d, a: d.update(centers=np.full_like(d["centers"], np.nan)), "invalid dictionary data"),
    "n_models 0": (lambda d, a: a.update(n_models=0), "positive integer"),
    "n_models text": (lambda d, a: a.update(n_models="2"), "positive integer"),
    "n_models 1": (lambda d, a: a.update(n_models=1), "belongs to no model"),
    "n_models 3": (lambda d, a: a.update(n_models=3), r"\[models/2\]: not a certrb model"),
    "stray prefix": (lambda d, a: d.update({"models/01/x": np.zeros(1)}), "belongs to no model"),
    "selection": (lambda d, a: a.update(selection="best"), "invalid dictionary data"),
    "n_candidates": (lambda d, a: a.update(n_candidates=5), "invalid dictionary data"),
    "model format": (lambda d, a: a.update({"models/0/format": "certrb-dictionary"}), "not a certrb model"),
    "format": (lambda d, a: a.update(format="certrb-model"), "certrb-dictionary"),
    "version": (lambda d, a: a.update(version=2), "version"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_structure_is_refused(saved, tmp_path, case):
    _, _, _, data, attrs = saved
    data, attrs = dict(data), dict(attrs)
    mutate, message = CASES[case]
    mutate(data, attrs)
    _write(tmp_path / "x.h5", data, attrs)
    with pytest.raises(ModelFileError, match=message):
        load_dictionary(tmp_path / "x.h5")


def test_an_import_path_is_refused_without_trust_and_never_imported(tmp_path):
    d, _ = _models(expressions=False)  # diffusion1d's coefficients are functions: stored by import path
    path = tmp_path / "d.h5"
    save_dictionary(d, path)
    with pytest.raises(ModelFileError, match="import path"):
        load_dictionary(path)
    assert len(load_dictionary(path, trusted=True).models) == 2
    data, attrs = read_model(io._h5py(), str(path), fmt=DICTIONARY_FORMAT, version=1)
    key = next(k for k in attrs if k.startswith("models/0/") and k.endswith("operator_coefficients"))
    attrs[key] = "certrb_crafted_module_never_imported:theta"
    _model_checksum(data, attrs, 0)
    _write(path, data, attrs)
    with pytest.raises(ModelFileError, match="certrb_crafted_module_never_imported"):
        load_dictionary(path)
    assert "certrb_crafted_module_never_imported" not in sys.modules
    with pytest.raises(ModelFileError):  # trusted: the import is tried, and its failure is a bad file
        load_dictionary(path, trusted=True)

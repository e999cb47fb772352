"""Crafted model files: one dataset or attribute changed and the checksum recomputed.

The checksum guards against accidents only (anyone can recompute it), so ``load`` checks
every dataset against the metadata and the others. Each case below saves a small model,
breaks the structure of one dataset or attribute (drops it, changes its shape, dtype or
sign, injects NaN/inf, corrupts its JSON, swaps names), rewrites the file with a valid
checksum and manifest, and asserts that ``load`` either raises ModelFileError or returns a
model whose results equal the original's exactly. Changes that keep a valid structure
(another value of ``A_N``, say) define another valid model and are not what is tested:
transposes are applied only where they change the shape, negation only to the arrays the
mathematics keeps non-negative.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import certrb
from certrb import io
from certrb.errors import ModelFileError
from certrb.io.checksum import checksum
from certrb.io.read import read_model
from certrb.io.write import write_atomic
from certrb.problems.diffusion1d import diffusion1d

NESTED = {"point-basis": {"nested": True}}
NEGATABLE = ("defects", "norms", "column_norms", "orthogonality", "slack", "alpha_ref", "eps2", "row_scale",
             "lower_values", "theta_ref")
DTYPES = (np.int64, np.bool_, np.complex128, np.longdouble, np.float32, "S8")
FIELDS = ("coefficients", "residual_norm", "bound", "stability", "output", "output_bound", "rigorous")
EXTENDED = np.finfo(np.longdouble).eps < 1e-17


def _expression_problem():
    p = diffusion1d(20)
    return certrb.Problem(certrb.AffineOperator(p.operator.terms, ["1", "mu1", "mu2"]),
                          certrb.AffineFunctional(p.rhs.terms, ["1"]), p.inner_product, p.parameter_space,
                          stability=certrb.MinTheta([0.0, 0.0], alpha_ref=1.0),
                          output=certrb.AffineFunctional(p.output.terms, ["0.5 * (1 + exp(-mu1 / 20))"]))


def _models():
    """name -> (model, load needs trust), built once: every estimator, output, dual, SCM, extended, complex."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from conftest import make_complex_problem

    problem = _expression_problem()
    V = problem.solve(problem.parameter_space.sample(3, rng=1)).T
    dual = certrb.reduce(certrb.OfflineBuilder(certrb.dual_problem(problem)), V[:, :2])
    models = {"expressions": (certrb.reduce(certrb.OfflineBuilder(problem, certrb.ESTIMATOR_NAMES, rng=0,
                                                                  options=NESTED, dual=dual), V), False)}
    cp = make_complex_problem(20)
    W = cp.solve(cp.parameter_space.sample(2, rng=2)).T
    models["complex"] = (certrb.reduce(certrb.OfflineBuilder(cp, certrb.ESTIMATOR_NAMES, rng=0), W), True)
    from certrb.problems.helmholtz1d import helmholtz1d

    h = helmholtz1d(30, (1.0, 5.0), stability=lambda mus: np.ones(mus.shape[0]))
    operator = certrb.AffineOperator(h.operator.terms, certrb.ExpressionCoefficients(("1", "-k**2", "-1j * k"),
                                                                                    ("k",)))
    scm = certrb.SCM(operator, h.inner_product.matrix, h.parameter_space.grid(10), kind="inf-sup")
    hp = certrb.Problem(operator, certrb.AffineFunctional(h.rhs.terms, ["1"]), h.inner_product.matrix,
                        h.parameter_space, stability=scm)
    U = hp.solve(hp.parameter_space.sample(2, rng=3)).T
    models["scm"] = (certrb.reduce(certrb.OfflineBuilder(hp, ("orthonormal",)), U), False)
    if EXTENDED:
        builder = certrb.OfflineBuilder(problem, ("orthonormal", "expanded"), precision="extended")
        models["extended"] = (certrb.reduce(builder, V), False)
    return models


@functools.cache
def _saved():
    """name -> (model, trusted, datasets, attributes, parameters, expected results), built once."""
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (model, trusted) in _models().items():
            path = os.path.join(folder, f"{name}.h5")
            certrb.save(model, path)
            data, attrs = read_model(io._h5py(), path)
            mus = model.parameter_space.sample(3, rng=4)
            out[name] = (model, trusted, data, attrs, mus, _results(model, mus))
    return out


def _results(model, mus):
    out = {}
    for est in model.estimators:
        r = model.evaluate(mus, estimator=est)
        out.update({f"{est}/{f}": getattr(r, f) for f in FIELDS})
    return out


def _mutate_array(arr, how, position):
    """The array changed by ``how``, or None where the change does not apply."""
    if how == "truncate":
        return arr[:-1] if arr.ndim and arr.shape[0] else None
    if how == "extend":
        return np.concatenate([arr, arr[-1:]]) if arr.ndim and arr.shape[0] else arr.reshape(1)
    if how == "transpose":
        return arr.T if arr.T.shape != arr.shape else None
    if how == "reshape":
        return arr.reshape(-1) if arr.ndim != 1 else arr[:, None]
    if how in ("nan", "inf"):
        if arr.dtype.kind not in "fc" or not arr.size:
            return None
        out = arr.copy()
        out.reshape(-1)[position % arr.size] = np.nan if how == "nan" else -np.inf
        return out
    if how == "negate":
        return -arr if arr.dtype.kind in "fc" and np.any(arr) else None
    if arr.dtype.kind not in "biufc" or (arr.dtype.kind == "c" and np.dtype(how).kind != "c"):
        return None  # not numeric, or a cast that drops imaginary parts
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf cast to an integer, huge values to float32
        return arr.astype(how)


def _mutate_attribute(attrs, key, how):
    value = attrs[key]
    if how == "drop":
        del attrs[key]
    elif how == "truncate":
        attrs[key] = value[: len(value) // 2] if isinstance(value, str) else "x"
    elif how == "int":
        attrs[key] = 7
    elif how == "names":  # another, a duplicated or a non-string parameter name
        attrs[key] = {"parameter_names": '["mu1", "mu9"]', "parameter_scale": '["linear", "bogus"]'}.get(
            key, value.replace("mu1", "mu2").replace("expanded", "eim").replace("\"eim\"", "\"eim-stabilized\""))
    elif how == "swap" and key == "estimators":
        pairs = json.loads(value)
        attrs[key] = json.dumps([[a, pairs[(i + 1) % len(pairs)][1]] for i, (a, _) in enumerate(pairs)])
    elif how == "swap":  # another function's text
        others = [k for k in ("operator_coefficients", "rhs_coefficients", "output_coefficients") if k != key]
        attrs[key] = attrs.get(others[0], "x")


def _write(path, data, attrs):
    attrs["datasets"] = json.dumps(sorted(data))
    attrs["checksum"] = checksum(data, attrs)
    write_atomic(io._h5py(), str(path), data, attrs)


def _check(path, model, trusted, mus, expected):
    """ModelFileError, or a model with exactly the original's results."""
    try:
        loaded = certrb.load(path, trusted=trusted)
    except ModelFileError:
        return "refused"
    assert sorted(loaded.estimators) == sorted(model.estimators)
    got = _results(loaded, mus)
    for key, value in expected.items():
        if value is None or isinstance(value, bool):
            assert got[key] == value, key
        else:
            assert got[key].shape == value.shape, key
            assert np.array_equal(got[key], value, equal_nan=True), key
    return "equal"


MODELS = ("expressions", "complex", "scm") + (("extended",) if EXTENDED else ())
DATASET_CHANGES = ("drop", "truncate", "extend", "transpose", "reshape", "nan", "inf", "negate", *DTYPES)
ATTRIBUTE_CHANGES = ("drop", "truncate", "int", "names", "swap")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(MODELS), target=st.integers(0, 10**6), how=st.sampled_from(DATASET_CHANGES),
       position=st.integers(0, 10**6))
def test_crafted_dataset(tmp_path, model, target, how, position):
    original, trusted, data, attrs, mus, expected = _saved()[model]
    key = sorted(data)[target % len(data)]
    if how == "negate" and not key.endswith(NEGATABLE):
        return
    data, attrs = dict(data), dict(attrs)
    if how == "drop":
        del data[key]
    else:
        changed = _mutate_array(data[key], how, position)
        if changed is None:
            return
        data[key] = changed
    path = tmp_path / f"{model}-{target}-{how}.h5"
    _write(path, data, attrs)
    _check(path, original, trusted, mus, expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(MODELS), target=st.integers(0, 10**6), how=st.sampled_from(ATTRIBUTE_CHANGES))
def test_crafted_attribute(tmp_path, model, target, how):
    original, trusted, data, attrs, mus, expected = _saved()[model]
    keys = sorted(k for k in attrs if k not in ("checksum", "datasets", "format", "version"))
    key = keys[target % len(keys)]
    if trusted and how == "swap" and key != "estimators":
        return  # another function of trusted code: nothing a file check can know
    attrs = dict(attrs)
    _mutate_attribute(attrs, key, how)
    path = tmp_path / f"{model}-{target}-{how}.h5"
    _write(path, dict(data), attrs)
    _check(path, original, trusted, mus, expected)


@pytest.mark.parametrize("model", MODELS)
def test_every_dataset_is_needed(tmp_path, model):
    """Each dataset in turn removed (and the manifest with it): refused, but for the optional reconstruction weights
    and the bases without them (a primal basis whose weights are stored cannot go alone)."""
    original, trusted, data, attrs, mus, expected = _saved()[model]
    path = tmp_path / "m.h5"
    _write(path, dict(data), dict(attrs))
    assert _check(path, original, trusted, mus, expected) == "equal"
    for key in sorted(data):
        _write(path, {k: v for k, v in data.items() if k != key}, dict(attrs))
        optional = key.endswith("reconstruction_weights") or (
            key.endswith("basis") and key.replace("basis", "reconstruction_weights") not in data)
        assert _check(path, original, trusted, mus, expected) == ("equal" if optional else "refused"), key


def test_a_named_module_is_not_imported(tmp_path, monkeypatch):
    """A file naming ``marker_mod:theta``, with marker_mod.py on the path: untrusted load imports nothing."""
    (tmp_path / "marker_mod.py").write_text(
        "import pathlib\n\nimport numpy as np\n\n"
        "pathlib.Path(__file__).with_name('marker.txt').write_text('imported')\n\n\n"
        "def theta(mus):\n    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0], mus[:, 1]])\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "marker_mod", raising=False)
    original, _, data, attrs, _, _ = _saved()["expressions"]
    attrs = {k: v for k, v in attrs.items() if not k.startswith("dual/")}
    data = {k: v for k, v in data.items()
            if not k.startswith("output/dual/") and k not in ("output/dual_rhs", "output/dual_operator")}
    attrs["operator_coefficients"] = "marker_mod:theta"
    path = tmp_path / "crafted.h5"
    _write(path, data, attrs)
    with pytest.raises(ModelFileError, match="marker_mod:theta") as info:
        certrb.load(path)
    assert "trusted=True" in str(info.value)
    assert not (tmp_path / "marker.txt").exists()
    assert "marker_mod" not in sys.modules
    loaded = certrb.load(path, trusted=True)
    assert (tmp_path / "marker.txt").read_text() == "imported"
    mus = original.parameter_space.sample(3, rng=0)
    assert np.array_equal(loaded.evaluate(mus).bound, original.evaluate(mus).bound)

"""Model files with expression coefficients: stored as text, parsed on load, evaluated bit-identically elsewhere."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import certrb
from certrb import io
from certrb.errors import ModelFileError
from certrb.io.checksum import checksum
from certrb.io.read import read_model
from certrb.io.write import write_atomic
from certrb.online.coefficients import Conjugated
from certrb.online.expressions import ExpressionCoefficients
from certrb.online.stability import MinThetaBound

NAMES = ("mu1", "mu2")
OPERATOR = ("1", "mu1", "mu2")


@pytest.fixture(scope="module")
def problem():
    """The 1D study problem on 60 elements, its coefficients given as expressions."""
    from certrb.problems.diffusion1d import diffusion1d

    p = diffusion1d(60)
    return certrb.Problem(certrb.AffineOperator(p.operator.terms, list(OPERATOR)),
                          certrb.AffineFunctional(p.rhs.terms, ["1"]), p.inner_product, p.parameter_space,
                          stability=certrb.MinTheta([0.0, 0.0], alpha_ref=1.0),
                          output=certrb.AffineFunctional(p.output.terms, ["0.5 * (1 + exp(-mu1 / 20))"]))


@pytest.fixture(scope="module")
def model(problem):
    """A greedy model with two estimators and a dual model (whose operator coefficients are conjugated)."""
    train = problem.parameter_space.sample(60, rng=0)
    dual = certrb.weak_greedy(certrb.OfflineBuilder(certrb.dual_problem(problem)), train, tol=1e-8,
                              max_basis=4).model
    builder = certrb.OfflineBuilder(problem, ("orthonormal", "expanded"), dual=dual)
    return certrb.weak_greedy(builder, train, tol=1e-8, max_basis=6).model


@pytest.fixture
def saved(tmp_path, model):
    path = tmp_path / "model.h5"
    certrb.save(model, path)
    return path


def _results(model, mus):
    """Every array of ``model.evaluate(mus)`` for each estimator, by name."""
    out = {}
    for name in model.estimators:
        result = model.evaluate(mus, estimator=name)
        values = {field.name: getattr(result, field.name) for field in dataclasses.fields(result)}
        out.update({f"{name}/{key}": value for key, value in values.items() if isinstance(value, np.ndarray)})
    return out


def _recheck(path, edit):
    """Apply ``edit`` to the root attributes and write the file again with a valid checksum."""
    h5 = io._h5py()
    data, attrs = read_model(h5, str(path))
    edit(attrs)
    attrs["checksum"] = checksum(data, attrs)
    write_atomic(h5, str(path), data, attrs)


def test_expressions_are_stored_as_text(model, saved):
    operator = {"names": list(NAMES), "texts": list(OPERATOR)}
    with h5py.File(saved, "r") as f:
        attrs = {key: value.decode() for key, value in f.attrs.items() if isinstance(value, bytes)}
    assert attrs["operator_coefficients"] == "expr:" + json.dumps(operator)
    assert attrs["rhs_coefficients"] == "expr:" + json.dumps({"names": list(NAMES), "texts": ["1"]})
    assert attrs["stability"] == "expr:" + json.dumps(operator)  # the min-theta bound's coefficients
    assert attrs["dual/operator_coefficients"] == "conj:expr:" + json.dumps(operator)
    assert json.loads(attrs["output_coefficients"].removeprefix("expr:"))["texts"] == ["0.5 * (1 + exp(-mu1 / 20))"]


def test_round_trip_in_process(model, saved):
    loaded = certrb.load(saved)
    assert loaded.operator_coefficients == ExpressionCoefficients(OPERATOR, NAMES)
    assert loaded.output.coefficients == model.output.coefficients
    assert isinstance(loaded.stability, MinThetaBound)
    assert loaded.stability.coefficients == model.stability.coefficients
    assert loaded.output.dual.operator_coefficients == Conjugated(ExpressionCoefficients(OPERATOR, NAMES))
    mus = model.parameter_space.sample(20, rng=1)
    expected, got = _results(model, mus), _results(loaded, mus)
    assert expected.keys() == got.keys()
    assert "orthonormal/output" in expected
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert np.array_equal(got[key], value, equal_nan=True), key


def test_round_trip_in_a_fresh_process_in_an_empty_folder(model, saved, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "model.h5").write_bytes(saved.read_bytes())
    saved.unlink()
    mus = model.parameter_space.sample(20, rng=2)
    np.save(tmp_path / "mus.npy", mus)
    script = textwrap.dedent(f"""
        import dataclasses
        import sys
        import numpy as np
        import certrb
        model = certrb.load("model.h5")
        mus = np.load({str(tmp_path / "mus.npy")!r})
        out = {{}}
        for name in model.estimators:
            result = model.evaluate(mus, estimator=name)
            values = {{f.name: getattr(result, f.name) for f in dataclasses.fields(result)}}
            out.update({{f"{{name}}/{{k}}": v for k, v in values.items() if isinstance(v, np.ndarray)}})
        np.savez({str(tmp_path / "out.npz")!r}, **out)
        imported = sorted(m for m in sys.modules if m.startswith(("certrb.offline", "certrb.problems", "scipy.sparse")))
        assert not imported, imported
    """)
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    expected = _results(model, mus)
    with np.load(tmp_path / "out.npz") as got:
        assert sorted(got.files) == sorted(expected)
        for key, value in expected.items():
            assert got[key].dtype == value.dtype, key
            assert np.array_equal(got[key], value, equal_nan=True), key


def test_scm_stability_with_expressions_round_trips(tmp_path):
    from certrb.problems.helmholtz1d import helmholtz1d

    p = helmholtz1d(40, (1.0, 5.0), stability=lambda mus: np.ones(mus.shape[0]))
    operator = certrb.AffineOperator(p.operator.terms, ExpressionCoefficients(("1", "-k**2", "-1j * k"), ("k",)))
    X = p.inner_product.matrix
    scm = certrb.SCM(operator, X, p.parameter_space.grid(30), kind="inf-sup")
    problem = certrb.Problem(operator, certrb.AffineFunctional(p.rhs.terms, ["1"]), X, p.parameter_space,
                             stability=scm)
    train = problem.parameter_space.sample(40, rng=0)
    model = certrb.weak_greedy(certrb.OfflineBuilder(problem), train, tol=0.0, max_basis=3).model
    path = tmp_path / "scm.h5"
    certrb.save(model, path)
    with h5py.File(path, "r") as f:
        assert f.attrs["stability"].decode().startswith('expr:{"names": ["k"]')
    loaded = certrb.load(path)
    mus = problem.parameter_space.sample(7, rng=1)
    a, b = model.evaluate(mus), loaded.evaluate(mus)
    assert b.coefficients.dtype == np.complex128
    for key in ("coefficients", "stability", "bound"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('expr:{"names": ["mu1", "mu2"], "texts": ["1", "__import__(\'os\')", "mu2"]}',
         "invalid expressions in attribute 'operator_coefficients'.*call of '__import__' is not allowed"),
        ('expr:{"names": ["mu1", "mu2"], "texts": ["1", "().__class__", "mu2"]}', "attribute access"),
        ('expr:{"names": ["mu2", "mu1"], "texts": ["1", "mu1", "mu2"]}',
         r"over the parameters \['mu2', 'mu1'\]; the file's parameter space has \['mu1', 'mu2'\]"),
        ('expr:{"names": ["mu1", "mu2"], "texts": "mu1"}', "must be lists"),
        ('expr:{"names": ["mu1", "mu2"]}', "expected an object with 'names' and 'texts'"),
        ('expr:{"names": ["mu1", "mu2"], "texts": [1]}', "sequence of strings"),
        ('expr:{"names": ', "malformed expressions"),
    ],
)
def test_crafted_expressions_are_refused(saved, value, message):
    _recheck(saved, lambda attrs: attrs.update(operator_coefficients=value))
    with pytest.raises(ModelFileError, match=message):
        certrb.load(saved)


def test_expressions_of_the_wrong_length_give_no_result(saved):
    value = "expr:" + json.dumps({"names": list(NAMES), "texts": ["1", "mu1"]})
    _recheck(saved, lambda attrs: attrs.update(operator_coefficients=value))
    with pytest.raises((ModelFileError, certrb.ShapeError)):
        certrb.load(saved).evaluate(np.array([[1.0, 1.0]]))


def test_certrb_evaluate_reads_an_expression_model_in_an_empty_folder(model, saved, tmp_path):
    """The command line, in a folder with nothing but the file and no PYTHONPATH, gives the same bits."""
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "model.h5").write_bytes(saved.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "from certrb.cli import main; main()", "evaluate", "model.h5",
                           "--mu", "3.5,20", "--mu", "7,80", "--json"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    res = model.evaluate(np.array([[3.5, 20.0], [7.0, 80.0]]))
    assert np.array(got["bound"]).tobytes() == res.bound.tobytes()
    assert np.array(got["output"]).tobytes() == res.output.tobytes()
    assert np.array(got["coefficients"]).tobytes() == res.coefficients.tobytes()

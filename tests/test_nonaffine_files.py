"""Matrix-EIM (non-affine) online objects as plain data: array round trips, refused arrays, model files."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

import certrb
from certrb.bem.entries import CombinedFieldBlock, PlaneWaveBlock
from certrb.errors import ShapeError
from certrb.offline.nonaffine import magic_entries, rhs_indicator
from certrb.online.nonaffine import (
    ENTRIES,
    RECORDS,
    InterpolatedCoefficients,
    InterpolationBound,
    InterpolationIndicator,
    MagicEntries,
)
from certrb.problems.scattering3d import scattering3d

pytestmark = pytest.mark.e2e  # builds a level-1 3D model (EIM, SCM, greedy): run in CI's second step

SMALL = dict(eim_train=21, eim_candidates=1000, scm_train=41)  # level 1: 80 triangles
MUS = np.linspace(0.5, 1.5, 7)[:, None]


@pytest.fixture(scope="module")
def sphere():
    return scattering3d(1, (0.5, 1.5), **SMALL)


@pytest.fixture(scope="module")
def rom(sphere):
    train = sphere.problem.parameter_space.sample(20, rng=3)
    greedy = certrb.weak_greedy(certrb.OfflineBuilder(sphere.problem), train, tol=1e-12, max_basis=8)
    return dataclasses.replace(greedy.model, interpolation=sphere.interpolation_bound(greedy.model.basis))


def _same_arrays(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert (a[key].dtype, a[key].shape) == (b[key].dtype, b[key].shape), key
        assert a[key].tobytes() == b[key].tobytes(), key


def _records(rom):
    bound = rom.interpolation
    return [rom.operator_coefficients, rom.rhs_coefficients, bound, bound.operator, bound.rhs, bound.rhs.fine.magic]


def test_every_record_round_trips_bit_for_bit(rom):
    c = rom.evaluate(MUS).coefficients
    for obj in _records(rom):
        arrays = obj.to_arrays()
        assert all(isinstance(v, np.ndarray) and v.dtype.kind in "iufc" for v in arrays.values())
        new = type(obj).from_arrays(arrays)
        _same_arrays(arrays, new.to_arrays())
        if isinstance(obj, InterpolationBound | InterpolationIndicator):
            assert obj(MUS, c).tobytes() == new(MUS, c).tobytes()
        elif isinstance(obj, MagicEntries):
            assert obj.values(MUS).tobytes() == new.values(MUS).tobytes()
        else:
            assert obj(MUS).tobytes() == new(MUS).tobytes()


def test_the_table_names_the_stored_classes():
    assert RECORDS == {"interpolated-coefficients": InterpolatedCoefficients,
                       "interpolation-indicator": InterpolationIndicator, "interpolation-bound": InterpolationBound}
    assert ENTRIES == {"bem-combined-field": CombinedFieldBlock, "bem-plane-wave": PlaneWaveBlock}


def test_the_model_keeps_only_the_magic_triangles(sphere, rom):
    for coefficients, eim in ((rom.operator_coefficients, sphere.operator_eim), (rom.rhs_coefficients, sphere.rhs_eim)):
        mesh = coefficients.magic.entry.mesh
        np.testing.assert_array_equal(mesh.ids, np.unique(eim.entries))
        assert mesh.ids.size < sphere.problem.size / 4
        v, t = sphere.entries.vertices, sphere.entries.triangles
        np.testing.assert_array_equal(mesh.vertices[mesh.triangles], v[t[mesh.ids]])  # the same corners
    rebuilt = InterpolationBound.from_arrays(rom.interpolation.to_arrays())
    for indicator in (rebuilt.operator, rebuilt.rhs):
        assert indicator.coarse.magic is indicator.fine.magic  # one evaluation of the magic entries serves both


@pytest.mark.parametrize("k", [0.5, 0.97, 1.5])
def test_restricted_evaluators_equal_the_whole_mesh_bit_for_bit(sphere, k):
    rows, cols = sphere.operator_eim.entries.T
    block = sphere.entries.restricted(rows, cols)
    assert block(k, rows, cols).tobytes() == sphere.entries.matrix(k)[rows, cols].tobytes()
    assert block(k, rows[::-1], cols).tobytes() == sphere.entries.matrix(k)[rows[::-1], cols].tobytes()
    (load_rows,) = sphere.rhs_eim.entries.T
    load = sphere.load.restricted(load_rows)
    assert load(k, load_rows).tobytes() == sphere.load.vector(k)[load_rows].tobytes()


def test_restricted_evaluators_refuse_other_triangles(sphere):
    rows, cols = sphere.operator_eim.entries.T
    block = sphere.entries.restricted(rows, cols)
    outside = np.setdiff1d(np.arange(sphere.problem.size), block.mesh.ids)[:1]
    with pytest.raises(ShapeError, match="outside the sub-mesh"):
        block(1.0, outside, cols[:1])
    with pytest.raises(ShapeError, match="outside the sub-mesh"):
        sphere.load.restricted(rows)(1.0, outside)


def test_a_user_callable_cannot_be_stored(sphere):
    eim = sphere.operator_eim
    magic = MagicEntries(lambda mu, rows, cols: sphere.entries(mu, rows, cols), eim.entries, eim.matrix,
                         eim.transform)
    with pytest.raises(TypeError, match="callable cannot be stored as data"):
        magic.to_arrays()
    with pytest.raises(TypeError, match="callable cannot be stored as data"):
        InterpolatedCoefficients(magic, 2).to_arrays()


def test_an_indicator_with_two_magic_entries_cannot_be_stored(sphere):
    indicator = rhs_indicator(sphere.problem, sphere.rhs_eim, sphere.rhs_terms)
    other = InterpolatedCoefficients(magic_entries(sphere.rhs_eim), indicator.coarse.terms)
    with pytest.raises(ValueError, match="share one MagicEntries"):
        dataclasses.replace(indicator, coarse=other).to_arrays()


def _mutations(arrays):
    """(description, mutated arrays, key the error must name) for the arrays of an InterpolationBound."""
    op, ent = "operator/magic/", "operator/magic/entry/bem-combined-field/"
    rhs_ent = "rhs/magic/entry/bem-plane-wave/"

    def changed(key, value):
        return {**arrays, key: value}

    def where(key, index, value):
        arr = arrays[key].copy()
        arr[index] = value
        return changed(key, arr)

    yield "missing", {k: v for k, v in arrays.items() if k != op + "matrix"}, op + "matrix"
    yield "wrong shape", changed(op + "matrix", arrays[op + "matrix"][:-1]), op + "matrix"
    yield "single precision", changed(op + "transform", arrays[op + "transform"].astype(np.complex64)), "transform"
    yield "strings", changed(op + "entries", arrays[op + "entries"].astype(str)), op + "entries"
    yield "NaN", where("operator/R", (0, 0), np.nan), "operator/R"
    yield "infinite", where(rhs_ent + "vertices", (0, 0), np.inf), rhs_ent + "vertices"
    yield "matrix not unit lower", where(op + "matrix", (0, 1), 0.5), op + "matrix"
    yield "transform not upper", where(op + "transform", (1, 0), 0.5), op + "transform"
    yield "truncated R", changed("operator/R", arrays["operator/R"][:, :-1]), "operator/R"
    yield "rhs R", changed("rhs/R", arrays["rhs/R"][:, :-1]), "rhs/R"
    yield "terms too large", changed("operator/coarse_terms", arrays["operator/fine_terms"]), "coarse_terms"
    yield "terms not integer", changed("rhs/fine_terms", np.array(3.0)), "rhs/fine_terms"
    yield "entry outside", where(op + "entries", (0, 0), 10**6), op + "entries: entries outside the sub-mesh"
    yield "corner out of range", where(ent + "triangles", (0, 0), 10**6), ent + "triangles"
    yield "ids unsorted", changed(ent + "ids", arrays[ent + "ids"][::-1]), ent + "ids"
    yield "zero direction", changed(rhs_ent + "direction", np.zeros(3)), rhs_ent + "direction"
    renamed = {k.replace("bem-combined-field", "user-module"): v for k, v in arrays.items()}
    yield "unknown evaluator", renamed, "user-module"
    swapped = {k.replace("bem-combined-field", "bem-plane-wave"): v for k, v in arrays.items()}
    yield "vector evaluator of matrix entries", {**swapped, op + "entry/bem-plane-wave/direction": np.ones(3)}, \
        op + "entries has 2 column"


def test_invalid_arrays_are_refused_naming_them(rom):
    arrays = rom.interpolation.to_arrays()
    for what, mutated, key in _mutations(arrays):
        with pytest.raises(ShapeError, match=key) as info:
            InterpolationBound.from_arrays(mutated)
        assert info.type is ShapeError, what


def _load_and_evaluate(path, cwd):
    """Results of ``certrb.load(path).evaluate(MUS)`` computed in a fresh process started in ``cwd``, as hex.

    ``"sparse"``: whether loading imported scipy.sparse.
    """
    script = ("import sys, json, numpy as np, certrb\n"
              "model = certrb.load(sys.argv[1])\n"
              "sparse = 'scipy.sparse' in sys.modules\n"
              "res = model.evaluate(np.array(json.loads(sys.argv[2])))\n"
              "out = {k: getattr(res, k).tobytes().hex() for k in "
              "('coefficients', 'bound', 'residual_norm', 'interpolation_error', 'stability')}\n"
              "print(json.dumps({**out, 'sparse': sparse}))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script, str(path), json.dumps(MUS.tolist())], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("online_only", [False, True])  # without and with the basis
def test_the_3d_model_round_trips_through_a_file_in_a_fresh_process(rom, tmp_path, online_only):
    certrb.save(rom, tmp_path / "model.h5", online_only=online_only)
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    (elsewhere / "model.h5").write_bytes((tmp_path / "model.h5").read_bytes())
    got = _load_and_evaluate(elsewhere / "model.h5", elsewhere)
    assert not got.pop("sparse")  # loading needs no sparse truth-space code
    res = rom.evaluate(MUS)
    assert got == {k: getattr(res, k).tobytes().hex() for k in got}


def test_certrb_evaluate_in_another_folder_gives_the_same_bits(rom, tmp_path):
    certrb.save(rom, tmp_path / "model.h5")
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    (elsewhere / "model.h5").write_bytes((tmp_path / "model.h5").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", "from certrb.cli import main; main()", "evaluate", "model.h5",
                          "--mu", "1.3", "--mu", "0.61", "--json"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, check=True)
    got = json.loads(out.stdout)
    res = rom.evaluate(np.array([[1.3], [0.61]]))
    assert np.array(got["bound"]).tobytes() == res.bound.tobytes()
    assert np.array(got["interpolation_error"]).tobytes() == res.interpolation_error.tobytes()
    c = np.array(got["coefficients"])
    assert (c[..., 0] + 1j * c[..., 1]).tobytes() == res.coefficients.tobytes()

"""Model files: what load imports (nothing, unless trusted), what save refuses, and faults during save."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import textwrap
from typing import ClassVar

import h5py
import numpy as np
import pytest

import certrb
from certrb.errors import ModelFileError, ShapeError
from certrb.io import write as io_write
from certrb.online import nonaffine
from certrb.problems.diffusion1d import diffusion1d


@pytest.fixture(scope="module")
def imported_model():
    """A model whose coefficient functions are stored by import path."""
    problem = diffusion1d(30)
    V = problem.solve(problem.parameter_space.sample(3, rng=0)).T
    return certrb.reduce(certrb.OfflineBuilder(problem, ("orthonormal",)), V)


@pytest.fixture(scope="module")
def data_model(imported_model):
    """The same model with expression coefficients: stored as data only."""
    p = diffusion1d(30)
    problem = certrb.Problem(certrb.AffineOperator(p.operator.terms, ["1", "mu1", "mu2"]),
                             certrb.AffineFunctional(p.rhs.terms, ["1"]), p.inner_product, p.parameter_space,
                             stability=certrb.MinTheta([0.0, 0.0], alpha_ref=1.0))
    return certrb.reduce(certrb.OfflineBuilder(problem, ("orthonormal",)), imported_model.basis)


def _same(a, b, mus):
    ra, rb = a.evaluate(mus), b.evaluate(mus)
    for field in ("coefficients", "residual_norm", "bound", "stability"):
        assert np.array_equal(getattr(ra, field), getattr(rb, field)), field


# --- trust ----------------------------------------------------------------------------------------------


def test_untrusted_load_says_how(imported_model, tmp_path):
    path = tmp_path / "m.h5"
    certrb.save(imported_model, path)
    with pytest.raises(ModelFileError) as info:
        certrb.load(path)
    message = str(info.value)
    for part in ("operator_coefficients = 'certrb.problems.diffusion1d:operator_coefficients'", "trusted=True",
                 "coefficients={'operator_coefficients': ...", "'stability': ...", "expression coefficients"):
        assert part in message
    _same(imported_model, certrb.load(path, trusted=True), imported_model.parameter_space.sample(5, rng=1))


def test_functions_passed_by_the_caller(imported_model, tmp_path):
    path = tmp_path / "m.h5"
    certrb.save(imported_model, path)
    given = {"operator_coefficients": imported_model.operator_coefficients,
             "rhs_coefficients": imported_model.rhs_coefficients,
             "output_coefficients": imported_model.output.coefficients,
             "stability": imported_model.stability.coefficients}
    with pytest.raises(ModelFileError, match="stability"):  # all of them, or trusted=True
        certrb.load(path, coefficients={k: v for k, v in given.items() if k != "stability"})
    _same(imported_model, certrb.load(path, coefficients=given), imported_model.parameter_space.sample(5, rng=1))
    with pytest.raises(ValueError, match="dual/operator_coefficients"):
        certrb.load(path, coefficients={**given, "dual/operator_coefficients": np.sin})
    with pytest.raises(TypeError, match="callable"):
        certrb.load(path, coefficients={"stability": 1.0})


def test_data_model_needs_no_trust(data_model, tmp_path):
    path = tmp_path / "m.h5"
    certrb.save(data_model, path)
    _same(data_model, certrb.load(path), data_model.parameter_space.sample(5, rng=2))
    with pytest.raises(ValueError, match="does not store by import path"):
        certrb.load(path, coefficients={"operator_coefficients": np.sin})


# --- what save refuses ----------------------------------------------------------------------------------


class _Holder:
    def rhs(self, mus):
        return np.ones((mus.shape[0], 1))

    def __call__(self, mus):
        return self.rhs(mus)


def _main_function():
    code = compile("def rhs(mus):\n    return mus[:, :1] * 0 + 1\n", "<script>", "exec")
    namespace = {"__name__": "__main__"}
    exec(code, namespace)
    return namespace["rhs"]


@pytest.mark.parametrize(("make", "reason"), [
    (_main_function, r"\(__main__\)"),
    (lambda: _Holder().rhs, "a bound method"),
    (_Holder, "callable object of type _Holder"),
    (lambda: functools.partial(np.ones_like), "callable object of type partial"),
    (lambda: (lambda mus: mus[:, :1]), "a lambda"),
])
def test_save_refuses_callables_no_other_process_can_import(data_model, tmp_path, make, reason):
    model = dataclasses.replace(data_model, rhs_coefficients=make())
    with pytest.raises(ValueError, match=reason) as info:
        certrb.save(model, tmp_path / "m.h5")
    assert 'AffineOperator(terms, ["1", "mu1"])' in str(info.value)
    assert os.listdir(tmp_path) == []


# --- data-backed records --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class _Constant:
    """A data-backed right-hand side coefficient function: ``phi(mu) = weights`` for every mu."""

    kind: ClassVar[str] = "test-constant"
    weights: np.ndarray

    def __call__(self, mus):
        return np.broadcast_to(self.weights, (mus.shape[0], self.weights.size)).copy()

    def to_arrays(self):
        return {"weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays):
        if set(arrays) != {"weights"} or arrays["weights"].ndim != 1:
            raise ShapeError("weights must be the one array, of shape (Q,)")
        return cls(arrays["weights"])


@dataclasses.dataclass(frozen=True, eq=False)
class _Indicator:
    kind: ClassVar[str] = "test-indicator"
    scale: np.ndarray

    def __call__(self, mus, c):
        return float(self.scale) * np.abs(c).sum(axis=1)

    def to_arrays(self):
        return {"scale": self.scale}

    @classmethod
    def from_arrays(cls, arrays):
        return cls(arrays["scale"])


def test_records_are_stored_as_data(data_model, tmp_path, monkeypatch):
    monkeypatch.setitem(nonaffine.RECORDS, _Constant.kind, _Constant)
    monkeypatch.setitem(nonaffine.RECORDS, _Indicator.kind, _Indicator)
    model = dataclasses.replace(data_model, rhs_coefficients=_Constant(np.array([2.0])),
                                interpolation=_Indicator(np.array(1e-3)))
    path = tmp_path / "m.h5"
    certrb.save(model, path)
    with h5py.File(path, "r") as f:
        assert f.attrs["rhs_coefficients"] == b"record:test-constant"
        assert f.attrs["interpolation"] == b"record:test-indicator"
        assert np.array_equal(f["functions/rhs_coefficients/weights"][()], [2.0])
    loaded = certrb.load(path)
    assert isinstance(loaded.rhs_coefficients, _Constant)
    assert isinstance(loaded.interpolation, _Indicator)
    _same(model, loaded, model.parameter_space.sample(5, rng=3))
    monkeypatch.delitem(nonaffine.RECORDS, _Indicator.kind)
    with pytest.raises(ModelFileError, match="unknown kind of data 'test-indicator'"):
        certrb.load(path)


def test_interpolation_that_is_not_data_is_refused(data_model, tmp_path):
    model = dataclasses.replace(data_model, interpolation=lambda mus, c: np.zeros(mus.shape[0]))
    with pytest.raises(ValueError, match="interpolation"):
        certrb.save(model, tmp_path / "m.h5")


# --- faults ---------------------------------------------------------------------------------------------


def _interrupt_after(monkeypatch, owner, name, calls):
    original = getattr(owner, name)
    count = {"n": 0}

    def interrupted(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)


@pytest.mark.parametrize("unnamed", [True, False])
@pytest.mark.parametrize(("owner", "name", "calls"), [
    (h5py.Group, "create_dataset", 2), (io_write._FileObject, "write", 3), (io_write._FileObject, "flush", 0),
    (os, "fsync", 0), (os, "link", 0), (os, "replace", 0),
])
def test_interrupted_save_leaves_the_old_file(data_model, imported_model, tmp_path, monkeypatch, owner, name, calls,
                                              unnamed):
    """Ctrl-C anywhere in save, also inside h5py's writes: re-raised, old file intact, no temporary file left."""
    path = tmp_path / "m.h5"
    certrb.save(data_model, path)
    before = path.read_bytes()
    if not unnamed:
        if name == "link":
            pytest.skip("a named temporary file is not linked")
        monkeypatch.setattr(io_write, "_unnamed_file", lambda directory, path: None)
    _interrupt_after(monkeypatch, owner, name, calls)
    with pytest.raises(KeyboardInterrupt):
        certrb.save(imported_model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.h5"]


def test_save_into_a_missing_folder_names_the_target(data_model, tmp_path):
    target = tmp_path / "missing" / "m.h5"
    with pytest.raises(FileNotFoundError) as info:
        certrb.save(data_model, target)
    assert info.value.filename == str(target)


@pytest.mark.skipif(os.name != "posix", reason="umask is POSIX")
@pytest.mark.parametrize("unnamed", [True, False])
def test_new_file_mode_respects_the_umask(data_model, tmp_path, monkeypatch, unnamed):
    if not unnamed:
        monkeypatch.setattr(io_write, "_unnamed_file", lambda directory, path: None)
    old = os.umask(0o027)
    try:
        certrb.save(data_model, tmp_path / "m.h5")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.h5").st_mode & 0o777 == 0o640


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE is Linux's")
def test_killed_save_leaves_no_file(data_model, tmp_path):
    """A save SIGKILLed while h5py writes leaves nothing in the folder: the data go to an unnamed file."""
    fd = io_write._unnamed_file(str(tmp_path), str(tmp_path))
    if fd is None:
        pytest.skip("this file system has no O_TMPFILE")
    os.close(fd)
    source = tmp_path / "source.h5"
    certrb.save(data_model, source)
    folder = tmp_path / "out"
    folder.mkdir()
    script = textwrap.dedent(f"""
        import time
        import certrb
        from certrb.io import write as io_write
        model = certrb.load({str(source)!r})
        write = io_write._FileObject.write
        def slow(self, buffer):
            n = write(self, buffer)
            print("writing", flush=True)
            time.sleep(60)
            return n
        io_write._FileObject.write = slow
        certrb.save(model, {str(folder / "m.h5")!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert os.listdir(folder) == []
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert os.listdir(folder) == []



def test_an_interrupt_that_h5py_turns_into_an_oserror_is_re_raised(data_model, tmp_path, monkeypatch):
    """h5py may report Ctrl-C inside its driver's write during close as an OSError: the interrupt wins."""
    path = tmp_path / "m.h5"
    certrb.save(data_model, path)
    before = path.read_bytes()

    def interrupted_in_close(h5py, f, data, attrs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError("File close failed (driver write request failed)") from None

    monkeypatch.setattr(io_write, "_write", interrupted_in_close)
    with pytest.raises(KeyboardInterrupt):
        certrb.save(data_model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]

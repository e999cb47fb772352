"""certrb.save / certrb.load: round trips, corrupted files, atomic writes, callables."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import types

import h5py
import numpy as np
import pytest

import certrb
from certrb.errors import ModelFileError
from certrb.online.estimators import Estimator
from certrb.online.model import ReducedOutput
from certrb.online.stability import MinThetaBound
from certrb.problems.diffusion1d import rhs_coefficients

NESTED = {"point-basis": {"nested": True}}
# x86 long double: 10 bytes of value padded to 12 or 16 bytes of arbitrary content
X87_BYTES = 10
X87_PADDED = (np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize > X87_BYTES
              and sys.byteorder == "little")


def _model(problem, n_basis, seed):
    snapshots = problem.solve(problem.parameter_space.sample(n_basis, rng=seed))
    return certrb.reduce(certrb.OfflineBuilder(problem, certrb.ESTIMATOR_NAMES, rng=0, options=NESTED), snapshots.T)


@pytest.fixture(scope="module")
def real_model(small_problem):
    return _model(small_problem, 5, 1)


@pytest.fixture(scope="module")
def complex_model(complex_problem):
    return _model(complex_problem, 4, 2)


@pytest.fixture(params=["real", "complex", "greedy"])
def any_model(request):
    if request.param == "greedy":
        return request.getfixturevalue("small_greedy").model
    return request.getfixturevalue(f"{request.param}_model")


@pytest.fixture
def saved(tmp_path, real_model):
    path = tmp_path / "model.h5"
    certrb.save(real_model, path)
    return path


def _assert_same_results(a, b):
    for field in dataclasses.fields(certrb.OnlineResult):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if x is None or isinstance(x, str | int):
            assert x == y, field.name
        else:
            assert x.dtype == y.dtype, field.name
            assert np.array_equal(x, y, equal_nan=x.dtype.kind in 'fc'), field.name


def _assert_same_estimator(a, b):
    assert type(a) is type(b)
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert type(x) is type(y), field.name
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, field.name
            assert np.array_equal(x, y), field.name
        elif dataclasses.is_dataclass(x):  # a round-off certificate
            _assert_same_estimator(x, y)
        else:
            assert x == y, field.name


def _flip_byte(path, dataset, position, mask=1):
    """XOR the byte at ``position`` of a contiguous dataset's storage in the file with ``mask``."""
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset()
    assert offset is not None
    with open(path, "r+b") as fh:
        fh.seek(offset + position)
        byte = fh.read(1)
        fh.seek(offset + position)
        fh.write(bytes([byte[0] ^ mask]))


def _rewrite(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


# --- round trips ---------------------------------------------------------------------------------------


def test_round_trip_evaluates_bit_identically(any_model, tmp_path):
    path = tmp_path / "model.h5"
    certrb.save(any_model, path)
    loaded = certrb.load(path, trusted=True)
    mus = any_model.parameter_space.sample(25, rng=5)
    assert set(loaded.estimators) == set(any_model.estimators) == set(certrb.ESTIMATOR_NAMES)
    for name in certrb.ESTIMATOR_NAMES:
        _assert_same_estimator(any_model.estimators[name], loaded.estimators[name])
        for n in {any_model.n_basis, 3}:
            try:
                expected = any_model.evaluate(mus, estimator=name, n=n)
            except certrb.EstimatorError:  # a point-basis estimator built for the full model only
                with pytest.raises(certrb.EstimatorError):
                    loaded.evaluate(mus, estimator=name, n=n)
                continue
            _assert_same_results(expected, loaded.evaluate(mus, estimator=name, n=n))


def test_round_trip_keeps_model_data(any_model, tmp_path):
    path = tmp_path / "model.h5"
    certrb.save(any_model, path)
    loaded = certrb.load(path, trusted=True)
    for name in ("A_N", "f_N", "basis"):
        a, b = getattr(any_model, name), getattr(loaded, name)
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b), name
    space, space2 = any_model.parameter_space, loaded.parameter_space
    assert (space2.names, space2.scale) == (space.names, space.scale)
    assert np.array_equal(space2.lower, space.lower)
    assert np.array_equal(space2.upper, space.upper)
    assert loaded.operator_coefficients is any_model.operator_coefficients
    assert loaded.rhs_coefficients is any_model.rhs_coefficients
    assert loaded.output.coefficients is any_model.output.coefficients
    assert np.array_equal(loaded.output.l_N, any_model.output.l_N)
    assert np.array_equal(loaded.output.dual_gram, any_model.output.dual_gram)
    assert loaded.default_estimator == any_model.default_estimator
    _assert_same_results(any_model.evaluate(space.sample(4, rng=0)), loaded.evaluate(space.sample(4, rng=0)))


def test_min_theta_stability_is_stored_as_data(real_model, saved):
    loaded = certrb.load(saved, trusted=True)
    assert isinstance(real_model.stability, MinThetaBound)
    assert isinstance(loaded.stability, MinThetaBound)
    assert loaded.stability.coefficients is real_model.stability.coefficients
    assert np.array_equal(loaded.stability.theta_ref, real_model.stability.theta_ref)
    assert type(loaded.stability.alpha_ref) is float
    assert loaded.stability.alpha_ref == real_model.stability.alpha_ref


def test_callable_stability_round_trips(complex_model, tmp_path):
    path = tmp_path / "c.h5"
    certrb.save(complex_model, path)
    assert certrb.load(path, trusted=True).stability is complex_model.stability


def test_file_header(saved):
    with h5py.File(saved, "r") as f:
        assert f.attrs["format"] == b"certrb-model"
        assert f.attrs["version"] == certrb.io.VERSION
        assert len(f.attrs["checksum"]) == 64
        assert "basis" in f


def test_online_only_drops_basis(real_model, tmp_path):
    path = tmp_path / "online.h5"
    certrb.save(real_model, path, online_only=True)
    with h5py.File(path, "r") as f:
        assert "basis" not in f
    loaded = certrb.load(path, trusted=True)
    assert loaded.basis is None
    mus = real_model.parameter_space.sample(5, rng=2)
    result = loaded.evaluate(mus)
    _assert_same_results(real_model.evaluate(mus), result)
    with pytest.raises(certrb.ShapeError, match="basis"):
        loaded.reconstruct(result.coefficients)


def test_save_overwrites_and_keeps_permissions(real_model, complex_model, saved):
    if os.name == "posix":
        os.chmod(saved, 0o640)
    certrb.save(complex_model, saved)
    assert np.iscomplexobj(certrb.load(saved, trusted=True).A_N)
    if os.name == "posix":
        assert os.stat(saved).st_mode & 0o777 == 0o640
    assert os.listdir(saved.parent) == [saved.name]


# --- unreadable and corrupted files -------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        certrb.load(tmp_path / "nope.h5")


def test_flipped_data_bytes_fail_the_checksum(saved):
    with h5py.File(saved, "r") as f:
        nbytes = f["estimators/orthonormal/R"].id.get_storage_size()
    assert nbytes > 0
    _flip_byte(saved, "estimators/orthonormal/R", nbytes // 2, 0xFF)
    with pytest.raises(ModelFileError, match="checksum") as info:
        certrb.load(saved, trusted=True)
    assert str(saved) in str(info.value)


def test_random_bit_flips_never_load_a_different_model(real_model, saved):
    raw = saved.read_bytes()
    rng = np.random.default_rng(7)
    mus = real_model.parameter_space.sample(3, rng=0)
    expected = real_model.evaluate(mus, estimator="eim")
    for pos in rng.integers(len(raw), size=40):
        damaged = bytearray(raw)
        damaged[pos] ^= 1 << int(rng.integers(8))
        saved.write_bytes(bytes(damaged))
        try:
            loaded = certrb.load(saved, trusted=True)
        except ModelFileError:
            continue
        _assert_same_results(expected, loaded.evaluate(mus, estimator="eim"))


def test_modified_attribute_fails_the_checksum(saved):
    _rewrite(saved, lambda f: f.attrs.__setitem__("default_estimator", "eim"))
    with pytest.raises(ModelFileError, match="checksum"):
        certrb.load(saved, trusted=True)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_truncated_file(saved, fraction):
    size = os.path.getsize(saved)
    with open(saved, "r+b") as fh:
        fh.truncate(int(size * fraction))
    with pytest.raises(ModelFileError, match=str(saved.name)):
        certrb.load(saved, trusted=True)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFileError, match="HDF5"):
        certrb.load(path, trusted=True)


def test_other_hdf5_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ModelFileError, match="format"):
        certrb.load(path, trusted=True)


@pytest.mark.parametrize("version", [1, 3, 0, "2"])
def test_unknown_version(saved, version):
    _rewrite(saved, lambda f: f.attrs.__setitem__("version", version))
    with pytest.raises(ModelFileError, match="version"):
        certrb.load(saved, trusted=True)


@pytest.mark.parametrize("dataset", ["A_N", "estimators/eim/R", "output/l_N", "parameter_space/lower"])
def test_deleted_dataset(saved, dataset):
    _rewrite(saved, lambda f: f.__delitem__(dataset))
    with pytest.raises(ModelFileError, match="missing dataset") as info:
        certrb.load(saved, trusted=True)
    assert dataset in str(info.value)


def test_unimportable_callable_on_load(real_model, tmp_path, monkeypatch):
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "certrb_io_tmp_coeffs.py").write_text(
        "import numpy as np\n\ndef rhs(mus):\n    return np.ones((mus.shape[0], 1))\n")
    monkeypatch.syspath_prepend(str(module_dir))
    module = importlib.import_module("certrb_io_tmp_coeffs")
    path = tmp_path / "model.h5"
    certrb.save(dataclasses.replace(real_model, rhs_coefficients=module.rhs), path)
    monkeypatch.delitem(sys.modules, "certrb_io_tmp_coeffs")
    (module_dir / "certrb_io_tmp_coeffs.py").unlink()
    importlib.invalidate_caches()
    with pytest.raises(ModelFileError, match="certrb_io_tmp_coeffs:rhs"):
        certrb.load(path, trusted=True)


# --- atomic writes ------------------------------------------------------------------------------------


def _fail_after(monkeypatch, owner, name, calls):
    original = getattr(owner, name)
    count = {"n": 0}

    def failing(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(f"injected failure in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


@pytest.mark.parametrize(("owner", "name", "calls"),
                         [(h5py.Group, "create_dataset", 3), (os, "fsync", 0), (os, "replace", 0)])
def test_failed_write_leaves_existing_file(complex_model, saved, monkeypatch, owner, name, calls):
    before = saved.read_bytes()
    _fail_after(monkeypatch, owner, name, calls)
    with pytest.raises(OSError, match="injected"):
        certrb.save(complex_model, saved)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]
    assert not np.iscomplexobj(certrb.load(saved, trusted=True).A_N)


def test_failed_write_leaves_no_file(real_model, tmp_path, monkeypatch):
    _fail_after(monkeypatch, h5py.Group, "create_dataset", 2)
    with pytest.raises(OSError, match="injected"):
        certrb.save(real_model, tmp_path / "new.h5")
    assert os.listdir(tmp_path) == []


# --- what cannot be saved -----------------------------------------------------------------------------


def _nested_function():
    def rhs(mus):
        return np.ones((mus.shape[0], 1))

    return rhs


def _impostor():
    # same module and qualname as rhs_coefficients, but a different object
    return types.FunctionType(rhs_coefficients.__code__, sys.modules[rhs_coefficients.__module__].__dict__)


@pytest.mark.parametrize("make", [lambda: (lambda mus: np.ones((mus.shape[0], 1))), _nested_function, _impostor])
def test_unimportable_rhs_coefficients(real_model, tmp_path, make):
    path = tmp_path / "model.h5"
    with pytest.raises(ValueError, match=r"rhs_coefficients.*expression coefficients"):
        certrb.save(dataclasses.replace(real_model, rhs_coefficients=make()), path)
    assert os.listdir(tmp_path) == []


def test_lambda_output_coefficients(real_model, tmp_path):
    out = real_model.output
    model = dataclasses.replace(real_model, output=ReducedOutput(lambda mus: np.ones((mus.shape[0], 1)),
                                                                 out.l_N, out.dual_gram))
    with pytest.raises(ValueError, match="output_coefficients"):
        certrb.save(model, tmp_path / "model.h5")


def test_lambda_stability(complex_model, tmp_path):
    model = dataclasses.replace(complex_model, stability=lambda mus: np.ones(mus.shape[0]))
    with pytest.raises(ValueError, match="stability"):
        certrb.save(model, tmp_path / "model.h5")


def test_foreign_estimator(real_model, tmp_path):
    @dataclasses.dataclass
    class Custom:
        name: str = "expanded"

        def residual_norm(self, x, n):
            return np.zeros(x.shape[0])

        def roundoff(self, x, n, eps):
            return np.full(x.shape[0], np.nan)

        def to_arrays(self):
            return {}

    assert isinstance(Custom(), Estimator)  # it follows the protocol, but is not one of certrb's
    model = real_model.with_estimators({"expanded": Custom()})
    with pytest.raises(ValueError, match="Custom"):
        certrb.save(model, tmp_path / "model.h5")


def test_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="ReducedModel"):
        certrb.save("model", tmp_path / "model.h5")


def test_missing_h5py(real_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "certrb\[io\]"'):
        certrb.save(real_model, tmp_path / "model.h5")
    with pytest.raises(ImportError, match=r'pip install "certrb\[io\]"'):
        certrb.load(tmp_path / "model.h5")


def test_round_trip_with_scm_stability(tmp_path):
    from certrb.problems.helmholtz1d import helmholtz1d

    problem = helmholtz1d(40, (1.0, 5.0), scm_train=30)
    train = problem.parameter_space.sample(40, rng=0)
    model = certrb.weak_greedy(certrb.OfflineBuilder(problem), train, tol=0.0, max_basis=3).model
    path = tmp_path / "scm.h5"
    certrb.save(model, path)
    loaded = certrb.load(path, trusted=True)
    mus = problem.parameter_space.sample(7, rng=1)
    a, b = model.evaluate(mus), loaded.evaluate(mus)
    assert np.array_equal(a.stability, b.stability)
    assert np.array_equal(a.bound, b.bound)


# --- extended precision --------------------------------------------------------------------------------


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-17, reason="numpy.longdouble is not wider than float64 here")
@pytest.mark.parametrize("which", ["small_problem", "complex_problem"])
def test_extended_model_round_trips_bit_identically(which, request, tmp_path):
    problem = request.getfixturevalue(which)
    train = problem.parameter_space.sample(30, rng=3)
    builder = certrb.OfflineBuilder(problem, ("orthonormal", "expanded"), precision="extended")
    model = certrb.weak_greedy(builder, train, tol=0.0, max_basis=6).model
    ext = np.clongdouble if which == "complex_problem" else np.longdouble
    assert model.A_N.dtype == model.basis.dtype == model.estimators["orthonormal"].R.dtype == ext
    path = tmp_path / "model.h5"
    certrb.save(model, path)
    loaded = certrb.load(path, trusted=True)
    for name in ("A_N", "f_N", "basis"):
        assert getattr(loaded, name).dtype == ext, name
        assert np.array_equal(getattr(loaded, name), getattr(model, name)), name
    for name in ("orthonormal", "expanded"):
        _assert_same_estimator(model.estimators[name], loaded.estimators[name])
        for n in (model.n_basis, 2):
            _assert_same_results(model.evaluate(train, estimator=name, n=n),
                                 loaded.evaluate(train, estimator=name, n=n))


@pytest.mark.skipif(not X87_PADDED, reason="numpy.longdouble has no padding bytes here")
@pytest.mark.parametrize(("which", "part"), [("small_problem", 0), ("complex_problem", 1)])
def test_checksum_ignores_long_double_padding(which, part, request, tmp_path):
    """Padding bytes of an x87 value are arbitrary: changing them on disk still loads; a mantissa bit does not."""
    problem = request.getfixturevalue(which)
    V = problem.solve(problem.parameter_space.sample(2, rng=0)).T
    model = certrb.reduce(certrb.OfflineBuilder(problem, ("orthonormal",), precision="extended"), V)
    path = tmp_path / "model.h5"
    certrb.save(model, path)
    value = part * np.dtype(np.longdouble).itemsize  # the real (0) or imaginary (1) part of the first entry
    _flip_byte(path, "A_N", value + X87_BYTES, 0xFF)  # a padding byte
    loaded = certrb.load(path, trusted=True)
    assert loaded.A_N.dtype == model.A_N.dtype
    assert loaded.A_N.tobytes() != model.A_N.tobytes()  # the changed padding is read back ...
    assert np.array_equal(loaded.A_N, model.A_N)  # ... and is no part of the values
    mus = problem.parameter_space.sample(4, rng=1)
    _assert_same_results(model.evaluate(mus), loaded.evaluate(mus))
    _flip_byte(path, "A_N", value)  # the last mantissa bit
    with pytest.raises(ModelFileError, match="checksum"):
        certrb.load(path, trusted=True)


def test_reconstruction_bound_survives_a_round_trip(small_greedy, tmp_path):
    model = small_greedy.model
    path = tmp_path / "m.h5"
    certrb.save(model, path)
    back = certrb.load(path, trusted=True)
    c = model.solve(model.parameter_space.sample(5, rng=0))
    assert np.all(np.isfinite(back.reconstruction_error_bound(c)))
    assert np.array_equal(back.reconstruction_error_bound(c), model.reconstruction_error_bound(c))
    certrb.save(model, path, online_only=True)
    assert certrb.load(path, trusted=True).reconstruction_weights is None

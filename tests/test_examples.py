"""Every script in examples/ runs to completion."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

import certrb

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))  # own_model/ needs its matrix files: tested below


def test_examples_exist():
    assert EXAMPLES, "no examples found"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, run_script):
    run_script(script, timeout=120)


def test_skfem_example_bound_holds(tmp_path):
    """The scikit-fem example on a small mesh: certified bound >= true error, the model file reloads untrusted."""
    example = runpy.run_path(str(EXAMPLES_DIR / "skfem_thermal.py"), run_name="skfem_thermal")
    problem, _model, test, res, error = example["main"](n=8, path=str(tmp_path / "m.h5"), n_train=40, n_test=10)
    assert problem.size == 7 * 7
    assert res.rigorous
    assert res.certificate == "min-theta (certified)"
    assert (res.bound >= error).all()
    assert (res.bound <= 1e3 * np.maximum(error, 1e-14)).all()  # certified, and not vacuous
    reloaded = certrb.load(tmp_path / "m.h5")
    np.testing.assert_array_equal(reloaded.evaluate(test).output, res.output)


@pytest.mark.e2e
def test_own_model_folder_spec_and_python_build_the_same_model(tmp_path, run_script):
    """examples/own_model: five matrix files, then the 22-line spec (certrb build) and the Python version."""
    import shutil
    import subprocess
    import sys

    folder = EXAMPLES_DIR / "own_model"
    run_script(folder / "make_files.py", str(tmp_path))
    for name in ("thermal_block.toml", "plain.py"):
        shutil.copy(folder / name, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.mtx")) == ["A1.mtx", "A2.mtx", "A3.mtx", "A4.mtx", "f.mtx"]
    build = subprocess.run([sys.executable, "-m", "certrb.cli", "build", "thermal_block.toml", "-o", "model.h5"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stderr
    run_script(tmp_path / "plain.py")
    spec_model, plain_model = certrb.load(tmp_path / "model.h5"), certrb.load(tmp_path / "plain.h5")
    assert spec_model.n_basis == plain_model.n_basis
    mus = spec_model.parameter_space.sample(20, rng=3)
    a, b = spec_model.evaluate(mus), plain_model.evaluate(mus)
    assert a.rigorous
    assert b.rigorous
    np.testing.assert_allclose(a.output, b.output, rtol=1e-10)
    assert (a.bound <= 1e-6 * 10).all()  # the spec's tolerance, with a margin for points off the training set

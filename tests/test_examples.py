"""Every script in examples/ runs to completion."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

import certrb

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))


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

"""Smoke test of benchmarks/refined_floor.py (``--quick`` run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_refined_floor_quick(tmp_path):
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "refined_floor.py"), "--quick", "--out",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "refined_floor.json").read_text())
    assert (tmp_path / "refined_floor.png").stat().st_size > 0
    assert {"benchmark", "machine", "parameters", "definitions", "problems", "wall_s"} <= record.keys()
    assert record["parameters"]["quick"] is True
    assert set(record["problems"]) == {"diffusion1d", "thermal_block"}
    for rec in record["problems"].values():
        truth = rec["truth_floor"]
        # refined truth solves beat double ones by orders of magnitude, measured in extended precision
        assert truth["refined"]["relative_residual"] < 1e-2 * truth["double"]["relative_residual"]
        assert set(rec["pipelines"]) == {"double", "refined", "extended"}
        for pipe in rec["pipelines"].values():
            n = pipe["n_basis"]
            assert n >= 1
            assert {len(v) for v in pipe["curves"].values()} == {n}
            for key, floor in pipe["floors"].items():
                assert floor["floor"] == min(pipe["curves"][key])
                assert 1 <= floor["at_n"] <= n
        assert set(rec["ratios"]) == {"double/refined", "double/extended"}
        assert rec["diagnostics_refined_basis"]["max_cond_A_N"] >= 1

"""Smoke test of benchmarks/refined_floor.py (``--quick`` run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "refined_floor.py"


@pytest.mark.bench
def test_refined_floor_quick(tmp_path, run_script):
    run_script(SCRIPT, "--quick", "--out", str(tmp_path))
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
            # V c is in span(V): no reduced solution beats the best approximation
            assert pipe["best_approximation"] <= pipe["curves"]["error"][-1] * (1 + 1e-8)
        assert set(rec["ratios"]) == {"double/refined", "double/extended"}
        diag = rec["diagnostics_refined_basis"]
        assert diag["max_cond_A_N"] >= 1
        assert diag["basis_best_approximation"] <= diag["error_with_extended_online"] * (1 + 1e-8)

"""Smoke test of benchmarks/offline_solve_floor.py (``--quick`` run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "offline_solve_floor.py"


@pytest.mark.bench
def test_offline_solve_floor_quick(tmp_path, run_script):
    run_script(SCRIPT, "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "offline_solve_floor.json").read_text())
    assert (tmp_path / "offline_solve_floor.png").stat().st_size > 0
    assert {"benchmark", "machine", "parameters", "definitions", "result", "wall_s"} <= record.keys()
    assert record["parameters"]["quick"] is True
    result = record["result"]
    runs = {r["eta"]: r["estimators"] for r in result["runs"]}
    assert sorted(runs) == [0.0, *sorted(record["parameters"]["etas"])]
    names = {*record["parameters"]["estimators"], "truth-perturbed"}
    assert all(set(r) == names for r in runs.values())
    assert set(result["slopes"]) == names
    low, high = min(result["relative_residual_range"]), max(result["relative_residual_range"])
    for est in runs.values():
        for rec in est.values():
            assert low <= rec["floor"] <= high
            assert rec["max_deviation"] == max(rec["max_deviation_per_n"])
    # exact solves: every estimator accurate at every test point of this shallow run
    assert not any(rec["floor_reached"] for rec in runs[0.0].values())
    # solves at 1e-6 move the formulas that rely on the stored representatives most
    worst, best = max(runs), min(r for r in runs if r > 0)
    for name in ("expanded", "orthonormal", "eim", "point-basis"):
        assert runs[worst][name]["max_deviation"] > 100 * runs[best][name]["max_deviation"]
    assert runs[worst]["orthonormal"]["floor_reached"]

"""Smoke tests of benchmarks/online.py and benchmarks/scaling.py (``--quick`` runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import certrb

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def check_case(case: dict, repeats: int) -> None:
    assert 0 < case["min_s"] <= case["median_s"] <= case["max_s"]
    assert case["queries_per_s"] > 0
    assert case["repeats"] == repeats


@pytest.mark.bench
def test_online_quick(tmp_path, run_script):
    run_script(BENCH / "online.py", "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "online.json").read_text())
    assert (tmp_path / "online.png").stat().st_size > 0
    assert {"benchmark", "machine", "parameters", "model", "results", "wall_s"} <= record.keys()
    assert {"platform", "numpy", "cpu_count"} <= record["machine"].keys()
    assert record["parameters"]["quick"] is True
    batches = [str(b) for b in record["parameters"]["batch_sizes"]]
    assert batches == ["1", "1000"]
    assert set(record["results"]) == {"solve", *certrb.ESTIMATOR_NAMES}
    for method, cases in record["results"].items():
        assert sorted(cases) == sorted(batches)
        for case in cases.values():
            check_case(case, record["parameters"]["repeats"])
            if method != "solve":
                assert case["ratio_to_solve"] > 0


@pytest.mark.bench
def test_scaling_quick(tmp_path, run_script):
    run_script(BENCH / "scaling.py", "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "scaling.json").read_text())
    assert (tmp_path / "scaling.png").stat().st_size > 0
    assert {"benchmark", "machine", "parameters", "models", "results", "spread", "wall_s"} <= record.keys()
    meshes = [str(m) for m in record["parameters"]["meshes"]]
    batches = [str(b) for b in record["parameters"]["batch_sizes"]]
    assert sorted(record["models"]) == sorted(meshes)
    builders = {info["builder"] for info in record["models"].values()}
    assert builders == {"weak_greedy", "reduce(snapshots)"}  # quick mode exercises both paths
    for info in record["models"].values():
        assert info["n_h"] > 0
        assert info["n_basis"] == record["parameters"]["n_basis"]
    for m in meshes:
        assert sorted(record["results"][m]) == sorted(batches)
        for case in record["results"][m].values():
            check_case(case, record["parameters"]["repeats"])
    assert set(record["spread"]) == set(batches)
    assert all(s >= 0 for s in record["spread"].values())

"""Smoke test of benchmarks/dask_throughput.py (a ``--quick`` run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dask_throughput.py"


@pytest.mark.bench
@pytest.mark.dask
def test_dask_throughput_quick(tmp_path, run_script):
    pytest.importorskip("distributed")
    run_script(SCRIPT, "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "dask_throughput.json").read_text())
    assert (tmp_path / "dask_throughput.png").stat().st_size > 0
    assert {"benchmark", "machine", "parameters", "problem", "results", "wall_s", "load_avg"} <= record.keys()
    assert record["parameters"]["quick"] is True
    assert list(record["results"]) == ["serial", "processes-2", "dask-1", "dask-2"]
    for case in record["results"].values():
        assert case["identical_to_serial"] is True
        assert len(case["seconds"]) == record["parameters"]["repeats"]
        assert 0 < case["min_s"] <= case["median_s"] <= case["max_s"]
        assert case["solves_per_s"] == pytest.approx(record["parameters"]["n_solves"] / case["median_s"])
        assert case["startup_s"] >= 0
        assert case["first_map_s"] > 0
    assert record["results"]["serial"]["speedup"] == 1.0

"""Smoke test of benchmarks/dask_throughput.py (a ``--quick`` run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_dask_throughput_quick(tmp_path):
    pytest.importorskip("distributed")
    # Oversubscribed BLAS threads make small dense algebra far slower on busy machines.
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(BENCH / "dask_throughput.py"), "--quick", "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
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

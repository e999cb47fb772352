"""Smoke test of the benchmark scripts (``--quick`` runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import certrb

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # Oversubscribed BLAS threads make small dense algebra far slower on busy machines.
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_online_quick(tmp_path):
    proc = run_script(ROOT / "benchmarks" / "online.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
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
            assert 0 < case["min_s"] <= case["median_s"] <= case["max_s"]
            assert case["queries_per_s"] > 0
            assert case["repeats"] == record["parameters"]["repeats"]
            if method != "solve":
                assert case["ratio_to_solve"] > 0

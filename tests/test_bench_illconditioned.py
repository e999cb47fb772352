"""Smoke test of benchmarks/illconditioned.py (``--quick`` run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "illconditioned.py"


@pytest.mark.bench
def test_illconditioned_quick(tmp_path, run_script):
    run_script(SCRIPT, "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "illconditioned.json").read_text())
    assert (tmp_path / "illconditioned.png").stat().st_size > 0
    assert record["parameters"]["quick"] is True
    assert len(record["cases"]) == 2
    for rec in record["cases"]:
        for driver in ("orthonormal", "eim"):
            assert all(v == 0 for v in rec[driver]["violations"].values()), rec[driver]["violations"]
            assert rec[driver]["rigorous"]["eim"] is True
            assert rec["floors"][driver] == min(rec[driver]["max_relative_error"])
        assert rec["floors"]["orthonormal"] <= 3 * max(rec["floors"]["eim"], 1e-12)
        for kind in ("min-theta", "scm"):
            st = rec["stability"][kind]
            assert st["certified"] is True
            assert st["all_below_exact"] is True
            assert 0 < st["min"] <= st["max"]

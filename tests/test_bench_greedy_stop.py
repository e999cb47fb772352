"""Smoke test of benchmarks/greedy_stop.py (``--quick`` run; needs pyMOR)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "greedy_stop.py"


@pytest.mark.bench
def test_greedy_stop_quick(tmp_path, run_script):
    pytest.importorskip("pymor")
    run_script(SCRIPT, "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "greedy_stop.json").read_text())
    assert set(record["runs"]) == {"grid", "random"}
    for rec in record["runs"].values():
        for name in ("pymor", "certrb", "certrb_no_stagnation"):
            assert 1 <= rec[name]["n_basis"] <= record["parameters"]["max_basis"]
            assert rec[name]["max_relative_error_test"] < 1e-6
        # the stagnation stop never keeps more vectors than the run without it
        assert rec["certrb"]["n_basis"] <= rec["certrb_no_stagnation"]["n_basis"]

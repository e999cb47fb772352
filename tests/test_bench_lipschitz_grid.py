"""Smoke test of benchmarks/lipschitz_grid.py (``--quick`` run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lipschitz_grid.py"


@pytest.mark.bench
def test_lipschitz_grid_quick(tmp_path, run_script):
    run_script(SCRIPT, "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "lipschitz_grid.json").read_text())
    bounds = record["bounds"]
    assert set(bounds) == {"SCM", "grid 0.5", "grid 0.8"}
    for name, rec in bounds.items():
        assert rec["violations"] == 0, name
        assert 0 < rec["min_ratio_to_exact"] <= rec["median_ratio_to_exact"] <= 1
    for name in ("grid 0.5", "grid 0.8"):
        rec = bounds[name]
        assert rec["certificate"] == "Lipschitz grid (certified)"
        assert rec["max_ratio_to_scm"] <= 1 + 1e-12  # never above its source
        assert rec["online_ratio_to_scm"]["batched"] < 0.1  # a lookup, not a linear program
    assert bounds["grid 0.8"]["nodes"] >= bounds["grid 0.5"]["nodes"]
    assert (tmp_path / "lipschitz_grid.png").stat().st_size > 10_000

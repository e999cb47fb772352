"""Smoke test of benchmarks/stabilized_eim.py (``--quick`` run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stabilized_eim.py"


@pytest.mark.bench
def test_stabilized_eim_quick(tmp_path, run_script):
    run_script(SCRIPT, "--quick", "--out", str(tmp_path))
    record = json.loads((tmp_path / "stabilized_eim.json").read_text())
    assert (tmp_path / "stabilized_eim.png").stat().st_size > 0
    assert {"benchmark", "machine", "parameters", "definitions", "results", "wall_s"} <= record.keys()
    assert record["parameters"]["quick"] is True
    res = record["results"]
    sizes, k = res["sizes"], res["n_components"]
    assert sizes == list(range(1, len(sizes) + 1))
    assert set(res["per_n"]) == {f"{v}/{r}" for v in ("eim", "eim-stabilized") for r in ("generic", "eps")}
    for key, rec in res["per_n"].items():
        assert all(1 <= m <= kk for m, kk in zip(rec["m"], k, strict=True))
        assert all(c >= 1 for c in rec["cond_B"])
        assert len(rec["deviation"]) == len(sizes)
        # the eps rule keeps at least as many terms as the generic one, so its remainders are no larger
        if key.endswith("/eps"):
            generic = res["per_n"][key.replace("/eps", "/generic")]
            assert all(a >= b for a, b in zip(rec["m"], generic["m"], strict=True))
            assert max(rec["test_remainder"]) < 1e-12
    for floor in res["floors"].values():
        assert floor["floor"] > 0
        assert floor["over_truth_double"] == pytest.approx(floor["floor"] / res["floors"]["truth-double"]["floor"])

"""Smoke test of benchmarks/certification.py (``--quick`` runs, with and without pyMOR)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "certification.py"
SERIES = ("certrb_rigorous", "certrb_estimate", "pymor_stable", "pymor_classical")


def run_quick(run_script, out: Path, *extra: str) -> dict:
    run_script(SCRIPT, "--quick", "--out", str(out), *extra)
    assert (out / "certification.png").stat().st_size > 0
    return json.loads((out / "certification.json").read_text())


def check_problem(rec: dict, series: tuple[str, ...]) -> None:
    n = rec["table"]["n"]
    assert n == list(range(1, rec["n_basis"] + 1))
    assert rec["greedy_reason"] in {"in_span", "max_basis", "tolerance"}
    assert set(rec["table"]) == {"n", *series}
    for key in series:
        counts = rec["table"][key]
        assert len(counts) == len(n)
        assert all(0 <= c <= rec["n_mu"] for c in counts)
        assert rec["totals"][key] == sum(counts)
    assert rec["totals"]["certrb_rigorous"] == 0  # the round-off-certified bound is never below the true error
    # the estimator column of every certrb tally holds the plain and the rigorous count
    for tally in rec["certrb"]["orthonormal"]:
        assert tally["n_mu"] == rec["n_mu"]
        assert tally["effectivity"]["q0"] <= tally["effectivity"]["q0.5"] <= tally["effectivity"]["q1"]
        assert tally["bound_over_estimate"] >= 1.0
    assert 0 <= rec["truth_floor_double"]["median"] <= rec["truth_floor_double"]["max"]


@pytest.mark.bench
def test_certification_quick_without_pymor(tmp_path, run_script):
    record = run_quick(run_script, tmp_path, "--no-pymor", "--problems", "diffusion1d")
    assert record["benchmark"] == "certification"
    assert record["parameters"]["quick"] is True
    assert record["pymor"] == {"available": False, "version": None, "reason": "--no-pymor"}
    assert set(record["problems"]) == {"diffusion1d"}
    check_problem(record["problems"]["diffusion1d"], SERIES[:2])


@pytest.mark.bench
@pytest.mark.skipif(importlib.util.find_spec("pymor") is None, reason="pyMOR is not installed")
def test_certification_quick_with_pymor(tmp_path, run_script):
    record = run_quick(run_script, tmp_path)
    assert record["pymor"]["available"] is True
    # the two study problems and the ill-conditioned H1 family (X = K + w M), pyMOR side by side on each
    assert set(record["problems"]) == {"thermal_block", "diffusion1d", "h1_w1", "h1_w1e-6", "h1_w1e-10"}
    for rec in record["problems"].values():
        check_problem(rec, SERIES)
        assert {"pymor_stable", "pymor_classical"} <= set(rec["pymor"])

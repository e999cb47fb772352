"""benchmarks/pymor_models.py (the pyMOR twin) and a smoke run of benchmarks/vs_pymor.py (``--quick``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_pymor_twin_truth_matches():
    pytest.importorskip("pymor")
    sys.path.insert(0, str(BENCH))
    try:
        import pymor_models
    finally:
        sys.path.remove(str(BENCH))
    from certrb.problems import thermal_block

    problem = thermal_block((2, 2), n=6)
    twin = pymor_models.pymor_model(problem)
    mus = problem.parameter_space.sample(3, rng=0)
    assert pymor_models.check_truth(problem, twin, mus) < 1e-10
    assert pymor_models.check_coefficients(problem, twin, mus) <= 1e-14
    assert twin.operator_kinds == ["projection"] * 4
    assert twin.coercivity_kind == "expression"


@pytest.mark.bench
def test_vs_pymor_quick(tmp_path, run_script):
    pytest.importorskip("pymor")
    run_script(BENCH / "vs_pymor.py", "--quick", "--big", "--out", str(tmp_path))
    record = json.loads((tmp_path / "vs_pymor.json").read_text())
    assert (tmp_path / "vs_pymor.png").stat().st_size > 0
    assert {"benchmark", "machine", "parameters", "problem", "truth_check", "offline", "online", "big",
            "wall_s"} <= record.keys()
    assert {"platform", "numpy", "cpu_count", "pymor"} <= record["machine"].keys()
    assert record["parameters"]["quick"] is True
    assert record["truth_check"]["max_rel_diff"] < 1e-10
    for off in (record["offline"], record["big"]):
        for lib in ("certrb", "pymor"):
            assert off[lib]["median_s"] > 0
            assert off[lib]["n_basis"] >= 1
            assert off[lib]["max_relative_bound_train"] > 0
        assert off["speedup"] > 0
    online = record["online"]
    sizes = [str(n) for n in online["sizes"]]
    batches = [str(b) for b in record["parameters"]["batch_sizes"]]
    assert set(online["results"]) == {"certrb", "pymor", "pymor_compute"}
    for cases in online["results"].values():
        assert sorted(cases) == sorted(sizes)
        for by_batch in cases.values():
            assert sorted(by_batch) == sorted(batches)
            for case in by_batch.values():
                assert 0 < case["min_s"] <= case["median_s"] <= case["max_s"]
                assert case["queries_per_s"] > 0
    for n in sizes:
        for b in batches:
            assert online["ratio_certrb_over_pymor"][n][b] > 0

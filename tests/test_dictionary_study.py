"""The dictionary study: a tiny configuration (default suite) and the full default run (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from certrb.dictionary_study import dictionary_study, plot_dictionary_study

pytest.importorskip("kmedoids")


@pytest.fixture(scope="module")
def tiny():
    from certrb.problems.helmholtz1d import helmholtz1d

    problem = helmholtz1d(40, (1.0, 6.0), scm_train=30)
    return dictionary_study(problem, n_train=60, n_test=20, tol=1e-5, max_basis=12, n_clusters=3, counts=(2, 3),
                            n_single=4, repeats=1, seed=0)


def test_tiny_study_reports_every_measure(tiny, tmp_path):
    json.dumps(tiny, allow_nan=False)  # JSON-ready
    assert tiny["sizes"]["n_clusters"] == len(tiny["sizes"]["local"]) == 3
    assert max(tiny["sizes"]["local"]) <= tiny["sizes"]["global"]
    assert set(tiny["violations"]) == {"global", "nearest", "bound", "nearest-then-bound"}
    assert sum(tiny["violations"].values()) == 0
    assert tiny["targets"]["no_violations"]
    for name, t in tiny["online_seconds_per_query"].items():
        assert t["batched"] > 0, name
        assert t["single"] > 0, name
    ratio = tiny["online_ratio_to_global"]["batched"]
    timing = tiny["online_seconds_per_query"]
    assert ratio["bound"] == pytest.approx(timing["bound"]["batched"] / timing["global"]["batched"])
    for method in ("sine", "euclidean-parameters", "euclidean-snapshots"):
        errors = tiny["clustering"][method]["worst_projection_error"]
        assert len(errors) == 2
        assert all(0 <= e <= 1 for e in errors)
    pred = tiny["prediction"]
    assert pred["relative_error_local"] == pytest.approx(
        [abs(p - m) / m for p, m in zip(pred["local"], tiny["sizes"]["local"], strict=True)])
    png = tmp_path / "dictionary.png"
    plot_dictionary_study(tiny, png)
    assert png.stat().st_size > 10_000


@pytest.mark.slow
def test_default_study_meets_its_certification_target():
    results = dictionary_study(seed=0)
    assert results["targets"]["no_violations"]
    assert max(results["sizes"]["local"]) < results["sizes"]["global"]
    assert np.all(np.array(results["worst_relative_bound"]["nearest-then-bound"]) <= 10 * results["problem"]["tol"])

"""The dictionary study: the advection problem, a tiny configuration (default suite), the CLI, the full run (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from certrb.cli import app
from certrb.dictionary_study import (
    PROBLEMS,
    PecletFloor,
    advection_problem,
    dictionary_studies,
    dictionary_study,
    helmholtz_problem,
    plot_dictionary_study,
)

pytest.importorskip("kmedoids")


@pytest.fixture(scope="module")
def small_advection():
    return advection_problem(6, 50.0)


def test_peclet_floor_is_below_the_coercivity_constant(small_advection):
    import scipy.linalg as sla

    p = small_advection
    assert isinstance(p.stability, PecletFloor)
    assert 1 - 1e-6 <= p.stability.scale <= 1.0
    X = p.inner_product.matrix.toarray()
    for mu in p.parameter_space.sample(5, rng=0):
        A = p.operator.assemble(p.operator.theta(mu[None])[0]).toarray()
        alpha = sla.eigvalsh((A + A.T) / 2, X)[0]
        floor = p.stability(mu[None])[0]
        assert 0 < floor <= alpha
        assert floor >= 0.99 * alpha  # nearly sharp: the smallest eigenvalue tends to min(1 / pe, reaction)


def test_advection_problem_rejects_bad_ranges():
    with pytest.raises(ValueError, match="pe_max"):
        advection_problem(4, 0.5)
    with pytest.raises(ValueError, match="reaction"):
        advection_problem(4, reaction=0.0)


@pytest.fixture(scope="module")
def tiny(small_advection):
    return dictionary_study(small_advection, tol=1e-3, max_basis=20, n_train=60, n_test=20, n_clusters=3,
                            counts=(2, 3), n_batch=50, n_single=4, repeats=1, seed=0)


def test_tiny_study_reports_every_measure(tiny, tmp_path):
    json.dumps(tiny, allow_nan=False)  # JSON-ready
    assert tiny["problem"]["n_batch"] == 50
    assert tiny["sizes"]["n_clusters"] == len(tiny["sizes"]["local"]) == 3
    assert max(tiny["sizes"]["local"]) <= tiny["sizes"]["global"]
    assert set(tiny["violations"]) == {"global", "nearest", "bound", "nearest-then-bound"}
    assert sum(tiny["violations"].values()) == 0
    assert tiny["targets"]["no_violations"]
    timing = tiny["online_seconds_per_query"]
    assert set(timing) == {"stability", "global", "global/given", *(f"{r}{s}" for r in
                                                                   ("nearest", "bound", "nearest-then-bound")
                                                                   for s in ("", "/given"))}
    for name, t in timing.items():
        assert t["batched"] > 0, name
        assert t["single"] > 0, name
    ratio = tiny["online_ratio_to_global"]
    assert ratio["batched"]["bound"] == pytest.approx(timing["bound"]["batched"] / timing["global"]["batched"])
    assert ratio["single_stability_given"]["nearest"] == pytest.approx(
        timing["nearest/given"]["single"] / timing["global/given"]["single"])
    comp = tiny["clustering"]
    assert comp["counts"] == [2, 3]
    assert comp["n_modes"] == [int(np.ceil(tiny["prediction"]["global"] / k)) for k in (2, 3)]
    for method in ("sine", "euclidean-parameters", "euclidean-snapshots"):
        assert all(0 <= e <= 1 for e in comp[method]["worst_projection_error"])
        assert all(1 <= n <= 20 for n in comp[method]["largest_size"])
    targets = tiny["targets"]["sine_below_euclidean"]
    assert len(targets["largest_size"]) == len(targets["worst_projection_error"]) == 2
    pred = tiny["prediction"]
    assert pred["relative_error_local"] == pytest.approx(
        [abs(p - m) / m for p, m in zip(pred["local"], tiny["sizes"]["local"], strict=True)])
    png = tmp_path / "dictionary.png"
    plot_dictionary_study(tiny, png)
    assert png.stat().st_size > 10_000


def _infsup(problem, ks):
    """Exact inf-sup constants at wavenumbers ``ks`` in the problem's own norm (dense SVDs)."""
    import scipy.linalg as sla

    X = problem.inner_product.matrix.toarray()
    Li = np.linalg.inv(np.linalg.cholesky(X))
    mus = np.asarray(ks, dtype=float)[:, None]
    return np.array([sla.svdvals(Li @ problem.operator.assemble(t).toarray() @ Li.T)[-1]
                     for t in problem.operator.theta(mus)])


def test_helmholtz_problem_uses_the_wavenumber_weighted_norm_and_certifies_it():
    p = helmholtz_problem(40, 6.0, k_ref=3.0, scm_train=40, scm_iter=20)
    K, M, _ = p.operator.terms
    assert abs(p.inner_product.matrix - (K + 9.0 * M)).max() == 0
    ks = np.linspace(1.0, 6.0, 23)
    lower, exact = p.stability(ks[:, None]), _infsup(p, ks)
    assert np.all(lower > 0)
    assert np.all(lower <= exact * (1 + 1e-9))


def test_helmholtz_problem_rejects_a_non_positive_reference_wavenumber():
    with pytest.raises(ValueError, match="k_ref"):
        helmholtz_problem(40, 6.0, k_ref=0.0)


@pytest.mark.slow
def test_helmholtz_scm_bounds_stay_positive_up_to_k_40():
    """The default Helmholtz problem: the SCM certifies beta(k) > 0 on a fine grid of [1, 40]."""
    p = helmholtz_problem()
    ks = np.linspace(1.0, 40.0, 781)
    lower, exact = p.stability(ks[:, None]), _infsup(p, ks)
    assert np.all(lower > 0)
    assert np.all(lower <= exact * (1 + 1e-9))
    assert np.min(lower / exact) > 0.3


def test_studies_reject_unknown_problems():
    with pytest.raises(ValueError, match="unknown problems"):
        dictionary_studies(["helmholtz2d"])


def test_cli_writes_json_and_one_png_per_problem(tmp_path):
    out = tmp_path / "res"
    result = CliRunner().invoke(app, ["reproduce", "dictionary", "--problem", "advection2d", "--grid", "5",
                                      "--pe-max", "20", "--train", "30", "--test", "6", "--batch", "40",
                                      "--tol", "1e-2", "--max-basis", "10", "--clusters", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "dictionary.json").read_text())
    assert list(data) == ["advection2d"]
    res = data["advection2d"]
    assert res["problem"]["name"] == "advection2d"
    assert res["problem"]["tol"] == 1e-2
    assert res["problem"]["n_train"] == 30
    assert res["sizes"]["n_clusters"] == 2
    assert (out / "dictionary-advection2d.png").stat().st_size > 10_000
    assert "global N" in result.output


def test_cli_rejects_an_unknown_problem_before_computing(tmp_path):
    result = CliRunner().invoke(app, ["reproduce", "dictionary", "--problem", "wave", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--problem" in result.output
    assert not (tmp_path / "dictionary.json").exists()


@pytest.mark.slow
def test_default_studies_meet_their_targets():
    """What the default run establishes (docs/dictionary.md lists the numbers and the targets it misses)."""
    results = dictionary_studies()
    assert list(results) == list(PROBLEMS)
    for name, res in results.items():
        assert res["targets"]["no_violations"], name
        assert res["prediction"]["relative_error_global"] <= 0.3, name
    adv = results["advection2d"]
    assert adv["targets"]["largest_local_at_most_half_global"]
    assert adv["online_ratio_to_global"]["batched"]["nearest-then-bound"] < 0.5
    assert adv["online_ratio_to_global"]["batched_stability_given"]["nearest-then-bound"] < 0.5
    assert max(adv["prediction"]["relative_error_local"]) <= 0.4
    assert results["helmholtz1d"]["targets"]["predicted_sizes_within_30_percent"]

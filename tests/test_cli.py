"""The certrb command line."""

import json

import numpy as np
import scipy.sparse as sp
from typer.testing import CliRunner

import certrb
from certrb.cli import app

runner = CliRunner()


def test_reproduce_diffusion1d_writes_json_and_png(tmp_path):
    out = tmp_path / "res"
    result = runner.invoke(app, ["reproduce", "diffusion1d", "--elements", "60", "--train", "60", "--test", "10",
                                 "--max-basis", "8", "--max-points", "200", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "diffusion1d.json").read_text())
    assert data["problem"]["name"] == "diffusion1d"
    assert data["problem"]["n_elements"] == 60
    assert "truth-double" in data["floors"]
    assert (out / "diffusion1d.png").stat().st_size > 10_000
    assert "floor" in result.output
    assert not list(out.glob(".*tmp"))


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("reproduce", "info", "evaluate"):
        assert cmd in result.output


def test_evaluate_json_gives_the_model_results_bit_for_bit(tmp_path):
    n = 40
    K0 = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tocsr() * n
    K1 = sp.identity(n, format="csr") / n
    space = certrb.ParameterSpace(["mu1"], [0.1], [10.0])
    problem = certrb.Problem(certrb.AffineOperator([K0, K1], ["1", "mu1"]),
                             certrb.AffineFunctional([np.ones(n) / n], ["sin(mu1) + 2"]), K0, space,
                             stability=certrb.MinTheta([1.0]))
    model = certrb.weak_greedy(certrb.OfflineBuilder(problem), space.grid(20), tol=1e-10, max_basis=6).model
    certrb.save(model, tmp_path / "model.h5")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "model.h5"), "--mu", "0.3", "--mu", "7.1", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    res = model.evaluate(np.array([[0.3], [7.1]]))
    assert got["mu"] == [[0.3], [7.1]]
    assert (got["estimator"], got["n"], got["rigorous"]) == (res.estimator, res.n, res.rigorous)
    for key in ("coefficients", "residual_norm", "bound", "relative_bound"):
        assert np.array(got[key]).tobytes() == getattr(res, key).tobytes(), key
    assert got["output"] is None

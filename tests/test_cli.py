"""The certrb command line."""

import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import certrb
from certrb.cli import app, remaining_steps

runner = CliRunner()


def test_reproduce_diffusion1d_writes_json_and_png(tmp_path):
    out = tmp_path / "res"
    result = runner.invoke(app, ["reproduce", "diffusion1d", "--elements", "60", "--train", "60", "--test", "10",
                                 "--max-basis", "8", "--max-points", "200", "--no-offline-sweep", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "diffusion1d.json").read_text())
    assert "offline_solve_sweep" not in data  # tests/test_offline_floor.py covers the sweep
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


# --- evaluate: named parameters, CSV in and out ---------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A two-parameter model with an output, saved; returns (path, model)."""
    n = 30
    K0 = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tocsr() * n
    M = sp.identity(n, format="csr") / n
    space = certrb.ParameterSpace(["k", "c"], [0.1, 1.0], [10.0, 5.0])
    f = certrb.AffineFunctional([np.ones(n) / n], ["1"])
    problem = certrb.Problem(certrb.AffineOperator([K0, M], ["c", "k"]), f, K0, space,
                             stability=certrb.MinTheta([1.0, 1.0]), output=f)
    model = certrb.weak_greedy(certrb.OfflineBuilder(problem), space.grid(6), tol=1e-10, max_basis=5).model
    path = tmp_path_factory.mktemp("model") / "model.h5"
    certrb.save(model, path)
    return path, model


def _csv_rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_named_positional_and_csv_parameters_agree(saved, tmp_path):
    path, model = saved
    params = tmp_path / "params.csv"
    params.write_text("c,k\n2.5,0.3\n1.0,7.0\n")  # columns in any order
    out = tmp_path / "res" / "results.csv"
    result = runner.invoke(app, ["evaluate", str(path), "--mu", "c=2.5,k=0.3", "--mu", "0.3,2.5", "--csv",
                                 str(params), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _csv_rows(out)
    assert list(rows[0]) == ["k", "c", "output", "output_bound", "bound", "relative_bound", "rigorous"]
    mus = np.array([[0.3, 2.5], [0.3, 2.5], [0.3, 2.5], [7.0, 1.0]])
    np.testing.assert_array_equal([[float(r["k"]), float(r["c"])] for r in rows], mus)
    res = model.evaluate(mus)
    for key, want in (("bound", res.bound), ("relative_bound", res.relative_bound), ("output", res.output),
                      ("output_bound", res.output_bound)):
        np.testing.assert_array_equal([float(r[key]) for r in rows], want)  # full precision
    assert {r["rigorous"] for r in rows} == {str(res.rigorous).lower()}
    assert "output" in result.output
    assert f"{res.bound[3]:.3e}" in result.output


def _plain_error(result, *needles):
    """A user error: exit status 2, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("certrb: error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(("args", "needles"), [
    (["--mu", "k=1,z=2"], ("unknown parameter 'z'",)),
    (["--mu", "k=1"], ("missing c",)),
    (["--mu", "k=1,2"], ("name every value",)),
    (["--mu", "1,2,3"], ("3 value(s) for the 2 parameters",)),
    (["--mu", "1,x"], ("--mu",)),
    (["--mu", "50,2"], ("outside the parameter domain",)),
    (["--mu", "1,2", "--estimator", "eim"], ("no estimator 'eim'",)),
    (["--mu", "1,2", "--n", "0"], ("--n",)),
    (["--mu", "1,2", "--n", "99"], ("N = 5",)),
    ([], ("--mu", "--csv")),
    (["--mu", "1,2", "--bogus"], ("No such option",)),
])
def test_evaluate_user_errors_are_one_line_with_status_2(saved, args, needles):
    _plain_error(runner.invoke(app, ["evaluate", str(saved[0]), *args]), *needles)


def test_evaluate_file_errors(saved, tmp_path):
    model = str(saved[0])
    _plain_error(runner.invoke(app, ["evaluate", str(tmp_path / "none.h5"), "--mu", "1,2"]), "not found")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file")
    _plain_error(runner.invoke(app, ["evaluate", str(corrupt), "--mu", "1,2"]), "corrupt.h5")
    bad = tmp_path / "bad.csv"
    bad.write_text("k,d\n1,2\n")
    _plain_error(runner.invoke(app, ["evaluate", model, "--csv", str(bad)]), "header must name the parameters k, c")
    bad.write_text("k,c\n1,2\n1,x\n")
    _plain_error(runner.invoke(app, ["evaluate", model, "--csv", str(bad)]), "line 3")
    _plain_error(runner.invoke(app, ["evaluate", model, "--csv", str(tmp_path / "none.csv")]), "--csv")
    _plain_error(runner.invoke(app, ["evaluate", model, "--mu", "1,2", "--out", str(tmp_path)]), "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _plain_error(runner.invoke(app, ["evaluate", model, "--mu", "1,2", "--out", str(blocker / "r.csv")]),
                 "cannot write")


def test_debug_shows_the_traceback(saved):
    result = runner.invoke(app, ["--debug", "evaluate", str(saved[0]), "--mu", "50,2"])
    assert isinstance(result.exception, certrb.ParameterError)


@pytest.mark.parametrize("args", [
    ["reproduce", "diffusion1d", "--elements", "0"],
    ["reproduce", "helmholtz1d", "--elements", "1"],
    ["reproduce", "helmholtz1d", "--k-max", "0.5"],
    ["reproduce", "scattering3d", "--level", "-1"],
    ["reproduce", "diffusion1d", "--train", "0"],
    ["reproduce", "diffusion1d", "--elements", "ten"],
])
def test_reproduce_rejects_bad_options_before_computing(args):
    _plain_error(runner.invoke(app, args), "Invalid value for")


def test_reproduce_checks_the_output_folder_first(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    _plain_error(runner.invoke(app, ["reproduce", "diffusion1d", "--out", str(blocker)]), "not a folder")


@pytest.mark.parametrize(("bounds", "n", "expected"), [
    ([np.inf, 1e-2, 1e-3, 1e-4], 3, 4),  # one decade per step, 1e-4 -> 1e-8
    ([np.inf, 1e-2], 1, None),  # a rate needs two bounds
    ([np.inf, 1e-2, 1e-2], 2, None),  # not decaying
    ([np.inf, 1e-2, 1e-3, 1e-4], 18, 2),  # capped by max_basis
    ([np.inf, 1e-2, 1e-9], 2, 0),  # converged
])
def test_remaining_steps_from_the_decay_rate(bounds, n, expected):
    assert remaining_steps(bounds, 1e-8, n, 20) == expected

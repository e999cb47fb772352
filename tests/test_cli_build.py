"""certrb build: from five matrix files and a TOML spec to a certified model, evaluated from the command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

import certrb
from certrb.cli import app
from certrb.problems.thermal_block import thermal_block

runner = CliRunner()

SPEC = """\
[parameters]
mu1 = [0.1, 1.0]
mu2 = [0.1, 1.0]
mu3 = [0.1, 1.0]
mu4 = { range = [0.1, 1.0], scale = "log" }
[operator]
terms = ["A1.mtx", "A2.mtx", "A3.mtx", "A4.mtx"]
coefficients = ["mu1", "mu2", "mu3", "mu4"]
[rhs]
terms = ["f.mtx"]
coefficients = ["1"]
[output]
terms = ["f.mtx"]
coefficients = ["1"]
[inner_product]
reference = { mu1 = 1, mu2 = 1, mu3 = 1, mu4 = 1 }
[stability]
kind = "min-theta"
reference = { mu1 = 1, mu2 = 1, mu3 = 1, mu4 = 1 }
[reduction]
tol = 1e-6
max_basis = 20
train = 300
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An empty folder, the 2x2 thermal block as five Matrix Market files and a spec, then `certrb build`."""
    folder = tmp_path_factory.mktemp("thermal")
    truth = thermal_block((2, 2), n=8)
    for q, a in enumerate(truth.operator.terms):
        scipy.io.mmwrite(folder / f"A{q + 1}.mtx", a)
    scipy.io.mmwrite(folder / "f.mtx", truth.rhs.terms[0][:, None])
    (folder / "block.toml").write_text(SPEC)
    model = folder / "out" / "block.h5"
    result = runner.invoke(app, ["build", str(folder / "block.toml"), "-o", str(model), "-r",
                                 str(folder / "out" / "report")])
    return folder, model, result


def test_spec_is_short():
    assert len(SPEC.splitlines()) <= 25


def test_build_writes_a_self_contained_model_and_a_report(built):
    folder, model_path, result = built
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "out" / "report.json").read_text())
    assert (folder / "out" / "report.png").stat().st_size > 10_000
    assert report["reason"] == "tolerance"
    assert report["final_bound"] <= 1e-6
    assert report["problem"]["parameters"]["mu4"] == {"range": [0.1, 1.0], "scale": "log"}
    bounds = [s["max_bound"] for s in report["history"][1:]]
    assert bounds[-1] < bounds[0]
    model = certrb.load(model_path)  # expressions and min-theta data only: loads untrusted
    assert model.n_basis == report["n_basis"] == len(report["history"]) - 1
    assert f"N = {model.n_basis}" in result.output


def test_certified_bounds_hold_against_the_truth(built):
    folder, model_path, _ = built
    problem = certrb.Problem.from_spec(folder / "block.toml")
    model = certrb.load(model_path)
    mus = problem.parameter_space.sample(30, rng=7)
    error, _ = certrb.true_error(problem, model, mus)
    res = model.evaluate(mus)
    assert res.rigorous
    assert np.all(res.bound >= error)
    np.testing.assert_allclose(problem.solve(mus), thermal_block((2, 2), n=8).solve(mus), rtol=1e-12)


def test_evaluate_the_built_model(built, tmp_path):
    model_path = built[1]
    params = tmp_path / "params.csv"
    params.write_text("mu1,mu2,mu3,mu4\n0.2,0.4,0.6,0.8\n1.0,0.1,0.1,1.0\n")
    out = tmp_path / "results.csv"
    result = runner.invoke(app, ["evaluate", str(model_path), "--csv", str(params), "--mu",
                                 "mu4=0.3,mu1=0.5,mu2=0.5,mu3=0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "mu1,mu2,mu3,mu4,output,output_bound,bound,relative_bound,rigorous"
    assert len(lines) == 4
    assert lines[1].startswith("0.5,0.5,0.5,0.3,")  # --mu rows first, then the CSV rows


@pytest.mark.parametrize(("edit", "args", "needle"), [
    (None, ["--tol", "-1"], "[reduction] tol"),
    (None, ["--estimator", "nope"], "unknown estimator 'nope'"),
    (None, ["--max-basis", "x"], "--max-basis"),
    (("f.mtx", "g.mtx"), [], "[rhs] terms[0] 'g.mtx'"),
    (("mu4", "mu5"), [], "[operator] coefficients[3] = 'mu5'"),
])
def test_build_user_errors_are_one_line_with_status_2(built, tmp_path, edit, args, needle):
    folder = built[0]
    spec = folder / "bad.toml"
    spec.write_text(SPEC if edit is None else SPEC.replace(f'"{edit[0]}"', f'"{edit[1]}"'))
    result = runner.invoke(app, ["build", str(spec), "-o", str(tmp_path / "m.h5"), *args])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr
    assert not (tmp_path / "m.h5").exists()


def test_build_checks_the_output_paths_before_running(built, tmp_path):
    folder = built[0]
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args in (["-o", str(blocker / "m.h5")], ["-o", str(tmp_path / "m.h5"), "-r", str(blocker / "rep")],
                 ["-o", str(tmp_path)]):
        result = runner.invoke(app, ["build", str(folder / "block.toml"), *args])
        assert result.exit_code == 2, result.output
        assert "Invalid value for --output" in result.stderr or "Invalid value for --report" in result.stderr
        assert "greedy" not in result.output


@pytest.mark.e2e
def test_the_certrb_command_in_a_fresh_process(built):
    model_path = built[1]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "certrb.cli", "evaluate", str(model_path), "--mu", "mu1=0.5,mu2=0.5,mu3=0.5,mu4=0.5",
           "--json"]
    good = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert good.returncode == 0, good.stderr
    record = json.loads(good.stdout)
    assert record["rigorous"] is True
    assert record["bound"][0] == certrb.load(model_path).evaluate([[0.5] * 4]).bound[0]
    bad = subprocess.run([*cmd[:-2], "mu1=5,mu2=0.5,mu3=0.5,mu4=0.5"], capture_output=True, text=True, env=env,
                         check=False)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("certrb: error: ")
    assert "outside the parameter domain" in bad.stderr

"""``certrb bench``: runs the benchmark scripts of the source tree (``--quick``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certrb.cli import BENCHMARKS, _benchmark_folder, app

runner = CliRunner()
SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"
FOLDER = ["--benchmarks", str(SCRIPTS)]  # the package may be installed away from this checkout


def check_run(out, name: str) -> None:
    record = json.loads((out / f"{name}.json").read_text())
    assert record["benchmark"] == name
    assert record["parameters"]["quick"] is True
    assert (out / f"{name}.png").stat().st_size > 0


def test_bench_quick_subset(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--quick", "--only", "online", "--only", "scaling", *FOLDER, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "bench.json").read_text())
    assert summary["quick"] is True
    assert summary["threads"] == 1
    assert list(summary["benchmarks"]) == ["online", "scaling"]
    for name, run in summary["benchmarks"].items():
        assert run["status"] == "ok", run
        assert run["files"] == [f"{name}.json", f"{name}.png"]
        assert "--quick" in run["command"]
        check_run(out, name)
    assert "spread" in result.output  # the scaling script's own summary is shown


@pytest.mark.slow
def test_bench_quick_all(tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["bench", "--quick", *FOLDER, "--out", str(out)])
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "bench.json").read_text())["benchmarks"]
    assert list(runs) == list(BENCHMARKS)
    optional = {"vs_pymor": "pymor", "dask_throughput": "distributed"}
    for name, run in runs.items():
        if name in optional and importlib.util.find_spec(optional[name]) is None:
            assert run["status"] == "skipped"
        else:
            assert run["status"] == "ok", run
            check_run(out, name)
    if runs["vs_pymor"]["status"] == "ok":
        assert "--big" in runs["vs_pymor"]["command"]


def test_bench_skips_without_optional_dependency(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pymor" else real(name, *a))
    out = tmp_path / "bench"
    result = runner.invoke(app, ["bench", "--quick", "--only", "vs_pymor", *FOLDER, "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "bench.json").read_text())["benchmarks"]["vs_pymor"]
    assert run == {"status": "skipped", "reason": "pymor is not importable"}
    assert not (out / "vs_pymor.json").exists()


def test_bench_needs_the_scripts(tmp_path):
    result = runner.invoke(app, ["bench", "--quick", "--benchmarks", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "source checkout" in result.output


def test_bench_rejects_unknown_benchmark(tmp_path):
    result = runner.invoke(app, ["bench", "--only", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown benchmark" in result.output


def test_default_folder_is_found_from_a_checkout(monkeypatch):
    """Without --benchmarks the scripts are found next to the package or in the current checkout."""
    monkeypatch.chdir(SCRIPTS.parent)
    assert (_benchmark_folder(None) / "online.py").is_file()

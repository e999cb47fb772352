"""``certrb bench``: runs benchmark scripts in fresh interpreters and records what they did.

The scripts here are stand-ins that record how they were called; the real benchmark
scripts have their own smoke tests (``-m bench``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certrb.cli import BENCHMARKS, _benchmark_folder, app

runner = CliRunner()
SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"
STUB = '''
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
name = Path(__file__).stem
if os.environ.get("FAIL_BENCHMARK") == name:
    sys.exit(f"{name} failed on purpose")
out = Path(args[args.index("--out") + 1])
env = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPLBACKEND")}
(out / f"{name}.json").write_text(json.dumps({"benchmark": name, "args": args, "env": env}))
(out / f"{name}.png").write_bytes(b"png")
print(f"summary of {name}")
'''


@pytest.fixture
def stubs(tmp_path) -> Path:
    """A folder with a stand-in script for every benchmark."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name in BENCHMARKS:
        (folder / f"{name}.py").write_text(STUB)
    return folder


def invoke(stubs: Path, out: Path, *args: str):
    return runner.invoke(app, ["bench", *args, "--benchmarks", str(stubs), "--out", str(out)])


def test_bench_runs_the_chosen_scripts_with_pinned_threads(stubs, tmp_path):
    out = tmp_path / "bench"
    result = invoke(stubs, out, "--quick", "--only", "scaling", "--only", "online", "--only", "scaling",
                    "--threads", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "bench.json").read_text())
    assert summary["quick"] is True
    assert summary["threads"] == 2
    assert list(summary["benchmarks"]) == ["scaling", "online"]  # in the order asked, once each
    for name, run in summary["benchmarks"].items():
        assert run["status"] == "ok", run
        assert run["files"] == [f"{name}.json", f"{name}.png"]
        assert run["summary"] == [f"summary of {name}"]
        called = json.loads((out / f"{name}.json").read_text())
        assert called["args"] == ["--out", str(out), "--quick"]
        assert called["env"] == {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
                                 "MPLBACKEND": "Agg"}
        assert f"summary of {name}" in result.output


def test_bench_runs_all_and_skips_without_optional_dependency(stubs, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    fake = {"pymor": real("certrb"), "distributed": None}  # pyMOR importable, dask.distributed not
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake[name] if name in fake else real(name, *a))
    out = tmp_path / "bench"
    result = invoke(stubs, out)
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "bench.json").read_text())["benchmarks"]
    assert list(runs) == list(BENCHMARKS)
    assert runs["dask_throughput"] == {"status": "skipped", "reason": "distributed is not importable"}
    assert not (out / "dask_throughput.json").exists()
    for name in ("online", "vs_pymor", "scaling"):
        assert runs[name]["status"] == "ok", runs[name]
    assert json.loads((out / "vs_pymor.json").read_text())["args"] == ["--out", str(out), "--big"]
    assert json.loads((out / "online.json").read_text())["args"] == ["--out", str(out)]  # full runs


def test_bench_reports_a_failing_script(stubs, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIL_BENCHMARK", "online")
    out = tmp_path / "bench"
    result = invoke(stubs, out, "--quick", "--only", "online", "--only", "scaling")
    assert result.exit_code == 1
    runs = json.loads((out / "bench.json").read_text())["benchmarks"]
    assert runs["online"]["status"] == "failed"
    assert runs["online"]["returncode"] == 1
    assert runs["online"]["stderr_tail"] == ["online failed on purpose"]
    assert runs["online"]["files"] == []
    assert runs["scaling"]["status"] == "ok"  # a failure does not stop the others


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

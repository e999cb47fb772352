"""The certrb command line."""

import json

from typer.testing import CliRunner

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

"""Every code block of README.md and docs/ runs, and the user guide builds.

Per file, the fenced ```python blocks run in document order in one namespace, in an empty
folder (so a snippet that uses a name no earlier snippet defined fails). Shell blocks
(```bash, ```console, ```sh): each ``certrb ...`` line is checked against the command line
(``--help`` with the line's arguments parses them); under ``<!-- run -->`` it runs for real,
in the same folder, after the python blocks above it. A block under ``<!-- no-run: why -->``
is skipped; one under ``<!-- dask: why -->`` runs only in the dask-marked test; one under
``<!-- requires: module -->`` only where that module is installed. The strict
MkDocs build is an e2e test.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
TAG = re.compile(r"<!--\s*(no-run|run|dask|requires)\b:?\s*([\w.]*)[^>]*-->\s*\Z")
SHELLS = ("bash", "console", "sh", "shell")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    tag: str | None  # "no-run", "run", "dask", "requires" or None, from an HTML comment right above the fence
    needs: str = ""  # the module a "requires: module" block needs


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the tag of the comment right above each."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        tag = TAG.search(before)
        blocks.append(Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1,
                            tag.group(1) if tag else None, tag.group(2) if tag else ""))
    return blocks


def certrb_commands(code: str) -> list[list[str]]:
    """The argument lists of the ``certrb`` command lines of a shell block (prompts, comments, ``\\`` joined)."""
    joined = re.sub(r"\\\n", " ", code)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line.removeprefix("$ "), comments=True)
        start = 0
        for end in [i for i, w in enumerate(words) if w in ("&&", "||", ";")] + [len(words)]:
            if words[start:end][:1] == ["certrb"]:
                commands.append(words[start + 1:end])
            start = end + 1
    return commands


def _run_cli(args: list[str]):
    from typer.testing import CliRunner

    from certrb.cli import app

    return CliRunner().invoke(app, args)


def run_file(path: Path, *, dask: bool) -> int:
    """Run the blocks of ``path`` in the current folder, in one module namespace; returns how many ran."""
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", path.stem))  # a real module: dataclasses need one
    sys.modules[module.__name__] = module
    try:
        return _run_blocks(path, module.__dict__, dask)
    finally:
        del sys.modules[module.__name__]


def _run_blocks(path: Path, namespace: dict, dask: bool) -> int:
    ran = 0
    for block in code_blocks(path):
        where = f"{path.name}:{block.line}"
        if block.tag == "no-run" or (block.tag == "dask" and not dask):
            continue
        if block.tag == "requires" and importlib.util.find_spec(block.needs) is None:
            continue  # an optional dependency that is not installed
        if block.lang == "python":
            exec(compile(block.code, where, "exec"), namespace)  # the documentation's own snippets
            ran += 1
        elif block.lang in SHELLS:
            for args in certrb_commands(block.code):
                real = block.tag == "run"
                result = _run_cli(args if real else [*args, "--help"])
                assert result.exit_code == 0, f"{where}: certrb {shlex.join(args)}\n{result.output}\n{result.exception}"
                ran += 1
    return ran


def _with_blocks(paths: list[Path]) -> list[Path]:
    return [p for p in paths if any(b.lang == "python" or (b.lang in SHELLS and certrb_commands(b.code))
                                    for b in code_blocks(p))]


@pytest.fixture
def docs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.e2e  # every block of README and docs, in CI's second step (the README's quick start alone takes ~10 s)
@pytest.mark.parametrize("path", _with_blocks(DOC_FILES), ids=lambda p: p.name)
def test_code_blocks_run(path, docs_folder):
    assert run_file(path, dask=False) > 0


@pytest.mark.dask
@pytest.mark.parametrize("path", [p for p in DOC_FILES if any(b.tag == "dask" for b in code_blocks(p))],
                         ids=lambda p: p.name)
def test_code_blocks_run_with_dask(path, docs_folder):
    assert run_file(path, dask=True) > 0


def test_the_parser_sees_tags_and_commands(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- no-run: slow -->\n```python\nraise SystemExit\n```\n\n```console\n"
                    "$ certrb evaluate model.h5 \\\n    --mu 1,2  # comment\n$ ls\n"
                    "pip install x && certrb info m.h5\n```\n")
    blocks = code_blocks(page)
    assert [(b.lang, b.tag, b.line) for b in blocks] == [("python", "no-run", 4), ("console", None, 8)]
    assert certrb_commands(blocks[1].code) == [["evaluate", "model.h5", "--mu", "1,2"], ["info", "m.h5"]]


def test_a_failing_snippet_fails(tmp_path, docs_folder):
    page = tmp_path / "bad.md"
    page.write_text("```python\nx = 1\n```\n\n```python\nprint(y)\n```\n")
    with pytest.raises(NameError, match="'y'"):
        run_file(page, dask=False)
    page.write_text("```bash\ncertrb evaluate model.h5 --no-such-option\n```\n")
    with pytest.raises(AssertionError, match="no-such-option"):
        run_file(page, dask=False)


def _cli_hook():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "_hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_lists_every_command_and_option():
    import typer.main

    from certrb.cli import app

    text = _cli_hook().cli_reference()
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="certrb")
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        leaves = [(f"certrb {name} {sub}", command.get_command(ctx, sub)) for sub in command.list_commands(ctx)] \
            if hasattr(command, "list_commands") else [(f"certrb {name}", command)]
        for title, leaf in leaves:
            assert f"## {title}\n" in text
            for param in leaf.params:
                if param.name != "help":
                    assert f"{param.opts[0]}" in text, (title, param.name)


@pytest.mark.e2e
def test_user_guide_builds_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip("mkdocs and mkdocstrings[python] are not installed (pip install '.[docs]')")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "api" / "index.html").exists()

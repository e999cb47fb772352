"""MkDocs hook: the CLI reference page, generated from the typer application ``certrb.cli.app``.

The marker ``<!-- cli-reference -->`` in a page is replaced by one section per command
(usage, help text, a table of arguments and options), read from the click command that
typer builds, so the page cannot drift from the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-reference -->"


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command under ``command`` with its name path, in the groups' order."""
    if hasattr(command, "list_commands"):  # a group (typer may ship its own copy of click: no isinstance)
        ctx = _context(command, path)
        for name in command.list_commands(ctx):
            yield from _commands(command.get_command(ctx, name), (*path, name))
    else:
        yield path, command


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _paragraphs(text: str) -> str:
    return "\n\n".join(" ".join(par.split()) for par in text.split("\n\n"))


def _param_row(param: Any, ctx: Any) -> str:
    """One table row from the parameter's own help record: names with the value's type, help, default."""
    record = param.get_help_record(ctx)
    names, text = record if record is not None else (param.name, "")
    return f"| `{_cell(names)}` | {_cell(text)} |"


def cli_reference(app: Any = None, prog: str = "certrb") -> str:
    """Markdown reference of every ``certrb`` command.

    Parameters
    ----------
    app : typer.Typer, optional
        The application (default ``certrb.cli.app``).
    prog : str
        The program name shown in the usage lines.

    Returns
    -------
    str
        One ``## prog command`` section per command.

    """
    import typer.main

    if app is None:
        from certrb.cli import app
    root = typer.main.get_command(app)
    sections = []
    for path, command in _commands(root, (prog,)):
        ctx = _context(command, path)
        params = [p for p in command.params if p.name != "help" and not getattr(p, "hidden", False)]
        usage = " ".join((*path, *command.collect_usage_pieces(ctx)))
        lines = [f"## {' '.join(path)}", "", _paragraphs(command.help or ""), "", "```text", usage.strip(), "```", ""]
        if params:
            lines += ["| argument / option | description |", "|---|---|"]
            lines += [_param_row(p, ctx) for p in params]
            lines.append("")
        sections.append("\n".join(lines))
    return "\n".join(sections)


def _context(command: Any, path: tuple[str, ...]) -> Any:
    return command.context_class(command, info_name=" ".join(path))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker by the generated reference (MkDocs event)."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())

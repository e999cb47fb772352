"""The ``certrb`` command line (typer + rich), a thin layer over the library."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Certified reduced basis models with round-off-robust error bounds.", no_args_is_help=True)
reproduce_app = typer.Typer(help="Reproduce the method's studies.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")
console = Console()


def write_json_atomic(data: dict, path: Path) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _floors_table(results: dict) -> Table:
    table = Table(title="Estimator floors (relative residual below which deviation from E0 extended > 1%)")
    for col in ("estimator", "floor", "observed", "violations (bound < error)"):
        table.add_column(col)
    for name, floor in results["floors"].items():
        seen = "yes" if results["floors_reached"][name] else "below this"
        table.add_row(name, f"{floor:.2e}", seen, str(results["violations"].get(name, "-")))
    return table


_Train = Annotated[int, typer.Option(help="Random training parameters of the greedies.")]
_Test = Annotated[int, typer.Option(help="Random test parameters.")]
_MaxBasis = Annotated[int, typer.Option(help="Largest basis size N.")]
_MaxPoints = Annotated[int, typer.Option(help="Largest point-basis size d = K(K+1)/2 (K^2 if complex).")]
_Seed = Annotated[int, typer.Option(help="Random seed.")]
_Out = Annotated[Path, typer.Option(help="Output folder.")]
_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress messages.")]


def _run_study(name: str, problem, settings: dict, describe: dict, out: Path, verbose: bool) -> None:
    """Run :func:`certrb.study.roundoff_study` with progress bars; write ``out/name.json`` and ``.png``."""
    from .plots import plot_roundoff_study
    from .study import roundoff_study

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        results = roundoff_study(problem, progress=progress, **settings)
    results["problem"].update(name=name, **describe)
    json_path, png_path = out / f"{name}.json", out / f"{name}.png"
    write_json_atomic(results, json_path)
    details = ", ".join(f"{k} = {v}" for k, v in describe.items())
    plot_roundoff_study(results, png_path, title=f"{name}, {details}, n_h = {problem.size}")
    console.print(_floors_table(results))
    console.print(f"wrote {json_path} and {png_path}")


@reproduce_app.command("diffusion1d")
def reproduce_diffusion1d(
    elements: Annotated[int, typer.Option(help="Number of P1 elements.")] = 500,
    train: _Train = 1000,
    test: _Test = 200,
    max_basis: _MaxBasis = 40,
    max_points: _MaxPoints = 10000,
    seed: _Seed = 0,
    out: _Out = Path("results"),
    verbose: _Verbose = False,
) -> None:
    """Run the 1D round-off study: every estimator against the truth, N = 1..N_max."""
    from .problems import diffusion1d

    settings = dict(n_train=train, n_test=test, max_basis=max_basis, seed=seed, max_points=max_points)
    _run_study("diffusion1d", diffusion1d(elements), settings, {"n_elements": elements}, out, verbose)


@reproduce_app.command("helmholtz1d")
def reproduce_helmholtz1d(
    elements: Annotated[int, typer.Option(help="Number of P1 elements.")] = 400,
    k_max: Annotated[float, typer.Option(help="Largest wavenumber (range [1, k_max]).")] = 10.0,
    train: _Train = 500,
    test: _Test = 200,
    max_basis: _MaxBasis = 40,
    max_points: _MaxPoints = 10000,
    seed: _Seed = 0,
    out: _Out = Path("results"),
    verbose: _Verbose = False,
) -> None:
    """The same study on the complex, non-coercive Helmholtz problem (inf-sup SCM)."""
    from .problems.helmholtz1d import helmholtz1d

    settings = dict(n_train=train, n_test=test, max_basis=max_basis, seed=seed, max_points=max_points)
    problem = helmholtz1d(elements, (1.0, k_max))
    _run_study("helmholtz1d", problem, settings, {"n_elements": elements, "k_max": k_max}, out, verbose)


@app.command()
def info(model: Annotated[Path, typer.Argument(help="Saved model file (HDF5).")]) -> None:
    """Describe a saved reduced model."""
    from .io import load

    rom = load(model)
    table = Table(title=str(model))
    table.add_column("property")
    table.add_column("value")
    table.add_row("parameters", repr(rom.parameter_space))
    table.add_row("N", str(rom.n_basis))
    table.add_row("Q_a, Q_f", f"{rom.A_N.shape[0]}, {rom.f_N.shape[0]}")
    table.add_row("estimators", ", ".join(sorted(rom.estimators)) + f" (default {rom.default_estimator})")
    table.add_row("basis kept", "yes" if rom.basis is not None else "no (online only)")
    table.add_row("output", "yes" if rom.output is not None else "no")
    console.print(table)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Saved model file (HDF5).")],
    mu: Annotated[list[str], typer.Option(help="A parameter as comma-separated values; repeat for a batch.")],
    estimator: Annotated[str | None, typer.Option(help="Estimator name (default: the model's).")] = None,
    n: Annotated[int | None, typer.Option(help="Nested sub-model size.")] = None,
) -> None:
    """Evaluate a saved model: reduced solution norm, residual norm and error bound."""
    from .io import load

    rom = load(model)
    try:
        mus = np.array([[float(v) for v in m.split(",")] for m in mu])
    except ValueError as exc:
        raise typer.BadParameter(f"--mu must be comma-separated numbers: {exc}") from exc
    res = rom.evaluate(mus, estimator=estimator, n=n)
    table = Table(title=f"{res.estimator}, N = {res.n}")
    for col in ("mu", "||u_N||", "residual norm", "bound", "relative bound"):
        table.add_column(col)
    for i, m in enumerate(mus):
        table.add_row(", ".join(f"{v:g}" for v in m), f"{np.linalg.norm(res.coefficients[i]):.6e}",
                      f"{res.residual_norm[i]:.3e}", f"{res.bound[i]:.3e}", f"{res.relative_bound[i]:.3e}")
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point
    """Run the command line."""
    app()

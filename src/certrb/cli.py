"""The ``certrb`` command line (typer + rich), a thin layer over the library."""

from __future__ import annotations

import csv
import importlib
import json
import logging
import math
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import CertRBError

if TYPE_CHECKING:
    from .offline.greedy import GreedyStep
    from .offline.spec import Spec
    from .online.evaluate import OnlineResult
    from .online.model import ReducedModel

# typer re-exports click's exceptions (recent typer versions carry their own copy of click): take them from there
_click_errors: Any = importlib.import_module(typer.BadParameter.__module__)
_UsageError: type[Exception] = _click_errors.UsageError
_NoArgsIsHelp: tuple = tuple(filter(None, [getattr(_click_errors, "NoArgsIsHelpError", None)]))

USER_ERRORS = (CertRBError, OSError, ValueError, _click_errors.ClickException)
"""Exceptions reported as one line on stderr with exit status 2 (a traceback only with ``--debug``)."""

_STATE = {"debug": False}


class _PlainErrorGroup(typer.core.TyperGroup):
    """The command group, reporting user errors as one line on stderr with exit status 2.

    Usage errors (bad or missing options, values out of range) and the library's
    errors on bad input (:data:`USER_ERRORS`: certrb's own, missing or unreadable
    files, bad values) print ``certrb: error: <message>``; ``certrb --debug ...``
    shows the traceback instead. Other exceptions are bugs and keep their traceback.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        """Run the command line; exit with 0, the command's exit code, or 2 on a user error."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        _STATE["debug"] = False
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NoArgsIsHelp as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        except USER_ERRORS as exc:
            if _STATE["debug"] and not isinstance(exc, _UsageError):
                raise
            typer.echo(f"certrb: error: {_one_line(exc)}", err=True)
            sys.exit(2)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(exc: BaseException) -> str:
    """The message of a user error on one line (a usage error names the command and its --help)."""
    if isinstance(exc, _click_errors.ClickException):
        text = exc.format_message()
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, _UsageError) and ctx is not None:
            text = f"{text} (see {ctx.command_path} --help)"
    elif isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError) and exc.filename is not None:
        text = f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


app = typer.Typer(help="Certified reduced basis models with round-off-robust error bounds.", no_args_is_help=True,
                  cls=_PlainErrorGroup)
reproduce_app = typer.Typer(help="Reproduce the method's studies.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")
console = Console()
Trusted = Annotated[bool, typer.Option(help="Import the functions a model file names by import path: trusted "
                                            "files only (importing runs their code).")]


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False) -> None:
    """Certified reduced basis models with round-off-robust error bounds."""
    _STATE["debug"] = debug


def check_writable(path: Path, option: str) -> None:
    """Check that a file can be written at ``path`` (creating missing parent folders), before any computing.

    Raises
    ------
    typer.BadParameter
        If ``path`` is a folder, an existing read-only file, or no file can be created in its folder.

    """
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a file name", param_hint=option)
    if path.exists() and not os.access(path, os.W_OK):
        raise typer.BadParameter(f"cannot write {path}: permission denied", param_hint=option)
    _probe_folder(path.parent, path, option)


def check_writable_folder(folder: Path, option: str) -> None:
    """Check that files can be written in ``folder`` (created if missing), before any computing."""
    if folder.exists() and not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint=option)
    _probe_folder(folder, folder, option)


def _probe_folder(folder: Path, target: Path, option: str) -> None:
    """Create ``folder`` if missing and a file in it (removed at once), or raise BadParameter naming ``target``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".certrb-", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {target}: {exc.strerror or exc}", param_hint=option) from None


def write_json_atomic(data: dict, path: Path) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename.

    A new file gets mode ``0o666`` less the umask, as :func:`open` gives.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies; O_EXCL never clobbers
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
    for col in ("estimator", "floor", "observed", "violations (estimate < error)", "certified bound < error"):
        table.add_column(col)
    certified = results.get("certified_violations", {})
    for name, floor in results["floors"].items():
        seen = "yes" if results["floors_reached"][name] else "below this"
        table.add_row(name, f"{floor:.2e}", seen, str(results["violations"].get(name, "-")),
                      str(certified.get(name, "-")))
    return table


_Train = Annotated[int, typer.Option(min=1, help="Random training parameters of the greedies.")]
_Test = Annotated[int, typer.Option(min=1, help="Random test parameters.")]
_MaxBasis = Annotated[int, typer.Option(min=1, help="Largest basis size N.")]
_MaxPoints = Annotated[int, typer.Option(min=1, help="Largest point-basis size d = K(K+1)/2 (K^2 if complex).")]
_Seed = Annotated[int, typer.Option(min=0, help="Random seed.")]
_Out = Annotated[Path, typer.Option(help="Output folder.")]
_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress messages.")]


@contextmanager
def _progress_bars(verbose: bool) -> Iterator[Callable[[str, int, int], None]]:
    """Rich progress bars, one per stage: yields ``progress(stage, done, total)`` for the studies."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


def _run_study(name: str, problem, settings: dict, describe: dict, out: Path, verbose: bool,
               offline_sweep: bool = False) -> None:
    """Run :func:`certrb.study.roundoff_study` with progress bars; write ``out/name.json`` and ``.png``.

    ``offline_sweep`` adds :func:`certrb.offline_floor.offline_solve_sweep` (the floors against
    the accuracy of the offline solves) to the JSON, as ``offline_solve_sweep``.
    """
    from .plots import plot_roundoff_study
    from .study import roundoff_study

    with _progress_bars(verbose) as progress:
        results = roundoff_study(problem, progress=progress, **settings)
        if offline_sweep:
            from .offline_floor import STUDY, offline_solve_sweep

            progress("offline-solve sweep", 0, 1)
            results["offline_solve_sweep"] = {"settings": STUDY,
                                              **offline_solve_sweep(problem, STUDY, settings["seed"])}
            progress("offline-solve sweep", 1, 1)
    results["problem"].update(name=name, **describe)
    json_path, png_path = out / f"{name}.json", out / f"{name}.png"
    write_json_atomic(results, json_path)
    details = ", ".join(f"{k} = {v}" for k, v in describe.items())
    plot_roundoff_study(results, png_path, title=f"{name}, {details}, n_h = {problem.size}")
    console.print(_floors_table(results))
    console.print(_precomputation_table(results["precomputation"]))
    console.print(f"wrote {json_path} and {png_path}")


def _precomputation_table(pre: dict) -> Table:
    """The study's precomputation counts at the largest N each estimator was built for."""
    table = Table(title=f"Precomputation per estimator (Q_a = {pre['Q_a']}, Q_f = {pre['Q_f']})")
    for col in ("estimator", "N", "truth solves", "Riesz solves (+ certificate)", "truth residual norms",
                "stored floats", "online flops / query", "offline s (this N / all N)"):
        table.add_column(col)
    for name, row in pre["at_n_max"].items():
        table.add_row(name, str(row["n"]), str(row["truth_solves"]),
                      f"{row['riesz_solves']} (+{row['riesz_solves_certificate']})", str(row["truth_residual_norms"]),
                      str(row["stored_floats"]), str(row["online_flops"]),
                      f"{row['offline_seconds']:.3f} / {row['offline_seconds_total']:.2f}")
    table.caption = escape("online flops = reduced solve + " + "; ".join(
        f"{k}: {v}" for k, v in pre["online_flops_formula"].items() if k != "reduced_solve"))
    return table


@reproduce_app.command("diffusion1d")
def reproduce_diffusion1d(
    elements: Annotated[int, typer.Option(min=2, help="Number of P1 elements.")] = 500,
    train: _Train = 1000,
    test: _Test = 200,
    max_basis: _MaxBasis = 40,
    max_points: _MaxPoints = 10000,
    seed: _Seed = 0,
    offline_sweep: Annotated[bool, typer.Option(help="Also sweep the accuracy of the offline solves "
                                                     "(floors against eta, about 40 s).")] = True,
    out: _Out = Path("results"),
    verbose: _Verbose = False,
) -> None:
    """Run the 1D round-off study: every estimator against the truth, N = 1..N_max."""
    from .problems import diffusion1d

    check_writable_folder(out, "--out")
    settings = dict(n_train=train, n_test=test, max_basis=max_basis, seed=seed, max_points=max_points)
    _run_study("diffusion1d", diffusion1d(elements), settings, {"n_elements": elements}, out, verbose,
               offline_sweep=offline_sweep)


@reproduce_app.command("helmholtz1d")
def reproduce_helmholtz1d(
    elements: Annotated[int, typer.Option(min=2, help="Number of P1 elements.")] = 400,
    k_max: Annotated[float, typer.Option(min=1.0, help="Largest wavenumber (range [1, k_max]).")] = 10.0,
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

    check_writable_folder(out, "--out")
    settings = dict(n_train=train, n_test=test, max_basis=max_basis, seed=seed, max_points=max_points)
    problem = helmholtz1d(elements, (1.0, k_max))
    _run_study("helmholtz1d", problem, settings, {"n_elements": elements, "k_max": k_max}, out, verbose)


@reproduce_app.command("advection2d")
def reproduce_advection2d(
    n: Annotated[int, typer.Option(min=4, help="Cells per side of the unit square (P1 on a cross mesh).")] = 16,
    train: _Train = 300,
    test: _Test = 40,
    max_basis: _MaxBasis = 40,
    max_points: _MaxPoints = 2000,
    seed: _Seed = 0,
    out: _Out = Path("results"),
    verbose: _Verbose = False,
) -> None:
    """The same study on a non-symmetric 2D advection-diffusion-reaction problem (scikit-fem, coercive SCM)."""
    from .problems import advection2d

    check_writable_folder(out, "--out")
    settings = dict(n_train=train, n_test=test, max_basis=max_basis, seed=seed, max_points=max_points)
    problem = advection2d(n)
    _run_study("advection2d", problem, settings, {"n": n}, out, verbose)


@reproduce_app.command("dictionary")
def reproduce_dictionary(
    problem: Annotated[str, typer.Option(help="Problem: all, advection2d or helmholtz1d.")] = "all",
    grid: Annotated[int, typer.Option(min=2, help="Squares per side of the advection mesh.")] = 24,
    pe_max: Annotated[float, typer.Option(min=1.0, help="Largest Peclet number of the advection problem.")] = 1e3,
    angle_max: Annotated[float, typer.Option(min=0.01, help="Largest transport angle (radians; range [0, "
                                                            "angle_max]).")] = 1.5707963267948966,
    elements: Annotated[int, typer.Option(min=2, help="Number of P1 elements of the Helmholtz problem.")] = 100,
    k_max: Annotated[float, typer.Option(min=1.0, help="Largest wavenumber (range [1, k_max]).")] = 40.0,
    train: Annotated[int, typer.Option(min=0, help="Random training parameters (0: each problem's default).")] = 0,
    test: _Test = 100,
    batch: Annotated[int, typer.Option(min=1, help="Random parameters of the batched online timing.")] = 2000,
    tol: Annotated[float, typer.Option(min=0.0, help="Relative tolerance of the global and local greedies "
                                                     "(0: each problem's default).")] = 0.0,
    max_basis: Annotated[int, typer.Option(min=0, help="Largest basis size N (0: each problem's default).")] = 0,
    clusters: Annotated[int, typer.Option(min=0, help="Local models (0: chosen by the a priori criterion).")] = 0,
    max_clusters: Annotated[int, typer.Option(min=0, help="Largest count the a priori criterion tries "
                                                          "(0: each problem's default).")] = 0,
    seed: _Seed = 0,
    out: _Out = Path("results"),
    verbose: _Verbose = False,
) -> None:
    """Dictionaries of local certified models (sine clustering) against one global model, per problem."""
    from .dictionary_study import PROBLEMS, dictionary_studies, plot_dictionary_study

    names = PROBLEMS if problem == "all" else (problem,)
    if problem != "all" and problem not in PROBLEMS:
        raise typer.BadParameter(f"must be 'all' or one of {', '.join(PROBLEMS)}; got {problem!r}",
                                 param_hint="--problem")
    check_writable_folder(out, "--out")
    options: dict[str, Any] = {"n_test": test, "n_batch": batch, "n_clusters": clusters or "auto", "seed": seed}
    for key, value in (("n_train", train), ("tol", tol), ("max_basis", max_basis), ("max_clusters", max_clusters)):
        if value:
            options[key] = value
    with _progress_bars(verbose) as progress:
        results = dictionary_studies(names, n_elements=elements, k_max=k_max, grid=grid, pe_max=pe_max,
                                     angle_max=angle_max, progress=progress, **options)
    json_path = out / "dictionary.json"
    write_json_atomic(results, json_path)
    for name, res in results.items():
        png_path = out / f"dictionary-{name}.png"
        plot_dictionary_study(res, png_path, title=f"dictionary, {name}, n_h = {res['problem']['n_h']}, "
                                                   f"tol = {res['problem']['tol']:g}")
        sizes, ratio = res["sizes"], res["online_ratio_to_global"]
        console.print(f"{name}: global N = {sizes['global']}, local N = {sizes['local']}; online time / global, "
                      "nearest-then-bound: " + ", ".join(f"{mode} {r['nearest-then-bound']:.2f}"
                                                          for mode, r in ratio.items())
                      + f"; violations {res['violations']}; wrote {png_path}")
    console.print(f"wrote {json_path}")


def _scattering_table(results: dict) -> Table:
    mie, speed = results["mie_relative_error"], results["speedup"]
    table = Table(title=f"scattering3d: n_h = {results['problem']['n_h']}, k in {results['problem']['k_range']}, "
                        f"N = {results['sizes'][-1]}")
    for col in ("estimator", "violations (bound < error)", "below truth floor", "min effectivity"):
        table.add_column(col)
    err = np.array(results["true_error"], dtype=float)
    for name, rows in results["bound"].items():
        eff = [np.nanmin(np.array(b, dtype=float) / e) for b, e in zip(rows, err, strict=True) if b is not None]
        table.add_row(name, str(results["violations"][name]), str(results["violations_below_floor"][name]),
                      f"{min(eff):.3g}" if eff else "not built")
    table.caption = (f"truth vs Mie: {min(mie['truth']):.2%}..{max(mie['truth']):.2%}; RB vs Mie at k = "
                     f"{mie['rb']['k']:.4f}: {mie['rb']['rb']:.2%}; online speed-up {speed['speedup']:.0f}x "
                     f"({speed['online_seconds'] * 1e3:.1f} ms vs {speed['truth_seconds']:.2f} s)")
    return table


def _scattering_floor_table(results: dict) -> Table:
    """Floors per estimator against E0 extended of the interpolated operator, the indicator beside them."""
    unit = float(np.finfo(np.float64).eps) / 2
    table = Table(title="scattering3d: floors against the truth residual of the interpolated operator (E0 extended)")
    for col in ("estimator", "floor ||r||/||f||", "observed", "floor / u", "floor / sqrt(u)"):
        table.add_column(col)
    for name, floor in results["floors"].items():
        built = [n for n, row in zip(results["sizes"], results["deviation"][name], strict=True)
                 if row is not None and any(v is not None for v in row)]
        seen = "yes" if results["floors_reached"][name] else f"no: below (built at N = {built[0]}..{built[-1]})"
        table.add_row(name, f"{floor:.2e}", seen, f"{floor / unit:.3g}", f"{floor / np.sqrt(unit):.3g}")
    ind = results["indicator_rel_residual"]
    table.caption = (f"floor: largest E0/||f|| with > 1% deviation from E0 extended; interpolation indicator / "
                     f"||f||: {min(ind['min']):.1e}..{max(ind['max']):.1e} over all N, {ind['min'][-1]:.1e}.."
                     f"{ind['max'][-1]:.1e} at N = {results['sizes'][-1]} (per N in the JSON)")
    return table


@reproduce_app.command("scattering3d")
def reproduce_scattering3d(
    level: Annotated[int, typer.Option(min=0, help="Icosphere level (20 * 4**level triangles).")] = 2,
    k_min: Annotated[float, typer.Option(help="Smallest wavenumber.")] = 1.0,
    k_max: Annotated[float, typer.Option(help="Largest wavenumber (resolved by the mesh).")] = 3.0,
    train: _Train = 100,
    test: _Test = 20,
    max_basis: _MaxBasis = 25,
    max_points: _MaxPoints = 1000,
    eim_train: Annotated[int, typer.Option(min=2, help="Wavenumbers (uniform grid) of the matrix and vector "
                                                       "EIM.")] = 41,
    scm_train: Annotated[int, typer.Option(min=2, help="Wavenumbers (uniform grid) of the inf-sup SCM.")] = 201,
    seed: _Seed = 0,
    out: _Out = Path("results"),
    save: Annotated[Path | None, typer.Option(help="Also save the final reduced model (N_max, default estimator) "
                                              "to this HDF5 file, relative to --out.")] = None,
    verbose: _Verbose = False,
) -> None:
    """3D acoustic scattering by the unit sphere (BEM, matrix EIM in k, inf-sup SCM), validated against Mie."""
    from .plots import plot_scattering_study
    from .problems.scattering3d import check_wavenumber_range
    from .study import scattering_study

    try:
        check_wavenumber_range(level, (k_min, k_max))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--k-min/--k-max/--level") from exc
    check_writable_folder(out, "--out")
    model_path = None if save is None else out / save
    if model_path is not None:
        check_writable(model_path, "--save")
    with _progress_bars(verbose) as progress:
        results = scattering_study(level, (k_min, k_max), n_train=train, n_test=test, max_basis=max_basis,
                                   seed=seed, max_points=max_points, progress=progress,
                                   model_options={"eim_train": eim_train, "scm_train": scm_train}, save=model_path)
    json_path, png_path = out / "scattering3d.json", out / "scattering3d.png"
    write_json_atomic(results, json_path)
    plot_scattering_study(results, png_path, title=f"scattering3d, level {level}, n_h = {results['problem']['n_h']}")
    console.print(_scattering_table(results))
    console.print(_scattering_floor_table(results))
    console.print(f"wrote {json_path} and {png_path}" + ("" if model_path is None else f" and {model_path}"))


@app.command()
def info(model: Annotated[Path, typer.Argument(help="Saved model file (HDF5).")],
         trusted: Trusted = False) -> None:
    """Describe a saved reduced model."""
    from .io import load

    rom = load(model, trusted=trusted)
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
    mu: Annotated[list[str] | None, typer.Option(
        help="A parameter: named (mu1=2,mu2=0.5) or values in the model's order (2,0.5); repeat for a "
             "batch.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="CSV file of parameters, one per row; the header "
                                                                "names the parameters.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the results as CSV: parameters, output(s), "
                                                           "bound, relative bound, rigorous.")] = None,
    estimator: Annotated[str | None, typer.Option(help="Estimator name (default: the model's).")] = None,
    n: Annotated[int | None, typer.Option(min=1, help="Nested sub-model size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every result at full precision as JSON.")] = False,
    trusted: Trusted = False,
) -> None:
    """Evaluate a saved model: reduced solution norm, output and certified error bound per parameter."""
    from .io import load

    if not mu and csv_file is None:
        raise typer.BadParameter("give parameters with --mu (repeatable) or --csv FILE", param_hint="--mu/--csv")
    if csv_file is not None and not csv_file.is_file():
        raise typer.BadParameter(f"{csv_file} is not a file", param_hint="--csv")
    if out is not None:
        check_writable(out, "--out")
    if not model.is_file():
        raise typer.BadParameter(f"model file {model} not found" if not model.exists() else f"{model} is not a file",
                                 param_hint="MODEL")
    rom = load(model, trusted=trusted)
    if estimator is not None and estimator not in rom.estimators:
        raise typer.BadParameter(f"the model has no estimator {estimator!r}; it has "
                                 f"{', '.join(sorted(rom.estimators))}", param_hint="--estimator")
    if n is not None and n > rom.n_basis:
        raise typer.BadParameter(f"the model has N = {rom.n_basis}; got {n}", param_hint="--n")
    names = rom.parameter_space.names
    rows = [parse_mu(m, names) for m in mu or ()] + ([] if csv_file is None else read_parameters(csv_file, names))
    mus = rom.parameter_space.validate(np.array(rows, dtype=float), name="parameters")
    res = rom.evaluate(mus, estimator=estimator, n=n)
    if out is not None:
        write_results_csv(out, names, mus, res)
    if as_json:
        typer.echo(json.dumps(_result_record(mus, res)))
        return
    console.print(_results_table(rom, mus, res))
    if out is not None:
        console.print(f"wrote {out}")


def parse_mu(text: str, names: tuple[str, ...]) -> list[float]:
    """One ``--mu`` value as a parameter (P,): ``"mu1=2,mu2=0.5"`` (named, any order) or ``"2,0.5"``.

    Raises
    ------
    typer.BadParameter
        On a value that is not a number, a name that is not a parameter, or a missing or repeated one.

    """
    items = [item.strip() for item in text.split(",")]
    named = ["=" in item for item in items]
    try:
        if not any(named):
            values = [float(item) for item in items]
            if len(values) != len(names):
                raise ValueError(f"{len(values)} value(s) for the {len(names)} parameters {', '.join(names)}")
            return values
        if not all(named):
            raise ValueError("name every value (mu1=2,mu2=0.5) or none (2,0.5)")
        pairs = [item.split("=", 1) for item in items]
        given = {}
        for key, value in pairs:
            key = key.strip()
            if key not in names:
                raise ValueError(f"unknown parameter {key!r}; the model's are {', '.join(names)}")
            if key in given:
                raise ValueError(f"{key} given twice")
            given[key] = float(value)
        missing = [name for name in names if name not in given]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        return [given[name] for name in names]
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}", param_hint="--mu") from None


def read_parameters(path: Path, names: tuple[str, ...]) -> list[list[float]]:
    """Parameters from a CSV file whose header names them (columns in any order), one row each.

    Raises
    ------
    typer.BadParameter
        On a header that is not the model's parameter names, a row of the wrong length or a
        value that is not a number (naming the line), or a file without rows.

    """
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if sorted(header) != sorted(names):
            raise typer.BadParameter(f"{path}: the header must name the parameters {', '.join(names)}; got "
                                     f"{', '.join(header) or 'nothing'}", param_hint="--csv")
        order = [header.index(name) for name in names]
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not v.strip() for v in row):
                continue
            try:
                if len(row) != len(header):
                    raise ValueError(f"{len(row)} values for {len(header)} columns")
                rows.append([float(row[i]) for i in order])
            except ValueError as exc:
                raise typer.BadParameter(f"{path}, line {line}: {exc}", param_hint="--csv") from None
    if not rows:
        raise typer.BadParameter(f"{path} holds no parameter rows", param_hint="--csv")
    return rows


def _output_columns(res: OnlineResult) -> dict[str, np.ndarray]:
    """The output columns of a result: ``output`` (or its real and imaginary parts) and ``output_bound``."""
    if res.output is None:
        return {}
    out = np.asarray(res.output)
    cols = {"output_real": out.real, "output_imag": out.imag} if np.iscomplexobj(out) else {"output": out}
    if res.output_bound is not None:
        cols["output_bound"] = np.asarray(res.output_bound)
    return cols


def write_results_csv(path: Path, names: tuple[str, ...], mus: np.ndarray, res: OnlineResult) -> None:
    """Write an evaluation as plain CSV: parameters, output(s), bound, relative bound, rigorous (full precision)."""
    cols = {**{name: mus[:, j] for j, name in enumerate(names)}, **_output_columns(res),
            "bound": np.asarray(res.bound, dtype=float), "relative_bound": np.asarray(res.relative_bound, dtype=float)}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([*cols, "rigorous"])
            for i in range(mus.shape[0]):
                writer.writerow([repr(float(c[i])) for c in cols.values()] + [str(bool(res.rigorous)).lower()])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _results_table(rom: ReducedModel, mus: np.ndarray, res: OnlineResult) -> Table:
    kind = "round-off certified" if res.rigorous else "estimate, not round-off certified"
    table = Table(title=f"{res.estimator}, N = {res.n}, bound: {kind}")
    outputs = _output_columns(res)
    for col in (*rom.parameter_space.names, "||u_N||", *outputs, "residual norm", "bound", "relative bound"):
        table.add_column(col)
    for i, m in enumerate(mus):
        table.add_row(*(f"{v:g}" for v in m), f"{np.linalg.norm(res.coefficients[i]):.6e}",
                      *(f"{c[i]:.6e}" for c in outputs.values()),
                      f"{res.residual_norm[i]:.3e}", f"{res.bound[i]:.3e}", f"{res.relative_bound[i]:.3e}")
    return table


def _result_record(mus: np.ndarray, res: OnlineResult) -> dict:
    """An evaluation as JSON-ready lists (floats round-trip exactly; complex values as [real, imag] pairs)."""

    def listed(arr: np.ndarray | None) -> list | None:
        if arr is None:
            return None
        arr = np.asarray(arr)
        return np.stack([arr.real, arr.imag], axis=-1).tolist() if np.iscomplexobj(arr) else arr.tolist()

    record = {name: listed(getattr(res, name)) for name in ("coefficients", "residual_norm", "stability", "bound",
                                                            "relative_bound", "output", "output_bound",
                                                            "interpolation_error", "roundoff", "estimate")}
    return {"mu": mus.tolist(), "estimator": res.estimator, "n": res.n, "rigorous": bool(res.rigorous), **record}


# --- certrb build -----------------------------------------------------------------------------


def remaining_steps(bounds: list[float], tol: float, n: int, max_basis: int) -> int | None:
    """Greedy steps left until the bound reaches ``tol``, from its recent decay rate.

    Fits ``log10(bound)`` against N over the last (up to) five finite bounds by least
    squares and extrapolates the line to ``tol``; capped by ``max_basis - n``.
    None while fewer than two finite bounds are known or the bound is not decaying.

    Parameters
    ----------
    bounds : list of float
        Largest training bound per step, in order (``inf`` before the first snapshot).
    tol : float
    n : int
        Current basis size.
    max_basis : int

    """
    left = max_basis - n
    recent = [b for b in bounds if math.isfinite(b) and b > 0][-5:]
    if left <= 0 or (recent and recent[-1] <= tol):
        return 0
    if len(recent) < 2 or tol <= 0:
        return None if tol > 0 or len(recent) < 2 else left
    slope = float(np.polyfit(np.arange(len(recent)), np.log10(recent), 1)[0])
    if not slope < 0:
        return None
    return min(left, math.ceil((math.log10(tol) - math.log10(recent[-1])) / slope))


class _GreedyProgress:
    """Rich progress of a weak greedy: N, the current bound against the tolerance, and an ETA.

    The bar is the fraction of the way from the first bound to ``tol`` in log scale.
    ETA = :func:`remaining_steps` (decay rate of the bound) times the mean wall time of
    the last three steps (steps get slower as N grows, so it errs on the short side).
    """

    def __init__(self, bar: Progress, tol: float, max_basis: int) -> None:
        self.bar, self.tol, self.max_basis = bar, tol, max_basis
        self.bounds: list[float] = []
        self.seconds: list[float] = []
        self.task = bar.add_task("greedy", total=1.0, n=0, bound="-", eta="-")

    def __call__(self, step: GreedyStep) -> None:
        self.bounds.append(step.max_bound)
        self.seconds.append(step.seconds)
        finite = [b for b in self.bounds if math.isfinite(b) and b > 0]
        done = 0.0
        if finite and self.tol > 0 and finite[0] > self.tol:
            done = math.log(finite[0] / finite[-1]) / math.log(finite[0] / self.tol)
        steps = remaining_steps(self.bounds, self.tol, step.n, self.max_basis)
        eta = "?" if steps is None else f"{steps} steps, ~{steps * float(np.mean(self.seconds[-3:])):.0f} s"
        bound = f"{step.max_bound:.2e}" if math.isfinite(step.max_bound) else "-"
        self.bar.update(self.task, completed=min(max(done, 0.0), 1.0), n=step.n, bound=bound, eta=eta)


def _greedy_columns(tol: float) -> tuple:
    return (TextColumn("{task.description}"), BarColumn(), TextColumn("N = {task.fields[n]}"),
            TextColumn(f"bound {{task.fields[bound]}} (tol {tol:.1e})"), TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn())


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def build_report(spec: Spec, result, model_path: Path, seconds: dict[str, float]) -> dict:
    """The JSON convergence report of ``certrb build``: problem, settings, per-step history, outcome."""
    p, r = spec.problem, spec.reduction
    space = p.parameter_space
    return {
        "spec": str(spec.path), "model": str(model_path),
        "problem": {"n_h": p.size, "dtype": str(p.dtype), "Q_a": p.operator.n_terms, "Q_f": p.rhs.n_terms,
                    "Q_l": None if p.output is None else p.output.n_terms, "stability": spec.stability,
                    "parameters": {n: {"range": [float(lo), float(hi)], "scale": sc}
                                   for n, lo, hi, sc in zip(space.names, space.lower, space.upper, space.scale,
                                                            strict=True)}},
        "reduction": {"tol": r.tol, "max_basis": r.max_basis, "estimators": list(r.estimators), "train": r.train,
                      "seed": r.seed, "relative": r.relative, "precision": r.precision},
        "reason": result.reason, "n_basis": result.model.n_basis,
        "final_bound": _finite(result.history[-1].max_bound),
        "history": [{"n": st.n, "mu": dict(zip(space.names, map(float, st.mu), strict=True)),
                     "max_bound": _finite(st.max_bound), "seconds": st.seconds} for st in result.history],
        "seconds": seconds,
    }


@app.command()
def build(
    spec: Annotated[Path, typer.Argument(help="Problem spec (TOML) naming the matrix files.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Model file to write (default: the spec's name with .h5, here).")] = None,
    report: Annotated[Path | None, typer.Option("--report", "-r", help="Report prefix: writes PREFIX.json and "
                                                                       "PREFIX.png (default: the model file's name "
                                                                       "without suffix).")] = None,
    tol: Annotated[float | None, typer.Option(help="Override [reduction] tol.")] = None,
    max_basis: Annotated[int | None, typer.Option(help="Override [reduction] max_basis.")] = None,
    train: Annotated[int | None, typer.Option(help="Override [reduction] train.")] = None,
    estimator: Annotated[list[str] | None, typer.Option(help="Override [reduction] estimator (repeatable; the "
                                                             "first drives the greedy).")] = None,
    online_only: Annotated[bool, typer.Option("--online-only", help="Leave the (n_h, N) basis out of the "
                                                                    "model file.")] = False,
) -> None:
    """Build a certified reduced model from a TOML spec by the weak greedy; write it and a convergence report."""
    from .io import save
    from .offline.spec import load_spec
    from .plots import plot_greedy_report

    model_path = output if output is not None else Path(spec.name).with_suffix(".h5")
    prefix = report if report is not None else model_path.with_suffix("")
    json_path, png_path = prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".png")
    if len({model_path.resolve(), json_path.resolve(), png_path.resolve(), spec.resolve()}) < 4:
        raise typer.BadParameter(f"the model {model_path}, the report {json_path}, {png_path} and the spec must be "
                                 f"different files", param_hint="--output/--report")
    check_writable(model_path, "--output")
    check_writable(json_path, "--report")
    check_writable(png_path, "--report")
    overrides = {k: v for k, v in (("tol", tol), ("max_basis", max_basis), ("train", train),
                                   ("estimator", list(estimator) if estimator else None)) if v is not None}
    t0 = time.perf_counter()
    with console.status(f"reading {spec} and building the truth problem ..."):
        loaded = load_spec(spec, reduction=overrides)
    p, r = loaded.problem, loaded.reduction
    console.print(f"{spec}: n_h = {p.size}, {p.parameter_space!r}, Q_a = {p.operator.n_terms}, "
                  f"stability {loaded.stability}; greedy over {r.train} parameters to tol {r.tol:g}, N <= "
                  f"{r.max_basis}, estimator {r.estimators[0]}", highlight=False)
    t1 = time.perf_counter()
    with Progress(*_greedy_columns(r.tol), console=console) as bar:
        result = loaded.build(callback=_GreedyProgress(bar, r.tol, r.max_basis))
    t2 = time.perf_counter()
    save(result.model, model_path, online_only=online_only)
    seconds = {"problem": t1 - t0, "greedy": t2 - t1, "save": time.perf_counter() - t2}
    data = build_report(loaded, result, model_path, seconds)
    write_json_atomic(data, json_path)
    plot_greedy_report(data, png_path, title=f"{spec.name}: n_h = {p.size}, N = {result.model.n_basis}")
    final = data["final_bound"]
    console.print(f"N = {result.model.n_basis} ({result.reason}), largest training bound "
                  f"{'-' if final is None else f'{final:.3e}'}, {seconds['greedy']:.1f} s; wrote {model_path}, "
                  f"{json_path} and {png_path}", highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    """Run the command line."""
    app()


# --- certrb bench -----------------------------------------------------------------------------

BENCHMARKS = ("online", "vs_pymor", "scaling", "dask_throughput")
"""Benchmark scripts run by ``certrb bench``, in order (``benchmarks/<name>.py``)."""

_BENCH_NEEDS = {"vs_pymor": "pymor", "dask_throughput": "distributed"}  # optional module each one needs
_BENCH_EXTRA_ARGS = {"vs_pymor": ("--big",)}  # the 3x3 block to N = 70 is part of the comparison


def _benchmark_folder(folder: Path | None) -> Path:
    """The folder holding the benchmark scripts.

    ``folder`` if given; else ``benchmarks/`` of the source checkout this module runs
    from (an editable install), else ``benchmarks/`` of the current directory (a
    checkout whose package was installed normally).
    """
    if folder is not None:
        path = folder
    else:
        candidates = (Path(__file__).resolve().parents[2] / "benchmarks", Path.cwd() / "benchmarks")
        path = next((c for c in candidates if (c / f"{BENCHMARKS[0]}.py").is_file()), candidates[0])
    missing = [name for name in BENCHMARKS if not (path / f"{name}.py").is_file()]
    if missing:
        raise typer.BadParameter(
            f"no benchmark scripts {', '.join(missing)} in {path}: `certrb bench` runs the scripts of a source "
            "checkout of certrb (they are not installed with the package); pass --benchmarks FOLDER",
            param_hint="--benchmarks")
    return path


def _run_benchmark(script: Path, out: Path, quick: bool, threads: int) -> dict:
    """Run one benchmark script in a fresh interpreter; its status, wall time and output tail."""
    import subprocess
    import sys
    import time

    name = script.stem
    cmd = [sys.executable, str(script), "--out", str(out), *(("--quick",) if quick else ()),
           *_BENCH_EXTRA_ARGS.get(name, ())]
    pinned = {var: str(threads) for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env = {**os.environ, **pinned, "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    record = {"status": "ok" if proc.returncode == 0 else "failed", "returncode": proc.returncode,
              "wall_s": time.perf_counter() - t0, "command": [Path(cmd[0]).name, *cmd[1:]],
              "summary": proc.stdout.strip().splitlines()[-12:],
              "files": sorted(p.name for p in (out / f"{name}.json", out / f"{name}.png") if p.is_file())}
    if proc.returncode != 0:
        record["stderr_tail"] = proc.stderr.strip().splitlines()[-20:]
    return record


@app.command()
def bench(
    out: _Out = Path("bench-results"),
    quick: Annotated[bool, typer.Option("--quick", help="Smoke-size runs (seconds each).")] = False,
    only: Annotated[list[str] | None, typer.Option(
        help=f"Run only this benchmark (repeatable): {', '.join(BENCHMARKS)}.")] = None,
    benchmarks: Annotated[Path | None, typer.Option(
        help="Folder of the benchmark scripts (default: benchmarks/ of this source checkout).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="BLAS/OpenMP threads of each benchmark process.")] = 1,
) -> None:
    """Run the benchmarks (online, vs_pymor, scaling, dask_throughput), each writing JSON + PNG to OUT.

    The benchmarks are the scripts in the source tree's ``benchmarks/`` folder,
    run by path, each in a fresh Python process; they are not part of the
    installed package. That keeps one implementation of each benchmark (the
    script documented in benchmarks/README.md, which imports its siblings, the
    pyMOR twin among them), lets the BLAS thread count be pinned before numpy
    loads (it cannot be changed in this already running process), and isolates
    the runs from one another (memory of the 1e6-unknown mesh, process pools,
    dask clusters, factorization caches). From an installed wheel, point
    ``--benchmarks`` at a checkout's folder. ``vs_pymor`` runs when pyMOR is
    importable and ``dask_throughput`` when dask.distributed is, otherwise they
    are reported as skipped. ``OUT/bench.json`` records what ran, for how long
    and with which result.
    """
    import importlib.util

    chosen = list(dict.fromkeys(only)) if only else list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        raise typer.BadParameter(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
                                 param_hint="--only")
    folder = _benchmark_folder(benchmarks)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict] = {}
    for name in chosen:
        needed = _BENCH_NEEDS.get(name)
        if needed is not None and importlib.util.find_spec(needed) is None:
            runs[name] = {"status": "skipped", "reason": f"{needed} is not importable"}
            continue
        with console.status(f"benchmark {name}{' (quick)' if quick else ''} ..."):
            runs[name] = _run_benchmark(folder / f"{name}.py", out, quick, threads)
    write_json_atomic({"quick": quick, "threads": threads, "benchmarks": runs}, out / "bench.json")
    table = Table(title=f"certrb bench{' --quick' if quick else ''}")
    for col in ("benchmark", "status", "seconds", "files"):
        table.add_column(col)
    for name, run in runs.items():
        detail = run.get("reason") or ", ".join(run["files"])
        table.add_row(name, run["status"], f"{run['wall_s']:.1f}" if "wall_s" in run else "-", detail)
    console.print(table)
    for name, run in runs.items():
        lines = run.get("summary", []) if run["status"] == "ok" else run.get("stderr_tail", [])
        if lines:
            console.print(f"[bold]{name}[/bold]")
            console.print(*lines, sep="\n", markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {out / 'bench.json'}")
    if any(run["status"] == "failed" for run in runs.values()):
        raise typer.Exit(code=1)


if __name__ == "__main__":  # pragma: no cover - python -m certrb.cli
    main()

"""The ``certrb`` command line (typer + rich), a thin layer over the library."""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from .online.evaluate import OnlineResult

app = typer.Typer(help="Certified reduced basis models with round-off-robust error bounds.", no_args_is_help=True)
reproduce_app = typer.Typer(help="Reproduce the method's studies.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")
console = Console()
Trusted = Annotated[bool, typer.Option(help="Import the functions a model file names by import path: trusted "
                                            "files only (importing runs their code).")]


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


_Train = Annotated[int, typer.Option(help="Random training parameters of the greedies.")]
_Test = Annotated[int, typer.Option(help="Random test parameters.")]
_MaxBasis = Annotated[int, typer.Option(help="Largest basis size N.")]
_MaxPoints = Annotated[int, typer.Option(help="Largest point-basis size d = K(K+1)/2 (K^2 if complex).")]
_Seed = Annotated[int, typer.Option(help="Random seed.")]
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


def _run_study(name: str, problem, settings: dict, describe: dict, out: Path, verbose: bool) -> None:
    """Run :func:`certrb.study.roundoff_study` with progress bars; write ``out/name.json`` and ``.png``."""
    from .plots import plot_roundoff_study
    from .study import roundoff_study

    with _progress_bars(verbose) as progress:
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


@reproduce_app.command("scattering3d")
def reproduce_scattering3d(
    level: Annotated[int, typer.Option(help="Icosphere level (20 * 4**level triangles).")] = 2,
    k_min: Annotated[float, typer.Option(help="Smallest wavenumber.")] = 1.0,
    k_max: Annotated[float, typer.Option(help="Largest wavenumber (resolved by the mesh).")] = 3.0,
    train: _Train = 100,
    test: _Test = 20,
    max_basis: _MaxBasis = 25,
    max_points: _MaxPoints = 1000,
    eim_train: Annotated[int, typer.Option(help="Wavenumbers (uniform grid) of the matrix and vector EIM.")] = 41,
    scm_train: Annotated[int, typer.Option(help="Wavenumbers (uniform grid) of the inf-sup SCM.")] = 201,
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
    model_path = None if save is None else out / save
    if model_path is not None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
    with _progress_bars(verbose) as progress:
        results = scattering_study(level, (k_min, k_max), n_train=train, n_test=test, max_basis=max_basis,
                                   seed=seed, max_points=max_points, progress=progress,
                                   model_options={"eim_train": eim_train, "scm_train": scm_train}, save=model_path)
    json_path, png_path = out / "scattering3d.json", out / "scattering3d.png"
    write_json_atomic(results, json_path)
    plot_scattering_study(results, png_path, title=f"scattering3d, level {level}, n_h = {results['problem']['n_h']}")
    console.print(_scattering_table(results))
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
    mu: Annotated[list[str], typer.Option(help="A parameter as comma-separated values; repeat for a batch.")],
    estimator: Annotated[str | None, typer.Option(help="Estimator name (default: the model's).")] = None,
    n: Annotated[int | None, typer.Option(help="Nested sub-model size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every result at full precision as JSON.")] = False,
    trusted: Trusted = False,
) -> None:
    """Evaluate a saved model: reduced solution norm, residual norm and error bound."""
    from .io import load

    rom = load(model, trusted=trusted)
    try:
        mus = np.array([[float(v) for v in m.split(",")] for m in mu])
    except ValueError as exc:
        raise typer.BadParameter(f"--mu must be comma-separated numbers: {exc}") from exc
    res = rom.evaluate(mus, estimator=estimator, n=n)
    if as_json:
        typer.echo(json.dumps(_result_record(mus, res)))
        return
    kind = "round-off certified" if res.rigorous else "estimate, not round-off certified"
    table = Table(title=f"{res.estimator}, N = {res.n}, bound: {kind}")
    for col in ("mu", "||u_N||", "residual norm", "bound", "relative bound"):
        table.add_column(col)
    for i, m in enumerate(mus):
        table.add_row(", ".join(f"{v:g}" for v in m), f"{np.linalg.norm(res.coefficients[i]):.6e}",
                      f"{res.residual_norm[i]:.3e}", f"{res.bound[i]:.3e}", f"{res.relative_bound[i]:.3e}")
    console.print(table)


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

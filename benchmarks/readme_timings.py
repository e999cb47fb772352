"""Wall and CPU time of the commands whose durations README states.

Each command runs in a fresh process with BLAS threads pinned to one; CPU time is the
children's user + system time (``resource.getrusage``). Writes ``readme_timings.json``::

    python benchmarks/readme_timings.py --out benchmarks/results            # the studies (JSON in studies/)
    python benchmarks/readme_timings.py --tests --studies --out /tmp/t      # only the test command
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from online import machine_info

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path) -> dict:
    """Run ``cmd`` and return its wall seconds, CPU seconds and exit status."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": " ".join(cmd), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "returncode": proc.returncode, "tail": proc.stdout.strip().splitlines()[-1:] or proc.stderr[-300:]}


def main() -> None:
    """Time the README's commands and write readme_timings.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tests", action="store_true", help="also time the README's test command (pytest)")
    parser.add_argument("--studies", nargs="*", default=["diffusion1d", "helmholtz1d", "advection2d"],
                        help="certrb reproduce studies to run and time")
    args = parser.parse_args()
    certrb = [sys.executable, "-m", "certrb.cli"]
    studies = args.out / "studies"  # the studies' own JSON + PNG, for the README's numbers
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: timed([*certrb, "reproduce", name, "--out", str(studies.resolve())], Path(tmp))
                for name in args.studies}
        if args.tests:
            runs["pytest (default suite)"] = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                                                   ROOT)
    record = {"benchmark": "readme_timings", "machine": machine_info(), "load_before": os.getloadavg(),
              "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "readme_timings.json").write_text(json.dumps(record, indent=1) + "\n")
    for name, run in runs.items():
        print(f"{name}: {run['wall_s']} s wall, {run['cpu_s']} s CPU, exit {run['returncode']}")


if __name__ == "__main__":
    main()

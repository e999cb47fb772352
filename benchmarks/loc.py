"""Lines of user code for the same affine problem (the 2x2 thermal block from matrix files): certrb vs pyMOR.

Counts non-blank, non-comment lines of ``examples/own_model/thermal_block.toml`` (the spec for
``certrb build``), ``examples/own_model/plain.py`` (the same problem in certrb's Python API, with
the greedy and the save) and ``pymor_thermal_block`` in ``benchmarks/loc_pymor_thermal_block.py``
(the problem written by hand as a pyMOR model: operators, functionals, product, parameter space
and a coercivity functional; no file reading, no reduction). Writes ``loc.json`` to ``--out``::

    python benchmarks/loc.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN = ROOT / "examples" / "own_model"


def count(text: str, comment: str = "#") -> int:
    """Non-blank lines that are not comments."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith(comment))


def main() -> None:
    """Count and write loc.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("loc_pymor", ROOT / "benchmarks" / "loc_pymor_thermal_block.py")
    if spec is None or spec.loader is None:
        raise ImportError("benchmarks/loc_pymor_thermal_block.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = {
        "certrb spec (certrb build)": count((OWN / "thermal_block.toml").read_text()),
        "certrb Python (read, define, greedy, save)": count((OWN / "plain.py").read_text()),
        "pyMOR by hand (define only)": module.code_lines(module.pymor_thermal_block),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loc.json").write_text(json.dumps(record, indent=1) + "\n")
    for name, lines in record.items():
        print(f"{lines:>4}  {name}")


if __name__ == "__main__":
    main()

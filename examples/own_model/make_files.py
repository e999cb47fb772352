"""Write the 2x2 thermal block as five Matrix Market files (four block stiffness terms and a load).

Stands in for the matrices a user's own FEM code exports; ``thermal_block.toml`` and
``plain.py`` in this folder read them.

    python make_files.py [folder]
"""

import sys
from pathlib import Path

import scipy.io

from certrb.problems import thermal_block

folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
folder.mkdir(parents=True, exist_ok=True)
truth = thermal_block((2, 2), n=8)
for q, a in enumerate(truth.operator.terms):
    scipy.io.mmwrite(folder / f"A{q + 1}.mtx", a)
scipy.io.mmwrite(folder / "f.mtx", truth.rhs.terms[0][:, None])  # an (n, 1) column, as FEM codes write it

"""The names a model file stores: format, version, root-only attributes and the prefixes of function texts."""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

FORMAT = "certrb-model"
VERSION = 2

CONJ = "conj:"  # prefix of a Conjugated coefficient function
EXPR = "expr:"  # prefix of expression coefficients, followed by a JSON object (so never an import path)
RECORD = "record:"  # prefix of a data-backed object (certrb.online.nonaffine.RECORDS), followed by its kind
FUNCTION_DATA = "functions/"  # datasets of data-backed coefficient functions: functions/<attribute>/<array>
INTERPOLATION = "interpolation"  # attribute and dataset folder of a data-backed interpolation indicator
FUNCTIONS = ("operator_coefficients", "rhs_coefficients", "output_coefficients", "stability")
DUAL_DATA, DUAL_ATTR = "output/dual/", "dual/"  # where a dual model is stored
HEADER = ("format", "version", "certrb_version", "datasets", "checksum")  # root-only attributes

Datasets = dict[str, NDArray]
Attrs = dict[str, Any]

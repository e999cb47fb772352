"""What a file names by import path, and the refusal to import it unless trusted or given."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import ModelFileError
from .layout import CONJ, EXPR, FUNCTIONS, RECORD, Attrs


def unconjugated(text: str) -> tuple[str, int]:
    """A function's text without its ``"conj:"`` prefixes, and their number."""
    n_conj = 0
    while text.startswith(CONJ):
        text, n_conj = text[len(CONJ):], n_conj + 1
    return text, n_conj


def _stored_paths(attrs: Attrs) -> dict[str, str]:
    """Attribute -> import path, for every function the file names by import path (nothing is imported)."""
    paths = {}
    for key, value in attrs.items():
        if key.rpartition("/")[2] in FUNCTIONS and isinstance(value, str):
            text = unconjugated(value)[0]
            if not text.startswith((EXPR, RECORD)):
                paths[key] = text
    return paths


def check_trust(attrs: Attrs, name: str, trusted: bool, given: Mapping[str, Callable]) -> None:
    """Refuse a file naming functions by import path unless ``trusted`` or the caller ``given`` them."""
    paths = _stored_paths(attrs)
    unknown = sorted(set(given) - set(paths))
    if unknown:
        raise ValueError(f"coefficients names {unknown}, which {name} does not store by import path; "
                         f"the attributes it stores so are {sorted(paths)}")
    missing = {key: path for key, path in sorted(paths.items()) if key not in given}
    if missing and not trusted:
        listed = ", ".join(f"{key} = {path!r}" for key, path in missing.items())
        example = ", ".join(f"{key!r}: ..." for key in missing)
        raise ModelFileError(
            f"{name}: the file names functions by import path ({listed}) and load imports no code named by a "
            f"file unless told to. If you trust the file and can import those modules, use "
            f"certrb.load(path, trusted=True); or pass the functions yourself: certrb.load(path, "
            f"coefficients={{{example}}}). A model built with expression coefficients, e.g. "
            f"AffineOperator(terms, [\"1\", \"mu1\"]), is stored as data and needs neither.")

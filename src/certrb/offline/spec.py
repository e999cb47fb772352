"""A problem described by a TOML spec naming matrix files: reading, validation, and the Problem it defines.

Format (section and key names fixed; relative file paths are relative to the spec file)::

    [parameters]            # one key per parameter, in the column order of mu
    mu1 = [0.1, 10.0]                                  # range, linear scale
    mu2 = { range = [1e-2, 1e2], scale = "log" }       # sampled uniformly in log(mu2)
    [operator]              # A(mu) = sum_q theta_q(mu) A_q
    terms = ["K0.mtx", "K1.mtx"]
    coefficients = ["1", "mu1"]                        # expressions (certrb.online.expressions)
    [rhs]                   # f(mu) = sum_p phi_p(mu) f_p
    terms = ["f.mtx"]
    coefficients = ["1"]
    [output]                # optional, l(mu) in the same form; s(mu) = l(mu)^H u(mu)
    [inner_product]
    matrix = "X.mtx"        # or reference = { mu1 = 1.0, mu2 = 1.0 }: X = Hermitian part of A(reference)
    [stability]
    kind = "min-theta"      # reference = {...} (every parameter), optional alpha_ref
    # kind = "scm": constant = "coercive" | "inf-sup" (default inf-sup for complex problems),
    #               train = 200, seed = 0, tol, max_iter, n_neighbors, margin, dense_limit (see certrb.SCM)
    [reduction]             # optional; defaults shown
    tol = 1e-6              # greedy tolerance on the largest training bound
    max_basis = 50
    estimator = "orthonormal"   # or a list: the first drives the greedy, all are attached
    train = 1000            # random training parameters, drawn with seed
    seed = 0
    relative = true         # greedy on bound / ||u_N||
    precision = "double"    # or "extended"

Matrix files: Matrix Market (``.mtx``, ``.mtx.gz``), scipy sparse ``.npz``, numpy
``.npy`` (dense). Vector files: the same formats, a numpy ``.npz`` with one array
too; shapes (n,), (n, 1) and (1, n) are vectors. Complex values are kept.

:func:`load_spec` checks everything cheap first (keys, types, ranges, files,
sizes, expressions, the stability choice against the coefficients), then builds the
inner product, the stability bound and the :class:`~certrb.offline.problem.Problem`.
Each failure is a :class:`certrb.errors.SpecError` naming the section, key and file.
"""

from __future__ import annotations

import dataclasses
import gzip
import keyword
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp
from numpy.typing import NDArray

from ..errors import CertRBError, SpecError
from ..online.estimators import ESTIMATOR_NAMES
from ..online.expressions import CONSTANTS, FUNCTIONS, ExpressionCoefficients
from ..online.parameters import ParameterSpace
from ..online.precision import PRECISIONS
from ..online.scm import KINDS, check_options
from .affine import AffineFunctional, AffineOperator
from .estimators import BUILDERS
from .innerproduct import InnerProduct, herm
from .problem import Problem
from .scm import SCM
from .stability import MinTheta

__all__ = ["SECTIONS", "Reduction", "Spec", "load_spec", "read_matrix", "read_vector"]

SECTIONS = ("parameters", "operator", "rhs", "output", "inner_product", "stability", "reduction")
"""Sections of a spec; all but ``output`` and ``reduction`` are required."""

_OPTIONAL = ("output", "reduction")
_AFFINE_KEYS = ("terms", "coefficients")
_PARAMETER_KEYS = ("range", "scale")
_INNER_KEYS = ("matrix", "reference")
_STABILITY_KINDS = ("min-theta", "scm")
_STABILITY_KEYS = {"min-theta": ("kind", "reference", "alpha_ref"),
                   "scm": ("kind", "constant", "train", "seed", "tol", "max_iter", "n_neighbors", "margin",
                           "dense_limit")}
_SCM_DEFAULTS = {"train": 200, "seed": 0, "tol": 0.75, "max_iter": 50, "n_neighbors": 20, "margin": 1e-9}
_PROBE = 256  # random parameters (plus the corners of the box) on which the coefficients are checked
_MAX_CORNERS = 10  # parameters up to which the 2^P corners are probed


@dataclass(frozen=True)
class Reduction:
    """How the reduced model of a spec is built (the ``[reduction]`` section).

    Attributes
    ----------
    tol : float
        Greedy tolerance on the largest training bound, ``>= 0``.
    max_basis : int
        Largest basis size N, ``>= 1``.
    estimators : tuple of str
        Estimators of the model; the first drives the greedy and is the model's default.
    train : int
        Number of random training parameters, ``>= 1``.
    seed : int
        Seed of the training sample (and of the builder's randomness).
    relative : bool
        Greedy on the relative bound ``bound / ||u_N||``.
    precision : {"double", "extended"}
        Working precision of the offline state.

    Raises
    ------
    SpecError
        On an invalid value, naming the ``[reduction]`` key.

    """

    tol: float = 1e-6
    max_basis: int = 50
    estimators: tuple[str, ...] = ("orthonormal",)
    train: int = 1000
    seed: int = 0
    relative: bool = True
    precision: str = "double"

    def __post_init__(self) -> None:
        where = "[reduction]"
        _number(self.tol, f"{where} tol", low=0.0)
        for key in ("max_basis", "train"):
            _integer(getattr(self, key), f"{where} {key}", low=1)
        _integer(self.seed, f"{where} seed", low=0)
        if not isinstance(self.relative, bool):
            raise SpecError(f"{where} relative must be true or false; got {self.relative!r}")
        if self.precision not in PRECISIONS:
            raise SpecError(f"{where} precision must be one of {list(PRECISIONS)}; got {self.precision!r}")
        if not self.estimators:
            raise SpecError(f"{where} estimator must name at least one estimator")
        for name in self.estimators:
            if name not in ESTIMATOR_NAMES:
                raise SpecError(f"{where} estimator: unknown estimator {name!r}; choose from {list(ESTIMATOR_NAMES)}")
            if self.precision == "extended" and not BUILDERS[name].extended:
                raise SpecError(f"{where} estimator {name!r} is not available with precision = \"extended\"")


@dataclass(frozen=True, eq=False)
class Spec:
    """A loaded spec: the truth problem and how to reduce it.

    Attributes
    ----------
    path : Path
        The spec file.
    problem : Problem
    reduction : Reduction
    stability : str
        The stability bound chosen: ``"min-theta"``, ``"scm coercive"`` or ``"scm inf-sup"``.

    """

    path: Path
    problem: Problem
    reduction: Reduction
    stability: str

    def training_set(self) -> NDArray[np.float64]:
        """The greedy's training parameters, shape (train, P), drawn with ``seed``."""
        return self.problem.parameter_space.sample(self.reduction.train, rng=self.reduction.seed)

    def builder(self) -> Any:
        """A fresh :class:`~certrb.offline.builder.OfflineBuilder` with the spec's estimators and precision."""
        from .builder import OfflineBuilder

        r = self.reduction
        return OfflineBuilder(self.problem, r.estimators, precision=r.precision, rng=r.seed)

    def build(self, callback: Callable | None = None) -> Any:
        """Run the weak greedy of ``[reduction]``; returns its :class:`~certrb.offline.greedy.GreedyResult`.

        ``callback`` is called with each :class:`~certrb.offline.greedy.GreedyStep`.
        """
        from .greedy import weak_greedy

        r = self.reduction
        return weak_greedy(self.builder(), self.training_set(), tol=r.tol, max_basis=r.max_basis,
                           relative=r.relative, callback=callback)


def load_spec(path: str | os.PathLike[str], *, reduction: Mapping[str, Any] | None = None) -> Spec:
    """Read, check and build the problem of a TOML spec.

    Parameters
    ----------
    path : str or Path
        The spec file (format: see the module docstring).
    reduction : mapping, optional
        Values overriding keys of ``[reduction]`` (checked as if they were in the file).

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        On any invalid content: unknown section or key (the allowed ones are listed),
        a wrong type or range, a missing or unreadable file, a non-square operator term,
        mismatched sizes, a bad expression or one naming an undeclared parameter, a
        coefficient that is not finite on the domain, an inner product that is not
        Hermitian positive definite, or a stability choice that does not fit the problem.

    """
    path = Path(path)
    try:
        return _Loader(path).load(dict(reduction or {}))
    except SpecError as exc:
        raise SpecError(f"{path.name}: {exc}") from exc.__cause__


def read_matrix(path: str | os.PathLike[str]) -> sp.csr_matrix:
    """Read a matrix file (``.mtx``, ``.mtx.gz``, scipy ``.npz``, dense ``.npy``).

    Returns
    -------
    csr_matrix, shape (m, n), float64 or complex128

    Raises
    ------
    SpecError
        If the file is missing, unreadable, not a matrix, or holds non-finite values.

    """
    return _as_matrix(_read(Path(path)), str(path))


def read_vector(path: str | os.PathLike[str]) -> NDArray:
    """Read a vector file (the formats of :func:`read_matrix`, a numpy ``.npz`` of one array too).

    Returns
    -------
    ndarray, shape (n,), float64 or complex128
        Shapes (n,), (n, 1) and (1, n) are read as vectors.

    Raises
    ------
    SpecError
        If the file is missing, unreadable, not a vector, or holds non-finite values.

    """
    return _as_vector(_read(Path(path)), str(path))


# --- files ------------------------------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    """The raw content of a matrix or vector file: a sparse matrix or an ndarray."""
    if not path.is_file():
        raise SpecError(f"file {str(path)!r} not found" if not path.exists() else f"{str(path)!r} is not a file")
    name = path.name.lower()
    try:
        if name.endswith((".mtx", ".mtx.gz")):
            with (gzip.open(path, "rb") if name.endswith(".gz") else path.open("rb")) as fh:
                return scipy.io.mmread(fh)
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if name.endswith(".npz"):
            return _read_npz(path)
    except SpecError:
        raise
    except Exception as exc:  # any failure of a reader means the file is not what its name says
        raise SpecError(f"cannot read {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    raise SpecError(f"{str(path)!r}: unknown file type; use .mtx, .mtx.gz, .npz or .npy")


def _read_npz(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as data:
        files = list(data.files)
        if {"format", "shape", "data"} <= set(files):
            return sp.load_npz(path)
        if len(files) != 1:
            raise SpecError(f"{str(path)!r} holds the arrays {files}; a vector .npz holds one array "
                            f"(save sparse matrices with scipy.sparse.save_npz)")
        return data[files[0]]


def _finite_dtype(values: NDArray, what: str) -> np.dtype:
    if values.dtype.kind not in "biufc":
        raise SpecError(f"{what}: entries must be numbers; got dtype {values.dtype}")
    if not np.all(np.isfinite(values)):
        raise SpecError(f"{what} contains NaN or infinite entries")
    return np.result_type(values.dtype, np.float64)


def _as_matrix(raw: Any, what: str) -> sp.csr_matrix:
    if sp.issparse(raw):
        m = sp.csr_matrix(raw)
    else:
        arr = np.asarray(raw)
        if arr.ndim != 2:
            raise SpecError(f"{what}: expected a matrix; got an array of shape {arr.shape}")
        m = sp.csr_matrix(arr)
    return m.astype(_finite_dtype(m.data, what))


def _as_vector(raw: Any, what: str) -> NDArray:
    arr = raw.toarray() if sp.issparse(raw) else np.asarray(raw)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or arr.size == 0:
        raise SpecError(f"{what}: expected a vector (n,), (n, 1) or (1, n); got shape {arr.shape}")
    return arr.astype(_finite_dtype(arr, what))


# --- values -----------------------------------------------------------------------------------------------------


def _number(value: Any, what: str, *, low: float | None = None, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise SpecError(f"{what} must be a finite number; got {value!r}")
    if (low is not None and value < low) or (positive and value <= 0):
        raise SpecError(f"{what} must be {'> 0' if positive else f'>= {low:g}'}; got {value!r}")
    return float(value)


def _integer(value: Any, what: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"{what} must be an integer >= {low}; got {value!r}")
    return value


def _check_keys(table: Any, allowed: Sequence[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"{where} must be a table; got {table!r}")
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")
    return table


def _strings(values: Any, what: str) -> list[str]:
    if not isinstance(values, list) or not values:
        raise SpecError(f"{what} must be a non-empty list; got {values!r}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise SpecError(f"{what}[{i}] must be a string; got {v!r}")
        out.append(v if isinstance(v, str) else repr(v))
    return out


@dataclass(frozen=True)
class _Affine:
    """A section's terms (as read) and coefficient expressions."""

    section: str
    files: list[str]
    terms: list
    texts: list[str]


class _Loader:
    """One pass over a spec: cheap checks first, then the inner product, the stability bound and the Problem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.folder = path.parent

    def fail(self, message: str) -> SpecError:
        return SpecError(message)

    def load(self, overrides: dict[str, Any]) -> Spec:
        data = self._toml()
        space = self._parameters(data["parameters"])
        reduction = self._reduction({**data.get("reduction", {}), **overrides})
        names = space.names
        stability = data["stability"]
        kind = self._stability_kind(stability)
        inner = _check_keys(data["inner_product"], _INNER_KEYS, "[inner_product]")
        sections = [self._affine(data[s], s, names) for s in ("operator", "rhs", "output") if s in data]
        inner_file = self._inner_file(inner)
        for section in sections:  # every file is read before any factorization
            read = self._read_vector if section.section != "operator" else self._read_operator
            section.terms.extend(read(f"[{section.section}] terms[{i}]", f) for i, f in enumerate(section.files))
        operator, rhs, *output = sections
        X = None if inner_file is None else self._read_operator("[inner_product] matrix", inner_file)
        self._check_sizes(operator, [rhs, *output], X, inner_file)
        probe = self._probe(space, reduction)
        for section in sections:
            self._check_finite(section, names, probe)
        if X is None:
            mu = self._reference(inner["reference"], space, "[inner_product] reference")
            theta = ExpressionCoefficients(operator.texts, names)(mu)[0]
            X = sp.csr_matrix(herm(sum(t * a for t, a in zip(theta, operator.terms, strict=True))))
        return self._build(space, reduction, kind, stability, operator, rhs, output, X, inner_file, probe)

    def _toml(self) -> dict:
        try:
            with self.path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SpecError(f"spec file not found (looked for {str(self.path.absolute())!r})") from None
        except IsADirectoryError:
            raise SpecError("the spec path is a folder, not a file") from None
        except tomllib.TOMLDecodeError as exc:
            raise self.fail(f"not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"cannot read the spec file: {exc}") from None
        unknown = [k for k in data if k not in SECTIONS]
        if unknown:
            raise self.fail(f"unknown section(s) {unknown}; allowed: {list(SECTIONS)}")
        missing = [s for s in SECTIONS if s not in data and s not in _OPTIONAL]
        if missing:
            raise self.fail(f"missing section(s) {missing}")
        return data

    def _parameters(self, table: Any) -> ParameterSpace:
        if not isinstance(table, dict) or not table:
            raise self.fail("[parameters] must declare at least one parameter, e.g. mu1 = [0.1, 10.0]")
        lower, upper, scales = [], [], []
        for name, value in table.items():
            where = f"[parameters] {name}"
            if not name.isidentifier() or keyword.iskeyword(name) or name in FUNCTIONS or name in CONSTANTS:
                raise self.fail(f"{where}: a parameter name must be an identifier other than a keyword, function "
                                f"or constant of the expressions")
            if isinstance(value, dict):
                value = _check_keys(value, _PARAMETER_KEYS, where)
                if "range" not in value:
                    raise self.fail(f"{where} needs range = [low, high]")
                rng, scale = value["range"], value.get("scale", "linear")
            else:
                rng, scale = value, "linear"
            if not isinstance(rng, list) or len(rng) != 2:
                raise self.fail(f"{where}: the range must be [low, high]; got {rng!r}")
            lo, hi = (_number(v, f"{where} range") for v in rng)
            if lo > hi:
                raise self.fail(f"{where}: low {lo:g} exceeds high {hi:g}")
            if scale not in ("linear", "log"):
                raise self.fail(f"{where}: scale must be \"linear\" or \"log\"; got {scale!r}")
            if scale == "log" and lo <= 0:
                raise self.fail(f"{where}: a log scale needs low > 0; got {lo:g}")
            lower.append(lo)
            upper.append(hi)
            scales.append(scale)
        return ParameterSpace(list(table), lower, upper, scale=scales)

    def _reduction(self, table: dict) -> Reduction:
        fields = [f.name for f in dataclasses.fields(Reduction) if f.name != "estimators"]
        allowed = [*fields[:2], "estimator", *fields[2:]]
        _check_keys(table, allowed, "[reduction]")
        values = {k: v for k, v in table.items() if k != "estimator"}
        if "tol" in values and isinstance(values["tol"], int) and not isinstance(values["tol"], bool):
            values["tol"] = float(values["tol"])
        if "estimator" in table:
            est = table["estimator"]
            values["estimators"] = (est,) if isinstance(est, str) else tuple(_strings(est, "[reduction] estimator"))
        try:
            return Reduction(**values)
        except SpecError as exc:
            raise self.fail(str(exc)) from None

    def _stability_kind(self, table: Any) -> str:
        if not isinstance(table, dict):
            raise self.fail(f"[stability] must be a table; got {table!r}")
        kind = table.get("kind")
        if kind not in _STABILITY_KINDS:
            raise self.fail(f"[stability] kind must be one of {list(_STABILITY_KINDS)}; got {kind!r}")
        _check_keys(table, _STABILITY_KEYS[kind], f"[stability] (kind = {kind!r})")
        if kind == "min-theta" and "reference" not in table:
            raise self.fail("[stability] kind = \"min-theta\" needs reference = { <parameter> = <value>, ... }")
        if "alpha_ref" in table:
            _number(table["alpha_ref"], "[stability] alpha_ref", positive=True)
        if kind == "scm":
            opts = {**_SCM_DEFAULTS, **{k: v for k, v in table.items() if k not in ("kind", "constant")}}
            for key in ("train", "max_iter", "n_neighbors", "dense_limit"):
                if key in opts:
                    _integer(opts[key], f"[stability] {key}", low=1)
            _integer(opts["seed"], "[stability] seed", low=0)
            constant = table.get("constant", "inf-sup")
            if constant not in KINDS:
                raise self.fail(f"[stability] constant must be one of {list(KINDS)}; got {constant!r}")
            try:
                check_options(constant, _number(opts["tol"], "[stability] tol"), opts["max_iter"],
                              opts["n_neighbors"], _number(opts["margin"], "[stability] margin"))
            except ValueError as exc:
                raise self.fail(f"[stability] {exc}") from None
        return kind

    def _affine(self, table: Any, section: str, names: tuple[str, ...]) -> _Affine:
        where = f"[{section}]"
        table = _check_keys(table, _AFFINE_KEYS, where)
        missing = [k for k in _AFFINE_KEYS if k not in table]
        if missing:
            raise self.fail(f"{where} needs {' and '.join(missing)}")
        files = _strings(table["terms"], f"{where} terms")
        texts = _strings(table["coefficients"], f"{where} coefficients")
        if len(files) != len(texts):
            raise self.fail(f"{where} has {len(files)} terms and {len(texts)} coefficients; give one per term")
        for i, text in enumerate(texts):
            try:
                ExpressionCoefficients([text], names)
            except CertRBError as exc:
                raise self.fail(f"{where} coefficients[{i}] = {text!r}: {exc}") from None
        return _Affine(section, files, [], texts)

    def _inner_file(self, table: dict) -> str | None:
        if ("matrix" in table) == ("reference" in table):
            raise self.fail("[inner_product] needs either matrix = \"X.mtx\" or reference = { ... } "
                            "(X = Hermitian part of A(reference))")
        if "matrix" in table:
            return _strings([table["matrix"]], "[inner_product] matrix")[0]
        return None

    def _file(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.folder / path

    def _read_operator(self, what: str, name: str) -> sp.csr_matrix:
        try:
            m = read_matrix(self._file(name))
        except SpecError as exc:
            raise self.fail(f"{what} {name!r}: {exc}") from None
        if m.shape[0] != m.shape[1] or m.shape[0] == 0:
            raise self.fail(f"{what} {name!r} must be a non-empty square matrix; got shape {m.shape}")
        return m

    def _read_vector(self, what: str, name: str) -> NDArray:
        try:
            return read_vector(self._file(name))
        except SpecError as exc:
            raise self.fail(f"{what} {name!r}: {exc}") from None

    def _check_sizes(self, operator: _Affine, vectors: list[_Affine], X: sp.csr_matrix | None,
                     inner_file: str | None) -> None:
        n = operator.terms[0].shape[0]
        for i, a in enumerate(operator.terms):
            if a.shape[0] != n:
                raise self.fail(f"[operator] terms[{i}] {operator.files[i]!r} has size {a.shape[0]}; "
                                f"terms[0] {operator.files[0]!r} has size {n}")
        for section in vectors:
            for i, v in enumerate(section.terms):
                if v.shape[0] != n:
                    raise self.fail(f"[{section.section}] terms[{i}] {section.files[i]!r} has length {v.shape[0]}; "
                                    f"the operator has size {n}")
        if X is not None and X.shape[0] != n:
            raise self.fail(f"[inner_product] matrix {inner_file!r} has size {X.shape[0]}; the operator has size {n}")

    def _probe(self, space: ParameterSpace, reduction: Reduction) -> NDArray[np.float64]:
        """Parameters on which coefficients are checked: the box corners (P <= 10) and a random sample."""
        parts = [space.sample(_PROBE, rng=reduction.seed)]
        if space.dim <= _MAX_CORNERS:
            parts.append(space.grid(2))
        return np.concatenate(parts)

    def _check_finite(self, section: _Affine, names: tuple[str, ...], probe: NDArray) -> None:
        values = ExpressionCoefficients(section.texts, names)(probe)
        bad = ~np.isfinite(values)
        if bad.any():
            i, q = np.argwhere(bad)[0]
            raise self.fail(f"[{section.section}] coefficients[{q}] = {section.texts[q]!r} is not finite at "
                            f"{_named(names, probe[i])}")

    def _reference(self, table: Any, space: ParameterSpace, where: str) -> NDArray[np.float64]:
        table = _check_keys(table, space.names, where)
        missing = [n for n in space.names if n not in table]
        if missing:
            raise self.fail(f"{where} misses the parameter(s) {missing}")
        mu = np.array([[_number(table[n], f"{where} {n}") for n in space.names]])
        outside = (mu[0] < space.lower) | (mu[0] > space.upper)
        if outside.any():
            name = space.names[int(np.argmax(outside))]
            raise self.fail(f"{where} {name} = {table[name]!r} lies outside the range of {name}")
        return mu

    def _build(self, space: ParameterSpace, reduction: Reduction, kind: str, table: dict, operator: _Affine,
               rhs: _Affine, output: list[_Affine], X: sp.csr_matrix, inner_file: str | None,
               probe: NDArray) -> Spec:
        names = space.names
        theta = ExpressionCoefficients(operator.texts, names)
        complex_problem = any(np.iscomplexobj(a.data) for a in operator.terms) or np.iscomplexobj(theta(probe))
        mu_ref = None
        if kind == "min-theta":
            mu_ref = self._reference(table["reference"], space, "[stability] reference")
            self._check_min_theta(theta(np.concatenate([mu_ref, probe])), operator.texts, names,
                                  np.concatenate([mu_ref, probe]))
        constant = table.get("constant", "inf-sup" if complex_problem else "coercive")
        if kind == "scm" and constant == "coercive" and np.iscomplexobj(theta(probe)) and theta(probe).imag.any():
            raise self.fail("[stability] constant = \"coercive\" needs real operator coefficients; this problem's "
                            "are complex: use constant = \"inf-sup\"")
        what = f"[inner_product] matrix {inner_file!r}" if inner_file else "[inner_product] reference"
        try:
            ip = InnerProduct(X)
        except CertRBError as exc:
            raise self.fail(f"{what}: {exc}") from None
        op = AffineOperator(operator.terms, operator.texts).bind(names)
        f = AffineFunctional(rhs.terms, rhs.texts)
        out = AffineFunctional(output[0].terms, output[0].texts) if output else None
        try:
            if kind == "min-theta":
                alpha = table.get("alpha_ref")
                stability: Any = MinTheta(mu_ref[0], None if alpha is None else float(alpha))  # type: ignore[index]
            else:
                stability = self._scm(table, constant, op, ip, space)
            problem = Problem(op, f, ip, space, stability=stability, output=out)
        except CertRBError as exc:
            hint = (" (min-theta needs a coercive problem with positive semi-definite Hermitian parts of the "
                    "terms: use kind = \"scm\", constant = \"inf-sup\")") if kind == "min-theta" else ""
            raise self.fail(f"[stability] kind = {kind!r}: {exc}{hint}") from None
        label = kind if kind == "min-theta" else f"scm {constant}"
        return Spec(self.path, problem, reduction, label)

    def _check_min_theta(self, values: NDArray, texts: list[str], names: tuple[str, ...], mus: NDArray) -> None:
        if np.iscomplexobj(values) and values.imag.any():
            i, q = np.argwhere(values.imag != 0)[0]
            raise self.fail(f"[stability] kind = \"min-theta\" needs real operator coefficients; coefficients[{q}] = "
                            f"{texts[q]!r} is complex at {_named(names, mus[i])}: use kind = \"scm\", "
                            f"constant = \"inf-sup\"")
        neg = values.real < 0
        if neg.any():
            i, q = np.argwhere(neg)[0]
            raise self.fail(f"[stability] kind = \"min-theta\" needs non-negative operator coefficients; "
                            f"coefficients[{q}] = {texts[q]!r} is {values[i, q].real:g} at {_named(names, mus[i])}: "
                            f"use kind = \"scm\"")
        if not (values[0].real > 0).any():
            raise self.fail("[stability] reference: every operator coefficient is zero there")

    def _scm(self, table: dict, constant: str, op: AffineOperator, ip: InnerProduct, space: ParameterSpace) -> SCM:
        opts = {**_SCM_DEFAULTS, **{k: v for k, v in table.items() if k not in ("kind", "constant")}}
        train = space.sample(opts.pop("train"), rng=opts.pop("seed"))
        if space.dim <= _MAX_CORNERS:
            train = np.concatenate([train, space.grid(2)])
        return SCM(op, ip, train, kind=constant, **opts)


def _named(names: tuple[str, ...], mu: NDArray) -> str:
    return ", ".join(f"{n} = {v:g}" for n, v in zip(names, mu, strict=True))

"""pyMOR in: a ``StationaryModel`` of ``NumpyMatrixOperator`` terms as a certrb Problem on its free dofs.

pyMOR's CG discretizations impose Dirichlet conditions by clearing the Dirichlet *rows* of every
operator term (not the columns) and adding a constant ``boundary_part`` term with ones on their
diagonal; the right-hand side holds the Dirichlet values in those rows. The raw terms are therefore
not symmetric and their symmetric parts are indefinite, which makes a min-theta bound invalid or
loose. :func:`from_pymor` finds the Dirichlet dofs (rows with no off-diagonal entry, no entry in a
parametric term and a non-zero diagonal from the constant terms), restricts every operator term,
right-hand side, output and the inner product to the free dofs, and moves the Dirichlet values to
the right-hand side (lifting terms ``-A_q[free, D] g_p`` with coefficients ``theta_q phi_p``). All
coefficients become expression strings, so a reduced model of the problem saves self-contained.
:class:`PymorProblem` maps solutions and parameters back to pyMOR.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..errors import InteropError, ShapeError
from ..offline.affine import AffineFunctional, AffineOperator
from ..offline.innerproduct import InnerProduct
from ..offline.problem import Problem
from ..offline.scm import SCM
from ..offline.stability import MinTheta
from ..online.expressions import ExpressionCoefficients
from ..online.parameters import ParameterSpace
from .pymor_expressions import component_names, functional_text, product_text

__all__ = ["PymorProblem", "from_pymor"]

_SCM_SAMPLES = 64
_CORNER_LIMIT = 8  # parameters up to which the box corners join the default SCM training set


@dataclass(frozen=True)
class _Term:
    """One affine term of a pyMOR operator: the matrix, the coefficient text, its value if constant."""

    matrix: sp.csr_matrix
    text: str
    constant: complex | None


@dataclass(frozen=True, eq=False)
class PymorProblem:
    """A certrb Problem translated from a pyMOR model, and the maps back to pyMOR.

    Attributes
    ----------
    problem : Problem
        The truth problem on the free dofs (size ``n_free``).
    fom : pyMOR StationaryModel
        The translated model.
    free, dirichlet : ndarray, shape (n_free,) and (n_D,), intp
        pyMOR dof numbers of the free and the Dirichlet dofs (sorted).
    components : dict str -> tuple of str
        certrb parameter names of each pyMOR parameter's components.
    dirichlet_values : tuple (ExpressionCoefficients, ndarray (Q_D, n_D)) or None
        Dirichlet values ``g(mu) = phi(mu) @ G``; None when they are zero.
    output_offset_terms : tuple (ExpressionCoefficients, ndarray (Q_o,)) or None
        The part ``l[D] . g(mu)`` of pyMOR's output that the Dirichlet values carry (not in
        certrb's output ``l[free] . u``); None when it is zero.

    """

    problem: Problem
    fom: Any
    free: NDArray[np.intp]
    dirichlet: NDArray[np.intp]
    components: dict[str, tuple[str, ...]]
    dirichlet_values: tuple[ExpressionCoefficients, NDArray] | None
    output_offset_terms: tuple[ExpressionCoefficients, NDArray] | None

    def mu(self, row: ArrayLike) -> Any:
        """The pyMOR ``Mu`` of one certrb parameter row (P,)."""
        values = self.problem.parameter_space.validate(np.atleast_2d(row))[0]
        out, start = {}, 0
        for name, comps in self.components.items():
            out[name] = values[start:start + len(comps)]
            start += len(comps)
        return self.fom.parameters.parse(out)

    def row(self, mu: Any) -> NDArray[np.float64]:
        """The certrb parameter row (P,) of a pyMOR ``Mu`` (or a dict name -> value)."""
        return np.concatenate([np.atleast_1d(np.asarray(mu[name], dtype=np.float64)) for name in self.components])

    def dirichlet_at(self, mus: ArrayLike) -> NDArray:
        """Dirichlet values ``g(mu)``, shape (n_mu, n_D)."""
        m = self.problem.parameter_space.validate(mus)
        if self.dirichlet_values is None:
            return np.zeros((m.shape[0], self.dirichlet.size))
        coefficients, G = self.dirichlet_values
        return coefficients(m) @ G

    def output_offset(self, mus: ArrayLike) -> NDArray:
        """Dirichlet part of pyMOR's output, shape (n_mu,): pyMOR's output is certrb's ``s(mu)`` plus this."""
        m = self.problem.parameter_space.validate(mus)
        if self.output_offset_terms is None:
            return np.zeros(m.shape[0])
        coefficients, values = self.output_offset_terms
        return coefficients(m) @ values

    def to_pymor(self, U: ArrayLike, mus: ArrayLike | None = None) -> Any:
        """Full-length pyMOR vectors: the free dofs from ``U``, the Dirichlet dofs their values.

        Parameters
        ----------
        U : array_like, shape (n_free,) or (n_mu, n_free)
            Truth solutions or reduced reconstructions (``model.reconstruct(c)``) on the free dofs.
        mus : array_like, shape (n_mu, P), optional
            Their parameters; needed only when the Dirichlet values are non-zero.

        Returns
        -------
        pyMOR VectorArray of ``fom.solution_space``, length n_mu

        """
        rows = np.atleast_2d(np.asarray(U))
        if rows.shape[1] != self.free.size:
            raise ShapeError(f"U must have n_free = {self.free.size} columns; got shape {rows.shape}")
        full = np.zeros((rows.shape[0], self.free.size + self.dirichlet.size), dtype=rows.dtype)
        full[:, self.free] = rows
        if self.dirichlet_values is not None:
            if mus is None:
                raise ValueError("the Dirichlet values depend on mu or are non-zero: pass the parameters mus")
            g = self.dirichlet_at(mus)
            if g.shape[0] != rows.shape[0]:
                raise ShapeError(f"got {g.shape[0]} parameters for {rows.shape[0]} vectors")
            full = full.astype(np.result_type(full.dtype, g.dtype))
            full[:, self.dirichlet] = g
        space = self.fom.solution_space
        return space.from_numpy(full.T if _column_layout(space) else full)

    def restrict(self, vectors: Any) -> NDArray:
        """Free-dof rows (n, n_free) of a pyMOR VectorArray of the solution space (e.g. ``fom.solve(mu)``)."""
        return _rows(vectors)[:, self.free]


def _column_layout(space: Any) -> bool:
    """Whether ``to_numpy``/``from_numpy`` hold vectors as columns (pyMOR >= 2024.2) rather than rows."""
    return bool(space.zeros(space.dim + 1).to_numpy().shape[0] == space.dim)


def _rows(vectors: Any) -> NDArray:
    data = vectors.to_numpy()
    return data.T if _column_layout(vectors.space) else data


def from_pymor(
    fom: Any,
    product: str | Any = "h1_0_semi",
    *,
    parameter_space: Any = None,
    stability: str | MinTheta | Callable = "min-theta",
    mu_ref: ArrayLike | None = None,
    scm_train: ArrayLike | None = None,
    scm_kind: str = "coercive",
) -> PymorProblem:
    """Translate a pyMOR ``StationaryModel`` into a certrb Problem on its free dofs.

    Parameters
    ----------
    fom : pyMOR StationaryModel
        Operator, right-hand side and (optional, one-dimensional) output functional: each a
        ``NumpyMatrixOperator`` or a (nested) ``LincombOperator`` of them, with numbers or
        Constant-, Projection-, Expression-, Lincomb- or ProductParameterFunctional coefficients.
    product : str or pyMOR NumpyMatrixOperator, default "h1_0_semi"
        The inner product: a key of ``fom.products`` or an operator; restricted to the free dofs.
    parameter_space : pyMOR ParameterSpace, mapping, (low, high) pair or certrb ParameterSpace
        Parameter ranges (pyMOR models carry none): ``problem.parameter_space`` of the pyMOR
        analytical problem, a mapping pyMOR name -> (low, high) (scalars, or arrays per component),
        one (low, high) pair for all, or a certrb ParameterSpace over the component names.
    stability : {"min-theta", "scm"}, MinTheta or callable, default "min-theta"
        ``"min-theta"``: :class:`certrb.MinTheta` at ``mu_ref``; ``"scm"``: :class:`certrb.SCM`
        of kind ``scm_kind`` on ``scm_train``; or a callable ``mus (n_mu, P) -> (n_mu,)`` of lower bounds.
    mu_ref : array_like, shape (P,), optional
        Reference parameter of the min-theta bound; default the centre of the box.
    scm_train : array_like, shape (n_train, P), optional
        SCM training set; default the box corners (up to 8 parameters) and 64 random points.
    scm_kind : {"coercive", "inf-sup"}, default "coercive"

    Returns
    -------
    PymorProblem
        ``.problem`` (the certrb Problem, parameters named by :func:`component_names`: a pyMOR
        parameter of dimension 1 keeps its name, one of dimension d becomes ``name_0 .. name_{d-1}``)
        and the maps back (``to_pymor``, ``mu``, ``row``, ``restrict``, ``output_offset``).

    Raises
    ------
    InteropError
        Naming the piece without an exact translation: not a StationaryModel (e.g. an
        InstationaryModel), an operator that is not a NumpyMatrixOperator / LincombOperator,
        another coefficient kind, complex outputs, several outputs, missing parameter ranges.

    """
    from pymor.models.basic import StationaryModel

    if not isinstance(fom, StationaryModel):
        raise InteropError(f"from_pymor translates a pyMOR StationaryModel; got {type(fom).__name__} (a "
                           f"non-stationary or non-linear model has no certrb counterpart)")
    components = component_names(dict(fom.parameters))
    space = _parameter_space(parameter_space, components)
    names = space.names
    ops = _flatten(fom.operator, "operator", components)
    rhs = _flatten(fom.rhs, "rhs", components)
    n = fom.solution_space.dim
    dirichlet = _dirichlet_dofs(ops, n)
    free = np.setdiff1d(np.arange(n), dirichlet)
    if free.size == 0:
        raise InteropError("every dof of the pyMOR model is a Dirichlet dof: nothing to solve for")
    diag = sum((t.constant * t.matrix.diagonal()[dirichlet] for t in ops if t.constant is not None),
               np.zeros(dirichlet.size, dtype=complex))
    g_terms = [(t.text, _real_if_possible(_vector(t.matrix, n, "rhs")[dirichlet] / diag)) for t in rhs]
    g_terms = [(text, g) for text, g in g_terms if np.any(g)]
    operator = _operator(ops, free, names)
    rhs_functional = _rhs(ops, rhs, g_terms, free, dirichlet, n, names)
    output, offset = _output(fom, g_terms, free, dirichlet, n, components, names)
    X = InnerProduct(_product(fom, product)[free][:, free])
    problem = Problem(operator, rhs_functional, X, space,
                      stability=_stability(stability, operator, X, space, mu_ref, scm_train, scm_kind),
                      output=output)
    values = None
    if g_terms:
        values = (ExpressionCoefficients([t for t, _ in g_terms], names), np.stack([g for _, g in g_terms]))
    return PymorProblem(problem, fom, free, dirichlet, components, values, offset)


def _flatten(op: Any, what: str, components: Mapping[str, Sequence[str]]) -> list[_Term]:
    """The terms of a NumpyMatrixOperator or (nested) LincombOperator, coefficients as texts."""
    kind = type(op).__name__
    if kind == "NumpyMatrixOperator":
        return [_Term(sp.csr_matrix(op.matrix), "1", 1.0)]
    if kind == "ZeroOperator":
        return [_Term(sp.csr_matrix((op.range.dim, op.source.dim)), "1", 1.0)]
    if kind != "LincombOperator":
        raise InteropError(f"{what}: a pyMOR {kind} has no certrb counterpart; supported are NumpyMatrixOperator "
                           f"and LincombOperator of them (assemble the operator with pyMOR first)")
    out = []
    for sub, coefficient in zip(op.operators, op.coefficients, strict=True):
        text = functional_text(coefficient, components)
        value = _constant_value(coefficient)
        for term in _flatten(sub, what, components):
            constant = None if value is None or term.constant is None else value * term.constant
            out.append(_Term(term.matrix, product_text(text, term.text), constant))
    return out


def _constant_value(coefficient: Any) -> complex | None:
    if type(coefficient).__name__ == "ConstantParameterFunctional":
        return complex(coefficient.constant_value)
    if isinstance(coefficient, int | float | complex | np.number):
        return complex(coefficient)
    return None


def _dirichlet_dofs(ops: list[_Term], n: int) -> NDArray[np.intp]:
    """Rows that read ``c u_i = f_i(mu)``: no off-diagonal entry, none in a parametric term, ``c != 0``."""
    coupled = np.zeros(n, dtype=bool)
    parametric = np.zeros(n, dtype=bool)
    constant = np.zeros(n, dtype=complex)
    for t in ops:
        a = sp.coo_matrix(t.matrix)
        nonzero = a.data != 0
        rows, cols = a.row[nonzero], a.col[nonzero]
        coupled[rows[rows != cols]] = True
        if t.constant is None:
            parametric[rows[rows == cols]] = True
        else:
            constant += t.constant * t.matrix.diagonal()
    return np.flatnonzero(~coupled & ~parametric & (constant != 0)).astype(np.intp)


def _real_if_possible(values: NDArray) -> NDArray:
    return values.real if np.iscomplexobj(values) and not np.any(values.imag) else values


def _operator(ops: list[_Term], free: NDArray[np.intp], names: tuple[str, ...]) -> AffineOperator:
    """The terms restricted to the free dofs; terms that vanish there (the boundary part) are dropped."""
    kept = [(t.matrix[free][:, free], t.text) for t in ops]
    kept = [(a, text) for a, text in kept if sp.csr_matrix(a).count_nonzero()]
    if not kept:
        raise InteropError("the pyMOR operator is zero on the free dofs")
    return AffineOperator([a for a, _ in kept], [text for _, text in kept]).bind(names)


def _vector(matrix: sp.csr_matrix, n: int, what: str) -> NDArray:
    """A pyMOR functional's or vector operator's matrix, (n, 1) or (1, n), as a vector (n,)."""
    if matrix.shape not in ((n, 1), (1, n)):
        raise InteropError(f"{what}: expected a matrix of shape ({n}, 1) or (1, {n}); got {matrix.shape}")
    return _real_if_possible(np.asarray(matrix.toarray()).ravel())


def _rhs(ops: list[_Term], rhs: list[_Term], g_terms: list[tuple[str, NDArray]], free: NDArray[np.intp],
         dirichlet: NDArray[np.intp], n: int, names: tuple[str, ...]) -> AffineFunctional:
    """Free rows of the right-hand side and the lifting terms ``-A_q[free, D] g_p``; equal coefficients merged."""
    merged: dict[str, NDArray] = {}
    pieces = [(t.text, _vector(t.matrix, n, "rhs")[free]) for t in rhs]
    for t in ops:
        coupling = t.matrix[free][:, dirichlet]
        if coupling.count_nonzero():
            pieces += [(product_text(t.text, text), -(coupling @ g)) for text, g in g_terms]
    for text, vector in pieces:
        merged[text] = merged[text] + vector if text in merged else vector
    kept = {text: v for text, v in merged.items() if np.any(v)} or {"1": np.zeros(free.size)}
    return AffineFunctional([_real_if_possible(v) for v in kept.values()], list(kept)).bind(names, "rhs")


def _output(fom: Any, g_terms: list[tuple[str, NDArray]], free: NDArray[np.intp], dirichlet: NDArray[np.intp],
            n: int, components: Mapping[str, Sequence[str]], names: tuple[str, ...]
            ) -> tuple[AffineFunctional | None, tuple[ExpressionCoefficients, NDArray] | None]:
    """The certrb output (the free rows of a one-dimensional output functional) and the Dirichlet offset."""
    functional = fom.output_functional
    if functional is None or functional.range.dim == 0:
        return None, None
    if functional.range.dim > 1:
        raise InteropError(f"the pyMOR model has {functional.range.dim} outputs; a certrb problem has one "
                           f"(build one model per output)")
    terms = [(t.text, _vector(t.matrix, n, "output_functional")) for t in _flatten(functional, "output_functional",
                                                                                   components)]
    if any(np.iscomplexobj(v) for _, v in terms):
        raise InteropError("complex output functionals are not supported (certrb's output is l^H u)")
    kept = [(text, v[free]) for text, v in terms if np.any(v[free])] or [("1", np.zeros(free.size))]
    output = AffineFunctional([v for _, v in kept], [text for text, _ in kept]).bind(names, "output")
    offsets = [(product_text(text, gtext), float(np.real(v[dirichlet] @ g)))
               for text, v in terms for gtext, g in g_terms]
    offsets = [(text, value) for text, value in offsets if value]
    if not offsets:
        return output, None
    return output, (ExpressionCoefficients([t for t, _ in offsets], names), np.array([v for _, v in offsets]))


def _product(fom: Any, product: Any) -> sp.csr_matrix:
    if isinstance(product, str):
        if product not in fom.products:
            raise InteropError(f"the pyMOR model has no product {product!r}; it has {sorted(fom.products)}")
        product = fom.products[product]
    if type(product).__name__ != "NumpyMatrixOperator":
        raise InteropError(f"product: a pyMOR {type(product).__name__} has no certrb counterpart; give a "
                           f"NumpyMatrixOperator or a key of fom.products")
    return sp.csr_matrix(product.matrix)


def _parameter_space(given: Any, components: Mapping[str, Sequence[str]]) -> ParameterSpace:
    """The certrb box over the component names from the ranges given in one of the accepted forms."""
    names = [c for comps in components.values() for c in comps]
    if given is None:
        raise InteropError("a pyMOR model carries no parameter ranges: pass parameter_space= (e.g. the analytical "
                           "problem's parameter_space, a dict name -> (low, high), or one (low, high) pair)")
    if isinstance(given, ParameterSpace):
        if given.names != tuple(names):
            raise InteropError(f"parameter_space has the names {list(given.names)}; the pyMOR model's components "
                               f"are {names}")
        return given
    ranges = getattr(given, "ranges", given)
    if not isinstance(ranges, Mapping):
        ranges = dict.fromkeys(components, ranges)
    missing = sorted(set(components) - set(ranges))
    if missing:
        raise InteropError(f"parameter_space gives no range for the pyMOR parameter(s) {missing}")
    lower, upper = [], []
    for name, comps in components.items():
        try:
            low, high = ranges[name]
        except (TypeError, ValueError):
            raise InteropError(f"the range of {name!r} must be a (low, high) pair; got {ranges[name]!r}") from None
        lower.append(np.broadcast_to(np.asarray(low, dtype=np.float64), (len(comps),)))
        upper.append(np.broadcast_to(np.asarray(high, dtype=np.float64), (len(comps),)))
    return ParameterSpace(names, np.concatenate(lower), np.concatenate(upper))


def _stability(stability: Any, operator: AffineOperator, X: InnerProduct, space: ParameterSpace,
               mu_ref: ArrayLike | None, scm_train: ArrayLike | None, scm_kind: str) -> Any:
    if isinstance(stability, str):
        if stability == "min-theta":
            center = (space.lower + space.upper) / 2
            return MinTheta(center if mu_ref is None else mu_ref)
        if stability == "scm":
            train = _default_train(space) if scm_train is None else scm_train
            return SCM(operator, X, train, kind=scm_kind)
        raise ValueError(f"stability must be 'min-theta', 'scm', a MinTheta or a callable; got {stability!r}")
    if isinstance(stability, MinTheta) or callable(stability):
        return stability
    raise TypeError(f"stability must be 'min-theta', 'scm', a MinTheta or a callable; got {type(stability).__name__}")


def _default_train(space: ParameterSpace) -> NDArray[np.float64]:
    """The box corners (for up to 8 parameters) and 64 random points (seed 0)."""
    sample = space.sample(_SCM_SAMPLES, rng=0)
    p = len(space.names)
    if p > _CORNER_LIMIT:
        return sample
    bits = (np.arange(2**p)[:, None] >> np.arange(p)[None, :]) & 1
    corners = np.where(bits == 1, space.upper, space.lower)
    return np.concatenate([corners, sample])

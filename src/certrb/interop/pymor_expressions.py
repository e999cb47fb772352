"""pyMOR parameter functionals as certrb coefficient expressions (text in the grammar of online.expressions).

pyMOR parameters are vectors: ``{"diffusion": 4, "nu": 1}``. certrb parameters are scalars; a
pyMOR parameter of dimension 1 keeps its name, one of dimension ``d > 1`` becomes the components
``name_0, ..., name_{d-1}`` (:func:`component_names`), in pyMOR's order (parameters sorted by name).

An ``ExpressionParameterFunctional``'s string is parsed with :mod:`ast` (never evaluated) and
translated with pyMOR's shape rules: every sub-expression is a list of component texts (a scalar or
a vector), elementwise operations broadcast, the reductions ``sum prod min max norm`` and
subscripts ``mu[i]`` reduce a vector to a scalar. Constants ``pi`` and ``e`` become their double
values; ``exp2``/``log2`` become ``2.0 ** x`` / ``log(x) / log(2)``. Comparisons, ``%``, ``sign``,
``angle`` and the inverse hyperbolic functions have no exact counterpart in certrb's grammar and
raise :class:`certrb.errors.InteropError`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Number
from typing import Any

from ..errors import InteropError

__all__ = ["component_names", "functional_text", "product_text", "translate_expression"]

_ELEMENTWISE = ("sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "exp", "log", "sqrt",
                "log10", "abs")
_CONSTANTS = {"pi": math.pi, "e": math.e}
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


def component_names(parameters: Mapping[str, int]) -> dict[str, tuple[str, ...]]:
    """The certrb names of the components of each pyMOR parameter.

    Parameters
    ----------
    parameters : mapping str -> int
        pyMOR ``Parameters`` (name -> dimension).

    Returns
    -------
    dict str -> tuple of str
        ``(name,)`` for dimension 1, ``(name_0, ..., name_{d-1})`` otherwise; sorted by pyMOR name.

    Raises
    ------
    InteropError
        If two components get the same name (e.g. parameters ``a`` of dimension 2 and ``a_0``).

    """
    out = {name: (name,) if int(dim) == 1 else tuple(f"{name}_{i}" for i in range(int(dim)))
           for name, dim in sorted(parameters.items())}
    flat = [c for names in out.values() for c in names]
    clash = sorted({c for c in flat if flat.count(c) > 1})
    if clash:
        raise InteropError(f"the pyMOR parameters {dict(parameters)} give the certrb component name(s) {clash} "
                           f"twice; rename a parameter")
    return out


def number_text(value: Any) -> str:
    """Exact literal of a real or complex number (``repr`` of the doubles)."""
    z = complex(value)
    if not (math.isfinite(z.real) and math.isfinite(z.imag)):
        raise InteropError(f"the pyMOR coefficient {value!r} is not finite")
    return f"({z.real!r} + {z.imag!r}j)" if z.imag else repr(z.real)


def product_text(a: str, b: str) -> str:
    """Text of the product of two coefficient texts (``"1"`` is dropped)."""
    if a in ("1", "1.0"):
        return b
    if b in ("1", "1.0"):
        return a
    return f"({a}) * ({b})"


def functional_text(functional: Any, components: Mapping[str, Sequence[str]]) -> str:
    """The certrb expression of a pyMOR coefficient.

    Parameters
    ----------
    functional : number or pyMOR ParameterFunctional
        A number, ``ConstantParameterFunctional``, ``ProjectionParameterFunctional``,
        ``ExpressionParameterFunctional``, or a ``LincombParameterFunctional`` /
        ``ProductParameterFunctional`` of these.
    components : mapping str -> sequence of str
        :func:`component_names` of the model's parameters.

    Returns
    -------
    str
        An expression over the component names.

    Raises
    ------
    InteropError
        Naming the functional class or expression piece that has no exact translation.

    """
    if isinstance(functional, Number):
        return number_text(functional)
    kind = type(functional).__name__
    if kind == "ConstantParameterFunctional":
        return number_text(functional.constant_value)
    if kind == "ProjectionParameterFunctional":
        return _components(functional.parameter, components)[int(functional.index)]
    if kind == "ExpressionParameterFunctional":
        return translate_expression(functional.expression, components)
    if kind == "LincombParameterFunctional":
        parts = [product_text(number_text(c), functional_text(f, components))
                 for f, c in zip(functional.functionals, functional.coefficients, strict=True)]
        return "(" + " + ".join(f"({p})" for p in parts) + ")"
    if kind == "ProductParameterFunctional":
        text = "1"
        for factor in functional.factors:
            text = product_text(text, functional_text(factor, components))
        return text
    raise InteropError(f"the pyMOR coefficient {kind} ({functional!r}) has no exact translation; supported are "
                       f"numbers and Constant-, Projection-, Expression-, Lincomb- and ProductParameterFunctional")


def _components(name: str, components: Mapping[str, Sequence[str]]) -> Sequence[str]:
    if name not in components:
        raise InteropError(f"the pyMOR coefficient uses the parameter {name!r}, which the model does not declare "
                           f"(its parameters: {list(components)})")
    return components[name]


def translate_expression(text: str, components: Mapping[str, Sequence[str]]) -> str:
    """The certrb expression of a pyMOR expression string (scalar-valued).

    Parameters
    ----------
    text : str
        pyMOR expression, e.g. ``"sum(mu**2) + exp(-nu[0])"``.
    components : mapping str -> sequence of str
        :func:`component_names` of the model's parameters.

    Returns
    -------
    str

    Raises
    ------
    InteropError
        If the string does not parse, is not scalar-valued, or uses a piece without an exact counterpart.

    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise InteropError(f"pyMOR expression {text!r} does not parse: {exc.msg}") from None
    value = _Translator(text, components).walk(tree)
    if len(value.items) != 1:
        raise InteropError(f"pyMOR expression {text!r} is vector-valued (shape ({len(value.items)},)); a "
                           f"coefficient must be a scalar")
    return value.items[0]


@dataclass(frozen=True)
class _Value:
    """A translated sub-expression: component texts, and whether it is a vector (pyMOR shape (k,)) or a scalar."""

    items: tuple[str, ...]
    vector: bool


@dataclass(frozen=True)
class _Translator:
    text: str
    components: Mapping[str, Sequence[str]]

    def fail(self, node: ast.AST, message: str) -> InteropError:
        piece = ast.get_source_segment(self.text.strip(), node) or type(node).__name__
        return InteropError(f"pyMOR expression {self.text!r}: {piece!r}: {message}")

    def walk(self, node: ast.expr) -> _Value:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float | complex):
                raise self.fail(node, "only numbers are supported as literals")
            return _Value((number_text(node.value),), False)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.List):
            items = [self.walk(e) for e in node.elts]
            if any(v.vector for v in items):
                raise self.fail(node, "nested arrays are not supported (only vectors)")
            return _Value(tuple(v.items[0] for v in items), True)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op = _BINARY[type(node.op)]
            return self.broadcast(node, self.walk(node.left), self.walk(node.right),
                                  lambda a, b: f"({a} {op} {b})")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = self.walk(node.operand)
            return v if isinstance(node.op, ast.UAdd) else _Value(tuple(f"(-{a})" for a in v.items), v.vector)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(node, f"{type(node).__name__} has no counterpart in certrb's expression grammar")

    def name(self, node: ast.Name) -> _Value:
        if node.id in self.components:
            return _Value(tuple(self.components[node.id]), True)
        if node.id in _CONSTANTS:
            return _Value((repr(_CONSTANTS[node.id]),), False)
        raise self.fail(node, f"unknown name; the parameters are {list(self.components)}")

    def subscript(self, node: ast.Subscript) -> _Value:
        base = self.walk(node.value)
        index = node.slice
        if not (base.vector and isinstance(index, ast.Constant) and type(index.value) is int):
            raise self.fail(node, "only an integer index of a vector is supported")
        if not 0 <= index.value < len(base.items):
            raise self.fail(node, f"index out of range for a vector of length {len(base.items)}")
        return _Value((base.items[index.value],), False)

    def broadcast(self, node: ast.AST, a: _Value, b: _Value, join: Callable[[str, str], str]) -> _Value:
        na, nb = len(a.items), len(b.items)
        if na != nb and 1 not in (na, nb):
            raise self.fail(node, f"shapes ({na},) and ({nb},) do not broadcast")
        n = max(na, nb)
        items = tuple(join(a.items[i if na > 1 else 0], b.items[i if nb > 1 else 0]) for i in range(n))
        return _Value(items, a.vector or b.vector)

    def call(self, node: ast.Call) -> _Value:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node.func, "only calls of named functions are supported")
        name = node.func.id
        if node.keywords or len(node.args) != 1:
            raise self.fail(node, f"{name} takes exactly one positional argument")
        arg = self.walk(node.args[0])
        elementwise = _elementwise(name)
        if elementwise is not None:
            return _Value(tuple(elementwise(a) for a in arg.items), arg.vector)
        reduction = _REDUCTIONS.get(name)
        if reduction is not None:
            return _Value((reduction(list(arg.items)),), False)
        raise self.fail(node, f"function {name!r} has no exact counterpart in certrb's expression grammar")


def _elementwise(name: str) -> Callable[[str], str] | None:
    if name in _ELEMENTWISE:
        return lambda a: f"{name}({a})"
    if name == "exp2":
        return lambda a: f"(2.0 ** {a})"
    if name == "log2":
        return lambda a: f"(log({a}) / {math.log(2.0)!r})"
    return None


def _balanced(items: list[str], join: Callable[[str, str], str]) -> str:
    """Pairwise reduction (nesting depth log2(k), within the grammar's depth limit)."""
    if len(items) == 1:
        return items[0]
    half = len(items) // 2
    return join(_balanced(items[:half], join), _balanced(items[half:], join))


_REDUCTIONS: dict[str, Callable[[list[str]], str]] = {
    "sum": lambda xs: _balanced(xs, lambda a, b: f"({a} + {b})"),
    "prod": lambda xs: _balanced(xs, lambda a, b: f"({a} * {b})"),
    "min": lambda xs: _balanced(xs, lambda a, b: f"minimum({a}, {b})"),
    "max": lambda xs: _balanced(xs, lambda a, b: f"maximum({a}, {b})"),
    "norm": lambda xs: "sqrt(" + _balanced([f"(abs({x}) ** 2.0)" for x in xs], lambda a, b: f"({a} + {b})") + ")",
}

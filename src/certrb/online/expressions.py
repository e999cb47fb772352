"""Coefficient functions written as expressions over the parameter names.

``ExpressionCoefficients(("1", "-k**2 + 1j*k"), ("k",))`` maps a parameter batch
``mus`` (n_mu, P) to ``theta`` (n_mu, Q), one column per expression. Expressions
are data: they are stored as text in model files and read back by parsing, so a
model needs no user module to be imported (nor trusted) to be evaluated.

Grammar (a subset of Python's expression syntax): int, float and imaginary
literals (``2``, ``1.5e-3``, ``1j``); the declared parameter names; the constants
``pi`` and ``e``; binary ``+ - * / **``; unary ``-`` and ``+``; parentheses; and
calls, with positional arguments only, of the elementwise functions in
:data:`FUNCTIONS`. Everything else (attributes, subscripts, comparisons,
keyword arguments, strings, lambdas, undeclared names, ...) raises
:class:`certrb.errors.ExpressionError` naming the offending piece and its column.

The text is parsed with :func:`ast.parse` (``mode="eval"``) and the tree is
checked and translated node by node by the walker below into a small tree of
numpy ufunc applications; the text is never passed to ``eval``, ``exec`` or
``compile``. Each expression is evaluated once per batch on the parameter columns
(vectorized), in float64, or in complex128 where an expression is complex.

Why hand-written: no small, well-kept library fits a safe *vectorized numpy*
evaluator of this size. ``asteval`` (lmfit) is maintained but interprets a large
Python subset (statements, loops, function definitions) and calls itself
"safe(ish)"; ``numexpr.evaluate`` and ``sympy.sympify`` evaluate strings through
``eval`` (sympy is also heavy); the published ``ast`` recipes whitelist nodes
and then ``eval`` the compiled tree. A whitelist of about ten node types and a
translation to ufuncs is short and easy to audit.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from ..errors import ExpressionError, ShapeError

__all__ = ["CONSTANTS", "FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "ExpressionCoefficients"]

MAX_LENGTH = 2000  # characters of one expression
MAX_DEPTH = 64  # nesting depth of the expression tree

# name -> (ufunc, number of arguments)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "exp": (np.exp, 1), "log": (np.log, 1), "log10": (np.log10, 1), "sqrt": (np.sqrt, 1),
    "sin": (np.sin, 1), "cos": (np.cos, 1), "tan": (np.tan, 1),
    "sinh": (np.sinh, 1), "cosh": (np.cosh, 1), "tanh": (np.tanh, 1),
    "arcsin": (np.arcsin, 1), "arccos": (np.arccos, 1), "arctan": (np.arctan, 1),
    "abs": (np.abs, 1), "minimum": (np.minimum, 2), "maximum": (np.maximum, 2),
}
CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e)}

_BINARY: dict[type, Callable[..., Any]] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide, ast.Pow: np.power,
}
_REFUSED = {  # friendly names of common node types outside the grammar
    "Attribute": "attribute access", "Subscript": "subscript", "Compare": "comparison",
    "BoolOp": "boolean operator", "Lambda": "lambda", "IfExp": "conditional expression",
    "JoinedStr": "f-string", "NamedExpr": "assignment expression", "Starred": "starred argument",
    "List": "list", "Tuple": "tuple", "Dict": "dict", "Set": "set", "ListComp": "comprehension",
    "GeneratorExp": "generator", "SetComp": "comprehension", "DictComp": "comprehension",
}

# translated tree: ("const", value) | ("param", column) | ("apply", ufunc, (argument trees, ...))
_Tree = tuple


@dataclass(frozen=True)
class ExpressionCoefficients:
    """Coefficient functions given as expressions over named parameters.

    Parameters
    ----------
    texts : sequence of str, length Q
        One expression per affine term, e.g. ``("1", "sin(k) * exp(-0.5 * k)")``.
    names : sequence of str, length P
        The parameter names, in the order of the columns of ``mus``.

    Raises
    ------
    ExpressionError
        If an expression is outside the grammar (see the module docstring), uses a
        name not in ``names``, or ``names`` clash with a function or constant.

    Examples
    --------
    >>> theta = ExpressionCoefficients(("1", "mu1**2"), ("mu1", "mu2"))
    >>> theta(np.array([[2.0, 0.0], [3.0, 1.0]]))
    array([[1., 4.],
           [1., 9.]])

    """

    texts: tuple[str, ...]
    names: tuple[str, ...]
    _trees: tuple[_Tree, ...] = field(init=False, repr=False, compare=False)

    def __init__(self, texts: Any, names: Any) -> None:
        texts_t, names_t = _strings(texts, "texts"), _strings(names, "names")
        if not texts_t:
            raise ExpressionError("texts must hold at least one expression")
        clash = sorted(set(names_t) & (set(FUNCTIONS) | set(CONSTANTS)))
        if clash:
            raise ExpressionError(f"parameter name(s) {clash} clash with the functions or constants of "
                                  f"expressions; rename the parameters")
        if len(set(names_t)) != len(names_t):
            raise ExpressionError(f"parameter names must be distinct; got {list(names_t)}")
        object.__setattr__(self, "texts", texts_t)
        object.__setattr__(self, "names", names_t)
        object.__setattr__(self, "_trees", tuple(parse(text, names_t) for text in texts_t))

    def __reduce__(self) -> tuple:
        """Pickle as the texts and names; the expressions are parsed again where unpickled."""
        return ExpressionCoefficients, (self.texts, self.names)

    def __call__(self, mus: NDArray[np.float64]) -> NDArray:
        """Values of the expressions for a batch.

        Parameters
        ----------
        mus : ndarray, shape (n_mu, P)

        Returns
        -------
        theta : ndarray, shape (n_mu, Q), float64, or complex128 if some expression is complex
            Values outside an expression's domain are NaN or infinite (numpy's rules, e.g.
            ``sqrt(-1.0)`` is NaN); :func:`certrb.online.coefficients.evaluate_coefficients` refuses them.

        """
        m = np.asarray(mus, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != len(self.names):
            raise ShapeError(f"mus must have shape (n_mu, {len(self.names)}) for the parameters "
                             f"{list(self.names)}; got {m.shape}")
        columns = [m[:, j] for j in range(m.shape[1])]
        with np.errstate(all="ignore"):
            values = [_evaluate(tree, columns, m.shape[0]) for tree in self._trees]
        return np.stack(values, axis=1)


def parse(text: str, names: tuple[str, ...]) -> _Tree:
    """Check one expression against the grammar and translate it to a ufunc tree.

    Parameters
    ----------
    text : str
        The expression.
    names : tuple of str, length P
        Declared parameter names; a name refers to column ``names.index(name)`` of ``mus``.

    Returns
    -------
    tree : tuple
        ``("const", value)``, ``("param", column)`` or ``("apply", ufunc, (trees, ...))``.

    Raises
    ------
    ExpressionError
        Naming the offending piece and its column (1-based).

    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression of {len(text)} characters is too long (at most {MAX_LENGTH})")
    bad = next((i for i, ch in enumerate(text) if not ch.isprintable()), None)
    if bad is not None:
        raise ExpressionError(f"in {text!r} at column {bad + 1}: line break or control character")
    stripped = text.strip()
    if not stripped:
        raise ExpressionError("empty expression")
    try:
        body = ast.parse(stripped, mode="eval").body
    except SyntaxError as exc:
        column = (exc.offset or 0) + len(text) - len(text.lstrip())
        raise ExpressionError(f"in {text!r} at column {column}: invalid syntax ({exc.msg})") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"in {text!r}: nesting too deep") from None
    return _Walker(text, stripped, names).walk(body, 1)


@dataclass(frozen=True)
class _Walker:
    """Translates a parsed expression, refusing every node outside the grammar."""

    text: str
    stripped: str
    names: tuple[str, ...]

    def walk(self, node: ast.expr, depth: int) -> _Tree:
        if depth > MAX_DEPTH:
            self.fail(node, f"nesting too deep (more than {MAX_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            operands = (self.walk(node.left, depth + 1), self.walk(node.right, depth + 1))
            return ("apply", _BINARY[type(node.op)], operands)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            operand = self.walk(node.operand, depth + 1)
            return operand if isinstance(node.op, ast.UAdd) else ("apply", np.negative, (operand,))
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            self.fail(node, f"operator {type(node.op).__name__} is not allowed (only + - * / ** and unary - +)")
        kind = _REFUSED.get(type(node).__name__, type(node).__name__)
        self.fail(node, f"{kind} is not allowed")

    def constant(self, node: ast.Constant) -> _Tree:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float | complex):
            self.fail(node, f"literal {value!r} is not allowed (only int, float and imaginary numbers)")
        if isinstance(value, complex):
            return ("const", complex(value))
        return ("const", float(value))  # no Python integer arithmetic: huge powers stay float overflows

    def name(self, node: ast.Name) -> _Tree:
        if node.id in self.names:
            return ("param", self.names.index(node.id))
        if node.id in CONSTANTS:
            return ("const", CONSTANTS[node.id])
        if node.id in FUNCTIONS:
            self.fail(node, f"function {node.id!r} must be called")
        self.fail(node, f"unknown name {node.id!r}; the parameters are {list(self.names)} and the constants "
                        f"{sorted(CONSTANTS)}")

    def call(self, node: ast.Call, depth: int) -> _Tree:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = repr(node.func.id) if isinstance(node.func, ast.Name) else "this callee"
            self.fail(node.func, f"call of {what} is not allowed; the functions are {sorted(FUNCTIONS)}")
        name = node.func.id
        func, arity = FUNCTIONS[name]
        if node.keywords:
            self.fail(node.keywords[0], f"keyword argument in the call of {name!r} is not allowed")
        if len(node.args) != arity:
            self.fail(node, f"{name} takes {arity} argument(s); got {len(node.args)}")
        return ("apply", func, tuple(self.walk(arg, depth + 1) for arg in node.args))

    def fail(self, node: ast.expr | ast.keyword, message: str) -> NoReturn:
        offset = len(self.stripped.encode("utf-8")[:node.col_offset].decode("utf-8", "ignore"))
        column = offset + len(self.text) - len(self.text.lstrip()) + 1
        piece = ast.get_source_segment(self.stripped, node) or ""
        raise ExpressionError(f"in {self.text!r}, {piece!r} at column {column}: {message}")


def _evaluate(tree: _Tree, columns: list[NDArray[np.float64]], n: int) -> NDArray:
    """Value of a translated expression, shape (n,); constants are broadcast."""
    kind = tree[0]
    if kind == "const":
        return np.full(n, tree[1])
    if kind == "param":
        return columns[tree[1]]
    return tree[1](*(_evaluate(arg, columns, n) for arg in tree[2]))


def _strings(values: Any, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ExpressionError(f"{what} must be a sequence of strings; got the single string {values!r}")
    try:
        out = tuple(values)
    except TypeError:
        raise ExpressionError(f"{what} must be a sequence of strings; got {type(values).__name__}") from None
    wrong = [v for v in out if not isinstance(v, str)]
    if wrong:
        raise ExpressionError(f"{what} must be a sequence of strings; got {wrong[0]!r}")
    return out

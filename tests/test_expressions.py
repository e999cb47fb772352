"""Expression coefficients: the grammar, vectorized values against numpy, complex values, pickling, no eval."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import certrb
from certrb.errors import CertRBError, ExpressionError, ShapeError
from certrb.online.coefficients import Conjugated, evaluate_coefficients
from certrb.online.expressions import MAX_DEPTH, MAX_LENGTH, ExpressionCoefficients

NAMES = ("k", "c")
MUS = np.array([[0.5, 2.0], [1.5, -0.25], [3.0, 0.75], [0.1, 1e-3]])
K, C = MUS[:, 0], MUS[:, 1]


def test_public_names():
    assert certrb.ExpressionCoefficients is ExpressionCoefficients
    assert certrb.ExpressionError is ExpressionError
    assert issubclass(ExpressionError, CertRBError)
    assert issubclass(ExpressionError, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", np.ones_like(K)),
        ("2.5e-1", np.full_like(K, 0.25)),
        ("k", K),
        ("+c", C),
        ("-k", -K),
        ("k + c * 2 - 1 / k", K + C * 2 - 1 / K),
        ("(k + c) * 2", (K + C) * 2),
        ("k ** 2 ** 0.5", K ** 2 ** 0.5),  # right-associative like Python and numpy
        ("-k ** 2", -(K ** 2)),
        ("sin(k) * exp(-0.5 * k)", np.sin(K) * np.exp(-0.5 * K)),
        ("log(k) + log10(k) + sqrt(k)", np.log(K) + np.log10(K) + np.sqrt(K)),
        ("cos(c) + tan(c) + sinh(c) + cosh(c) + tanh(c)",
         np.cos(C) + np.tan(C) + np.sinh(C) + np.cosh(C) + np.tanh(C)),
        ("arcsin(c / 4) + arccos(c / 4) * arctan(k)", np.arcsin(C / 4) + np.arccos(C / 4) * np.arctan(K)),
        ("abs(c) + minimum(k, c) - maximum(k, 1)", np.abs(C) + np.minimum(K, C) - np.maximum(K, 1)),
        ("pi * e", np.full_like(K, np.pi * np.e)),
        ("1e-3 * k", 1e-3 * K),
    ],
)
def test_values_match_numpy(text, expected):
    theta = ExpressionCoefficients((text,), NAMES)(MUS)
    assert theta.shape == (MUS.shape[0], 1)
    assert theta.dtype == np.float64
    np.testing.assert_allclose(theta[:, 0], expected, rtol=1e-15, atol=0)


def test_several_expressions_are_columns():
    theta = ExpressionCoefficients(["1", "k", "c ** 2"], NAMES)(MUS)
    np.testing.assert_array_equal(theta, np.column_stack([np.ones_like(K), K, C ** 2]))


def test_complex_expressions():
    coefficients = ExpressionCoefficients(("1", "-k**2 + 1j*k", "exp(1j * c)"), NAMES)
    theta = coefficients(MUS)
    assert theta.dtype == np.complex128
    np.testing.assert_allclose(theta, np.column_stack([np.ones_like(K), -K ** 2 + 1j * K, np.exp(1j * C)]),
                               rtol=1e-15, atol=0)
    np.testing.assert_array_equal(Conjugated(coefficients)(MUS), theta.conj())


def test_batch_of_one_and_empty_batch():
    coefficients = ExpressionCoefficients(("1", "k * c"), NAMES)
    np.testing.assert_array_equal(coefficients(MUS[:1]), [[1.0, K[0] * C[0]]])
    assert coefficients(np.empty((0, 2))).shape == (0, 2)


def test_wrong_batch_shape():
    with pytest.raises(ShapeError, match=r"\(n_mu, 2\)"):
        ExpressionCoefficients(("k",), NAMES)(np.ones((3, 3)))


def test_outside_domain_is_refused_by_evaluate_coefficients():
    coefficients = ExpressionCoefficients(("log(c)",), NAMES)
    assert np.isnan(coefficients(MUS)[1, 0])
    with pytest.raises(ShapeError, match="NaN or infinite"):
        evaluate_coefficients(coefficients, MUS, 1, "operator")


def test_huge_powers_overflow_as_floats():
    theta = ExpressionCoefficients(("10 ** 10 ** 10",), NAMES)(MUS)  # no Python integer arithmetic
    assert np.isinf(theta).all()


def test_equality_hash_and_pickle():
    a = ExpressionCoefficients(["1", "k"], ["k", "c"])
    b = ExpressionCoefficients(("1", "k"), ("k", "c"))
    assert a == b
    assert hash(a) == hash(b)
    assert a != ExpressionCoefficients(("1", "c"), NAMES)
    assert a != ExpressionCoefficients(("1", "k"), ("k", "d"))
    c = pickle.loads(pickle.dumps(a))
    assert c == a
    np.testing.assert_array_equal(c(MUS), a(MUS))
    assert repr(a) == "ExpressionCoefficients(texts=('1', 'k'), names=('k', 'c'))"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", r"'__import__' at column 1: call of '__import__' is not allowed"),
        ("().__class__", r"'\(\).__class__' at column 1: attribute access is not allowed"),
        ("k.real", "attribute access"),
        ("exp.__globals__", "attribute access"),
        ("k[0]", "subscript"),
        ("k < 1", "comparison"),
        ("k and c", "boolean operator"),
        ("lambda: 1", "lambda"),
        ("k if c else 1", "conditional expression"),
        ("(k := 1)", "assignment expression"),
        ("[k]", "list"),
        ("(k, c)", "tuple"),
        ("f'{k}'", "f-string"),
        ("'k'", "literal 'k' is not allowed"),
        ("b'1'", "literal b'1' is not allowed"),
        ("True", "literal True is not allowed"),
        ("None", "literal None is not allowed"),
        ("k + zz", r"'zz' at column 5: unknown name 'zz'; the parameters are \['k', 'c'\]"),
        ("print(k)", "call of 'print' is not allowed"),
        ("np.exp(k)", "call of this callee is not allowed"),
        ("sin", "function 'sin' must be called"),
        ("exp(k, c)", "exp takes 1 argument"),
        ("minimum(k)", "minimum takes 2 argument"),
        ("exp(x=k)", r"'x=k' at column 5: keyword argument in the call of 'exp'"),
        ("exp(*k)", "starred argument"),
        ("k // 2", "operator FloorDiv is not allowed"),
        ("k % 2", "operator Mod is not allowed"),
        ("~k", "operator Invert is not allowed"),
        ("not k", "operator Not is not allowed"),
        ("(1", "at column 1: invalid syntax"),
        ("k +", "invalid syntax"),
        ("k = 1", "invalid syntax"),
        ("1\n+ k", "at column 2: line break or control character"),
        ("", "empty expression"),
        ("   ", "empty expression"),
    ],
)
def test_refused(text, message):
    with pytest.raises(ExpressionError, match=message):
        ExpressionCoefficients(("1", text), NAMES)


def test_position_accounts_for_leading_spaces_and_non_ascii():
    with pytest.raises(ExpressionError, match="'zz' at column 11"):
        ExpressionCoefficients(("  k + é + zz",), ("k", "é"))


def test_error_quotes_the_expression():
    with pytest.raises(ExpressionError, match=re.escape("in 'k + c.imag'")):
        ExpressionCoefficients(("k + c.imag",), NAMES)


def test_too_long_and_too_deep():
    with pytest.raises(ExpressionError, match="too long"):
        ExpressionCoefficients(("k + " * (MAX_LENGTH // 4) + "k",), NAMES)
    with pytest.raises(ExpressionError, match="nesting too deep"):
        ExpressionCoefficients(("-" * (MAX_DEPTH + 1) + "k",), NAMES)
    with pytest.raises(ExpressionError, match="nesting too deep"):
        ExpressionCoefficients(("-" * (MAX_LENGTH - 1) + "k",), NAMES)  # too deep for Python's parser itself
    with pytest.raises(ExpressionError, match="invalid syntax"):
        ExpressionCoefficients(("(" * 250 + "k" + ")" * 250,), NAMES)
    assert ExpressionCoefficients(("-" * (MAX_DEPTH - 1) + "k",), NAMES)(MUS).shape == (MUS.shape[0], 1)


@pytest.mark.parametrize(
    ("texts", "names", "message"),
    [
        ("k", NAMES, "single string"),
        ((), NAMES, "at least one expression"),
        (("k", 1), NAMES, "sequence of strings; got 1"),
        (("k",), ("k", "k"), "distinct"),
        (("k",), ("k", "e"), r"clash"),
        (("k",), ("exp",), r"clash"),
        (("k",), 3, "sequence of strings; got int"),
    ],
)
def test_bad_arguments(texts, names, message):
    with pytest.raises(ExpressionError, match=message):
        ExpressionCoefficients(texts, names)


def test_no_eval(monkeypatch):
    """The text is only parsed (compile with ast.PyCF_ONLY_AST, as ast.parse does), never compiled or run."""
    import ast
    import builtins

    real_compile = builtins.compile

    def parse_only(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, "compile called to make code"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", parse_only)
    coefficients = ExpressionCoefficients(("sin(k) * c + 1j",), NAMES)
    np.testing.assert_allclose(coefficients(MUS)[:, 0], np.sin(K) * C + 1j, rtol=1e-15)
    with pytest.raises(ExpressionError):
        ExpressionCoefficients(("__import__('os').system('true')",), NAMES)

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


# --- Problem with expression coefficients ----------------------------------------------------------


def _with_expressions(problem, operator, rhs, output, stability=None):
    """The same problem with the coefficients given as expression strings."""
    return certrb.Problem(certrb.AffineOperator(problem.operator.terms, operator),
                          certrb.AffineFunctional(problem.rhs.terms, rhs), problem.inner_product,
                          problem.parameter_space, stability=stability or certrb.MinTheta([0.0, 0.0], alpha_ref=1.0),
                          output=certrb.AffineFunctional(problem.output.terms, output))


@pytest.fixture(scope="module")
def diffusion():
    """The 1D study problem with callables, and the same with expressions."""
    from certrb.problems.diffusion1d import diffusion1d

    problem = diffusion1d(60)
    return problem, _with_expressions(problem, ["1", "mu1", "mu2"], ["1"], ["1"])


def test_problem_binds_expressions_to_the_parameter_names(diffusion):
    problem, expr = diffusion
    names = ("mu1", "mu2")
    assert expr.operator.coefficients == ExpressionCoefficients(("1", "mu1", "mu2"), names)
    assert expr.rhs.coefficients == ExpressionCoefficients(("1",), names)
    assert expr.output.coefficients == ExpressionCoefficients(("1",), names)
    assert expr.stability.coefficients == expr.operator.coefficients  # MinTheta's online bound
    mus = problem.parameter_space.sample(7, rng=0)
    np.testing.assert_array_equal(expr.operator.theta(mus), problem.operator.theta(mus))
    np.testing.assert_array_equal(expr.stability_lower_bound(mus), problem.stability_lower_bound(mus))


def test_same_truth_solutions_and_greedy_model(diffusion):
    problem, expr = diffusion
    mus = problem.parameter_space.sample(5, rng=1)
    np.testing.assert_array_equal(expr.solve(mus), problem.solve(mus))
    train = problem.parameter_space.sample(60, rng=2)
    models = [certrb.weak_greedy(certrb.OfflineBuilder(p, ("orthonormal",)), train, tol=1e-8, max_basis=6).model
              for p in (problem, expr)]
    np.testing.assert_array_equal(models[1].basis, models[0].basis)
    np.testing.assert_array_equal(models[1].A_N, models[0].A_N)
    a, b = (m.evaluate(mus) for m in models)
    np.testing.assert_array_equal(b.coefficients, a.coefficients)
    np.testing.assert_array_equal(b.bound, a.bound)
    np.testing.assert_array_equal(b.output, a.output)


def test_problem_pickles_with_expressions(diffusion):
    _, expr = diffusion
    again = pickle.loads(pickle.dumps(expr))
    assert again.operator.coefficients == expr.operator.coefficients
    mus = expr.parameter_space.sample(3, rng=3)
    np.testing.assert_array_equal(again.solve(mus), expr.solve(mus))


def test_dual_problem_conjugates_expressions(diffusion):
    _, expr = diffusion
    dual = certrb.dual_problem(expr)
    assert dual.operator.coefficients == Conjugated(expr.operator.coefficients)
    mus = expr.parameter_space.sample(3, rng=4)
    u, z = expr.solve(mus), dual.solve(mus)
    np.testing.assert_allclose(np.einsum("ij,j->i", u, expr.output.terms[0]),
                               np.einsum("ij,j->i", z, expr.rhs.terms[0]), rtol=1e-12)


def test_complex_expressions_give_the_same_complex_problem():
    from certrb.problems.helmholtz1d import helmholtz1d

    def unit(mus):
        return np.ones(mus.shape[0])

    problem = helmholtz1d(40, (1.0, 5.0), stability=unit)
    expr = certrb.Problem(certrb.AffineOperator(problem.operator.terms, ["1", "-k**2", "-1j * k"]),
                          certrb.AffineFunctional(problem.rhs.terms, ["1"]), problem.inner_product,
                          problem.parameter_space, stability=unit)
    assert expr.dtype == np.complex128
    mus = problem.parameter_space.sample(4, rng=5)
    np.testing.assert_array_equal(expr.operator.theta(mus), problem.operator.theta(mus))
    np.testing.assert_array_equal(expr.solve(mus), problem.solve(mus))


def test_expression_coefficients_given_directly(diffusion):
    problem, expr = diffusion
    names = problem.parameter_space.names
    direct = _with_expressions(problem, ExpressionCoefficients(("1", "mu1", "mu2"), names), ["1"], ["1"])
    assert direct.operator.coefficients == expr.operator.coefficients
    with pytest.raises(ExpressionError, match=r"over the parameters \['mu1', 'k'\]; the parameter space has"):
        _with_expressions(problem, ExpressionCoefficients(("1", "mu1", "k"), ("mu1", "k")), ["1"], ["1"])


def test_expressions_are_checked_before_any_heavy_work(diffusion):
    problem, _ = diffusion
    not_spd = -problem.inner_product.matrix  # InnerProduct would refuse it (after factorizing)
    with pytest.raises(ExpressionError, match=r"^rhs coefficients: in 'mu3'.*unknown name 'mu3'"):
        certrb.Problem(certrb.AffineOperator(problem.operator.terms, ["1", "mu1", "mu2"]),
                       certrb.AffineFunctional(problem.rhs.terms, ["mu3"]), not_spd, problem.parameter_space,
                       stability=certrb.MinTheta([0.0, 0.0], alpha_ref=1.0))
    with pytest.raises(ExpressionError, match=r"^output coefficients: in 'exp\(mu1, mu2\)'"):
        _with_expressions(problem, ["1", "mu1", "mu2"], ["1"], ["exp(mu1, mu2)"])
    with pytest.raises(ExpressionError, match=r"^operator coefficients: .*attribute access"):
        _with_expressions(problem, ["1", "mu1.real", "mu2"], ["1"], ["1"])


def test_affine_terms_check_the_number_of_expressions(diffusion):
    problem, _ = diffusion
    with pytest.raises(ShapeError, match="got 2 coefficient expressions for 3 terms"):
        certrb.AffineOperator(problem.operator.terms, ["1", "mu1"])
    with pytest.raises(ShapeError, match="got 2 coefficient expressions for 1 terms"):
        certrb.AffineFunctional(problem.rhs.terms, ExpressionCoefficients(("1", "mu1"), ("mu1", "mu2")))
    with pytest.raises(TypeError, match="sequence of expression strings, one per term; got '1'"):
        certrb.AffineFunctional(problem.rhs.terms, "1")
    with pytest.raises(TypeError, match="must be strings; got 1"):
        certrb.AffineFunctional(problem.rhs.terms, [1])
    with pytest.raises(TypeError, match="callable"):
        certrb.AffineFunctional(problem.rhs.terms, 1.0)


def test_unbound_expressions_say_how_to_bind(diffusion):
    problem, _ = diffusion
    functional = certrb.AffineFunctional(problem.rhs.terms, ["mu1"])
    with pytest.raises(TypeError, match="bound to the parameter names when the Problem is built"):
        functional.theta(np.zeros((1, 2)))
    bound = functional.bind(("mu1", "mu2"))
    np.testing.assert_array_equal(bound.theta(np.array([[3.0, 4.0]])), [[3.0]])
    assert bound.terms is functional.terms  # bound without copying the terms
    operator = certrb.AffineOperator(problem.operator.terms, ["1", "mu1", "mu2"])
    assert operator.bind(("mu1", "mu2")).terms[2] is operator.terms[2]
    callable_functional = certrb.AffineFunctional(problem.rhs.terms, problem.rhs.coefficients)
    assert callable_functional.bind(("mu1", "mu2")) is callable_functional

"""certrb.interop.from_pymor against pyMOR's own discretizations: truth, greedy, certified bounds, files, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("pymor")

from pymor.algorithms.timestepping import ImplicitEulerTimeStepper
from pymor.analyticalproblems.domaindescriptions import RectDomain
from pymor.analyticalproblems.elliptic import StationaryProblem
from pymor.analyticalproblems.functions import ConstantFunction, ExpressionFunction, LincombFunction
from pymor.analyticalproblems.thermalblock import thermal_block_problem
from pymor.core.logger import set_log_levels
from pymor.discretizers.builtin import discretize_stationary_cg
from pymor.models.basic import InstationaryModel, StationaryModel
from pymor.operators.constructions import IdentityOperator, LincombOperator
from pymor.operators.numpy import NumpyMatrixOperator
from pymor.parameters.base import Parameters
from pymor.parameters.functionals import (
    ExpressionParameterFunctional,
    GenericParameterFunctional,
    ProjectionParameterFunctional,
)

import certrb
from certrb.interop import from_pymor
from certrb.interop.pymor_expressions import component_names, functional_text

set_log_levels({"pymor": "WARN"})


@pytest.fixture(scope="module")
def thermal():
    problem = thermal_block_problem((2, 2))
    fom, _ = discretize_stationary_cg(problem, diameter=1 / 8)
    return fom, from_pymor(fom, parameter_space=problem.parameter_space)


def advection_diffusion_problem() -> StationaryProblem:
    """Non-symmetric: diffusion nu + 0.5 exp(nu) x, constant advection (b_0, b_1), Dirichlet data x y, an L2 output."""
    nu = {"nu": 1}
    return StationaryProblem(
        domain=RectDomain(),
        diffusion=LincombFunction([ConstantFunction(1.0, 2), ExpressionFunction("x[0]", 2)],
                                  [ExpressionParameterFunctional("nu[0]", nu),
                                   ExpressionParameterFunctional("0.5 * exp(nu)", nu)]),
        advection=LincombFunction([ConstantFunction(np.array([1.0, 0.0]), 2),
                                   ConstantFunction(np.array([0.0, 1.0]), 2)],
                                  [ProjectionParameterFunctional("b", 2, 0), ProjectionParameterFunctional("b", 2, 1)]),
        rhs=ConstantFunction(1.0, 2),
        dirichlet_data=ExpressionFunction("x[0] * x[1]", 2),
        outputs=[("l2", ConstantFunction(1.0, 2))],
        parameter_ranges={"nu": (0.1, 1), "b": (-1, 1)},
    )


@pytest.fixture(scope="module")
def advection():
    problem = advection_diffusion_problem()
    fom, _ = discretize_stationary_cg(problem, diameter=1 / 8)
    return fom, from_pymor(fom, parameter_space=problem.parameter_space, stability="scm")


def full_rows(vectors) -> np.ndarray:
    data = vectors.to_numpy()
    return data.T if data.shape[0] == vectors.dim and len(vectors) != vectors.dim else data


# --- truth ---------------------------------------------------------------------------------


def test_thermal_block_truth_equals_pymor_after_scatter(thermal):
    fom, pp = thermal
    boundary = fom.operator.operators[0].matrix.diagonal()
    np.testing.assert_array_equal(pp.dirichlet, np.flatnonzero(boundary))
    assert pp.problem.size == fom.solution_space.dim - pp.dirichlet.size
    assert pp.problem.parameter_space.names == ("diffusion_0", "diffusion_1", "diffusion_2", "diffusion_3")
    assert pp.problem.operator.n_terms == 4  # the boundary part vanishes on the free dofs
    mus = pp.problem.parameter_space.sample(5, rng=1)
    U = pp.problem.solve(mus)
    for m, u in zip(mus, U, strict=True):
        reference = fom.solve(pp.mu(m))
        np.testing.assert_array_equal(pp.row(pp.mu(m)), m)
        assert ((pp.to_pymor(u) - reference).norm() / reference.norm())[0] < 1e-13
        np.testing.assert_allclose(pp.restrict(reference)[0], u, rtol=0, atol=1e-13 * np.abs(u).max())


def test_restricted_terms_are_symmetric_and_min_theta_is_a_lower_bound(thermal):
    fom, pp = thermal
    raw = sp.csr_matrix(fom.operator.operators[1].matrix)
    assert abs(raw - raw.T).max() > 0  # pyMOR clears Dirichlet rows, not columns
    for a in pp.problem.operator.terms:
        assert abs(a - a.T).max() == 0
    X = pp.problem.inner_product.matrix.toarray()
    mus = pp.problem.parameter_space.sample(4, rng=2)
    bounds = pp.problem.stability_lower_bound(mus)
    for m, bound in zip(mus, bounds, strict=True):
        A = pp.problem.operator.assemble(pp.problem.operator.theta(m[None])[0]).toarray()
        alpha = np.linalg.eigvalsh(np.linalg.solve(np.linalg.cholesky(X), np.linalg.solve(np.linalg.cholesky(X),
                                                                                          A).T))[0]
        assert 0.5 * alpha <= bound <= alpha


def test_advection_diffusion_truth_output_and_lifting_equal_pymor(advection):
    fom, pp = advection
    problem = pp.problem
    assert problem.parameter_space.names == ("b_0", "b_1", "nu")
    assert problem.operator.coefficients.texts == ("nu", "(0.5 * exp(nu))", "b_0", "b_1")
    assert not np.allclose(pp.dirichlet_at(problem.parameter_space.sample(1, rng=0)), 0)
    mus = problem.parameter_space.sample(5, rng=3)
    U = problem.solve(mus)
    outputs = np.einsum("ij,ij->i", problem.output.assemble(mus), U) + pp.output_offset(mus)
    for i, m in enumerate(mus):
        reference = fom.solve(pp.mu(m))
        assert ((pp.to_pymor(U[i], m[None]) - reference).norm() / reference.norm())[0] < 1e-13
        np.testing.assert_allclose(outputs[i], fom.output(pp.mu(m)).ravel()[0], rtol=1e-13)
    with pytest.raises(ValueError, match="mus"):
        pp.to_pymor(U[0])


# --- reduced models: greedy, certified bounds, files -----------------------------------------


def check_certified(pp, model, n_test: int = 50) -> None:
    mus = pp.problem.parameter_space.sample(n_test, rng=7)
    result = model.evaluate(mus)
    error, _ = certrb.true_error(pp.problem, model, mus)
    assert np.all(error <= result.bound), f"{np.sum(error > result.bound)} certified-bound violations"


def test_thermal_block_greedy_to_1e_10_is_certified(thermal):
    fom, pp = thermal
    train = pp.problem.parameter_space.sample(60, rng=5)
    res = certrb.weak_greedy(certrb.OfflineBuilder(pp.problem), train, tol=1e-10, max_basis=60)
    assert res.reason == "tolerance"
    assert res.max_bounds[-1] <= 1e-10
    check_certified(pp, res.model)
    m = pp.problem.parameter_space.sample(1, rng=9)
    full = pp.to_pymor(res.model.reconstruct(res.model.solve(m)))
    error = (full - fom.solve(pp.mu(m[0]))).norm(fom.h1_0_semi_product)[0]
    assert error <= res.model.evaluate(m).bound[0]


def test_advection_diffusion_greedy_to_1e_10_is_certified_by_scm(advection):
    _, pp = advection
    train = pp.problem.parameter_space.sample(60, rng=5)
    res = certrb.weak_greedy(certrb.OfflineBuilder(pp.problem), train, tol=1e-10, max_basis=80)
    assert res.reason == "tolerance"
    check_certified(pp, res.model)


def test_save_load_without_trusted_imports(advection, tmp_path):
    _, pp = advection
    train = pp.problem.parameter_space.sample(30, rng=5)
    model = certrb.weak_greedy(certrb.OfflineBuilder(pp.problem), train, tol=1e-4, max_basis=12).model
    certrb.save(model, tmp_path / "advection.h5")
    loaded = certrb.load(tmp_path / "advection.h5")
    mus = pp.problem.parameter_space.sample(8, rng=6)
    before, after = model.evaluate(mus), loaded.evaluate(mus)
    np.testing.assert_array_equal(after.coefficients, before.coefficients)
    np.testing.assert_array_equal(after.bound, before.bound)
    np.testing.assert_array_equal(after.output, before.output)


# --- coefficients ----------------------------------------------------------------------------

PARAMETERS = Parameters({"mu": 3, "nu": 1})
EXPRESSIONS = [
    "sum(mu**2) + min(mu)",
    "exp(-nu[0]) * max(mu) - mu[2] / 3",
    "norm(mu) / (1 + nu)",
    "sqrt(abs(mu[1] - mu[0])) + log10(2 + nu[0])",
    "prod([mu[0], 2, nu[0]]) + sum(2 * mu - [1, 2, 3])",
    "exp2(nu) + log2(1 + mu[1])",
    "sin(pi * mu[0]) + cos(e * nu) + tan(mu[2] / 2)",
    "tanh(mu[0])**2 - arctan(nu) + sinh(mu[1]) * cosh(-mu[2]) + arcsin(nu / 2) + arccos(nu / 2)",
    "log(nu) ** 3 + mu[0]",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_expression_functionals_translate_to_pymor_values(expression):
    functional = ExpressionParameterFunctional(expression, PARAMETERS)
    names = component_names(PARAMETERS)
    assert names == {"mu": ("mu_0", "mu_1", "mu_2"), "nu": ("nu",)}
    coefficients = certrb.ExpressionCoefficients([functional_text(functional, names)], ("mu_0", "mu_1", "mu_2", "nu"))
    rows = np.random.default_rng(0).uniform(0.1, 1.5, size=(20, 4))
    expected = [functional.evaluate(PARAMETERS.parse({"mu": r[:3], "nu": r[3]})) for r in rows]
    np.testing.assert_allclose(coefficients(rows)[:, 0], expected, rtol=1e-14, atol=1e-15)


def test_lincomb_and_product_functionals_translate():
    p = ProjectionParameterFunctional("mu", 3, 1)
    e = ExpressionParameterFunctional("exp(nu[0])", PARAMETERS)
    functional = 2 * p + e * p - 0.5
    coefficients = certrb.ExpressionCoefficients([functional_text(functional, component_names(PARAMETERS))],
                                                 ("mu_0", "mu_1", "mu_2", "nu"))
    rows = np.random.default_rng(1).uniform(0.1, 1.5, size=(10, 4))
    expected = [functional.evaluate(PARAMETERS.parse({"mu": r[:3], "nu": r[3]})) for r in rows]
    np.testing.assert_allclose(coefficients(rows)[:, 0], expected, rtol=1e-14)


@pytest.mark.parametrize(("functional", "piece"), [
    (ExpressionParameterFunctional("nu[0] > 0.5", PARAMETERS), "Compare"),
    (ExpressionParameterFunctional("sign(nu)", PARAMETERS), "'sign'"),
    (ExpressionParameterFunctional("arcsinh(nu)", PARAMETERS), "'arcsinh'"),
    (ExpressionParameterFunctional("mu % 2", PARAMETERS), "BinOp"),
    (ExpressionParameterFunctional("mu", PARAMETERS), "vector-valued"),
    (GenericParameterFunctional(lambda mu: 1.0, PARAMETERS), "GenericParameterFunctional"),
])
def test_untranslatable_coefficients_are_named(functional, piece):
    with pytest.raises(certrb.InteropError, match=piece):
        functional_text(functional, component_names(PARAMETERS))


# --- refused models and objects ---------------------------------------------------------------


def small_model(**kwargs) -> StationaryModel:
    n = 5
    lap = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="csr")
    op = LincombOperator([NumpyMatrixOperator(lap)], [ProjectionParameterFunctional("k", 1)])
    rhs = NumpyMatrixOperator(np.ones((n, 1)))
    return StationaryModel(kwargs.pop("operator", op), rhs, products={"h1_0_semi": NumpyMatrixOperator(lap)},
                           **kwargs)


def test_a_plain_model_without_dirichlet_dofs():
    pp = from_pymor(small_model(), parameter_space={"k": (1.0, 2.0)})
    assert pp.dirichlet.size == 0
    assert pp.problem.parameter_space.names == ("k",)
    u = pp.problem.solve([[1.5]])[0]
    np.testing.assert_allclose(full_rows(pp.to_pymor(u))[0], full_rows(pp.fom.solve(pp.mu([1.5])))[0], rtol=1e-14)


def test_parameter_ranges_and_stability_choices():
    fom = small_model()
    pair = from_pymor(fom, parameter_space=(1.0, 2.0), stability="min-theta", mu_ref=[1.0])
    same = from_pymor(fom, parameter_space=certrb.ParameterSpace(["k"], [1.0], [2.0]), stability="scm")
    mus = [[1.0], [1.7], [2.0]]
    np.testing.assert_allclose(pair.problem.stability_lower_bound(mus), same.problem.stability_lower_bound(mus),
                               rtol=1e-6)
    own = from_pymor(fom, parameter_space={"k": (1.0, 2.0)}, stability=lambda m: 0.5 * np.ones(len(m)))
    np.testing.assert_array_equal(own.problem.stability_lower_bound(mus), 0.5)
    with pytest.raises(ValueError, match="stability must be"):
        from_pymor(fom, parameter_space=(1.0, 2.0), stability="exact")
    with pytest.raises(certrb.InteropError, match=r"names \['q'\]"):
        from_pymor(fom, parameter_space=certrb.ParameterSpace(["q"], [1.0], [2.0]))


def test_unsupported_models_and_operators_raise_interop_errors():
    space_ = {"k": (1.0, 2.0)}
    with pytest.raises(certrb.InteropError, match="parameter_space"):
        from_pymor(small_model())
    with pytest.raises(certrb.InteropError, match=r"\['k'\]"):
        from_pymor(small_model(), parameter_space={"q": (1.0, 2.0)})
    identity = LincombOperator([IdentityOperator(NumpyMatrixOperator(np.eye(5)).source)],
                               [ProjectionParameterFunctional("k", 1)])
    with pytest.raises(certrb.InteropError, match="IdentityOperator"):
        from_pymor(small_model(operator=identity), parameter_space=space_)
    two = NumpyMatrixOperator(np.ones((2, 5)))
    with pytest.raises(certrb.InteropError, match="2 outputs"):
        from_pymor(small_model(output_functional=two), parameter_space=space_)
    with pytest.raises(certrb.InteropError, match="no product 'l2'"):
        from_pymor(small_model(), "l2", parameter_space=space_)
    fom = small_model()
    instationary = InstationaryModel(1.0, fom.rhs.as_range_array(), fom.operator, None,
                                      time_stepper=ImplicitEulerTimeStepper(2))
    with pytest.raises(certrb.InteropError, match="InstationaryModel"):
        from_pymor(instationary, parameter_space=space_)


def test_pymor_objects_where_arrays_are_expected_point_to_from_pymor():
    a = NumpyMatrixOperator(sp.identity(3, format="csr"))
    with pytest.raises(TypeError, match=r"terms\[0\] is a pyMOR NumpyMatrixOperator.*from_pymor"):
        certrb.AffineOperator([a], ["1"])
    with pytest.raises(TypeError, match=r"terms is a pyMOR NumpyVectorArray.*from_pymor"):
        certrb.AffineFunctional(a.source.ones(2), ["1", "1"])
    with pytest.raises(TypeError, match=r"terms\[0\] is a pyMOR NumpyVectorArray"):
        certrb.AffineFunctional([a.source.ones()], ["1"])
    with pytest.raises(TypeError, match=r"coefficients\[0\] is a pyMOR ProjectionParameterFunctional"):
        certrb.AffineOperator([sp.identity(3)], [ProjectionParameterFunctional("k", 1)])
    with pytest.raises(TypeError, match=r"coefficients is a pyMOR .*from_pymor"):
        certrb.AffineOperator([sp.identity(3)], ProjectionParameterFunctional("k", 1))
    with pytest.raises(TypeError, match=r"inner_product is a pyMOR NumpyMatrixOperator.*from_pymor"):
        certrb.InnerProduct(a)


def test_certrb_and_the_translator_import_without_pymor():
    code = ("import sys\nsys.modules['pymor'] = None\n"
            "import certrb.interop.pymor, certrb.offline.affine\n"
            "from certrb.interop import from_pymor\n"
            "try:\n    from_pymor(object())\nexcept ImportError:\n    print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "refused"

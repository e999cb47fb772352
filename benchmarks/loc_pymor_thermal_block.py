"""Lines of user code: the 2x2 thermal block as a pyMOR model written by hand from its matrices.

``pymor_thermal_block`` is what a user writes to express certrb's ``thermal_block((2, 2))`` affine
problem (four block stiffness terms, coefficients mu_1..mu_4 in [0.1, 1], one load vector, the
H1_0-seminorm product, a min-theta coercivity bound) in pyMOR with NumpyMatrixOperator,
LincombOperator and parameter functionals. Running the script checks that the pyMOR model solves
like certrb's Problem and prints the function's non-blank, non-comment line count.

    python benchmarks/loc_pymor_thermal_block.py [--n 20]
"""

from __future__ import annotations

import argparse
import inspect

import numpy as np

from certrb.problems import thermal_block


def pymor_thermal_block(terms, load, product):
    from pymor.models.basic import StationaryModel
    from pymor.operators.constructions import LincombOperator
    from pymor.operators.numpy import NumpyMatrixOperator
    from pymor.parameters.base import Parameters
    from pymor.parameters.functionals import ExpressionParameterFunctional, ProjectionParameterFunctional

    parameters = Parameters({"mu": 4})
    operators = [NumpyMatrixOperator(a, name=f"block_{q}") for q, a in enumerate(terms)]
    thetas = [ProjectionParameterFunctional("mu", 4, q) for q in range(4)]
    operator = LincombOperator(operators, thetas, name="operator")
    rhs = NumpyMatrixOperator(load.reshape(-1, 1), name="rhs")
    h1_0_semi = NumpyMatrixOperator(product, name="h1_0_semi")
    fom = StationaryModel(operator, rhs, products={"h1_0_semi": h1_0_semi}, name="thermal_block")
    parameter_space = parameters.space(0.1, 1.0)
    mu_ref = parameters.parse([0.55] * 4)
    # min-theta: alpha(mu) >= alpha(mu_ref) min_q mu_q / mu_ref_q; alpha(mu_ref) = 0.55 for equal block values
    coercivity = ExpressionParameterFunctional("0.55 * min(mu / 0.55)", parameters)
    return fom, parameter_space, coercivity, mu_ref


def code_lines(function) -> int:
    """Non-blank lines of a function's source that are not comments (the def line included)."""
    lines = inspect.getsource(function).splitlines()
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="mesh parameter of certrb's thermal_block")
    args = parser.parse_args()
    from pymor.core.logger import set_log_levels

    set_log_levels({"pymor": "WARN"})
    problem = thermal_block((2, 2), n=args.n)
    fom, space, coercivity, _ = pymor_thermal_block(problem.operator.terms, problem.rhs.terms[0],
                                                    problem.inner_product.matrix)
    mus = problem.parameter_space.sample(3, rng=0)
    worst = 0.0
    for row, u in zip(mus, problem.solve(mus), strict=True):
        data = fom.solve(fom.parameters.parse(row)).to_numpy()
        v = data[:, 0] if data.shape[0] == u.size else data[0]
        worst = max(worst, float(np.linalg.norm(v - u) / np.linalg.norm(u)))
    bounds = [coercivity.evaluate(fom.parameters.parse(row)) for row in mus]
    print(f"pyMOR model of {fom.solution_space.dim} dofs, parameter space {space.ranges}")
    print(f"max relative difference of the truth solutions (pyMOR vs certrb): {worst:.2e}")
    certrb_bounds = problem.stability_lower_bound(mus)
    print(f"coercivity bounds (pyMOR) {np.round(bounds, 6)} vs certrb {np.round(certrb_bounds, 6)}")
    print(f"user code lines (non-blank, non-comment) of pymor_thermal_block: {code_lines(pymor_thermal_block)}")


if __name__ == "__main__":
    main()

"""pyMOR twins of certrb problems, for the head-to-head benchmarks.

:func:`pymor_model` turns a :class:`certrb.Problem` into a pyMOR
``StationaryModel`` built from the very same sparse matrices and vectors:

* the operator is a ``LincombOperator`` of one ``NumpyMatrixOperator`` per term
  ``A_q``; the right-hand side a ``LincombOperator`` (or a single operator) of
  the load vectors as columns;
* each coefficient ``theta_q`` becomes a pyMOR parameter functional equal to
  certrb's: ``ConstantParameterFunctional`` or ``ProjectionParameterFunctional``
  when the coefficient is detected to be a constant or one parameter
  component, otherwise a ``GenericParameterFunctional`` calling certrb's
  coefficient function (slower online, but still the same values);
* the product ``h1_0_semi`` is the inner-product matrix ``X``;
* the coercivity estimator equals certrb's min-theta bound: an
  ``ExpressionParameterFunctional`` ``alpha * min(mu)`` when the active
  coefficients are the parameter components themselves, a constant when only
  constant coefficients are active, else a generic wrapper.

All parameters form one pyMOR parameter ``"mu"`` of size ``P``, in certrb's
order. :func:`check_truth` compares both truth solvers; :func:`check_coefficients`
compares the coefficients and the coercivity bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

import certrb

PARAMETER = "mu"

__all__ = ["PARAMETER", "PymorTwin", "check_coefficients", "check_truth", "pymor_model", "pymor_reductor"]


@dataclass(frozen=True)
class PymorTwin:
    """A pyMOR model of a certrb problem and how it was built.

    Attributes
    ----------
    fom : pymor StationaryModel
    coercivity : pymor ParameterFunctional
        Equal to certrb's stability lower bound.
    operator_kinds, rhs_kinds : list of str
        ``"constant"``, ``"projection"`` or ``"generic"`` per affine term.
    coercivity_kind : str
        ``"expression"``, ``"constant"`` or ``"generic"``.

    """

    fom: Any
    coercivity: Any
    operator_kinds: list[str]
    rhs_kinds: list[str]
    coercivity_kind: str

    def mu(self, row: NDArray[np.float64]) -> Any:
        """pyMOR parameter values for one certrb parameter row (P,)."""
        return self.fom.parameters.parse(np.asarray(row, dtype=float))

    def info(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {"operator_kinds": self.operator_kinds, "rhs_kinds": self.rhs_kinds,
                "coercivity_kind": self.coercivity_kind}


def _probe_parameters(space: certrb.ParameterSpace, rng: int = 12345) -> NDArray[np.float64]:
    """Corners-free probe set: the box centre and random points, shape (17, P)."""
    center = ((space.lower + space.upper) / 2)[None, :]
    return np.concatenate([center, space.sample(16, rng=rng)])


def _functionals(coefficients, space: certrb.ParameterSpace, n_terms: int) -> tuple[list[Any], list[str]]:
    """pyMOR functionals equal to ``coefficients`` (n_mu, P) -> (n_mu, Q); detected kind per term."""
    from pymor.parameters.functionals import (
        ConstantParameterFunctional,
        GenericParameterFunctional,
        ProjectionParameterFunctional,
    )

    mus = _probe_parameters(space)
    theta = np.asarray(coefficients(mus))
    if np.iscomplexobj(theta):
        raise ValueError("the pyMOR twin supports real coefficients only")
    funcs, kinds = [], []
    for q in range(n_terms):
        col = theta[:, q]
        match = [p for p in range(space.dim) if np.array_equal(col, mus[:, p])]
        if np.all(col == col[0]):
            funcs.append(ConstantParameterFunctional(float(col[0])))
            kinds.append("constant")
        elif match:
            funcs.append(ProjectionParameterFunctional(PARAMETER, space.dim, match[0]))
            kinds.append("projection")
        else:
            def mapping(mu, q=q):
                return float(coefficients(mu[PARAMETER][None, :])[0, q])

            funcs.append(GenericParameterFunctional(mapping, {PARAMETER: space.dim}))
            kinds.append("generic")
    return funcs, kinds


def _coercivity(problem: certrb.Problem, kinds: list[str]) -> tuple[Any, str]:
    """pyMOR functional equal to certrb's stability bound, and its kind."""
    from pymor.parameters.functionals import (
        ConstantParameterFunctional,
        ExpressionParameterFunctional,
        GenericParameterFunctional,
    )

    stab = problem.stability
    theta_ref = getattr(stab, "theta_ref", None)
    alpha_ref = getattr(stab, "alpha_ref", None)
    if theta_ref is not None and alpha_ref is not None:
        active = theta_ref > 0
        active_kinds = {k for k, a in zip(kinds, active, strict=True) if a}
        mus = _probe_parameters(problem.parameter_space)
        theta = problem.operator.theta(mus)
        if active_kinds == {"constant"}:
            value = float(stab(mus[:1])[0])
            return ConstantParameterFunctional(value), "constant"
        shifts = getattr(stab, "shifts", None)
        shift = 0.0 if shifts is None else float(shifts[0])
        if (active_kinds == {"projection"} and np.all(active) and np.all(theta_ref == theta_ref[0])
                and np.array_equal(np.sort(theta, axis=1), np.sort(mus, axis=1))
                and (shifts is None or np.all(shifts == shift))):
            # theta is a permutation of mu, all active with equal reference values (and equal term shifts eps:
            # alpha_LB = min_q theta_q (alpha_ref + eps sum theta_ref) / theta_ref_q - eps sum_q theta_q)
            top = float(alpha_ref) + shift * float(np.sum(theta_ref))
            expr = f"{top / float(theta_ref[0])!r} * min({PARAMETER})"
            if shift:
                expr += f" - {shift!r} * sum({PARAMETER})"
            return ExpressionParameterFunctional(expr, {PARAMETER: problem.parameter_space.dim}), "expression"

    def mapping(mu):
        return float(stab(mu[PARAMETER][None, :])[0])

    return GenericParameterFunctional(mapping, {PARAMETER: problem.parameter_space.dim}), "generic"


def _lincomb(operators: list[Any], funcs: list[Any], kinds: list[str], name: str) -> Any:
    from pymor.operators.constructions import LincombOperator

    if len(operators) == 1 and kinds[0] == "constant" and funcs[0].constant_value == 1.0:
        return operators[0].with_(name=name)
    return LincombOperator(operators, funcs, name=name)


def pymor_model(problem: certrb.Problem) -> PymorTwin:
    """Build the pyMOR ``StationaryModel`` twin of a real certrb problem.

    Parameters
    ----------
    problem : certrb.Problem
        Real problem with sparse terms (n_h, n_h) and load vectors (Q_f, n_h).

    Returns
    -------
    PymorTwin

    """
    from pymor.models.basic import StationaryModel
    from pymor.operators.numpy import NumpyMatrixOperator

    space = problem.parameter_space
    if np.iscomplexobj(problem.rhs.terms) or problem.dtype.kind == "c":
        raise ValueError("the pyMOR twin supports real problems only")
    op_funcs, op_kinds = _functionals(problem.operator.coefficients, space, problem.operator.n_terms)
    rhs_funcs, rhs_kinds = _functionals(problem.rhs.coefficients, space, problem.rhs.n_terms)
    ops = [NumpyMatrixOperator(a, name=f"A_{q}") for q, a in enumerate(problem.operator.terms)]
    rhss = [NumpyMatrixOperator(f.reshape(-1, 1), name=f"f_{p}") for p, f in enumerate(problem.rhs.terms)]
    operator = _lincomb(ops, op_funcs, op_kinds, "operator")
    rhs = _lincomb(rhss, rhs_funcs, rhs_kinds, "rhs")
    # a copy: pyMOR caches factorizations per matrix object, and a twin must not inherit another's
    product = NumpyMatrixOperator(problem.inner_product.matrix.copy(), name="h1_0_semi")
    fom = StationaryModel(operator, rhs, products={"h1_0_semi": product}, name="certrb_twin")
    coercivity, kind = _coercivity(problem, op_kinds)
    return PymorTwin(fom, coercivity, op_kinds, rhs_kinds, kind)


def pymor_reductor(twin: PymorTwin) -> Any:
    """pyMOR's ``CoerciveRBReductor`` (orthonormal residual, Buhr et al.) in the X product."""
    from pymor.reductors.coercive import CoerciveRBReductor

    return CoerciveRBReductor(twin.fom, product=twin.fom.h1_0_semi_product,
                              coercivity_estimator=twin.coercivity)


def check_truth(problem: certrb.Problem, twin: PymorTwin, mus: NDArray[np.float64]) -> float:
    """Largest relative difference ``||u_pymor - u_certrb|| / ||u_certrb||`` (Euclidean) over ``mus``."""
    U = problem.solve(mus)
    worst = 0.0
    for row, u in zip(mus, U, strict=True):
        v = twin.fom.solve(twin.mu(row)).to_numpy()[:, 0]
        worst = max(worst, float(np.linalg.norm(v - u) / np.linalg.norm(u)))
    return worst


def check_coefficients(problem: certrb.Problem, twin: PymorTwin, mus: NDArray[np.float64]) -> float:
    """Largest absolute difference of operator coefficients and coercivity bounds over ``mus``."""
    theta = problem.operator.theta(mus)
    beta = problem.stability_lower_bound(mus)
    worst = 0.0
    funcs = twin.fom.operator.coefficients if hasattr(twin.fom.operator, "coefficients") else [1.0]
    for i, row in enumerate(mus):
        mu = twin.mu(row)
        vals = [f(mu) if hasattr(f, "evaluate") else f for f in funcs]
        worst = max(worst, float(np.max(np.abs(np.asarray(vals) - theta[i]))),
                    abs(float(twin.coercivity(mu)) - float(beta[i])))
    return worst

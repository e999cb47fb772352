"""How each estimator's floor follows the accuracy of the offline truth solves (face: a study part).

Every offline solve with the inner-product matrix ``X`` goes through ``InnerProduct.riesz``;
:class:`PerturbedInnerProduct` returns ``z + eta ||z||_V xi`` for each computed
``z = X^{-1} g`` (``xi`` random of unit ``V`` norm): a solver of relative accuracy ``eta``.
:func:`offline_solve_sweep` rebuilds every estimator on one basis at several ``N`` for each
``eta`` and measures its floor (:func:`certrb.study.estimator_floor`) against the unperturbed
extended-precision truth residual norm E0. ``certrb reproduce diffusion1d`` stores its
result in the study JSON; ``benchmarks/offline_solve_floor.py`` runs the full sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .offline.builder import OfflineBuilder
from .offline.greedy import weak_greedy
from .offline.innerproduct import InnerProduct
from .offline.problem import Problem
from .offline.reduce import reduce
from .offline.truth import truth_residual_norm
from .online.estimators.point_basis_square import PointBasisSquareEstimator
from .study import TOLERANCE, estimator_floor

__all__ = ["DEFINITIONS", "ESTIMATORS", "FULL", "QUICK", "STUDY", "PerturbedInnerProduct", "offline_solve_sweep",
           "perturbed"]

ESTIMATORS = ("expanded", "point-basis", "point-basis-square", "eim", "eim-stabilized", "orthonormal")
FULL: dict[str, Any] = {"n_elements": 200, "n_train": 300, "n_test": 30, "sizes": [6, 10, 14, 18],
                        "etas": [10.0**-k for k in range(6, 16)]}
QUICK: dict[str, Any] = {"n_elements": 60, "n_train": 100, "n_test": 12, "sizes": [3, 6, 9],
                         "etas": [1e-6, 1e-10, 1e-14]}
STUDY: dict[str, Any] = {"n_train": 300, "n_test": 20, "sizes": [6, 10, 14, 18],
                         "etas": [1e-6, 1e-8, 1e-10, 1e-12, 1e-14]}
DEFINITIONS = {
    "eta": "relative accuracy of every offline X-solve: X^{-1} g is returned as z + eta ||z||_V xi, ||xi||_V = 1",
    "deviation": "|eps_estimator - eps_E0| / eps_E0, E0 in extended precision with unperturbed solves",
    "floor": f"largest eps_E0 / ||f||_V' among test points (all sizes) with deviation > {TOLERANCE:g}; "
             "if none fails, the smallest level seen (floor_reached false)",
    "max_deviation": "largest deviation over all test points and sizes",
    "slope": "least-squares slope of log10(value) against log10(eta), value = floor or max_deviation, over "
             "the etas > 0 where the value exceeds twice its value with exact solves (eta = 0): where the "
             "perturbation, not the estimator's own round-off, sets it; null with fewer than two such etas",
}


class PerturbedInnerProduct(InnerProduct):
    """An inner product whose solves are exact up to a controlled relative error ``eta``.

    Parameters
    ----------
    matrix : sparse matrix, shape (n_h, n_h)
        The Gram matrix ``X``.
    eta : float
        Relative error of every solve in the ``V`` norm (0: unperturbed).
    seed : int
        Seed of the random directions.

    """

    eta: float
    rng: np.random.Generator

    def __init__(self, matrix: Any, eta: float, seed: int) -> None:
        super().__init__(matrix)
        object.__setattr__(self, "eta", float(eta))
        object.__setattr__(self, "rng", np.random.default_rng(seed))

    def riesz(self, g: NDArray, *, refine: int = 0) -> NDArray:
        """``X^{-1} g + eta ||X^{-1} g||_V xi`` per column, same shape and dtype as the exact solve."""
        z = super().riesz(g, refine=refine)
        if self.eta == 0.0:
            return z
        cols = z.reshape(z.shape[0], -1)
        wide = np.complex128 if np.iscomplexobj(cols) else np.float64
        xi = self.rng.standard_normal(cols.shape)
        if wide is np.complex128:
            xi = xi + 1j * self.rng.standard_normal(cols.shape)
        xi = xi / self.norms(xi)
        step = xi * (self.eta * self.norms(np.asarray(cols, dtype=wide)))
        return (cols + step.astype(cols.dtype)).reshape(z.shape)


def perturbed(problem: Problem, eta: float, seed: int) -> Problem:
    """The same truth problem whose offline X-solves have relative accuracy ``eta``."""
    ip = PerturbedInnerProduct(problem.inner_product.matrix, eta, seed)
    return Problem(problem.operator, problem.rhs, ip, problem.parameter_space, stability=problem.stability,
                   output=problem.output)


def slope(etas: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of log10(values) against log10(etas) (None with fewer than two points)."""
    if len(etas) < 2:
        return None
    return float(np.polyfit(np.log10(etas), np.log10(values), 1)[0])


def sweep(problem: Problem, basis: NDArray, test: NDArray, ref: dict[int, NDArray], f_norm: NDArray, eta: float,
          sizes: Sequence[int], seed: int) -> dict[str, Any]:
    """Floors of every estimator (and of E0 with the perturbed solves) for one ``eta``."""
    pp = perturbed(problem, eta, seed)
    levels: list[NDArray] = []
    devs: dict[str, list[NDArray]] = {name: [] for name in (*ESTIMATORS, "truth-perturbed")}
    conditions = []
    for n in sizes:
        builder = OfflineBuilder(pp, ESTIMATORS, certify=False, rng=seed + n,
                                 options={"point-basis-square": {"max_points": 10**5}})
        model = reduce(builder, basis[:, :n])
        levels.append(ref[n] / f_norm)
        for name in ESTIMATORS:
            est = model.evaluate(test, estimator=name).residual_norm
            devs[name].append(np.abs(est - ref[n]) / ref[n])
        direct = truth_residual_norm(pp, model, test, precision="double")
        devs["truth-perturbed"].append(np.abs(direct - ref[n]) / ref[n])
        square = model.estimators["point-basis-square"]
        assert isinstance(square, PointBasisSquareEstimator)
        conditions.append(square.condition)
    level = np.concatenate(levels)
    out: dict[str, Any] = {"eta": eta, "cond_T_square": conditions, "estimators": {}}
    for name, rows in devs.items():
        dev = np.concatenate(rows)
        floor, reached = estimator_floor(level, dev)
        out["estimators"][name] = {"floor": floor, "floor_reached": reached, "max_deviation": float(np.max(dev)),
                                   "max_deviation_per_n": [float(np.max(r)) for r in rows]}
    return out


def offline_solve_sweep(problem: Problem, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """The greedy basis, the references, and one sweep per eta (0 first); floors and slopes.

    ``settings`` holds ``n_train``, ``n_test``, ``sizes`` (basis sizes N) and ``etas``.
    """
    space = problem.parameter_space
    train, test = space.sample(settings["n_train"], rng=seed), space.sample(settings["n_test"], rng=seed + 1)
    sizes = settings["sizes"]
    greedy = weak_greedy(OfflineBuilder(problem, ("orthonormal",), certify=False, rng=seed), train,
                         tol=0.0, max_basis=max(sizes), stagnation=None)
    basis = greedy.model.basis
    assert basis is not None
    f_norm = np.asarray(problem.inner_product.dual_norms(problem.rhs.assemble(test).T, refine=2), dtype=float)
    ref = {n: truth_residual_norm(problem, greedy.model, test, n=n, precision="extended") for n in sizes}
    runs = [sweep(problem, basis, test, ref, f_norm, eta, sizes, seed) for eta in (0.0, *settings["etas"])]
    slopes: dict[str, dict[str, float | None]] = {}
    for name in (*ESTIMATORS, "truth-perturbed"):
        slopes[name] = {}
        for key in ("floor", "max_deviation"):
            exact = runs[0]["estimators"][name][key]
            hit = [(r["eta"], r["estimators"][name][key]) for r in runs[1:] if r["estimators"][name][key] > 2 * exact]
            slopes[name][key] = slope([h[0] for h in hit], [h[1] for h in hit])
    return {"n_h": problem.size, "relative_residual_range": [float(np.min(ref[max(sizes)] / f_norm)),
                                                             float(np.max(ref[min(sizes)] / f_norm))],
            "runs": runs, "slopes": slopes}

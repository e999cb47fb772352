"""E2 ``point-basis-square`` offline: the 2012 formula's square system on d random parameters.

See :mod:`certrb.online.estimators.point_basis_square` for the formula. ``d``
parameters are drawn from the parameter space (d: the products that are not zero at
all of them), ``T`` (d x d) holds their products,
its singular values give the reported condition number and numerical rank, and
``eps(mu_r)^2`` is computed in the truth space for the reduced solution at each.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg as sla

from ...errors import EstimatorError
from ...online.estimators.point_basis import products
from ...online.estimators.point_basis_square import PointBasisSquareEstimator
from .base import OfflineData
from .truth import residual_norms

__all__ = ["build"]


def build(data: OfflineData) -> PointBasisSquareEstimator:
    """Build the square 2012 formula: T on d random parameters, LU-factored.

    Options (``data.options["point-basis-square"]``): ``max_points`` (default 5000;
    the build costs d truth residual norms and an SVD of the d x d matrix ``T``).

    Raises
    ------
    EstimatorError
        If d exceeds ``max_points``, or if the LU factorization of ``T`` meets an
        exactly zero pivot (the formula is then undefined).

    """
    opts = data.options.get("point-basis-square", {})
    complex_ = bool(np.issubdtype(data.problem.dtype, np.complexfloating))
    k = data.q_f + data.q_a * data.n_basis
    d = k * k if complex_ else k * (k + 1) // 2
    if d > opts.get("max_points", 5000):
        raise EstimatorError(
            f"point-basis-square needs d = {d} truth residual norms for K = {k}; raise "
            "options['point-basis-square']['max_points'] or use a smaller basis"
        )
    points = data.problem.parameter_space.sample(d, rng=data.rng)
    x = data.solve_reduced(points, data.n_basis)[1]
    z = products(x, complex_)
    keep = np.flatnonzero(np.any(z != 0, axis=0))  # identically zero products are no unknowns
    d = keep.size
    if d == 0:
        raise EstimatorError("point-basis-square: every product of residual coefficients is zero")
    points, x = points[:d], x[:d]
    T = z[:d, keep].T
    sigma = np.linalg.svd(T, compute_uv=False)
    condition = float(sigma[0] / sigma[-1]) if sigma[-1] > 0 else float("inf")
    rank = int(np.sum(sigma > d * np.finfo(float).eps * sigma[0]))
    with warnings.catch_warnings():  # an exactly zero pivot is reported below
        warnings.simplefilter("ignore", sla.LinAlgWarning)
        lu, piv = sla.lu_factor(T, check_finite=False)
    if not lu.diagonal().all():
        raise EstimatorError(f"point-basis-square: T ({d} x {d}, numerical rank {rank}) is exactly singular "
                             "(a zero pivot); use the least-squares variant 'point-basis'")
    precision = "extended" if data.refine > 0 else "double"
    eps2 = residual_norms(data.problem, data.basis, x, precision=precision) ** 2
    return PointBasisSquareEstimator(keep, lu, piv, eps2, points, k, complex_, max(condition, 1.0), rank)

"""E2 ``point-basis`` offline: truth residual norms at parameters with independent products.

See :mod:`certrb.online.estimators.point_basis` for the formula. Points are picked by
a column-pivoted QR of the products ``z(mu)`` of random candidates, and
``eps(mu_r)^2`` is computed in the truth space for the reduced solution at each.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ...errors import EstimatorError
from ...online.estimators.point_basis import PointBasisEstimator, products
from .base import OfflineData
from .truth import residual_norms

__all__ = ["build"]


def _candidates(data: OfflineData, count: int, k: int, complex_: bool, nested: bool):
    cand = data.problem.parameter_space.sample(count, rng=data.rng)
    # with ``nested`` the candidates cycle through the sub-models so that they are served too
    sizes = np.arange(count) % data.n_basis + 1 if nested else np.full(count, data.n_basis)
    x = np.zeros((count, k), dtype=np.result_type(data.basis.dtype, complex if complex_ else float))
    for n in np.unique(sizes):
        x[sizes == n, : data.q_f + data.q_a * n] = data.solve_reduced(cand[sizes == n], int(n))[1]
    return cand, sizes, x


def _select_points(data: OfflineData, d: int, k: int, complex_: bool, opts: dict):
    """Pick points with independent products by column-pivoted QR.

    Candidates are drawn in growing batches (doubling, up to ``oversample * d``)
    until the numerical rank r of their products is clearly below their number
    (r is far below d for most families); the points are then chosen among
    ``rank_oversample * r`` fresh candidates (default 10 r), since more
    candidates give a better conditioned ``T``. That last pivoted QR acts on a
    Gaussian sketch of the products with ``2 r + 16`` rows instead of ``d``
    (randomized column-pivoted QR), which picks equally good columns at a
    fraction of the cost.
    """
    most = int(opts.get("oversample", 2)) * d
    count = min(most, max(256, 2 * k))
    final, rank = False, 0
    while True:
        cand, sizes, x = _candidates(data, count, k, complex_, opts.get("nested", False))
        z = products(x, complex_)
        scale = 1.0 / np.maximum(np.max(np.abs(z), axis=0), np.finfo(float).tiny)
        W = (z * scale).T
        if final:  # sketch the d rows down to ~2r (randomized pivoted QR): same choice, far cheaper
            sketch = data.rng.standard_normal((min(d, 2 * rank + 16), d)) / np.sqrt(d)
            W = sketch @ W
        R, piv = sla.qr(W, mode="r", pivoting=True)
        diag = np.abs(np.diag(R))
        rank = int(np.sum(diag > opts.get("rank_rtol", d * np.finfo(float).eps) * diag[0]))
        if final or count >= most:
            return np.sort(piv[:rank]), cand, sizes, x, scale
        if rank <= count // 2:  # rank found: pick the points among rank_oversample * rank candidates
            count, final = min(most, max(count, int(opts.get("rank_oversample", 10)) * rank)), True
        else:
            count = min(2 * count, most)


def build(data: OfflineData) -> PointBasisEstimator:
    """Build E2: truth residual norms at pivoted-QR-selected parameters.

    Options (``data.options["point-basis"]``): ``max_points`` (default 20000),
    ``oversample`` (default 2), ``nested`` (default False; True lets candidates
    cycle through the sub-models of size 1..N, zero-padded, so that the
    estimator also serves them, at a measured loss of accuracy), ``rank_rtol`` (default ``d * eps``: relative
    pivot size below which the products count as dependent).
    """
    opts = data.options.get("point-basis", {})
    complex_ = bool(np.issubdtype(data.problem.dtype, np.complexfloating))
    k = data.q_f + data.q_a * data.n_basis
    d = k * k if complex_ else k * (k + 1) // 2
    if d > opts.get("max_points", 20000):
        raise EstimatorError(
            f"point-basis needs d = {d} truth residual norms for K = {k}; raise "
            "options['point-basis']['max_points'] or use a smaller basis"
        )
    chosen, cand, sizes, x, scale = _select_points(data, d, k, complex_, opts)
    T = (products(x[chosen], complex_) * scale).T
    q, r = np.linalg.qr(T)
    precision = "extended" if data.refine > 0 else "double"
    eps2 = residual_norms(data.problem, data.basis, x[chosen], precision=precision) ** 2
    return PointBasisEstimator(q, r, scale, eps2, cand[chosen], sizes[chosen], k, complex_, float(np.linalg.cond(r)))

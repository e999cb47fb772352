"""E2 ``point-basis``: Casenave's 2012 formula.

``eps(mu)^2 = sum_kl conj(x_k) x_l G_kl`` is linear in the products
``z(mu) = (conj(x_k) x_l)_{k<=l}`` (real and imaginary parts for complex
problems: d = K(K+1)/2 real unknowns for real problems, K^2 for complex ones).
Offline, parameters ``mu_r`` with independent ``z(mu_r)`` are picked by a
column-pivoted QR among ``oversample * d`` random candidates (rows of ``T``
equilibrated), and ``eps(mu_r)^2`` is computed directly in the truth space for
the *reduced* solution at ``mu_r``. Online, ``T lambda = z(mu)`` is solved and
``eps^2 = sum_r lambda_r eps(mu_r)^2`` returned.

When the products span fewer than d dimensions (e.g. a constant coefficient
makes a product identically zero), only as many points as the numerical rank
``d'`` of the candidates' products are kept and ``T`` (d x d') is solved in the
least-squares sense through its QR factorization; this is still exact for
every ``z(mu)`` in the span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

from ..errors import EstimatorError
from ..residual import pad_coefficients
from .base import OfflineData
from .truth import residual_norms

__all__ = ["PointBasisEstimator", "build", "products"]


def products(x: NDArray, complex_: bool) -> NDArray[np.float64]:
    """Independent real products of residual coefficients.

    Parameters
    ----------
    x : ndarray, shape (n_mu, K)
    complex_ : bool
        Whether the problem is complex (then real and imaginary parts of the
        off-diagonal products are separate unknowns).

    Returns
    -------
    z : ndarray, shape (n_mu, d), d = K(K+1)/2 (real) or K^2 (complex)

    """
    k = x.shape[1]
    iu, ju = np.triu_indices(k, 1)
    diag = np.abs(x) ** 2
    off = x[:, iu].conj() * x[:, ju]
    if complex_:
        return np.concatenate([diag, 2 * off.real, -2 * off.imag], axis=1)
    return np.concatenate([diag, 2 * off.real], axis=1)


@dataclass(frozen=True, eq=False)
class PointBasisEstimator:
    """Online E2 data.

    Attributes
    ----------
    q, r : ndarray, shape (d, d') and (d', d')
        Thin QR factorization of the row-equilibrated ``T`` (d' <= d points).
    row_scale : ndarray, shape (d,)
        Row equilibration of ``T``.
    eps2 : ndarray, shape (d',)
        Truth-space ``eps(mu_r)^2`` at the points.
    points : ndarray, shape (d', P)
        The parameters ``mu_r`` (each used with the sub-model ``sizes[r]``).
    sizes : ndarray of int, shape (d',)
        Sub-model size used at each point.
    n_components : int
        K of the model the estimator was built for (sub-models are zero-padded).
    complex_ : bool
    condition : float
        2-norm condition number of the equilibrated ``T``.

    """

    q: NDArray[np.float64]
    r: NDArray[np.float64]
    row_scale: NDArray[np.float64]
    eps2: NDArray[np.float64]
    points: NDArray[np.float64]
    sizes: NDArray[np.intp]
    n_components: int
    complex_: bool
    condition: float
    name: str = "point-basis"

    def residual_norm(self, x: NDArray, n: int) -> NDArray[np.float64]:
        """``sqrt(max(eps2 . T^+ z(x), 0))`` for x (n_mu, K_n), shape (n_mu,)."""
        if x.shape[1] != self.n_components and np.all(self.sizes == self.sizes.max()):
            raise EstimatorError(
                f"this point-basis estimator was built for K = {self.n_components} residual terms only; "
                "build one for the sub-model (reduce with basis[:, :n]) or with options nested=True"
            )
        z = products(pad_coefficients(x, self.n_components), self.complex_)
        lam = sla.solve_triangular(self.r, self.q.T @ (z * self.row_scale).T)
        return np.sqrt(np.maximum(self.eps2 @ lam, 0.0))

    def roundoff(self, x: NDArray, n: int, eps: NDArray[np.float64]) -> NDArray[np.float64]:
        """NaN: this estimator carries no round-off certificate."""
        return np.full(x.shape[0], np.nan)

    def arrays(self) -> dict[str, NDArray]:
        """Arrays to save."""
        return {"q": self.q, "r": self.r, "row_scale": self.row_scale, "eps2": self.eps2,
                "points": self.points, "sizes": self.sizes, "n_components": np.asarray(self.n_components),
                "complex_": np.asarray(self.complex_), "condition": np.asarray(self.condition)}


def _candidates(data: OfflineData, count: int, k: int, complex_: bool, nested: bool):
    cand = data.problem.parameter_space.sample(count, rng=data.rng)  # type: ignore[attr-defined]
    # with ``nested`` the candidates cycle through the sub-models so that they are served too
    sizes = np.arange(count) % data.n_basis + 1 if nested else np.full(count, data.n_basis)
    x = np.zeros((count, k), dtype=np.result_type(data.basis.dtype, complex if complex_ else float))
    for n in np.unique(sizes):
        x[sizes == n, : data.q_f + data.q_a * n] = data.solve_reduced(cand[sizes == n], int(n))[1]  # type: ignore[operator]
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
    complex_ = bool(np.issubdtype(data.problem.dtype, np.complexfloating))  # type: ignore[attr-defined]
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

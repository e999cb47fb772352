"""What each residual-norm estimator costs: offline truth-size work, online data size and online flops.

The counts follow the offline builders (:mod:`certrb.offline.estimators`) for a basis of
N vectors, K = Q_f + Q_a N residual components:

- truth solves: the N snapshots of the basis (the same for every estimator);
- Riesz solves (right-hand sides ``X z = g``, each refined in extended precision):
  ``expanded`` and ``orthonormal`` K (one per component), ``point-basis`` one per point
  (d' points, each a truth residual norm), ``eim``/``eim-stabilized`` one per EIM term m
  (the residual of each EIM vector);
- Riesz solves of the round-off certificate: K for ``expanded`` and ``orthonormal`` (the
  defects of the component representatives); ``2 K + m`` for the EIM (the K
  representatives and K defects of the remainder's certified bound, m defects of its own);
  ``point-basis`` has no certificate;
- truth residual norms evaluated: d' for ``point-basis``, m for the EIM, none otherwise;
- stored floats: the entries of the arrays the model file holds for the estimator
  (``to_arrays``; complex entries count twice).

Online flops per query (real arithmetic, a multiply-add counted as 2) are :data:`ONLINE_FLOPS`.
"""

from __future__ import annotations

import numpy as np

from ..online.estimators import Estimator
from ..online.estimators.eim import EIMEstimator
from ..online.estimators.point_basis import PointBasisEstimator
from ..online.estimators.point_basis_square import PointBasisSquareEstimator

__all__ = ["EIM_SWEEPS", "ONLINE_FLOPS", "REDUCED_SOLVE_FLOPS", "online_flops", "precomputation_counts",
           "stored_floats"]

EIM_SWEEPS = 2
"""Remainder sweeps of ``eim-stabilized`` counted in its flops (it stops when the remainder stops shrinking)."""

REDUCED_SOLVE_FLOPS = "2 Q_a N^2 + 2 Q_f N + N^3/3 + 2 N^2 + Q_a N"
"""Flops of the reduced solve shared by every estimator: assemble A_N(mu), f_N(mu), Cholesky, solve, x(mu)."""

ONLINE_FLOPS = {
    "expanded": "2 K^2 + 2 K  (x^H G x)",
    "orthonormal": "2 r K + 2 r  (||R x||, R of r <= K rows)",
    "point-basis": "K (K + 1) + 2 d d' + d'^2 + 2 d'  (products z, Q^T z, triangular solve, eps^2 sum; d = K(K+1)/2)",
    "point-basis-square": "K (K + 1) + 2 d^2 + 2 d  (products z, LU solve with T (d x d), eps^2 sum)",
    "eim": "3 m^2 + 2 m  (triangular B^-1 x[k], ||R_s lambda||)",
    "eim-stabilized": f"3 m^2 + 2 m + {EIM_SWEEPS} (2 m K + m^2 + K)  ({EIM_SWEEPS} remainder sweeps)",
}
"""Online flops per query of each estimator's residual norm, after the reduced solve (:data:`REDUCED_SOLVE_FLOPS`)."""


def stored_floats(estimator: Estimator) -> int:
    """Number of floats in the arrays that define ``estimator`` (complex entries count twice)."""
    return int(sum(np.asarray(a).size * (2 if np.iscomplexobj(a) else 1) for a in estimator.to_arrays().values()))


def online_flops(name: str, estimator: Estimator, n: int, q_f: int, q_a: int) -> int:
    """:data:`ONLINE_FLOPS` of the named estimator for a basis of ``n`` vectors, plus the reduced solve."""
    k = q_f + q_a * n
    solve = 2 * q_a * n * n + 2 * q_f * n + n ** 3 // 3 + 2 * n * n + q_a * n
    if name == "expanded":
        own = 2 * k * k + 2 * k
    elif name == "orthonormal":
        r = int(estimator.to_arrays()["R"].shape[0])
        own = 2 * r * k + 2 * r
    elif name == "point-basis":
        assert isinstance(estimator, PointBasisEstimator)
        d, points = k * (k + 1) // 2, int(estimator.eps2.size)
        own = k * (k + 1) + 2 * d * points + points * points + 2 * points
    elif name == "point-basis-square":
        assert isinstance(estimator, PointBasisSquareEstimator)
        d = int(estimator.eps2.size)
        own = k * (k + 1) + 2 * d * d + 2 * d
    else:
        assert isinstance(estimator, EIMEstimator)
        m = estimator.n_terms
        own = 3 * m * m + 2 * m + (EIM_SWEEPS * (2 * m * k + m * m + k) if estimator.stabilized else 0)
    return int(solve + own)


def precomputation_counts(name: str, estimator: Estimator, n: int, q_f: int, q_a: int, *,
                          certified: bool) -> dict[str, int]:
    """Offline work and online size of the named estimator built for a basis of ``n`` vectors.

    Parameters
    ----------
    name : str
        Estimator name (``expanded``, ``point-basis``, ``point-basis-square``, ``eim``, ``eim-stabilized``,
        ``orthonormal``).
    estimator : Estimator
        The built estimator (its sizes: points d', EIM terms m, rows r of ``R``).
    n, q_f, q_a : int
        Basis size N and the numbers of right-hand-side and operator terms.
    certified : bool
        Whether its round-off certificate was measured.

    Returns
    -------
    dict
        ``truth_solves``, ``riesz_solves``, ``riesz_solves_certificate``, ``truth_residual_norms``,
        ``stored_floats``, ``online_flops`` (ints), and ``terms`` (K, d' or m: what the
        estimator's size grows with).

    """
    k = q_f + q_a * n
    if name in ("expanded", "orthonormal"):
        own, residuals, terms = k, 0, k
        certificate = k if certified else 0
    elif name in ("point-basis", "point-basis-square"):
        assert isinstance(estimator, PointBasisEstimator | PointBasisSquareEstimator)
        own = residuals = terms = int(estimator.eps2.size)
        certificate = 0
    elif isinstance(estimator, EIMEstimator):
        own = residuals = terms = estimator.n_terms
        certificate = 2 * k + own if certified else 0
    else:
        raise ValueError(f"no precomputation count for estimator {name!r}")
    return {"truth_solves": n, "riesz_solves": own, "riesz_solves_certificate": certificate,
            "truth_residual_norms": residuals, "stored_floats": stored_floats(estimator),
            "online_flops": online_flops(name, estimator, n, q_f, q_a), "terms": terms}

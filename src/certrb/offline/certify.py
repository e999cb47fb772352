"""Certified positive semi-definiteness of Hermitian matrices, floating-point error included.

:func:`certify_psd` proves ``M >= 0`` for a Hermitian ``M = sum_k c_k M_k`` of stored
(exact) matrices and real coefficients, or for a computed matrix with a bound of its
error. The proof (``docs/roundoff.md``, "Certified stability constants") is an a
posteriori backward-error test of an ``L D L^H`` factorization of a shifted copy:

1. ``Mh = fl(sum_k c_k M_k)``, mirrored from its lower triangle (exactly Hermitian);
   ``|Mh - M| <= F`` with ``F = gamma_{K+2} sum_k |c_k| |M_k|`` (mirrored too).
2. With ``d = diag(Mh) > 0`` and a shift ``tau``, ``Ms = fl(Mh - tau diag(d))`` is factored
   without pivoting in a symmetric fill-reducing order ``p``: a sparse LU (SuperLU,
   ``diag_pivot_thresh=0``, rows and columns permuted alike), whose unit lower ``L`` and
   pivots ``D > 0`` define the exactly Hermitian positive definite ``L D L^H``; densely,
   a Cholesky factor ``L`` with ``D = I``.
3. ``E = Ms[p][:, p] - L D L^H`` (Hermitian) is bounded entrywise by
   ``|fl(E)| (1 + 2u) + gamma_{2k+8} |L| D |L|^H`` (k the most non-zeros in a row of L).
4. For every Hermitian ``G`` with ``|G| <= B``, ``v^H G v >= -|v|^T B |v| >= -r v^H diag(d) v``
   where ``r >= rho(diag(d)^{-1} (B + B^T) / 2)``, bounded by Collatz-Wielandt with the
   positive vector ``z = d^{-1/2}``: ``r = max_i ((B + B^T) z / 2)_i / (d_i z_i)``.

With ``B`` the sum of the three error bounds (formation, shift rounding ``3u d``,
factorization), ``M >= L D L^H + (tau - r) diag(d) >= (tau - r) diag(d)``: ``M`` is
certified positive semi-definite when ``r <= tau``, positive definite when ``r < tau``.
Every bound is evaluated in double and rounded up by a ``gamma`` factor. Nothing is
assumed of the factorization: the test only uses the factors it returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from ..online.estimators.roundoff import UNIT, gamma

__all__ = ["PSDCertificate", "certify_psd", "hermitian_sum"]

Term = tuple[float, "sp.spmatrix | NDArray"]


@dataclass(frozen=True)
class PSDCertificate:
    """Outcome of :func:`certify_psd`.

    Attributes
    ----------
    certified : bool
        ``M >= margin * diag(d) >= 0`` is proved.
    margin : float
        Proved lower bound of ``lambda_min(M, diag(d))`` (``tau - r``); meaningful when certified.
    reason : str
        Why the certificate failed (empty when certified).

    """

    certified: bool
    margin: float
    reason: str = ""

    def __bool__(self) -> bool:
        return self.certified


def hermitian_sum(terms: Sequence[Term]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``Mh = fl(sum_k c_k M_k)`` made exactly Hermitian, and ``F >= |Mh - sum_k c_k M_k|``.

    Terms whose matrices are equal entry by entry are merged first, their coefficients summed
    correctly rounded (:func:`math.fsum`; exact when they cancel, as in ``A - s X`` with
    ``A = X``), so that a multiple of one stored matrix is formed with one rounding per entry.

    Parameters
    ----------
    terms : sequence of (float, sparse matrix or ndarray (n, n))
        Real coefficients and stored matrices; their exact sum must be Hermitian.

    Returns
    -------
    Mh : csr_matrix, shape (n, n)
    F : csr_matrix, shape (n, n), non-negative

    """
    merged: list[tuple[list[float], sp.csr_matrix]] = []
    for c, m in terms:
        m = sp.csr_matrix(m)
        same = next((group for group in merged if group[1].shape == m.shape and (group[1] != m).nnz == 0), None)
        if same is None:
            merged.append(([float(c)], m))
        else:
            same[0].append(float(c))
    if not merged:
        raise ValueError("hermitian_sum needs at least one term")
    out = None
    size = None
    rounded = False  # a merged coefficient was rounded: |fl(sum c) - sum c| <= u |fl(sum c)| (1 + 2u)
    for coefficients, m in merged:
        c = math.fsum(coefficients)
        rounded |= len(coefficients) > 1
        out = m * c if out is None else out + m * c
        size = abs(m) * abs(c) if size is None else size + abs(m) * abs(c)
    assert out is not None
    assert size is not None
    single = len(merged) == 1 and math.fsum(merged[0][0]) in (1.0, -1.0, 0.0)
    rate = (0.0 if single else 2 * gamma(len(merged) + 2)) + (2 * gamma(2) if rounded else 0.0)
    F = size * rate
    return _mirror(out), sp.csr_matrix(F + F.T)


def _mirror(M: sp.spmatrix | NDArray) -> sp.csr_matrix | NDArray:
    """The Hermitian matrix with the strict lower triangle of ``M`` and the real part of its diagonal."""
    if isinstance(M, np.ndarray):
        low = np.tril(M, -1)
        return low + low.conj().T + np.diag(M.diagonal().real)
    low = sp.tril(M, -1, format="csr")
    return sp.csr_matrix(low + low.conj().T + sp.diags(M.diagonal().real))


def _upward(n: int) -> float:
    """Factor covering the rounding of a chain of non-negative sums of at most ``n`` terms each."""
    return 1.0 + 2 * gamma(4 * n + 40)


def certify_psd(M: sp.spmatrix | NDArray, error: sp.spmatrix | NDArray | None = None, *,
                tau: float | None = None) -> PSDCertificate:
    """Prove that a Hermitian matrix is positive semi-definite (see the module notes).

    Parameters
    ----------
    M : sparse matrix or ndarray, shape (n, n)
        Computed Hermitian matrix ``Mh`` (only its lower triangle and real diagonal are read).
    error : sparse matrix or ndarray, shape (n, n), optional
        Non-negative ``F >= |Mh - M_exact|`` entrywise; zero when omitted (``Mh`` is exact).
    tau : float, optional
        Relative shift; by default an a priori estimate, raised once to twice the measured
        ``r`` when the first attempt factors but does not verify.

    Returns
    -------
    PSDCertificate

    """
    dense = isinstance(M, np.ndarray)
    Mh = _mirror(M if dense else sp.csr_matrix(M))
    n = Mh.shape[0]
    F = sp.csr_matrix((n, n)) if error is None else error
    d = Mh.diagonal().real
    if not (np.isfinite(d).all() and (d > 0).all()):
        return PSDCertificate(False, -np.inf, "a diagonal entry is not positive")
    z = 1.0 / np.sqrt(d)
    r_form = _scaled_max(lambda v: F @ v + F.T @ v, z, d)
    if tau is None:
        row = n if isinstance(Mh, np.ndarray) else int(np.diff(Mh.indptr).max(initial=1))
        tau = 2 * r_form + 16 * gamma(2 * row + 8) * _scaled_max(lambda v: 2 * (abs(Mh) @ v), z, d)
    shift = float(tau)
    for attempt in range(2):
        bound = _factor_bound(Mh, d, z, shift, dense)
        if bound is None:
            return PSDCertificate(False, -np.inf, f"the factorization of M - {shift:.3g} diag(M) failed")
        r = bound + r_form + 3 * UNIT
        if r <= shift:
            return PSDCertificate(True, float(shift - r))
        if attempt == 0:
            shift = 2 * r
    return PSDCertificate(False, float(shift - r), f"the backward-error bound {r:.3g} exceeds the shift")


def _scaled_max(apply: Callable[[NDArray], NDArray], z: NDArray, d: NDArray) -> float:
    """Upper bound of ``max_i (B z)_i / (2 d_i z_i)`` for the non-negative ``B`` applied by ``apply``."""
    if not z.size:
        return 0.0
    return float(np.max(apply(z) / (d * z))) * 0.5 * _upward(z.size)


def _factor_bound(Mh: sp.csr_matrix | NDArray, d: NDArray, z: NDArray, tau: float, dense: bool) -> float | None:
    """Factor ``fl(Mh - tau diag(d))`` and return the scaled factorization bound ``r``, or None."""
    Ms = Mh - np.diag(tau * d) if dense else sp.csr_matrix(Mh - sp.diags(tau * d))
    factors = _dense_factors(Ms) if dense else _sparse_factors(Ms)
    if factors is None:
        return None
    p, L, U, D, G = factors
    La, Ua = abs(L), abs(U)
    k = Ms.shape[0] if dense else int(np.diff(sp.csr_matrix(L).indptr).max())
    g = gamma(4 * k + 8)
    Ga = abs(G) * (1 + 2 * UNIT)

    def apply(v: NDArray) -> NDArray:  # (B + B^T) v for the bound B of |E|
        fact = g * (La @ (Ua @ v) + Ua.T @ (La.T @ v)) + 4 * UNIT * (La @ (D * (La.T @ v)))
        return fact + La @ (Ga @ v) + Ga.T @ (La.T @ v)

    return _scaled_max(apply, z[p], d[p])


def _sparse_factors(Ms: sp.csr_matrix) -> tuple[NDArray, sp.csr_matrix, sp.csr_matrix, NDArray,
                                                 sp.csr_matrix] | None:
    """LU without pivoting in a symmetric fill-reducing order: ``(p, L, U, D, fl(U - D L^H))``, or None.

    ``D = Re diag(U)``; the permuted ``Ms[p][:, p]`` is ``L U`` up to the backward error.
    """
    try:
        lu = spla.splu(sp.csc_matrix(Ms), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
    except RuntimeError:
        return None
    D = lu.U.diagonal().real
    if not np.array_equal(lu.perm_r, lu.perm_c) or not (np.isfinite(D).all() and (D > 0).all()):
        return None
    L, U = sp.csr_matrix(lu.L), sp.csr_matrix(lu.U)
    return np.argsort(lu.perm_c), L, U, D, sp.csr_matrix(U - sp.diags(D) @ L.conj().T)


def _dense_factors(Ms: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray] | None:
    """Dense Cholesky ``Ms = L L^H``: ``(identity, L, L^H, 1, 0)``, or None."""
    try:
        L = sla.cholesky(Ms, lower=True, check_finite=True)
    except (np.linalg.LinAlgError, ValueError):
        return None
    n = L.shape[0]
    return np.arange(n), L, L.conj().T, np.ones(n), sp.csr_matrix((n, n))

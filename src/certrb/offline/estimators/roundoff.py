"""Offline measurement of the round-off certificates (docs/roundoff.md).

The residual components ``g_k`` are formed in extended precision
(:func:`exact_components`), and the defects of their stored Riesz representatives
and of the factorization ``rho ~ Psi R`` are measured beyond double precision
(:func:`riesz_defects`, :func:`factor_certificate`); the online half, a
:class:`~certrb.online.estimators.roundoff.FactorCertificate`, turns them into a
bound per query. Products use an error-free splitting (:func:`product_extended`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ...online.estimators.roundoff import UNIT, FactorCertificate, gamma
from ..innerproduct import InnerProduct, herm
from ..products import EXTENDED_UNIT, _split, accurate_product, product_error, product_extended, split_bits

__all__ = ["SAFETY", "ComponentBounds", "component_bounds", "exact_components", "factor_certificate",
           "gram_error", "gram_extended", "product_extended", "riesz_defects"]

SAFETY = 2.0
"""Factor applied to every offline-measured defect (assumption A3 of docs/roundoff.md)."""

_BLOCK = 64  # columns per block of the extended-precision factor defect
_COARSE = 1e-6  # orthogonality slack small enough (it stretches the estimate by < 5e-7) to skip |Psi|^H |X| |Psi|


def _extended(dtype: np.dtype) -> type:
    if np.finfo(np.longdouble).eps > 1e-18:
        warnings.warn("numpy.longdouble is no wider than double on this platform: offline defects are measured "
                      "in double precision and the round-off certificate is not guaranteed", RuntimeWarning,
                      stacklevel=3)
    return np.clongdouble if np.issubdtype(dtype, np.complexfloating) else np.longdouble


def exact_components(problem, basis: NDArray) -> NDArray:
    """Residual components ``g`` (n_h, Q_f + Q_a N) in extended precision, ordered as :mod:`certrb.online.residual`.

    ``A_q v_n`` is accumulated in numpy.longdouble (clongdouble if complex), so
    that it is exact to far below double round-off.
    """
    dtype = np.result_type(problem.dtype, basis.dtype)
    ext = _extended(dtype)
    V: NDArray = basis.astype(ext)
    terms = problem._extended_terms(ext)
    q_f = problem.rhs.n_terms
    out = np.empty((basis.shape[0], q_f + len(terms) * basis.shape[1]), dtype=ext)
    out[:, :q_f] = problem.rhs.terms.T
    blocks = out[:, q_f:].reshape(basis.shape[0], basis.shape[1], len(terms))  # a view: [h, n, q] = (A_q v_n)_h
    for q, a in enumerate(terms):
        blocks[:, :, q] = a @ V
    return out


def riesz_defects(inner_product: InnerProduct, g_ext: NDArray, z: NDArray) -> NDArray[np.float64]:
    """``SAFETY * ||X^{-1} g_k - z_k||_V = SAFETY * ||g_k - X z_k||_{V'}`` for each column, shape (K,).

    The residual ``g - X z`` is formed in extended precision, its dual norm by one refined
    solve (accurate to a factor far below 2 for any ``u cond(X) < 1``).
    """
    if g_ext.dtype == np.longdouble and z.dtype == np.float64 and inner_product.matrix.dtype == np.float64:
        s = g_ext - product_extended(inner_product.matrix, z)
    else:  # complex data: plain extended-precision products
        s = g_ext - inner_product._matrix_ext @ z.astype(g_ext.dtype)
    s = np.asarray(s, dtype=np.complex128 if np.iscomplexobj(s) else np.float64)
    return SAFETY * np.asarray(inner_product.dual_norms(s, refine=1), dtype=np.float64)


def _gram_parts(X: sp.csr_matrix, Z: NDArray, W: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """Stages of the real :func:`gram_extended`: ``P = X Z``, ``hi + lo = P`` exactly, ``G1 = W^T hi``, ``G``.

    ``P``, ``G1`` and ``G = G1 + W^T lo`` are numpy.longdouble; ``hi`` and ``lo`` double.
    """
    P = product_extended(X, Z)
    hi = np.asarray(P, dtype=np.float64)
    lo = np.asarray(P - hi, dtype=np.float64)  # exact: P - hi has at most 11 significant bits
    Wt = np.ascontiguousarray(W.T)
    G1 = product_extended(Wt, hi)
    return P, hi, lo, G1, G1 + Wt @ lo


def gram_extended(X: sp.csr_matrix, Z: NDArray, W: NDArray | None = None) -> NDArray:
    """``W^H X Z`` rounded once to double, shape (k_w, k_z); its error is bounded by :func:`gram_error`.

    ``X Z`` by :func:`~certrb.offline.products.product_extended`, split exactly into its
    double part and remainder, then ``W^T`` times each (the first again error-free).
    Complex data fall back to numpy.clongdouble products.
    """
    W = Z if W is None else W
    if np.iscomplexobj(Z) or np.iscomplexobj(W) or np.iscomplexobj(X.data):
        ext = np.clongdouble
        G = herm(W.astype(ext)) @ (X.astype(ext) @ Z.astype(ext))
        return np.asarray(G, dtype=np.complex128)
    return np.asarray(_gram_parts(X, Z, W)[-1], dtype=np.float64)


def gram_error(X: sp.csr_matrix, Z: NDArray, W: NDArray | None = None) -> NDArray[np.float64]:
    """Upper bound (k_w, k_z) of ``|G - W^H X Z|`` for ``G`` of :func:`gram_extended` before its rounding to double.

    Real data, with :func:`~certrb.offline.products.product_error` of both products:
    ``|W|^T E(X, Z) + E(W^T, hi) + gamma_{n_h} |W|^T |lo| + 2^-64 |G|`` (the last the
    longdouble sum). Derived from the actual splitting, so valid for any n_h. Complex data
    (numpy.clongdouble products): ``4 (n_h + w + 4) 2^-64 |W|^H |X| |Z|``, w the most
    non-zeros in a row of X.
    """
    W = Z if W is None else W
    if np.iscomplexobj(Z) or np.iscomplexobj(W) or np.iscomplexobj(X.data):
        width = int(np.diff(X.indptr).max(initial=0))
        return 4 * (X.shape[0] + width + 4) * EXTENDED_UNIT * (np.abs(W).T @ (abs(X) @ np.abs(Z)))
    P, hi, lo, G1, G = _gram_parts(X, Z, W)
    absW = np.abs(W).T
    first = absW @ product_error(X, Z, P)
    second = product_error(np.ascontiguousarray(W.T), hi, G1)
    tail = gamma(X.shape[0]) * (absW @ np.abs(lo)) + EXTENDED_UNIT * np.abs(np.asarray(G, dtype=np.float64))
    return (first + second + tail) * (1.0 + gamma(4))


def _factor_defects(inner_product: InnerProduct, z: NDArray, psi: NDArray, R: NDArray) -> NDArray[np.float64]:
    """``||z_k - Psi R[:, k]||_V`` measured beyond double precision, shape (K,).

    Real data: ``Psi R = P_hi + P_rest`` by the error-free splitting of :func:`product_extended`
    (``Psi`` split once, by rows, for all columns), with ``P_hi`` exact, and the defect taken as
    ``(z - P_hi) - P_rest`` in double: its rounding errors are of order ``u`` times the defect
    plus ``u 2^-bits |Psi| |R|``, far below it (a few digits suffice). Complex data: products in
    numpy.clongdouble. Columns go in blocks; each block uses only the rows of ``R`` that are
    non-zero in it.
    """
    real = not (np.iscomplexobj(z) or np.iscomplexobj(psi) or np.iscomplexobj(R))
    K = z.shape[1]
    nonzero = np.abs(R) > 0
    last = np.array([np.flatnonzero(nonzero[:, k]).max() + 1 if nonzero[:, k].any() else 0 for k in range(K)])
    bits = split_bits(psi.shape[1])
    if real:
        psi_hi, psi_lo = _split(psi, 1, bits)
    out = np.empty(K)
    for j0 in range(0, K, _BLOCK):
        j1 = min(j0 + _BLOCK, K)
        r = int(last[j0:j1].max(initial=0))
        B = R[:r, j0:j1]
        if real:
            B_hi, B_lo = _split(B, 0, bits)
            D = (z[:, j0:j1] - psi_hi[:, :r] @ B_hi) - (psi_hi[:, :r] @ B_lo + psi_lo[:, :r] @ B)
        else:
            ext = np.clongdouble
            D = np.asarray(z[:, j0:j1].astype(ext) - psi[:, :r].astype(ext) @ B.astype(ext), dtype=z.dtype)
        out[j0:j1] = _norms(inner_product, D)
    return out


def _orthogonality(inner_product: InnerProduct, psi: NDArray) -> float:
    """Upper bound of ``||Psi^H X Psi - I||_F`` (hence of the 2-norm).

    Real data: ``Psi^T X Psi`` by :func:`gram_extended` with its derived error bound
    :func:`gram_error` plus ``u |G|`` for the rounding (no ``cond(X)`` amplification). Complex
    data: computed in double with the a priori error bound of the two products,
    ``gamma_{n_h + w} || |Psi|^H |X| |Psi| ||_F`` (w the most non-zeros in a row of X), itself
    bounded by ``gamma_{n_h + w} || |X| ||_inf ||Psi||_F^2`` unless that exceeds ``_COARSE``,
    when the product is formed: this term only stretches the estimate by ``sqrt(1 + omega)``.
    """
    if psi.shape[1] == 0:
        return 0.0
    X = inner_product.matrix
    if not (np.iscomplexobj(psi) or np.iscomplexobj(X.data)):
        G = gram_extended(X, psi)
        slack = gram_error(X, psi) + UNIT * np.abs(G)
        return float(np.linalg.norm(G - np.eye(psi.shape[1])) + np.linalg.norm(slack))
    E = herm(psi) @ (X @ psi) - np.eye(psi.shape[1])
    width = int(np.diff(X.indptr).max(initial=0))
    g = gamma(X.shape[0] + width + 2)
    absX = abs(X)
    slack = g * float(absX.sum(axis=1).max()) * float(np.linalg.norm(psi)) ** 2 * (1.0 + 1e-6)
    if slack > _COARSE:
        A = np.abs(psi)
        slack = g * float(np.linalg.norm(A.T @ (absX @ A)))
    return float(np.linalg.norm(E) + slack)


def _norms(inner_product: InnerProduct, D: NDArray) -> NDArray[np.float64]:
    """``||d_k||_V`` of the columns of D (n_h, K) with ``X D`` formed beyond double precision, shape (K,)."""
    XD = accurate_product(inner_product.matrix, D)
    return np.sqrt(np.maximum(np.einsum("hk,hk->k", D.conj(), XD).real, 0.0))


@dataclass(frozen=True, eq=False)
class ComponentBounds:
    """The residual components in extended precision and bounds on their stored Riesz representatives.

    Attributes
    ----------
    exact : ndarray, shape (n_h, K), numpy.longdouble or clongdouble
        The components ``g_k`` (:func:`exact_components`).
    defects : ndarray of float64, shape (K,)
        Upper bounds of ``||X^{-1} g_k - z_k||_V`` (:func:`riesz_defects`).
    norms : ndarray of float64, shape (K,)
        Upper bounds of ``||X^{-1} g_k||_V``.

    """

    exact: NDArray
    defects: NDArray[np.float64]
    norms: NDArray[np.float64]


def component_bounds(problem, basis: NDArray, riesz: NDArray) -> ComponentBounds:
    """Measure :class:`ComponentBounds` for a basis (n_h, N) and the stored Riesz representatives (n_h, K)."""
    exact = exact_components(problem, basis)
    defects = riesz_defects(problem.inner_product, exact, riesz)
    return ComponentBounds(exact, defects, _norms(problem.inner_product, riesz) * (1.0 + 1e-6) + defects)


def factor_certificate(
    inner_product: InnerProduct, g_ext: NDArray, z: NDArray, psi: NDArray, R: NDArray,
    riesz: NDArray[np.float64] | None = None, norms: NDArray[np.float64] | None = None,
) -> FactorCertificate:
    """Measure the certificate of ``X^{-1} g ~ Psi R``.

    Parameters
    ----------
    inner_product : InnerProduct
    g_ext : ndarray, shape (n_h, K), extended precision
        The functionals ``g_k`` (exact to far below double round-off).
    z : ndarray, shape (n_h, K)
        Their computed Riesz representatives as stored (double).
    psi : ndarray, shape (n_h, r)
        Nearly X-orthonormal factor.
    R : ndarray, shape (r, K)
    riesz : ndarray of float64, shape (K,), optional
        :func:`riesz_defects` of ``z``, if already measured.
    norms : ndarray of float64, shape (K,), optional
        Upper bounds of ``||X^{-1} g_k||_V``, if already measured (``ComponentBounds.norms``).

    Returns
    -------
    FactorCertificate

    """
    riesz = riesz_defects(inner_product, g_ext, z) if riesz is None else riesz
    factor = SAFETY * _factor_defects(inner_product, z, psi, R)
    norms = _norms(inner_product, z) * (1.0 + 1e-6) + riesz if norms is None else norms
    orthogonality = _orthogonality(inner_product, psi) * (1.0 + 1e-6)
    column_norms = np.linalg.norm(R, axis=0) * (1.0 + 1e-6)
    return FactorCertificate(riesz + factor, norms, orthogonality, column_norms, R.shape[0])

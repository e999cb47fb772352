"""Matrix products beyond double precision by an error-free splitting, with their a priori error bounds.

The rows of ``A`` and the columns of ``B`` are split, ``A = A_hi + A_lo`` and
``B = B_hi + B_lo``, with the high parts on a grid coarse enough that ``A_hi @ B_hi``
is exact in double precision whatever the summation order (in the spirit of Ozaki et
al.); the rest is small and its rounding errors are of order ``u 2^-bits`` relative to
``|A| |B|``. :func:`product_error` bounds the error of :func:`product_extended` for any
inner dimension (docs/roundoff.md, "Extended products").
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["EXTENDED_UNIT", "accurate_product", "product_error", "product_extended", "split_bits"]

EXTENDED_UNIT = 2.0**-64
"""Unit round-off of numpy.longdouble on x86 (64-bit significand)."""

_UNIT = 2.0**-53


def split_bits(inner: int) -> int:
    """Bits of the high parts for which a product of inner dimension <= ``inner`` is exact in double.

    The high parts of a row of ``A`` (of a column of ``B``) are multiples of ``2^(e - bits)``
    below ``2^e``, so each product of high parts is a multiple of the product grid below
    ``2^(2 bits)`` grid units, and ``inner`` of them sum exactly when
    ``inner 2^(2 bits) <= 2^53``.
    """
    return (53 - 2 - max(int(np.ceil(np.log2(max(inner, 1)))), 0)) // 2


def _grid(top: NDArray, bits: int) -> NDArray:
    """``0.75 * 2^(e + 53 - bits)``, e the exponents of ``top``: adding and removing it rounds to ``2^(e - bits)``."""
    exponent = np.frexp(np.where(top > 0, top, 1.0))[1]
    return np.ldexp(0.75, exponent + 53 - bits)


def _split(A: NDArray, axis: int, bits: int) -> tuple[NDArray, NDArray]:
    """``A = hi + lo`` exactly, with ``hi`` on the grid ``2^(e - bits)``, e the exponent of the max along ``axis``."""
    sigma = _grid(np.max(np.abs(A), axis=axis, keepdims=True), bits)
    hi = (A + sigma) - sigma
    return hi, A - hi


def _row_max(A: sp.csr_matrix) -> NDArray:
    """``max_k |A_ik|`` of a CSR matrix, shape (n,)."""
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    top = np.zeros(A.shape[0])
    np.maximum.at(top, rows, np.abs(A.data))
    return top


def _split_rows(A: sp.csr_matrix, bits: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Row-wise :func:`_split` of a sparse matrix (same sparsity pattern)."""
    sigma = _grid(_row_max(A), bits)[np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))]
    hi_data = (A.data + sigma) - sigma
    hi = sp.csr_matrix((hi_data, A.indices, A.indptr), shape=A.shape)
    lo = sp.csr_matrix((A.data - hi_data, A.indices, A.indptr), shape=A.shape)
    return hi, lo


def _inner(A: NDArray | sp.csr_matrix) -> tuple[NDArray, int]:
    """Terms per row of ``A @ B`` (non-zeros of each row, or the inner dimension), shape (n,), and their max."""
    if sp.issparse(A):
        counts = np.diff(sp.csr_matrix(A).indptr)
        return counts, int(counts.max(initial=1))
    return np.full(A.shape[0], A.shape[1]), int(A.shape[1])


def product_extended(A: NDArray | sp.csr_matrix, B: NDArray) -> NDArray:
    """``A @ B`` (real float64; A (n, m) dense or CSR, B (m, k)) in numpy.longdouble, shape (n, k).

    ``A_hi @ B_hi`` is exact; the rest, ``A_hi @ B_lo + A_lo @ B``, is of order
    ``2^-bits |A| |B|`` and is computed in double, so its rounding errors are of order
    ``u 2^-bits`` relative to ``|A| |B|`` (:func:`product_error` bounds them). Three double
    products replace a numpy.longdouble product, which is an order of magnitude slower.
    """
    A = sp.csr_matrix(A) if sp.issparse(A) else A
    bits = split_bits(_inner(A)[1])
    A_hi, A_lo = _split_rows(A, bits) if sp.issparse(A) else _split(A, 1, bits)
    B = np.ascontiguousarray(B)  # row-major: sparse products take it without a copy
    B_hi, B_lo = _split(B, 0, bits)
    out = np.asarray(A_hi @ B_hi).astype(np.longdouble)
    out += np.asarray(A_hi @ B_lo + A_lo @ B)
    return out


def product_error(A: NDArray | sp.csr_matrix, B: NDArray, out: NDArray) -> NDArray[np.float64]:
    """Upper bound of ``|product_extended(A, B) - A B|`` (exact ``A B``), shape (n, k).

    With ``m_i`` the terms of row i, ``alpha_i = max_k |A_ik|``, ``beta_j = max_k |B_kj|`` and
    ``b`` the split bits: ``|A_lo| <= 2^-b alpha``, ``|B_lo| <= 2^-b beta`` (half the grid,
    ``2^(e - b - 1)``, with ``2^(e - 1) <= max``), ``sum_k |A_hi,ik| <= m_i alpha_i (1 + 2^-b)``,
    so the two double products and their sum err by at most
    ``gamma_{m+1} (|A_hi| |B_lo| + |A_lo| |B|) <= (2 + 2^-b) gamma_{m+1} 2^-b m_i alpha_i beta_j``;
    the final longdouble addition adds ``2^-64 |out|``. ``out`` is the computed product.
    """
    A = sp.csr_matrix(A) if sp.issparse(A) else A
    counts, inner = _inner(A)
    bits = split_bits(inner)
    alpha = _row_max(A) if sp.issparse(A) else np.max(np.abs(A), axis=1, initial=0.0)
    beta = np.max(np.abs(B), axis=0, initial=0.0)
    nu = (inner + 1) * _UNIT
    scale = (2.0 + 2.0**-bits) * nu / (1.0 - nu) * 2.0**-bits
    bound = np.outer(scale * counts * alpha, beta) + EXTENDED_UNIT * np.abs(np.asarray(out, dtype=np.float64))
    return bound * (1.0 + 1e-10)  # the float64 evaluation of the bound itself


def accurate_product(A: sp.csr_matrix, B: NDArray) -> NDArray:
    """``A @ B`` (n, k) rounded once to the working precision: error-free splitting for real float64 data.

    Complex data use a numpy.clongdouble product; longdouble data a plain product.
    """
    if A.dtype == np.float64 and B.dtype == np.float64:
        return np.asarray(product_extended(A, B), dtype=np.float64)
    if np.iscomplexobj(B) and B.dtype == np.complex128:
        return np.asarray(A.astype(np.clongdouble) @ B.astype(np.clongdouble), dtype=np.complex128)
    return A @ B

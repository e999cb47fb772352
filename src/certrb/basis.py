"""Reduced bases: X-orthonormalization with re-orthogonalization, and POD."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .errors import ShapeError
from .innerproduct import InnerProduct

__all__ = ["extend", "gram_schmidt", "pod", "qr_extend"]

_MAX_PASSES = 4


def qr_extend(
    basis: NDArray, vectors: NDArray, inner_product: InnerProduct, *, rtol: float = 1e-12
) -> tuple[NDArray, NDArray, NDArray[np.bool_]]:
    """Extend an X-orthonormal basis by new vectors and return the QR coefficients.

    Two passes of block classical Gram-Schmidt against ``basis`` ("twice is
    enough"), then each new vector is projected against the whole current basis
    again, repeating while a pass removes more than half of its norm (at most 4
    passes), so that nearly dependent vectors still come out orthonormal. A
    vector whose final norm is at most ``rtol`` times its original norm is
    rejected (it lies in the span to that tolerance).

    Parameters
    ----------
    basis : ndarray, shape (n_h, N)
        X-orthonormal columns (N may be 0).
    vectors : ndarray, shape (n_h, k)
        Candidates.
    inner_product : InnerProduct
    rtol : float
        Relative norm below which a candidate counts as in the span.

    Returns
    -------
    new_basis : ndarray, shape (n_h, N + a)
        ``basis`` followed by the ``a`` accepted, orthonormalized vectors.
    R : ndarray, shape (N + a, k)
        Coefficients with ``vectors ~= new_basis @ R`` (upper trapezoidal in
        the new rows).
    accepted : ndarray of bool, shape (k,)

    """
    if basis.ndim != 2 or vectors.ndim != 2 or basis.shape[0] != vectors.shape[0]:
        raise ShapeError(f"basis (n_h, N) and vectors (n_h, k) must share n_h; got {basis.shape}, {vectors.shape}")
    X = inner_product.matrix
    dtype = np.result_type(basis.dtype, vectors.dtype, X.dtype)
    Q = basis.astype(dtype, copy=True)
    n0, k = Q.shape[1], vectors.shape[1]
    W = vectors.astype(dtype, copy=True)
    R = np.zeros((n0 + k, k), dtype=dtype)
    for _ in range(2):
        c = Q.conj().T @ (X @ W)
        W -= Q @ c
        R[:n0] += c
    original = inner_product.norms(vectors)
    accepted = np.zeros(k, dtype=bool)
    for j in range(k):
        w, nrm = W[:, j], float(inner_product.norms(W[:, j:j + 1])[0])
        for _ in range(_MAX_PASSES):  # repeat while a pass cancels much of the vector
            c = Q.conj().T @ (X @ w)
            w = w - Q @ c
            R[: Q.shape[1], j] += c
            new_nrm = float(np.sqrt(abs(np.vdot(w, X @ w))))
            done = new_nrm > 0.5 * nrm
            nrm = new_nrm
            if done:
                break
        if original[j] > 0 and nrm > rtol * original[j]:
            R[Q.shape[1], j] = nrm
            Q = np.concatenate([Q, (w / nrm)[:, None]], axis=1)
            accepted[j] = True
    return Q, R[: Q.shape[1]], accepted


def extend(
    basis: NDArray, vectors: NDArray, inner_product: InnerProduct, *, rtol: float = 1e-12
) -> tuple[NDArray, NDArray[np.bool_]]:
    """Append vectors to an X-orthonormal basis, skipping those already in its span.

    See :func:`qr_extend` for the algorithm and parameters.

    Returns
    -------
    new_basis : ndarray, shape (n_h, N + k_accepted)
    accepted : ndarray of bool, shape (k,)

    """
    new_basis, _, accepted = qr_extend(basis, vectors, inner_product, rtol=rtol)
    return new_basis, accepted


def gram_schmidt(vectors: NDArray, inner_product: InnerProduct, *, rtol: float = 1e-12) -> NDArray:
    """X-orthonormalize the columns of ``vectors`` (n_h, k); returns (n_h, r), r <= k."""
    empty = np.zeros((vectors.shape[0], 0), dtype=vectors.dtype)
    return extend(empty, vectors, inner_product, rtol=rtol)[0]


def pod(
    snapshots: NDArray, inner_product: InnerProduct, *, n: int | None = None, rtol: float = 1e-7
) -> tuple[NDArray, NDArray[np.float64]]:
    """Proper orthogonal decomposition of snapshots in the X inner product.

    The snapshot correlation matrix ``S^H X S`` is diagonalized (method of
    snapshots); the modes are then re-orthonormalized with :func:`gram_schmidt`
    to remove the round-off of the eigen-solve.

    Parameters
    ----------
    snapshots : ndarray, shape (n_h, k)
    inner_product : InnerProduct
    n : int, optional
        Number of modes to keep (default: all singular values above ``rtol * s_max``).
    rtol : float
        Relative singular-value cut-off (note: eigenvalues of the correlation
        matrix are squares, so values below ~1e-8 are round-off).

    Returns
    -------
    modes : ndarray, shape (n_h, r)
        X-orthonormal POD modes.
    singular_values : ndarray, shape (k,)
        All singular values, descending.

    """
    C = inner_product.gram(snapshots)
    C = (C + C.conj().T) / 2
    evals, evecs = np.linalg.eigh(C)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.maximum(evals[order], 0.0), evecs[:, order]
    sv = np.sqrt(evals)
    r = int(np.sum(sv > rtol * sv[0])) if sv.size and sv[0] > 0 else 0
    if n is not None:
        r = min(r, int(n))
    modes = snapshots @ (evecs[:, :r] / sv[:r])
    return gram_schmidt(modes, inner_product), sv

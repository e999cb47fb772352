"""Reduced bases: X-orthonormalization with re-orthogonalization, and POD."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..errors import ShapeError
from .innerproduct import InnerProduct, _column_dots, herm
from .products import accurate_product

__all__ = ["extend", "gram_schmidt", "orthonormalize", "pod", "qr_extend"]

_MAX_PASSES = 4


def _coefficients(Q: NDArray, XW: NDArray) -> NDArray:
    """``Q^H (X W)`` (N, k), computed as ``((X W)^H Q)^H``: one fast pass over a tall, thin Q."""
    return herm(herm(XW) @ Q)


def _combine(Q: NDArray, c: NDArray) -> NDArray:
    """``Q c`` (n_h, k), computed as ``(c^T Q^T)^T`` (the faster GEMM orientation for tall Q)."""
    return (c.T @ Q.T).T


def orthonormalize(
    basis: NDArray, vectors: NDArray, inner_product: InnerProduct, *, rtol: float = 1e-12
) -> tuple[NDArray, NDArray, NDArray[np.bool_]]:
    """X-orthonormalize new vectors against an X-orthonormal basis, without copying the basis.

    Block classical Gram-Schmidt against ``basis``: two passes ("twice is
    enough"), repeated while a pass removes more than half of some vector's norm
    (at most 4 passes), so that nearly dependent vectors still come out
    orthonormal; each pass reads the basis twice for the whole block. Then each
    new vector is orthogonalized against the accepted new ones, repeated (now
    against the whole basis) while a pass cancels more than half of its norm.
    A vector whose final norm is at most ``rtol`` times its original norm is
    rejected (it lies in the span to that tolerance).

    Every product ``X w`` is formed beyond double precision and rounded once
    (:func:`~certrb.offline.products.accurate_product`): with an ill-conditioned X
    (e.g. H1 with a tiny mass weight) a double product of a smooth vector loses up to
    ``u cond(X)`` relative to ``||w||_V``, the rounded accurate one at most about
    ``u sqrt(cond(X))``, the accuracy at which a double vector represents itself in
    the V norm.

    Parameters
    ----------
    basis : ndarray, shape (n_h, N)
        X-orthonormal columns (N may be 0), any memory layout (column-major is
        fastest).
    vectors : ndarray, shape (n_h, k)
        Candidates.
    inner_product : InnerProduct
    rtol : float
        Relative norm below which a candidate counts as in the span.

    Returns
    -------
    new : ndarray, shape (n_h, a)
        The ``a`` accepted vectors, orthonormalized; ``[basis, new]`` is X-orthonormal.
    R : ndarray, shape (N + a, k)
        Coefficients with ``vectors ~= [basis, new] @ R`` (upper trapezoidal in
        the new rows).
    accepted : ndarray of bool, shape (k,)

    """
    if basis.ndim != 2 or vectors.ndim != 2 or basis.shape[0] != vectors.shape[0]:
        raise ShapeError(f"basis (n_h, N) and vectors (n_h, k) must share n_h; got {basis.shape}, {vectors.shape}")
    X = inner_product.matrix
    dtype = np.result_type(basis.dtype, vectors.dtype, X.dtype)
    n0, k = basis.shape[1], vectors.shape[1]
    Q = basis.astype(dtype, copy=False)
    W = np.array(vectors, dtype=dtype, order="C")  # row-major: sparse products take it without a copy
    R = np.zeros((n0 + k, k), dtype=dtype)
    XW = accurate_product(X, W)
    norms = original = np.sqrt(np.maximum(_column_dots(W, XW), 0.0))
    for i in range(_MAX_PASSES if n0 else 0):  # block passes against the old basis (two reads of it per pass)
        c = _coefficients(Q, XW)
        W -= _combine(Q, c)
        R[:n0] += c
        XW = accurate_product(X, W)
        new_norms = np.sqrt(np.maximum(_column_dots(W, XW), 0.0))
        settled = i >= 1 and np.all(new_norms > 0.5 * norms)  # twice, then while a pass cancels much
        norms = new_norms
        if settled:
            break
    new = np.zeros((W.shape[0], 0), dtype=dtype)
    accepted = np.zeros(k, dtype=bool)
    for j in range(k):  # within the block, against the accepted new vectors (few, cheap)
        w, nrm = W[:, j], norms[j]
        for p in range(_MAX_PASSES):
            c = herm(new) @ accurate_product(X, w)
            w = w - new @ c
            R[n0:n0 + new.shape[1], j] += c
            if p > 0 and n0:  # a pass that follows a cancelling one also re-orthogonalizes against the old basis
                c = herm(Q) @ accurate_product(X, w)
                w = w - Q @ c
                R[:n0, j] += c
            new_nrm = np.sqrt(abs(np.vdot(w, accurate_product(X, w))))
            done = new_nrm > 0.5 * nrm
            nrm = new_nrm
            if done:
                break
        if original[j] > 0 and nrm > rtol * original[j]:
            R[n0 + new.shape[1], j] = nrm
            new = np.concatenate([new, (w / nrm)[:, None]], axis=1)
            accepted[j] = True
    return new, R[: n0 + new.shape[1]], accepted


def qr_extend(
    basis: NDArray, vectors: NDArray, inner_product: InnerProduct, *, rtol: float = 1e-12
) -> tuple[NDArray, NDArray, NDArray[np.bool_]]:
    """Extend an X-orthonormal basis by new vectors and return the QR coefficients.

    See :func:`orthonormalize` for the algorithm and parameters.

    Returns
    -------
    new_basis : ndarray, shape (n_h, N + a)
        ``basis`` followed by the ``a`` accepted, orthonormalized vectors.
    R : ndarray, shape (N + a, k)
        Coefficients with ``vectors ~= new_basis @ R`` (upper trapezoidal in
        the new rows).
    accepted : ndarray of bool, shape (k,)

    """
    new, R, accepted = orthonormalize(basis, vectors, inner_product, rtol=rtol)
    Q = basis.astype(new.dtype, copy=False)
    return np.concatenate([Q, new], axis=1), R, accepted


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

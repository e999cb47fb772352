"""Extended-precision projections, reconstruction and best approximation for ``refined_floor.py``.

Diagnostics only (the library keeps an extended-precision offline state with
``OfflineBuilder(precision="extended")``): they measure where a double basis loses
digits by redoing each step in numpy.longdouble (x86: 64-bit mantissa, ``u = 5.4e-20``).
Every function accepts float64/complex128 or extended inputs and returns extended
arrays (numpy.longdouble, or numpy.clongdouble for complex data).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from certrb.offline.innerproduct import InnerProduct, herm
from certrb.online.precision import extended_dtype, refined_solve


def _ext(a: NDArray, ext: type) -> NDArray:
    return np.asarray(a).astype(ext, copy=False)


def project_operator(terms: Sequence[sp.spmatrix], V: NDArray) -> NDArray:
    """Reduced operator terms ``V^H A_q V`` (Q, N, N) accumulated in extended precision.

    Parameters
    ----------
    terms : sequence of sparse matrices, each shape (n_h, n_h)
        The operator terms ``A_q`` (``AffineOperator.terms``).
    V : ndarray, shape (n_h, N)

    Returns
    -------
    A_N : ndarray, shape (Q, N, N), extended

    """
    ext = extended_dtype(V, *(a.dtype for a in terms))
    Ve = _ext(V, ext)
    return np.stack([herm(Ve) @ (sp.csr_matrix(a).astype(ext) @ Ve) for a in terms])


def project_functional(terms: NDArray, V: NDArray) -> NDArray:
    """Reduced functional terms ``V^H f_p`` accumulated in extended precision.

    Parameters
    ----------
    terms : ndarray, shape (Q_f, n_h)
        The functional terms ``f_p`` as rows (``AffineFunctional.terms``).
    V : ndarray, shape (n_h, N)

    Returns
    -------
    f_N : ndarray, shape (Q_f, N), extended

    """
    ext = extended_dtype(V, terms)
    return (herm(_ext(V, ext)) @ _ext(terms, ext).T).T


def reconstruct(V: NDArray, c: NDArray) -> NDArray:
    """Truth vectors ``V[:, :n] c`` in extended precision.

    Parameters
    ----------
    V : ndarray, shape (n_h, N)
    c : ndarray, shape (n_mu, n), n <= N

    Returns
    -------
    U_N : ndarray, shape (n_mu, n_h), extended

    """
    ext = extended_dtype(V, c)
    return _ext(c, ext) @ _ext(V[:, : c.shape[1]], ext).T


def best_approximation_error(inner_product: InnerProduct, V: NDArray, U: NDArray) -> NDArray:
    """``min_w ||u - V w||_X`` for the rows of U, computed in extended precision.

    The X-orthogonal projection is formed from the normal equations
    ``(V^H X V) w = V^H X u`` (no orthonormality of V assumed), solved with
    :func:`certrb.online.precision.refined_solve`, and the remainder's X-norm is
    taken in extended precision: what the span of V can represent, whatever the
    reduced solve does.

    Parameters
    ----------
    inner_product : InnerProduct
    V : ndarray, shape (n_h, N)
    U : ndarray, shape (n_mu, n_h)

    Returns
    -------
    error : ndarray, shape (n_mu,), extended

    """
    ext = extended_dtype(V, U, inner_product.matrix.dtype)
    Ve, Ue = _ext(V, ext), _ext(U, ext)
    X = inner_product.matrix.astype(ext)
    XV = X @ Ve
    gram = herm(Ve) @ XV
    rhs = (herm(XV) @ Ue.T).T
    w = refined_solve(np.broadcast_to(gram, (U.shape[0], *gram.shape)), rhs, steps=2)
    E = Ue - w @ Ve.T
    return np.sqrt(np.maximum(np.einsum("mh,mh->m", E.conj(), (X @ E.T).T).real, 0))

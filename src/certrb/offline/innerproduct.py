"""The truth inner product ``(u, v)_V = v^H X u`` and its Riesz map ``X^{-1}``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from ..errors import InnerProductError
from ..interop.guard import reject_pymor
from .certify import certify_psd

__all__ = ["InnerProduct", "herm"]


def herm(a: NDArray) -> NDArray:
    """Conjugate transpose ``a^H``; a view (no copy) for real arrays."""
    return a.T.conj() if np.iscomplexobj(a) else a.T


def _column_dots(U: NDArray, W: NDArray) -> NDArray:
    """``Re(u_k^H w_k)`` for the columns of U, W (n_h, k), shape (k,)."""
    if np.iscomplexobj(U):
        return np.einsum("hk,hk->k", U.conj(), W).real
    return np.einsum("hk,hk->k", U, W).real


def _hermitian_defect(X: sp.csr_matrix) -> float:
    diff = X - X.conj().T
    scale = np.max(np.abs(X.data)) if X.nnz else 0.0
    return float(np.max(np.abs(diff.data))) / scale if diff.nnz else 0.0


@dataclass(frozen=True, eq=False)
class InnerProduct:
    """Sparse Hermitian positive definite Gram matrix with a reusable factorization.

    Parameters
    ----------
    matrix : sparse matrix, shape (n_h, n_h)
        The Gram matrix ``X``, real symmetric or complex Hermitian.

    Raises
    ------
    InnerProductError
        If ``X`` is not square, not Hermitian (relative defect above 1e-12), or
        not positive definite. Positivity is checked on the pivots of a
        symmetrically permuted LU factorization without row pivoting (Sylvester's
        law of inertia), then proved with floating-point error accounted for by
        :func:`certrb.offline.certify.certify_psd` (``X >= m diag(X)`` for some
        ``m > 0``): a singular or numerically singular ``X`` (e.g. a Neumann
        Laplacian, whose pivots can all be positive in floating point) is refused.

    """

    matrix: sp.csr_matrix
    _lu: spla.SuperLU = field(repr=False)
    _matrix_ext: sp.csr_matrix = field(repr=False)
    _ordering: NDArray[np.intp] = field(repr=False)

    def __init__(self, matrix: sp.spmatrix | sp.sparray | NDArray) -> None:
        reject_pymor(matrix, "inner_product")
        X = sp.csr_matrix(matrix)
        if X.shape[0] != X.shape[1] or X.shape[0] == 0:
            raise InnerProductError(f"inner_product must be a non-empty square matrix; got shape {X.shape}")
        if not np.all(np.isfinite(X.data)):
            raise InnerProductError("inner_product contains NaN or infinite entries")
        X = X.astype(np.result_type(X.dtype, np.float64))
        defect = _hermitian_defect(X)
        if defect > 1e-12:
            raise InnerProductError(f"inner_product is not Hermitian: max|X - X^H| / max|X| = {defect:.2e}")
        try:
            lu = spla.splu(
                sp.csc_matrix(X), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
        except RuntimeError as exc:
            raise InnerProductError(f"inner_product is singular: {exc}") from exc
        pivots = lu.U.diagonal()
        if not np.array_equal(lu.perm_r, lu.perm_c) or np.any(pivots.real <= 0) or not np.all(
            np.isfinite(pivots)
        ):
            raise InnerProductError("inner_product is not positive definite (a non-positive pivot)")
        proof = certify_psd(X)
        if not proof:
            raise InnerProductError(f"inner_product is singular or numerically singular: its positive definiteness "
                                    f"cannot be certified in double precision ({proof.reason})")
        ext = X.astype(np.clongdouble if np.iscomplexobj(X.data) else np.longdouble)
        object.__setattr__(self, "matrix", X)
        object.__setattr__(self, "_lu", lu)
        object.__setattr__(self, "_matrix_ext", ext)
        object.__setattr__(self, "_ordering", np.argsort(lu.perm_c))

    def __reduce__(self) -> tuple:
        """Pickle as the matrix alone; the factorization is recomputed on unpickling."""
        return InnerProduct, (self.matrix,)

    @property
    def size(self) -> int:
        """Truth dimension n_h."""
        return self.matrix.shape[0]

    @property
    def ordering(self) -> NDArray[np.intp]:
        """Fill-reducing symmetric ordering ``p`` of X, shape (n_h,), intp.

        ``X[p][:, p]`` has a sparse LU factorization in the natural order; so
        has any matrix whose sparsity pattern lies within that of X.
        """
        return self._ordering

    def riesz(self, g: NDArray, *, refine: int = 0) -> NDArray:
        """Riesz representatives ``X^{-1} g``.

        Parameters
        ----------
        g : ndarray, shape (n_h,) or (n_h, k)
            Functionals as vectors (``v -> v^H g``); float64, complex128 or extended.
        refine : int
            Iterative-refinement steps whose residuals ``g - X z`` are accumulated
            in extended precision (numpy.longdouble). With ``refine > 0`` the result
            is extended precision.

        Returns
        -------
        z : ndarray, same shape as ``g``

        """
        z = self._solve(np.asarray(g))
        if refine <= 0:
            return z
        g_ext: NDArray = np.asarray(g).astype(self._ext_dtype(g), copy=False)
        z = z.astype(g_ext.dtype)
        for _ in range(refine):
            r = g_ext - self._matrix_ext @ z
            z = z + self._solve(r)
        return z

    def _ext_dtype(self, g: NDArray) -> type:
        complex_ = np.iscomplexobj(g) or np.iscomplexobj(self.matrix.data)
        return np.clongdouble if complex_ else np.longdouble

    def _solve(self, g: NDArray) -> NDArray:
        complex_ = np.iscomplexobj(g)
        g_d = g.astype(np.complex128 if complex_ else np.float64)
        if complex_ and not np.iscomplexobj(self.matrix.data):
            return self._lu.solve(np.ascontiguousarray(g_d.real)) + 1j * self._lu.solve(
                np.ascontiguousarray(g_d.imag)
            )
        return self._lu.solve(g_d)

    def gram(self, U: NDArray, W: NDArray | None = None) -> NDArray:
        """Inner products ``W^H X U``, shape (k_w, k_u) for U (n_h, k_u), W (n_h, k_w)."""
        W = U if W is None else W
        return herm(W) @ (self.matrix @ U)

    def norms(self, U: NDArray) -> NDArray[np.float64]:
        """Norms ``||u||_V`` of the columns of U (n_h, k), shape (k,)."""
        XU = self.matrix @ U
        return np.sqrt(np.maximum(_column_dots(U, XU), 0.0))

    def dual_norms(self, G: NDArray, *, refine: int = 0) -> NDArray:
        """Dual norms ``sqrt(g^H X^{-1} g)`` of the columns of G (n_h, k), shape (k,).

        With ``refine > 0`` the computation is carried in extended precision and
        the result is numpy.longdouble.
        """
        Z = self.riesz(G, refine=refine)
        Gc = G.astype(Z.dtype, copy=False) if refine > 0 else G
        return np.sqrt(np.maximum(_column_dots(Gc, Z), 0))

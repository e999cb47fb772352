"""Reduced operators, reduced solves and reconstruction in extended precision.

Refined truth solves (``Problem.solve(mus, refine=k)``) are accurate far below the
double-precision floor, but a reduced model built from them in double precision
gives most of those digits back: a basis stored in double cannot represent a
truth solution better than about ``u * sqrt(cond(X))`` in the ``X``-norm
(``u = 1.1e-16``), and ``V^H A_q V`` computed in double has an absolute error
of about ``u * |V|^H |A_q| |V|``, ``cond(A_q)`` times ``u`` relative to the
entries for a stiffness matrix. The functions here keep those steps in
numpy.longdouble (x86: 64-bit mantissa, ``u = 5.4e-20``):

- :func:`project_operator`, :func:`project_functional`: ``W^H A_q V`` and
  ``V^H f_p`` with products and sums in extended precision;
- :func:`refined_solve`: dense solves factored in double and refined with
  residuals ``b - A c`` accumulated in extended precision (cheap: N x N);
- :func:`refined_reduced_solve`: the batched Galerkin solve of
  :func:`certrb.rom.reduced_solve` with that refinement;
- :func:`reconstruct`: ``V c`` in extended precision;
- :func:`extend_orthonormal_factor`: the ``orthonormal`` estimator's factor with
  a rank tolerance scaled to the working precision;
- :func:`best_approximation_error`: ``min_w ||u - V w||_X``, a diagnostic of
  what a basis can represent at all.

:class:`certrb.reduce.OfflineBuilder` with ``precision="extended"`` (and so
:func:`certrb.reduce`, :func:`certrb.weak_greedy`) keeps the whole offline state
and the model in extended precision along these lines; :func:`check_precision`
and :func:`working_rtol` are shared with it.

All functions accept float64/complex128 or extended inputs and return extended
arrays (numpy.longdouble, or numpy.clongdouble for complex data). Online
functions (:func:`refined_solve`, :func:`refined_reduced_solve`) touch only
reduced-size arrays.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .basis import qr_extend
from .errors import ShapeError
from .innerproduct import InnerProduct, herm
from .residual import residual_coefficients

__all__ = [
    "PRECISIONS",
    "best_approximation_error",
    "check_precision",
    "extend_orthonormal_factor",
    "extended_dtype",
    "is_extended",
    "project_functional",
    "project_operator",
    "reconstruct",
    "refined_reduced_solve",
    "refined_solve",
    "working_rtol",
]

PRECISIONS = ("double", "extended")
"""Working precisions of the offline state (``precision=`` of :func:`certrb.reduce`, :func:`certrb.weak_greedy`)."""


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise ValueError."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    return precision


def working_rtol(dtype: np.dtype | type) -> float:
    """Rank tolerance ``100 eps`` of a working precision (float64: 2.2e-14, x86 longdouble: 1.1e-17)."""
    return 100 * float(np.finfo(dtype).eps)


def extended_dtype(*arrays_or_dtypes) -> type:
    """numpy.clongdouble if any argument is complex, else numpy.longdouble."""
    complex_ = any(np.issubdtype(np.result_type(a), np.complexfloating) for a in arrays_or_dtypes)
    return np.clongdouble if complex_ else np.longdouble


def is_extended(a: NDArray) -> bool:
    """Whether an array is stored in numpy.longdouble or numpy.clongdouble."""
    return np.asarray(a).dtype.type in (np.longdouble, np.clongdouble)


def _ext(a: NDArray, ext: type) -> NDArray:
    return np.asarray(a).astype(ext, copy=False)


def project_operator(terms, V: NDArray, W: NDArray | None = None) -> NDArray:
    """Reduced operator terms ``W^H A_q V`` accumulated in extended precision.

    Parameters
    ----------
    terms : sequence of sparse matrices, each shape (n_h, n_h)
        The operator terms ``A_q`` (e.g. ``AffineOperator.terms``).
    V : ndarray, shape (n_h, N)
        Trial basis, double or extended.
    W : ndarray, shape (n_h, M), optional
        Test basis (default: ``V``, Galerkin).

    Returns
    -------
    A_N : ndarray, shape (Q, M, N), extended

    Raises
    ------
    ShapeError
        If the bases do not have n_h rows.

    """
    W = V if W is None else W
    if V.ndim != 2 or W.ndim != 2 or any(a.shape != (V.shape[0], V.shape[0]) for a in terms):
        raise ShapeError(f"V (n_h, N), W (n_h, M) and terms (n_h, n_h) must agree; got {V.shape}, {W.shape}")
    ext = extended_dtype(V, W, *(a.dtype for a in terms))
    Ve, We = _ext(V, ext), _ext(W, ext)
    out: NDArray = np.empty((len(terms), W.shape[1], V.shape[1]), dtype=ext)
    for q, a in enumerate(terms):
        out[q] = herm(We) @ (sp.csr_matrix(a).astype(ext) @ Ve)
    return out


def project_functional(terms: NDArray, V: NDArray) -> NDArray:
    """Reduced functional terms ``V^H f_p`` accumulated in extended precision.

    Parameters
    ----------
    terms : ndarray, shape (Q_f, n_h)
        The functional terms ``f_p`` as rows (e.g. ``AffineFunctional.terms``).
    V : ndarray, shape (n_h, N)

    Returns
    -------
    f_N : ndarray, shape (Q_f, N), extended

    """
    terms = np.atleast_2d(np.asarray(terms))
    if V.ndim != 2 or terms.shape[1] != V.shape[0]:
        raise ShapeError(f"terms (Q_f, n_h) and V (n_h, N) must share n_h; got {terms.shape}, {V.shape}")
    ext = extended_dtype(V, terms)
    return (herm(_ext(V, ext)) @ _ext(terms, ext).T).T


def refined_solve(A: NDArray, b: NDArray, *, steps: int = 2) -> NDArray:
    """Batched dense solves ``A c = b`` refined with extended-precision residuals.

    The first solve and each correction ``A d = b - A c`` use double precision
    (LAPACK via numpy.linalg.solve); the residuals and the updates ``c + d`` are
    carried in extended precision. Each step divides the error by about
    ``1 / (u cond(A))``, down to the extended-precision floor.

    Parameters
    ----------
    A : ndarray, shape (n_mu, n, n)
    b : ndarray, shape (n_mu, n)
    steps : int
        Refinement steps (0: a plain double solve, returned in extended).

    Returns
    -------
    c : ndarray, shape (n_mu, n), extended

    Raises
    ------
    ShapeError
        On inconsistent shapes.
    numpy.linalg.LinAlgError
        If a system is singular in double precision.

    """
    if A.ndim != 3 or A.shape[1] != A.shape[2] or b.shape != A.shape[:2]:
        raise ShapeError(f"A must have shape (n_mu, n, n) and b (n_mu, n); got {A.shape}, {b.shape}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    ext = extended_dtype(A, b)
    Ae, be = _ext(A, ext), _ext(b, ext)
    work = np.complex128 if ext is np.clongdouble else np.float64
    Ad = Ae.astype(work)

    def solve(rhs: NDArray) -> NDArray:
        return np.linalg.solve(Ad, rhs.astype(work)[:, :, None])[:, :, 0].astype(ext)

    c = solve(be)
    for _ in range(int(steps)):
        c = c + solve(be - (Ae @ c[:, :, None])[:, :, 0])
    return c


def refined_reduced_solve(
    A_N: NDArray, f_N: NDArray, theta: NDArray, phi: NDArray, n: int, *, steps: int = 2
) -> tuple[NDArray, NDArray]:
    """Batched Galerkin solves of the size-``n`` sub-model, refined in extended precision.

    Same contract as :func:`certrb.rom.reduced_solve`: ``A(mu) = sum_q theta_q A_q``
    and ``f(mu) = sum_p phi_p f_p`` are assembled in extended precision, then
    solved by :func:`refined_solve`.

    Parameters
    ----------
    A_N : ndarray, shape (Q_a, N, N)
        Reduced operator terms (preferably from :func:`project_operator`).
    f_N : ndarray, shape (Q_f, N)
    theta : ndarray, shape (n_mu, Q_a)
    phi : ndarray, shape (n_mu, Q_f)
    n : int
        Sub-model size, ``1 <= n <= N``.
    steps : int
        Refinement steps.

    Returns
    -------
    c : ndarray, shape (n_mu, n), extended
        Reduced coefficients.
    x : ndarray, shape (n_mu, Q_f + Q_a n), extended
        Residual coefficients (:func:`certrb.residual.residual_coefficients`).

    """
    if A_N.ndim != 3 or f_N.ndim != 2 or not 1 <= n <= min(A_N.shape[1], f_N.shape[1]):
        raise ShapeError(f"A_N (Q_a, N, N), f_N (Q_f, N) and 1 <= n <= N required; got {A_N.shape}, "
                         f"{f_N.shape}, n={n}")
    ext = extended_dtype(A_N, f_N, theta, phi)
    th, ph = _ext(theta, ext), _ext(phi, ext)
    A = np.einsum("mq,qij->mij", th, _ext(A_N[:, :n, :n], ext))
    f = ph @ _ext(f_N[:, :n], ext)
    c = refined_solve(A, f, steps=steps)
    return c, residual_coefficients(ph, th, c)


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
    if c.ndim != 2 or V.ndim != 2 or c.shape[1] > V.shape[1]:
        raise ShapeError(f"c must have shape (n_mu, n) with n <= {V.shape[-1]}; got {c.shape}")
    ext = extended_dtype(V, c)
    return _ext(c, ext) @ _ext(V[:, : c.shape[1]], ext).T


def extend_orthonormal_factor(
    psi: NDArray, R: NDArray, new_riesz: NDArray, inner_product: InnerProduct, *, rtol: float | None = None
) -> tuple[NDArray, NDArray]:
    """Extend the ``orthonormal`` estimator's factorization ``rho = Psi R`` by new columns.

    As :func:`certrb.estimators.orthonormal.extend_factor`, but with a rank
    tolerance scaled to the working precision: a fixed ``1e-14`` (right for
    double) drops directions that extended-precision Riesz representatives still
    resolve, and caps the estimator at that relative level.

    Parameters
    ----------
    psi : ndarray, shape (n_h, r)
        X-orthonormal columns (r may be 0).
    R : ndarray, shape (r, K)
        Upper-trapezoidal factor of the K representatives so far.
    new_riesz : ndarray, shape (n_h, k)
        Riesz representatives ``X^{-1} g`` of the new residual components.
    inner_product : InnerProduct
    rtol : float, optional
        Relative norm below which a representative counts as in the span of the
        previous ones (default: ``100 * eps`` of the working precision).

    Returns
    -------
    psi : ndarray, shape (n_h, r')
    R : ndarray, shape (r', K + k)

    """
    if new_riesz.ndim != 2 or new_riesz.shape[0] != inner_product.size or psi.shape[0] != inner_product.size:
        raise ShapeError(f"psi and new_riesz must have {inner_product.size} rows; got {psi.shape}, {new_riesz.shape}")
    dtype = np.result_type(psi, R, new_riesz)
    tol = working_rtol(dtype) if rtol is None else rtol
    psi_new, coeff, _ = qr_extend(psi.astype(dtype), new_riesz.astype(dtype), inner_product, rtol=tol)
    R_new = np.zeros((psi_new.shape[1], R.shape[1] + new_riesz.shape[1]), dtype=dtype)
    R_new[: R.shape[0], : R.shape[1]] = R
    R_new[:, R.shape[1]:] = coeff
    return psi_new, R_new


def best_approximation_error(inner_product: InnerProduct, V: NDArray, U: NDArray) -> NDArray:
    """``min_w ||u - V w||_X`` for the rows of U, computed in extended precision.

    The X-orthogonal projection is formed from the normal equations
    ``(V^H X V) w = V^H X u`` (no orthonormality of V assumed), solved with
    :func:`refined_solve`, and the remainder's X-norm is taken in extended
    precision: this is what the span of V can represent, whatever the reduced
    solve does.

    Parameters
    ----------
    inner_product : InnerProduct
    V : ndarray, shape (n_h, N)
    U : ndarray, shape (n_mu, n_h)

    Returns
    -------
    error : ndarray, shape (n_mu,), extended

    """
    if V.ndim != 2 or U.ndim != 2 or U.shape[1] != V.shape[0]:
        raise ShapeError(f"V (n_h, N) and U (n_mu, n_h) must share n_h; got {V.shape}, {U.shape}")
    ext = extended_dtype(V, U, inner_product.matrix.dtype)
    Ve, Ue = _ext(V, ext), _ext(U, ext)
    X = inner_product.matrix.astype(ext)
    XV = X @ Ve
    gram = herm(Ve) @ XV
    rhs = (herm(XV) @ Ue.T).T
    w = refined_solve(np.broadcast_to(gram, (U.shape[0], *gram.shape)), rhs, steps=2)
    E = Ue - w @ Ve.T
    return np.sqrt(np.maximum(np.einsum("mh,mh->m", E.conj(), (X @ E.T).T).real, 0))

"""Successive constraint method (SCM): stability lower bounds from small linear programs.

Huynh, Rozza, Sen and Patera (2007). The stability constant is written as the
minimum of an affine Hermitian form over Rayleigh quotients,

    lambda(mu) = min_v s(v; mu) / ||v||_X^2 = min_{y in Y} c(mu) . y,
    s(v; mu) = sum_j c_j(mu) v^H S_j v,   Y = {y(v)},   y_j(v) = v^H S_j v / v^H X v,

with real coefficients ``c_j(mu)`` and Hermitian ``S_j``. Offline, a box
``B = prod_j [l_j, u_j]`` containing ``Y`` comes from the extreme generalized
eigenvalues of each ``(S_j, X)``, and a greedy over a training set picks SCM points
``mu_k`` with their exact ``lambda(mu_k)`` and the ``y`` of a minimizing eigenvector.
Online, for each parameter (cost independent of n_h):

* lower bound: the LP ``min c(mu) . y`` over ``y in B`` subject to
  ``c(mu_k) . y >= lambda(mu_k)`` for the ``n_neighbors`` SCM points nearest to ``mu``
  (Euclidean distance after scaling each parameter axis to the training range).
  Its feasible set contains ``Y``, so its value is ``<= lambda(mu)``;
* upper bound: ``min_k c(mu) . y(mu_k)`` (Rayleigh quotients of actual vectors).

Kinds
-----
``"coercive"``
    ``S_q = (A_q + A_q^H) / 2`` and ``c = theta`` (real coefficients are required):
    ``lambda = alpha``, the coercivity constant ``min_v Re a(v, v; mu) / ||v||_X^2``.
``"inf-sup"``
    ``beta(mu)^2 = min_v ||A(mu) v||_{X'}^2 / ||v||_X^2`` is the smallest eigenvalue of
    ``T(mu) = A(mu)^H X^{-1} A(mu)`` w.r.t. ``X``. With ``B_qq' = A_q^H X^{-1} A_q'``
    (``B_q'q = B_qq'^H``), ``z_qq' = v^H B_qq' v`` and ``g_qq' = conj(theta_q) theta_q'``,

        v^H T v = sum_q |theta_q|^2 z_qq + sum_{q<q'} 2 Re(g_qq' z_qq')
                = sum_q |theta_q|^2 z_qq
                  + sum_{q<q'} [2 Re(g_qq') Re(z_qq') + 2 Im(g_qq') (-Im(z_qq'))],

    and ``Re z_qq'``, ``-Im z_qq'`` are the Rayleigh quotients of the Hermitian
    matrices ``(B_qq' + B_qq'^H) / 2`` and ``i (B_qq' - B_qq'^H) / 2``. This gives
    ``Q (Q + 1) / 2`` terms when every ``g_qq'`` is real on the training set (real
    ``theta``) and ``Q^2`` terms otherwise (see :func:`infsup_coefficients`). The
    bound returned is ``sqrt(max(LP value, 0))``.

Rigor
-----
* The LP value is not taken from the solver: with HiGHS' dual multipliers ``lam``
  clipped to ``>= 0`` and ``r = c - G^T lam``, every feasible ``y`` satisfies
  ``c . y >= lam . b + sum_j min(r_j l_j, r_j u_j)`` (weak duality). This
  certificate, minus a rounding allowance, is returned, so solver tolerances
  cannot make the bound exceed the exact constant.
* Eigenvalue data enter as safe values: a computed bound is moved outwards by
  ``margin * scale`` (``scale`` bounds the spectral radius) and accepted only when
  ``S - s X`` (lower bounds) or ``s X - S`` (upper bounds) is verified positive
  definite; otherwise the move grows 16-fold and the test is repeated (then a few
  bisection steps tighten the verified value). The test is
  a symmetric sparse LU without row pivoting (Sylvester's law of inertia) for the
  coercive kind, a dense Cholesky factorization for the dense inf-sup path, and
  the sparse LU of ``[[X, A_q], [A_q^H, s X]]`` (Schur complement
  ``s X - A_q^H X^{-1} A_q``) for the upper box bounds of the sparse inf-sup path.
  On the sparse inf-sup path ``beta(mu_k)^2`` is certified by the dense test up to
  2000 unknowns; above, it is only moved by the margin (no sparse inertia test exists
  for an indefinite matrix in SciPy) and the SCM is marked not certified;
  where ARPACK does not converge there, the certified ``alpha(mu_k)^2 <= beta(mu_k)^2``
  of the Hermitian part is used instead, if positive (else StabilityError).
  The verifications are floating-point factorizations (backward stable, not
  interval arithmetic); the dense inf-sup path verifies the computed congruence.
* The training set should cover the parameter domain, corners included: the LP is
  valid anywhere, but far from every SCM point it degrades towards the box bound.
* The sparse inf-sup box uses ``[0, u_q]`` for the diagonal terms and the
  Cauchy-Schwarz bound ``|z_qq'| <= sqrt(u_q u_q')`` for the others.

Cost
----
Eigenproblems are solved densely (``scipy.linalg.eigh``; for the inf-sup kind SVD
and ``eigvalsh`` after the congruence ``L^{-1} A_q L^{-H}`` with ``X = L L^H``) when
``n_h <= dense_limit``, by default 1000 for the coercive kind and 400 for the
inf-sup kind, whose dense path holds ``Q`` dense n_h x n_h matrices and costs
``O(Q^2 n_h^3)``. Otherwise ARPACK (``eigsh``) is used: regular mode with a small
budget for the box estimates (diagonal quotients when it does not converge),
shift-invert at 0 for the constants (LOBPCG if ARPACK does not converge; see
Rigor for the inf-sup kind). The inf-sup operator ``A^H X^{-1} A`` is a LinearOperator through the
sparse LU of ``X``, inverted through the sparse LU of ``A(mu)``; the inf-sup kind is
meant for moderate n_h (up to a few thousand unknowns). Each online evaluation
solves one LP with ``min(n_neighbors, K)`` constraints and ``Q_s`` unknowns (1-3 ms,
mostly :func:`scipy.optimize.linprog` overhead).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError, StabilityError
from ..online.estimators.roundoff import gamma
from ..online.scm import (
    KINDS,
    SCMBound,
    check_options,
    coercive_theta,
    infsup_coefficients,
    infsup_theta,
    lp_bound,
    nearest,
)
from .affine import AffineOperator
from .certify import Term, certify_psd, hermitian_sum
from .innerproduct import InnerProduct
from .stability import dominance_defect

__all__ = ["KINDS", "SCM", "infsup_coefficients"]

logger = logging.getLogger(__name__)

_DENSE_LIMIT = {"coercive": 1000, "inf-sup": 400}
_TRIES = 14
_GROWTH = 16.0
_EPS = float(np.finfo(float).eps)
_BISECT = 8
_BOX_MAXITER = 10  # ARPACK restarts for box estimates (certification fixes their accuracy)
_MAXITER = 30  # ARPACK restarts for the smallest eigenpair before falling back to LOBPCG
_INFSUP_MAXITER = 300  # ARPACK restarts for beta^2 on the sparse inf-sup path (its fallback is weaker)
_CERTIFY_DENSE = 2000  # the sparse inf-sup path certifies beta^2 densely up to this many unknowns
_LOBPCG_MAXITER = 200

PDTest = Callable[[float, int], bool]


# --- coefficients ---------------------------------------------------------------------------


def _gram_to_y(G: NDArray, imag_terms: bool) -> NDArray[np.float64]:
    """Rayleigh-quotient vector of the inf-sup terms from ``G[q, q'] = z_qq'`` (Q, Q)."""
    iu = np.triu_indices(G.shape[0], 1)
    parts = [G.diagonal().real, G[iu].real] + ([-G[iu].imag] if imag_terms else [])
    return np.concatenate(parts).astype(np.float64)


# --- certified eigenvalue bounds ------------------------------------------------------------


def _certify(value: float, side: int, step: float, test: PDTest | None) -> float:
    """Move ``value`` outwards (``side`` -1: down, +1: up) until ``test(s, side)`` verifies it.

    The move starts at ``step`` and grows 16-fold per failure; after a failure the
    verified value is tightened by bisection towards the last failed one.
    """
    if test is None:
        return float(value + side * step)
    failed, tries = value, 0
    for tries in range(1, _TRIES + 1):  # noqa: B007 (the count is used below)
        s = value + side * step
        if test(s, side):
            break
        failed, step = s, step * _GROWTH
    else:
        raise StabilityError(f"could not certify an eigenvalue bound near {value:.6g}")
    for _ in range(_BISECT if tries > 1 else 0):
        mid = 0.5 * (failed + s)
        if test(mid, side):
            s = mid
        else:
            failed = mid
    return float(s)


def _hermitian_part(terms: Sequence[sp.spmatrix], c: NDArray) -> list[Term]:
    """Hermitian part of ``sum_q c_q A_q`` as certificate terms: real coefficients, stored ``A_q`` or ``i A_q``."""
    c = np.asarray(c)
    half = [(0.5 * float(t), a) for t, a in zip(c.real, terms, strict=True) if t]
    if np.iscomplexobj(c):
        half += [(0.5 * float(t), 1j * a) for t, a in zip(c.imag, terms, strict=True) if t]
    return half + [(t, a.conj().T) for t, a in half]


def _sparse_pd_test(terms: list[Term], X: sp.spmatrix) -> PDTest:
    """Certified PSD test of ``side * (s X - S)``, ``S = sum_k c_k M_k`` of stored matrices."""
    return lambda s, side: bool(certify_psd(*hermitian_sum([(-side * c, m) for c, m in terms] + [(side * s, X)])))


def _block_pd_test(A: sp.spmatrix, X: sp.spmatrix) -> PDTest:
    """Certified PSD test of ``[[X, A], [A^H, s X]]``, i.e. of ``s X - A^H X^{-1} A`` (upper bounds only)."""
    n = X.shape[0]
    top, zero = sp.bmat([[X, None], [None, sp.csr_matrix((n, n))]]), sp.csr_matrix((n, n))
    bottom, off = sp.bmat([[zero, None], [None, X]]), sp.bmat([[zero, A], [A.conj().T, zero]])
    return lambda s, side: side > 0 and bool(certify_psd(*hermitian_sum([(1.0, top), (1.0, off), (s, bottom)])))


def _normal_pd_test(terms: NDArray, theta_row: NDArray, X: NDArray) -> PDTest:
    """Certified lower-bound test of ``A^H X^{-1} A - s X`` for ``A = sum_q theta_q A_q`` (dense, side -1).

    For any ``G``, ``A^H X^{-1} A >= G^H A + A^H G - G^H X G`` (the difference is
    ``(A - X G)^H X^{-1} (A - X G)``); with ``G ~ X^{-1} A`` the right-hand side is formed
    with an entrywise error bound and certified by :func:`certify_psd`.
    """
    A = np.tensordot(theta_row, terms, axes=1)
    G = sla.solve(X, A, assume_a="pos")
    n = X.shape[0]
    Ga, Xa = np.abs(G), np.abs(X)
    g = gamma(4 * n + 16)
    P, N = G.conj().T @ A, G.conj().T @ (X @ G)
    err_A = g * np.tensordot(np.abs(theta_row), np.abs(terms), axes=1)
    err_P = Ga.T @ (g * np.abs(A) + err_A)
    err_N = g * (Ga.T @ (Xa @ Ga))

    def test(s: float, side: int) -> bool:
        if side > 0:
            return False
        M = P + P.conj().T - N - s * X
        err = err_P + err_P.T + err_N + g * (2 * np.abs(P) + np.abs(N) + s * Xa)
        return bool(certify_psd(M, err))

    return test


def _safe_interval(lo: float, hi: float, margin: float, test: PDTest | None) -> tuple[float, float]:
    step = margin * (max(abs(lo), abs(hi)) or 1.0)
    return _certify(lo, -1, step, test), _certify(hi, 1, step, test)


def _riesz_operator(ip: InnerProduct) -> spla.LinearOperator:
    return spla.LinearOperator(ip.matrix.shape, matvec=ip.riesz, dtype=ip.matrix.dtype)


def _start(n: int) -> NDArray[np.float64]:
    """Deterministic ARPACK starting vector (no global RNG)."""
    return np.random.default_rng(0).standard_normal(n)


def _combine(c: NDArray, mats: Sequence[sp.spmatrix]) -> sp.csc_matrix:
    out = mats[0] * c[0]
    for t, m in zip(c[1:], mats[1:], strict=True):
        out = out + t * m
    return sp.csc_matrix(out)


def _lu_solve(lu: spla.SuperLU, b: NDArray, trans: str = "N") -> NDArray:
    if np.iscomplexobj(b) and lu.U.dtype.kind != "c":
        return lu.solve(np.ascontiguousarray(b.real), trans=trans) + 1j * lu.solve(
            np.ascontiguousarray(b.imag), trans=trans)
    return lu.solve(b.astype(np.result_type(b.dtype, lu.U.dtype)), trans=trans)


# --- truth eigenvalue problems --------------------------------------------------------------


class _Coercive:
    """Coercive kind: ``S_q = (A_q + A_q^H) / 2`` against ``X``, dense or ARPACK."""

    imag_terms = False
    certified = True

    def __init__(self, operator: AffineOperator, ip: InnerProduct, dense: bool, margin: float) -> None:
        self.terms = [sp.csr_matrix(a) for a in operator.terms]
        self.H = [sp.csc_matrix((a + a.conj().T) * 0.5) for a in operator.terms]
        self.X = sp.csc_matrix(ip.matrix)
        self.ip, self.dense, self.margin = ip, dense, margin
        self.Xd = self.X.toarray() if dense else None

    def scm_theta(self, theta: NDArray) -> NDArray[np.float64]:
        return coercive_theta(theta)

    def box(self) -> NDArray[np.float64]:
        """Certified ``[l_q, u_q]`` per term; a diagonally dominant term's lower end is at least 0 (Gershgorin)."""
        rows = []
        for q, H in enumerate(self.H):
            if H.count_nonzero() == 0:  # an exactly skew-Hermitian term (e.g. advection): y_q(v) = 0 for every v
                rows.append((0.0, 0.0))
                continue
            if self.dense:
                w = sla.eigh(H.toarray(), self.Xd, eigvals_only=True)
                lo, hi = float(w[0]), float(w[-1])
            else:
                lo, hi = _sparse_extremes(H, self.X, self.ip)
            test = _sparse_pd_test(_hermitian_part(self.terms, np.eye(len(self.terms))[q]), self.X)
            step = self.margin * (max(abs(lo), abs(hi)) or 1.0)
            dominant = not dominance_defect(self.terms[q]).any()  # S_q >= 0 proved exactly
            try:
                low = _certify(lo, -1, step, test)
            except StabilityError:
                if not dominant:
                    raise
                low = 0.0
            rows.append((max(low, 0.0) if dominant else low, _certify(hi, 1, step, test)))
        self.bounds = np.array(rows)
        return self.bounds

    def solve(self, theta_row: NDArray, scale: float) -> tuple[float, float, NDArray[np.float64]]:
        """Exact constant, its certified lower value, and the minimizer's ``y``.

        The certified value is the larger of the verified eigenvalue bound and the box bound
        ``sum_q min(c_q l_q, c_q u_q)``, which holds for every ``mu`` (the verification fails
        where ``A(mu) - s X`` is too ill-conditioned to be factored with a proof).
        """
        c = self.scm_theta(theta_row[None])[0]
        H = _combine(c, self.H)
        if self.dense:
            w, V = sla.eigh(H.toarray(), self.Xd, subset_by_index=[0, 0])
            lam, v = float(w[0]), V[:, 0]
        else:
            lam, v, _ = _smallest_pair(H, self.X, _inverse(H))
        products = np.minimum(c * self.bounds[:, 0], c * self.bounds[:, 1])
        floor = float(products.sum() - gamma(c.size + 2) * np.abs(products).sum())
        try:
            safe = _certify(lam, -1, self.margin * scale, _sparse_pd_test(_hermitian_part(self.terms, c), self.X))
        except StabilityError:
            if not floor > 0:
                raise
            safe = floor
        y = np.array([np.vdot(v, h @ v).real for h in self.H]) / np.vdot(v, self.X @ v).real
        return lam, max(safe, floor), y


def _sparse_extremes(H: sp.spmatrix, X: sp.spmatrix, ip: InnerProduct) -> tuple[float, float]:
    """Estimates of the extreme eigenvalues of ``(H, X)``: Ritz values and diagonal quotients.

    Both are Rayleigh quotients, so they lie inside the spectrum; certification moves them out.
    ARPACK gets a small budget: clustered ends converge slowly and need no accuracy here.
    """
    quot = H.diagonal().real / X.diagonal().real
    lo, hi = float(quot.min()), float(quot.max())
    minv, v0 = _riesz_operator(ip), _start(H.shape[0])
    for which in ("SA", "LA"):
        try:
            w = spla.eigsh(H, k=1, M=X, Minv=minv, which=which, v0=v0, maxiter=_BOX_MAXITER, tol=1e-8,
                           return_eigenvectors=False)
        except spla.ArpackNoConvergence as exc:
            w = np.asarray(exc.eigenvalues)
        if w.size:
            lo, hi = min(lo, float(np.min(w.real))), max(hi, float(np.max(w.real)))
    return lo, hi


def _smallest_pair(A: Any, X: sp.spmatrix, opinv: spla.LinearOperator | None,
                   maxiter: int = _MAXITER) -> tuple[float, NDArray, bool]:
    """Smallest eigenpair of ``(A, X)`` (``A`` Hermitian positive semi-definite in the usual case).

    ARPACK in shift-invert mode at 0 through ``opinv`` (``A^{-1}``); if there is no
    ``opinv`` or ARPACK does not converge (clustered bottom), LOBPCG with a bounded
    number of iterations, whose answer is a Rayleigh quotient (certification follows).
    Returns the eigenvalue, the eigenvector and whether ARPACK converged.
    """
    n = A.shape[0]
    v0 = _start(n).astype(np.result_type(A.dtype, X.dtype))
    if opinv is not None:
        try:
            w, V = spla.eigsh(A, k=1, M=X, sigma=0.0, OPinv=opinv, which="LM", v0=v0, maxiter=maxiter,
                             tol=1e-10)
            return float(w[0]), V[:, 0], True
        except spla.ArpackNoConvergence:
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LOBPCG warns when it stops before its tolerance
        w, V = spla.lobpcg(A, v0[:, None], B=X, M=opinv, largest=False, maxiter=_LOBPCG_MAXITER, tol=1e-10)
    return float(np.real(w[0])), V[:, 0], False


def _inverse(A: sp.spmatrix) -> spla.LinearOperator | None:
    """``A^{-1}`` through a sparse LU, or None if ``A`` is singular."""
    try:
        lu = spla.splu(sp.csc_matrix(A))
    except RuntimeError:
        return None
    return spla.LinearOperator(A.shape, matvec=lambda v: _lu_solve(lu, v), dtype=A.dtype)


def _congruence(L: NDArray, A: NDArray) -> NDArray:
    """``L^{-1} A L^{-H}`` for a lower triangular ``L``."""
    B = sla.solve_triangular(L, A, lower=True)
    return sla.solve_triangular(L, B.conj().T, lower=True).conj().T


class _InfSupDense:
    """Inf-sup kind, dense: ``Ahat_q = L^{-1} A_q L^{-H}`` with ``X = L L^H`` for the estimates.

    Certification uses the stored ``A_q`` and ``X``: the box as in the sparse path, the
    constants by :func:`_normal_pd_test`.
    """

    certified = True

    def __init__(self, operator: AffineOperator, ip: InnerProduct, margin: float, imag_terms: bool) -> None:
        self.Xd = ip.matrix.toarray()
        L = sla.cholesky(self.Xd, lower=True)
        self.terms = [sp.csr_matrix(a) for a in operator.terms]
        self.dense_terms = np.stack([a.toarray() for a in operator.terms])
        self.A = np.stack([_congruence(L, a) for a in self.dense_terms])
        self.X = sp.csr_matrix(ip.matrix)
        self.margin, self.imag_terms = margin, imag_terms

    def scm_theta(self, theta: NDArray) -> NDArray[np.float64]:
        return infsup_theta(theta, self.imag_terms)

    def box(self) -> NDArray[np.float64]:
        """Diagonal terms as on the sparse path; the cross terms' ranges certified by :func:`_cross_pd_test`."""
        top = np.array([float(sla.svdvals(a)[0]) ** 2 for a in self.A])
        box = _infsup_box(top, self.terms, self.X, self.margin, self.imag_terms)
        G, slack = self._solves(top)
        q, iu = len(self.terms), np.triu_indices(len(self.terms), 1)
        for j in range(q, box.shape[0]):
            p, imag = (j - q) % iu[0].size, j - q >= iu[0].size
            a, b = iu[0][p], iu[1][p]
            C = self.A[a].conj().T @ self.A[b]
            w = sla.eigvalsh(0.5j * (C - C.conj().T) if imag else (C + C.conj().T) / 2)
            test = _cross_pd_test(G[a], G[b], self.dense_terms[a], self.dense_terms[b], self.Xd, imag,
                                  float(np.sqrt(slack[a] * slack[b])))
            lo, hi = _safe_interval(float(w[0]), float(w[-1]), self.margin, test)
            box[j] = [max(lo, box[j, 0]), min(hi, box[j, 1])]
        return box

    def _solves(self, top: NDArray) -> tuple[NDArray, NDArray[np.float64]]:
        """``G_q ~ X^{-1} A_q`` and certified ``rho_q >= lambda_max(R_q^H X^{-1} R_q, X)``, ``R_q = A_q - X G_q``."""
        G = np.stack([sla.solve(self.Xd, a, assume_a="pos") for a in self.dense_terms])
        n = self.Xd.shape[0]
        g, Xa, zero = gamma(4 * n + 16), np.abs(self.Xd), np.zeros_like(self.Xd)
        rho = np.empty(len(G))
        for q, (a, gq) in enumerate(zip(self.dense_terms, G, strict=True)):
            R = a - self.Xd @ gq
            err = g * (np.abs(a) + Xa @ np.abs(gq))

            def test(s: float, side: int, R: NDArray = R, err: NDArray = err) -> bool:
                M = np.block([[self.Xd, R], [R.conj().T, s * self.Xd]])
                E = np.block([[zero, err], [err.T, 4 * _EPS * s * Xa]])
                return side > 0 and bool(certify_psd(M, E))

            start = _EPS * max(float(top[q]), _EPS)
            rho[q] = _certify(start, 1, start, test)
        return G, rho

    def solve(self, theta_row: NDArray, scale: float) -> tuple[float, float, NDArray[np.float64]]:
        """Computed ``beta^2``, its certified lower value, and the minimizer's ``y``."""
        A = np.tensordot(theta_row, self.A, axes=1)
        _, s, Vh = sla.svd(A)
        lam, w = float(s[-1]) ** 2, Vh[-1].conj()
        safe = _certify(lam, -1, self.margin * scale, _normal_pd_test(self.dense_terms, theta_row, self.Xd))
        W = self.A @ w
        return lam, safe, _gram_to_y(W.conj() @ W.T, self.imag_terms)


def _cross_pd_test(Ga: NDArray, Gb: NDArray, Aa: NDArray, Ab: NDArray, X: NDArray, imag: bool,
                   slack: float) -> PDTest:
    """Certified test of ``side * (s X - S)`` for the cross term ``S`` of ``A_a^H X^{-1} A_b``.

    ``S`` is its Hermitian part (``imag``: ``i (C - C^H) / 2``). With ``P = G_a^H A_b + A_a^H G_b
    - G_a^H X G_b``, ``A_a^H X^{-1} A_b = P + R_a^H X^{-1} R_b`` (``R = A - X G``), whose last
    term moves the quadratic form by at most ``slack ||v||_X^2``.
    """
    n = X.shape[0]
    g, Xa = gamma(4 * n + 16), np.abs(X)
    P = Ga.conj().T @ Ab + Aa.conj().T @ Gb - Ga.conj().T @ (X @ Gb)
    E = g * (np.abs(Ga).T @ np.abs(Ab) + np.abs(Aa).T @ np.abs(Gb) + np.abs(Ga).T @ (Xa @ np.abs(Gb)))
    H = 0.5j * (P - P.conj().T) if imag else (P + P.conj().T) / 2
    err = (E + E.T) / 2 * (1 + 4 * _EPS) + g * np.abs(H)

    def test(s: float, side: int) -> bool:
        shifted = s - side * slack
        return bool(certify_psd(side * (shifted * X - H), err + g * abs(shifted) * Xa))

    return test


def _infsup_box(top: NDArray, terms: list[sp.csr_matrix], X: sp.spmatrix, margin: float,
                imag_terms: bool) -> NDArray[np.float64]:
    """Diagonal terms in ``[0, u_q]`` (``u_q`` certified from the estimate ``top[q]``), the others by Cauchy-Schwarz."""
    u = np.array([_certify(max(t, 0.0), 1, margin * (max(t, 0.0) or 1.0), _block_pd_test(a, X))
                  for t, a in zip(top, terms, strict=True)])
    iu = np.triu_indices(u.size, 1)
    r = np.sqrt(u[iu[0]] * u[iu[1]]) * (1 + 4 * _EPS)
    hi = np.concatenate([u, r] + ([r] if imag_terms else []))
    lo = np.concatenate([np.zeros_like(u), -r] + ([-r] if imag_terms else []))
    return np.column_stack([lo, hi])


class _InfSupSparse:
    """Inf-sup kind through ARPACK with LinearOperators (sparse LU of X and of A(mu))."""

    certified = True  # until a constant is only lowered by the margin

    def __init__(self, operator: AffineOperator, ip: InnerProduct, margin: float, imag_terms: bool) -> None:
        self.terms = [sp.csc_matrix(a) for a in operator.terms]
        self.X = sp.csc_matrix(ip.matrix)
        self.ip, self.margin, self.imag_terms = ip, margin, imag_terms
        self._dense: NDArray | None = None

    def scm_theta(self, theta: NDArray) -> NDArray[np.float64]:
        return infsup_theta(theta, self.imag_terms)

    def _normal(self, A: sp.spmatrix) -> spla.LinearOperator:
        dtype = np.result_type(A.dtype, self.X.dtype)
        return spla.LinearOperator(A.shape, matvec=lambda v: A.conj().T @ self.ip.riesz(A @ v), dtype=dtype)

    def box(self) -> NDArray[np.float64]:
        """Diagonal terms in ``[0, u_q]`` (certified), the others by Cauchy-Schwarz."""
        top = np.empty(len(self.terms))
        for q, a in enumerate(self.terms):
            try:
                w = spla.eigsh(self._normal(a), k=1, M=self.X, Minv=_riesz_operator(self.ip), which="LA",
                               v0=_start(a.shape[0]), maxiter=_BOX_MAXITER, tol=1e-8, return_eigenvectors=False)
            except spla.ArpackNoConvergence as exc:
                w = np.asarray(exc.eigenvalues)
            top[q] = float(np.max(w.real)) if w.size else 0.0
        return _infsup_box(top, self.terms, self.X, self.margin, self.imag_terms)

    def solve(self, theta_row: NDArray, scale: float) -> tuple[float, float, NDArray[np.float64]]:
        """``beta^2`` by shift-invert at 0 (``T^{-1} = A^{-1} X A^{-H}``), certified up to ``_CERTIFY_DENSE`` unknowns.

        Up to ``_CERTIFY_DENSE`` unknowns the value is certified by the dense test of the
        dense path (:func:`_normal_pd_test`, ``O(n_h^3)`` per SCM point); above, it is only
        lowered by the margin and the SCM is marked not certified.

        If ARPACK does not converge (clustered smallest singular values), the LOBPCG
        estimate is returned with the certified lower value ``alpha(mu)^2`` (``beta >= alpha``),
        provided the Hermitian part of ``A(mu)`` is certified positive definite.
        """
        A = _combine(theta_row, self.terms)
        try:
            lu = spla.splu(A)
        except RuntimeError as exc:
            raise StabilityError(f"A(mu) is singular: {exc}") from exc
        X = self.X
        opinv = spla.LinearOperator(A.shape, matvec=lambda v: _lu_solve(lu, X @ _lu_solve(lu, v, "H")),
                                    dtype=A.dtype)
        lam, v, converged = _smallest_pair(self._normal(A), X, opinv, _INFSUP_MAXITER)
        if converged and A.shape[0] <= _CERTIFY_DENSE:  # the dense test of A^H X^{-1} A - s X >= 0
            safe = _certify(lam, -1, self.margin * scale, _normal_pd_test(self._dense_terms(), theta_row,
                                                                           self.X.toarray()))
        elif converged:  # not certified: no sparse test of A^H X^{-1} A - s X >= 0
            self.certified = False
            safe = lam - self.margin * scale
        else:
            safe = self._coercivity_squared(A, theta_row, scale)
        AV = np.column_stack([a @ v for a in self.terms])
        G = AV.conj().T @ self.ip.riesz(AV) / np.vdot(v, X @ v).real
        return lam, safe, _gram_to_y(G, self.imag_terms)

    def _dense_terms(self) -> NDArray:
        """The terms as one dense array (Q, n_h, n_h), formed once (certification up to ``_CERTIFY_DENSE``)."""
        if self._dense is None:
            self._dense = np.stack([a.toarray() for a in self.terms])
        return self._dense

    def _coercivity_squared(self, A: sp.spmatrix, theta_row: NDArray, scale: float) -> float:
        H = sp.csc_matrix((A + A.conj().T) * 0.5)
        alpha = _certify(_smallest_pair(H, self.X, _inverse(H))[0], -1, self.margin * np.sqrt(scale),
                         _sparse_pd_test(_hermitian_part(self.terms, theta_row), self.X))
        if not alpha > 0:
            raise StabilityError("ARPACK did not converge for beta(mu)^2 (clustered smallest singular values) and "
                                 "A(mu) is not coercive, so no certified fallback exists: raise dense_limit")
        return alpha * alpha * (1 - 4 * _EPS)


_Truth = _Coercive | _InfSupDense | _InfSupSparse


def _truth(kind: str, operator: AffineOperator, ip: InnerProduct, theta: NDArray, margin: float,
           dense: bool) -> _Truth:
    if kind == "coercive":
        coercive_theta(theta)
        return _Coercive(operator, ip, dense, margin)
    q = theta.shape[1]
    imag_terms = bool(infsup_coefficients(theta, True)[:, q * (q + 1) // 2:].any())
    cls = _InfSupDense if dense else _InfSupSparse
    return cls(operator, ip, margin, imag_terms)


# --- linear programs ------------------------------------------------------------------------


@dataclass
class _TrainState:
    """Per training point: certified LP value, LP minimizer, and the neighbour set used."""

    lower: NDArray[np.float64]
    y: NDArray[np.float64]
    neighbors: list[frozenset[int]]


def _update_lower(state: _TrainState, train: NDArray, scaled: NDArray, chosen: list[int], coef: NDArray,
                  rhs: NDArray, box: NDArray, k: int) -> None:
    """Refresh the LP bounds over the training set after SCM point ``len(chosen) - 1`` was added.

    An LP is skipped when its constraint set is unchanged, or when it only gained the new
    constraint and its minimizer satisfies it (the old certificate stays valid).
    """
    G, new = coef[chosen], len(chosen) - 1
    near = nearest(scaled, scaled[chosen], k)
    for j in range(train.shape[0]):
        cur = frozenset(near[j].tolist())
        old = state.neighbors[j]
        if cur == old or (cur == old | {new} and G[new] @ state.y[j] >= rhs[new]):
            state.neighbors[j] = cur
            continue
        idx = np.array(sorted(cur))
        state.lower[j], state.y[j] = lp_bound(coef[j], G[idx], rhs[idx], box, train[j])
        state.neighbors[j] = cur


def _greedy(truth: _Truth, train: NDArray, theta: NDArray, coef: NDArray, box: NDArray, scaled: NDArray, *,
            tol: float, max_iter: int, n_neighbors: int) -> dict[str, Any]:
    """SCM greedy: add the training point of largest relative gap ``(UB - LB) / UB``."""
    state = _TrainState(np.full(train.shape[0], -np.inf), np.zeros_like(coef), [frozenset()] * train.shape[0])
    chosen: list[int] = []
    values, rhs, ys, history = [], [], [], []
    size = np.abs(box).max(axis=1)
    i = 0
    while True:
        lam, safe, y = truth.solve(theta[i], float(np.abs(coef[i]) @ size))
        if not safe > 0:
            raise StabilityError(f"the stability constant is not positive at train[{i}] = {train[i].tolist()}: "
                                 f"{lam:.6g} (certified lower value {safe:.6g})")
        chosen.append(i)
        values.append(lam)
        rhs.append(safe)
        ys.append(y)
        upper = (coef @ np.array(ys).T).min(axis=1)
        if not (upper > 0).all():
            j = int(np.argmin(upper))
            raise StabilityError(f"the stability constant is not positive at train[{j}] = {train[j].tolist()}: "
                                 f"a Rayleigh quotient gives {upper[j]:.6g}")
        _update_lower(state, train, scaled, chosen, coef, np.array(rhs), box, n_neighbors)
        gap = (upper - state.lower) / upper
        history.append(float(gap.max()))
        logger.debug("SCM iteration %d: max relative gap %.4g", len(chosen), history[-1])
        i = int(np.argmax(gap))
        if history[-1] <= tol or len(chosen) >= max_iter or i in chosen:
            break
    return {"points": train[chosen], "values": np.array(values), "lower_values": np.array(rhs),
            "y": np.array(ys), "history": np.array(history)}


# --- the public object ----------------------------------------------------------------------


def _check_train(train: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(train)
    if arr.dtype.kind not in "iuf" or arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"train must be a real array of shape (n_train, P), n_train >= 1; got "
                         f"{arr.dtype} array of shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ShapeError("train contains NaN or infinite values")
    return arr


def _as_inner_product(inner_product: Any, n: int) -> InnerProduct:
    ip = inner_product if isinstance(inner_product, InnerProduct) else InnerProduct(inner_product)
    if ip.size != n:
        raise ShapeError(f"inner_product has size {ip.size}; the operator has size {n}")
    return ip


class SCM(SCMBound):
    """Successive constraint method: rigorous stability lower bounds, usable as a Problem's ``stability``.

    The offline stage runs in the constructor (box, SCM greedy); the object is an
    :class:`~certrb.online.scm.SCMBound` and keeps only small arrays (no n_h-sized
    data) and the operator's coefficient function. See the module notes for the
    method and its rigor.

    Parameters
    ----------
    operator : AffineOperator
        ``A(mu) = sum_q theta_q(mu) A_q``.
    inner_product : sparse matrix or InnerProduct, shape (n_h, n_h)
        The Gram matrix ``X``.
    train : array_like, shape (n_train, P)
        Training parameters; the first one is the first SCM point.
    kind : {"coercive", "inf-sup"}
        ``"coercive"``: bound ``alpha(mu) = min_v Re a(v, v; mu) / ||v||_X^2`` (real
        ``theta`` required). ``"inf-sup"``: bound ``beta(mu) = min_v ||A(mu) v||_{X'} / ||v||_X``.
    tol : float, default 0.75
        Stop when ``max_train (UB - LB) / UB <= tol`` (for the inf-sup kind on ``beta^2``).
    max_iter : int, default 50
        Maximum number of SCM points.
    n_neighbors : int, default 20
        Number of nearest SCM points whose constraints enter each LP.
    margin : float, default 1e-9
        Relative safety margin of the eigenvalue data (multiplied by a bound of the
        spectral radius), before the positive-definiteness verification.
    dense_limit : int, optional
        Dense eigensolvers when ``n_h <= dense_limit``, ARPACK otherwise; default
        1000 for the coercive kind and 400 for the inf-sup kind.

    Raises
    ------
    StabilityError
        Complex coefficients for the coercive kind, a non-positive constant on the
        training set, or an eigenvalue bound that cannot be certified.

    Examples
    --------
    >>> from certrb.problems import diffusion1d
    >>> p = diffusion1d(30)
    >>> scm = SCM(p.operator, p.inner_product, p.parameter_space.sample(50, rng=0))
    >>> lower, upper = scm([[5.0, 100.0]]), scm.upper_bound([[5.0, 100.0]])
    >>> bool(0 < lower[0] <= upper[0])
    True

    """

    def __init__(self, operator: AffineOperator, inner_product: sp.spmatrix | InnerProduct, train: ArrayLike, *,
                 kind: str = "coercive", tol: float = 0.75, max_iter: int = 50, n_neighbors: int = 20,
                 margin: float = 1e-9, dense_limit: int | None = None) -> None:
        if not isinstance(operator, AffineOperator):
            raise TypeError(f"operator must be an AffineOperator; got {type(operator).__name__}")
        check_options(kind, tol, max_iter, n_neighbors, margin)
        ip = _as_inner_product(inner_product, operator.size)
        mus = _check_train(train)
        theta = operator.theta(mus)
        limit = _DENSE_LIMIT[kind] if dense_limit is None else int(dense_limit)
        truth = _truth(kind, operator, ip, theta, margin, operator.size <= max(limit, 2))
        coef = truth.scm_theta(theta)
        box = truth.box()
        lo, width = mus.min(axis=0), np.ptp(mus, axis=0)
        scaling = np.stack([lo, np.where(width > 0, width, 1.0)])
        found = _greedy(truth, mus, theta, coef, box, (mus - scaling[0]) / scaling[1], tol=tol,
                        max_iter=int(max_iter), n_neighbors=int(n_neighbors))
        self._assign(coefficients=operator.coefficients, kind=kind, n_terms=operator.n_terms, certified=truth.certified,
                     imag_terms=truth.imag_terms, box=box, n_neighbors=int(n_neighbors), scaling=scaling, **found)


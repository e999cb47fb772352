"""Stability (coercivity) lower bounds, offline: the reference constant of the min-theta bound."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from ..errors import StabilityError
from ..online.estimators.roundoff import gamma
from ..online.stability import MinThetaBound, real_nonnegative
from .affine import AffineOperator
from .certify import Term, certify_psd, hermitian_sum

__all__ = ["MinTheta", "certified_lower", "coercivity_constant", "dominance_defect", "term_shift"]

_SMALL = 200  # dense eigensolver for the estimate up to this size
_STEPS = (1e-8, 1e-6, 1e-4, 1e-2, 0.1, 0.5, 0.9, 0.99)
_FINE = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)
_BLOCK = 4
_TERM_SHIFTS = (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2)
_ITERATIONS = 12
_COARSE = 5

StabilityCallable = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def coercivity_constant(matrix: sp.spmatrix, inner_product: sp.spmatrix, *,
                        terms: Sequence[Term] | None = None) -> float:
    """Certified lower bound of the coercivity constant ``min_v Re(v^H A v) / (v^H X v)``.

    An estimate of the smallest generalized eigenvalue of the Hermitian part ``H`` of
    ``A`` with respect to ``X`` (dense for small sizes, else LOBPCG preconditioned by a
    sparse LU of ``H - sigma X``) is lowered until :func:`certrb.offline.certify.certify_psd`
    proves ``H - s X >= 0`` for the stored ``A`` and ``X`` (floating-point error included);
    unless the first step verified, the estimate is refined once by inverse iteration shifted
    to the certified value (fast even on a clustered spectrum) and certified again.
    The value returned is such a certified ``s <= alpha``.

    Parameters
    ----------
    matrix : sparse matrix, shape (n_h, n_h)
    inner_product : sparse matrix, shape (n_h, n_h), Hermitian positive definite
    terms : sequence of (float, sparse matrix (n_h, n_h)), optional
        Real coefficients and stored matrices whose exact sum is ``A`` (an affine operator at
        one parameter); the certificate is then for this exact sum, and ``matrix`` (its
        rounded assembly) only serves the estimate.

    Returns
    -------
    alpha_LB : float
        Certified, ``0 < alpha_LB <= alpha``.

    Raises
    ------
    StabilityError
        If no positive lower bound can be certified (``A`` not coercive, or numerically singular).

    """
    A = sp.csr_matrix(matrix)
    X = sp.csr_matrix(inner_product)
    if terms is None:
        terms = [(1.0, A)]
    terms = [(0.5 * c, m) for c, m in terms] + [(0.5 * c, sp.csr_matrix(m).conj().T) for c, m in terms]
    H = sp.csr_matrix((A + A.conj().T) * 0.5)
    estimate, v = _smallest(H, X, 0.0, None, _COARSE)
    best, step = certified_lower(terms, X, estimate)
    if step > _STEPS[0]:  # refine the estimate by inverse iteration from the certified value, then certify again
        estimate, _ = _smallest(H, X, best, v, _ITERATIONS)
        best = max(best, certified_lower(terms, X, estimate, lowest=best, steps=_FINE)[0])
    return best


def certified_lower(terms: Sequence[Term], X: sp.spmatrix, estimate: float, *, lowest: float = 0.0,
                    steps: Sequence[float] = _STEPS) -> tuple[float, float]:
    """Largest ``s = estimate (1 - step)`` (steps 1e-8, 1e-6, ..) with ``sum_k c_k M_k - s X`` certified PSD.

    Returns ``(s, step)``; raises StabilityError when no ``s > lowest`` (nor ``lowest > 0``
    itself, if given) is certified.
    """
    for step in steps:
        s = estimate * (1 - step)
        if not s > lowest:
            break
        if certify_psd(*hermitian_sum([*terms, (-s, X)])):
            return float(s), step
    if lowest > 0:
        return lowest, 1.0
    raise StabilityError(f"no positive stability lower bound could be certified (estimate {estimate:.6g}): "
                         "the operator is not coercive, or numerically singular")


def _smallest(H: sp.csr_matrix, X: sp.csr_matrix, sigma: float, v0: NDArray | None,
              iterations: int) -> tuple[float, NDArray]:
    """Estimate (a Rayleigh quotient) of the smallest eigenvalue of ``(H, X)`` above ``sigma``, and its vector."""
    n = H.shape[0]
    shifted = sp.csc_matrix(H - sigma * X)
    if n <= _SMALL:
        try:  # the largest eigenvalue of (X, H - sigma X) is accurate even when X is ill-conditioned
            w, V = sla.eigh(X.toarray(), shifted.toarray())  # all of them: LAPACK's subsets can come back empty
            return float(sigma + 1 / w[-1]), V[:, -1]
        except (np.linalg.LinAlgError, ZeroDivisionError):
            w, V = sla.eigh(H.toarray(), X.toarray())
            return float(w[0]), V[:, 0]
    try:
        lu = spla.splu(shifted, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    except RuntimeError as exc:
        raise StabilityError(f"the Hermitian part is singular (shift {sigma:.6g}): not coercive") from exc
    dtype = np.result_type(H.dtype, X.dtype, lu.U.dtype)
    V = np.random.default_rng(0).standard_normal((n, _BLOCK)).astype(dtype)
    if v0 is not None:
        V[:, 0] = v0
    value = np.inf
    for _ in range(iterations):  # inverse subspace iteration with Rayleigh-Ritz on (X, H - sigma X)
        W, _r = np.linalg.qr(lu.solve(np.asarray(X @ V, dtype=dtype)))
        try:
            mu, C = sla.eigh(_gram(W, X), _gram(W, shifted))
        except np.linalg.LinAlgError as exc:
            raise StabilityError("the Hermitian part is not positive definite: not coercive") from exc
        V = W @ C[:, ::-1]
        previous, value = value, float(sigma + 1 / mu[-1])
        if abs(previous - value) <= 1e-10 * abs(value):
            break
    return value, V[:, 0]


def _gram(W: NDArray, M: sp.spmatrix) -> NDArray:
    G = W.conj().T @ (M @ W)
    return (G + G.conj().T) / 2


@dataclass(frozen=True)
class MinTheta:
    """The min-theta coercivity lower bound, to be bound to a Problem.

    For ``A(mu) = sum_q theta_q(mu) A_q`` with real ``theta_q(mu) >= 0`` and
    Hermitian parts of ``A_q`` positive semi-definite,
    ``alpha(mu) >= alpha(mu_ref) * min_{q: theta_q(mu_ref) > 0} theta_q(mu) / theta_q(mu_ref)``.

    Binding checks the precondition: each Hermitian part ``S_q`` is certified to satisfy
    ``S_q + eps_q X >= 0`` with the smallest ``eps_q`` of ``0, 1e-12, .., 1e-2`` times
    ``max_i (S_q)_ii / X_ii`` that verifies (:func:`term_shift`) (the bound accounts for the ``eps_q``, see
    :class:`~certrb.online.stability.MinThetaBound`); a term for which none verifies raises.
    The reference constant is :func:`coercivity_constant` (certified); a given ``alpha_ref``
    is certified as ``alpha_ref (1 - 1e-8)`` or ``alpha_ref (1 - 1e-6)`` when that verifies,
    and otherwise kept as an assumption (``MinThetaBound.certified`` is False).

    Parameters
    ----------
    mu_ref : array_like, shape (P,)
        Reference parameter.
    alpha_ref : float, optional
        Coercivity constant at ``mu_ref``; computed by the Problem when omitted.

    """

    mu_ref: ArrayLike
    alpha_ref: float | None = None

    def bind(self, operator: AffineOperator, inner_product: sp.spmatrix, mus_ref: NDArray) -> MinThetaBound:
        """Evaluate the reference data and return the online lower-bound function.

        Raises
        ------
        StabilityError
            If a term's Hermitian part is not certified positive semi-definite, or no
            positive reference constant is.

        """
        theta_ref = real_nonnegative(operator.theta(mus_ref))[0]
        X = sp.csr_matrix(inner_product)
        shifts = np.array([term_shift(a, X, q) for q, a in enumerate(operator.terms)])
        terms = [(float(t), a) for t, a in zip(theta_ref, operator.terms, strict=True) if t]
        alpha, certified = self.alpha_ref, True
        if alpha is None:
            alpha = coercivity_constant(operator.assemble(theta_ref), X, terms=terms)
        elif not alpha > 0:
            raise StabilityError(f"coercivity constant at mu_ref is not positive: {alpha}")
        else:
            terms = [(t * 0.5, a) for t, a in terms] + [(t * 0.5, sp.csr_matrix(a).conj().T) for t, a in terms]
            try:
                alpha = certified_lower(terms, X, float(alpha), steps=_STEPS[:2])[0]
            except StabilityError:
                certified = False
        return MinThetaBound(operator.coefficients, theta_ref, float(alpha),
                             shifts=shifts if shifts.any() else None, certified=certified)


def term_shift(term: sp.spmatrix, X: sp.csr_matrix, q: int) -> float:
    """Smallest certified ``eps`` of the ladder ``0, 1e-12, .., 1e-2`` times the term's scale with ``S_q + eps X >= 0``.

    ``S_q = (A_q + A_q^H) / 2`` and the scale is ``max_i (S_q)_ii / X_ii``. Two proofs are tried
    at each ``eps``: :func:`~certrb.offline.certify.certify_psd` of ``S_q + eps X`` (for definite
    terms), and, for terms that are singular but diagonally dominant (stiffness matrices of
    Neumann or subdomain problems, whose constants are in the kernel), Gershgorin:
    ``S_q + diag(delta) >= 0`` with the row defects ``delta`` of :func:`dominance_defect`, and
    ``eps X - diag(delta)`` certified PSD (no shift at all when every ``delta_i`` is 0).
    StabilityError names the term when none verifies (its Hermitian part is indefinite, or nearly so).
    """
    a = sp.csr_matrix(term)
    sym = (a + a.conj().T) * 0.5
    sym.eliminate_zeros()
    if sym.nnz == 0:
        return 0.0
    delta = dominance_defect(a)
    if not delta.any():
        return 0.0
    scale = max(float(np.max(sym.diagonal().real / X.diagonal().real)), 0.0)
    dominant = bool(np.isfinite(delta).all())
    for rel in _TERM_SHIFTS:
        eps = rel * scale
        if rel and not eps > 0:
            continue
        if certify_psd(*hermitian_sum([(0.5, a), (0.5, a.conj().T), (eps, X)])):
            return eps
        if rel and dominant and certify_psd(*hermitian_sum([(eps, X), (-1.0, sp.diags(delta))])):
            return eps
    raise StabilityError(f"MinTheta needs positive semi-definite Hermitian parts of the operator terms: term {q} "
                         f"is not certified (even with a shift of {_TERM_SHIFTS[-1]:.0e} times its scale)")


def dominance_defect(term: sp.spmatrix) -> NDArray[np.float64]:
    """Gershgorin row defects of the Hermitian part ``S = (A + A^H) / 2`` of a stored matrix.

    Returns ``delta`` (n,), float64, non-negative, with ``S + diag(delta)`` diagonally dominant
    with a non-negative diagonal, hence positive semi-definite, for the exact ``S`` of the stored
    ``A``. A row is exactly dominant (``delta_i = 0``) when ``sum_{j != i} |s_ij| <= s_ii``; for an
    exactly real symmetric ``A`` rows at the edge (zero row sums) are decided by correctly
    rounded sums (:func:`math.fsum`), so a Neumann stiffness matrix gets ``delta = 0`` exactly.
    Otherwise the defect is bounded from above in floating point (``inf`` for a negative diagonal).
    """
    a = sp.csr_matrix(term)
    exact = a.dtype.kind != "c" and (a != a.T).nnz == 0
    s = a if exact else sp.csr_matrix((a + a.conj().T) * 0.5)
    diag = s.diagonal().real
    off = sp.csr_matrix(abs(s - sp.diags(s.diagonal())))
    off.eliminate_zeros()
    counts = np.diff(off.indptr)
    k = int(counts.max(initial=0))
    unit = np.finfo(np.float64).eps / 2
    grow = (1 + 2 * gamma(k + 4)) if exact else (1 + 2 * gamma(k + 8))  # |s_ij| and the row sum, rounded up
    upper = np.asarray(off.sum(axis=1)).ravel() * grow
    delta = np.where(upper > diag, (upper - diag) * (1 + 4 * unit), 0.0)
    delta[diag < 0] = np.inf
    if exact:  # decide the rows at the edge exactly
        for i in np.flatnonzero((delta > 0) & (diag >= 0)):
            lo, hi = off.indptr[i], off.indptr[i + 1]
            margin = math.fsum([float(diag[i]), *(-off.data[lo:hi])])  # correctly rounded: its sign is exact
            delta[i] = 0.0 if margin >= 0 else -margin * (1 + 4 * unit)
    return delta

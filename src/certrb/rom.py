"""The reduced model: frozen small arrays and batched online evaluation.

Nothing here touches an n_h-sized array except :meth:`ReducedModel.reconstruct`,
which lifts coefficients back to the truth space when the basis is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import get_lapack_funcs

from . import online_kernels
from .affine import Coefficients, evaluate_coefficients
from .errors import EstimatorError, ShapeError, StabilityError
from .estimators.base import Estimator, check_name, norm_and_roundoff
from .extended import extended_dtype, refined_solve
from .parameters import ParameterSpace
from .residual import residual_coefficients

__all__ = ["OnlineResult", "ReducedModel", "ReducedOutput", "check_stability", "cholesky_solve", "reduced_solve",
           "solve_flat"]

_GESV: dict = {}  # LAPACK gesv per dtype character, looked up once
_CHUNK = 256  # parameters per chunk of a large online batch (keeps the batched arrays in cache)
_ROUND_UP = 1.0 + 4 * float(np.finfo(np.float64).eps)  # covers the rounding of a sum, a division and a product


def check_stability(values: ArrayLike, n_mu: int) -> NDArray[np.float64]:
    """Check the output of a stability lower bound: shape (n_mu,), finite, positive."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StabilityError(f"stability must return numbers; got {type(values).__name__}: {exc}") from exc
    if arr.shape != (n_mu,):
        raise StabilityError(f"stability must return shape ({n_mu},); got {arr.shape}")
    ok = 0.0 < arr[0] < np.inf if n_mu == 1 else ((arr > 0) & (arr < np.inf)).all()  # NaN fails both
    if not ok:
        raise StabilityError("stability lower bound must be finite and positive for every parameter")
    return arr


def reduced_solve(A_N: NDArray, f_N: NDArray, theta: NDArray, phi: NDArray, n: int) -> tuple[NDArray, NDArray]:
    """Batched Galerkin solves of the nested sub-model of size ``n``.

    Real symmetric operators go through the compiled Cholesky kernels when numba is
    installed (:func:`cholesky_solve`), the rest through :func:`solve_flat`.

    Parameters
    ----------
    A_N : ndarray, shape (Q_a, N, N)
    f_N : ndarray, shape (Q_f, N)
    theta : ndarray, shape (n_mu, Q_a)
    phi : ndarray, shape (n_mu, Q_f)
    n : int
        Sub-model size, ``1 <= n <= N``.

    Returns
    -------
    c : ndarray, shape (n_mu, n)
        Reduced coefficients.
    x : ndarray, shape (n_mu, Q_f + Q_a n)
        Residual coefficients.

    """
    kern = online_kernels.compiled()
    packed = None if kern is None else online_kernels.packed_symmetric(A_N[:, :n, :n])
    if packed is not None:
        out = cholesky_solve(kern, packed, f_N, theta, phi, n)
        if out is not None:
            return out
    q_a = A_N.shape[0]
    A_flat = A_N[:, :n, :n].reshape(q_a, n * n)
    return solve_flat(A_flat, f_N[:, :n], theta, phi)


def cholesky_solve(kern, packed: NDArray[np.float64], f_N: NDArray, theta: NDArray, phi: NDArray, n: int
                   ) -> tuple[NDArray, NDArray] | None:
    """:func:`reduced_solve` by the compiled kernels of :mod:`certrb.online_kernels`.

    ``kern`` is :func:`certrb.online_kernels.compiled`, ``packed`` (Q_a, N' (N' + 1) / 2),
    N' >= n, the :func:`~certrb.online_kernels.packed_symmetric` operators. Returns None
    (nothing solved) for complex coefficients or when some reduced matrix is not positive definite.
    """
    if theta.dtype != np.float64 or phi.dtype != np.float64 or f_N.dtype != np.float64:
        return None
    if theta.shape[0] == 1:
        c, x, ok = kern.cholesky_solve_one(packed, f_N, theta[0], phi[0], n)
        return (c[None, :], x[None, :]) if ok else None
    A = packed.T[: n * (n + 1) // 2] @ theta.T  # (n (n + 1) / 2, n_mu): parameters innermost
    f = f_N[:, :n].T @ phi.T
    if not kern.cholesky_solve_batch(A, f).all():
        return None
    c = np.ascontiguousarray(f.T)
    return c, residual_coefficients(phi, theta, c)


def solve_flat(A_flat: NDArray, f_sub: NDArray, theta: NDArray, phi: NDArray) -> tuple[NDArray, NDArray]:
    """:func:`reduced_solve` on pre-flattened operators ``A_flat`` (Q_a, n*n) and ``f_sub`` (Q_f, n).

    A single parameter goes straight to LAPACK ``gesv`` (no batched-call overhead). Operators
    stored in extended precision (numpy.longdouble / clongdouble) select the refined solve of
    :func:`certrb.extended.refined_solve`, with coefficients and results in extended precision.
    """
    n = f_sub.shape[1]
    if A_flat.dtype.type in (np.longdouble, np.clongdouble):
        ext = extended_dtype(A_flat, f_sub, theta, phi)
        theta, phi = theta.astype(ext), phi.astype(ext)
        c = refined_solve((theta @ A_flat).reshape(-1, n, n), phi @ f_sub)
        return c, residual_coefficients(phi, theta, c)
    f = phi @ f_sub
    A = (theta @ A_flat).reshape(-1, n, n)
    if A.shape[0] == 1:
        gesv = _GESV.get(A.dtype.char) or _GESV.setdefault(A.dtype.char, get_lapack_funcs("gesv", (A,)))
        *_, sol, info = gesv(A[0], f[0])
        if info != 0:
            raise np.linalg.LinAlgError("a reduced system is singular (is the problem stable here?)")
        c = sol[None, :]
    else:
        try:
            c = np.linalg.solve(A, f[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError as exc:
            raise np.linalg.LinAlgError("a reduced system is singular (is the problem stable here?)") from exc
    return c, residual_coefficients(phi, theta, c)


def _bounds(plain: NDArray[np.float64], fp: NDArray[np.float64], beta: NDArray[np.float64], c: NDArray
            ) -> tuple[NDArray[np.float64], ...]:
    """Estimate, certified residual norm, bound and relative bound, shapes (n_mu,).

    ``plain`` is the residual-norm estimate (plus any interpolation indicator), ``fp`` its
    round-off bound (NaN without a certificate), ``beta`` the stability lower bounds and
    ``c`` (n_mu, n) the reduced coefficients.
    """
    estimate = plain / beta
    if fp.size and fp[0] != fp[0]:  # NaN: no round-off certificate, the bound is the estimate
        certified, bound = plain, estimate
    else:  # (eps + delta_fp [+ indicator]) / beta, rounded up past the three roundings
        certified = plain + fp
        bound = certified / beta * _ROUND_UP
    norm_u = np.sqrt(np.einsum("mn,mn->m", c.conj(), c).real if c.dtype.kind == "c" else np.einsum("mn,mn->m", c, c))
    if norm_u.all():
        rel = bound / norm_u
    else:
        rel = np.divide(bound, norm_u, out=np.full_like(bound, np.inf), where=norm_u > 0)
    return estimate, certified, bound, rel


def _single_bounds(eps: float, fp: float, beta: float, c: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """:func:`_bounds` for one real parameter on Python floats (same IEEE operations, fewer numpy calls)."""
    estimate = eps / beta
    if fp != fp:
        certified, bound = eps, estimate
    else:
        certified = eps + fp
        bound = certified / beta * _ROUND_UP
    norm_u = math.sqrt(c @ c)
    values = np.array([estimate, certified, bound, bound / norm_u if norm_u > 0 else math.inf])
    return values[0:1], values[1:2], values[2:3], values[3:4]


@dataclass(frozen=True, eq=False)
class ReducedOutput:
    """Reduced data of an output ``s(mu) = l(mu)^H u(mu)``.

    Without a dual model the output bound is ``||l(mu)||_{V'} * Delta(mu)``. With a
    reduced dual model (``A^H z = l``, basis ``W``) the output is corrected,
    ``s_N = l^H u_N + z_N^H r(u_N)``, and bounded by the primal-dual product
    ``|s - s_N| = |r_du^H (u - u_N)| <= eps_du(mu) * eps(mu) / beta_LB(mu)``.

    Attributes
    ----------
    coefficients : callable
        ``(n_mu, P) -> (n_mu, Q_l)``.
    l_N : ndarray, shape (Q_l, N)
        ``V^H l_p``.
    dual_gram : ndarray, shape (Q_l, Q_l)
        ``l_p^H X^{-1} l_q``, for ``||l(mu)||_{V'}``.
    dual : ReducedModel, optional
        Reduced model of the dual problem (:func:`certrb.problem.dual_problem`).
    dual_rhs : ndarray, shape (Q_f, N_du), optional
        ``W^H f_p``.
    dual_operator : ndarray, shape (Q_a, N_du, N), optional
        ``W^H A_q V``.

    """

    coefficients: Coefficients
    l_N: NDArray
    dual_gram: NDArray
    dual: ReducedModel | None = None
    dual_rhs: NDArray | None = None
    dual_operator: NDArray | None = None

    def evaluate(self, m: NDArray, theta: NDArray, phi: NDArray, c: NDArray, eps: NDArray, beta: NDArray
                 ) -> tuple[NDArray, NDArray[np.float64]]:
        """Output and output bound for coefficients ``c`` (n_mu, n) of a batch ``m`` (n_mu, P).

        ``theta`` (n_mu, Q_a) and ``phi`` (n_mu, Q_f) are the primal coefficients,
        ``eps`` (n_mu,) primal residual norms, ``beta`` (n_mu,) stability lower bounds.
        Returns the (corrected) outputs and their bounds, shapes (n_mu,).
        """
        n = c.shape[1]
        psi = evaluate_coefficients(self.coefficients, m, self.l_N.shape[0], "output")
        if self.dual is None and psi.shape[0] == 1 and psi.dtype.kind == "f" and c.dtype.kind == "f":
            p = psi[0]  # one real parameter: vector products and Python floats, same formulas
            l_norm2 = float(p @ self.dual_gram @ p)
            bound = math.sqrt(max(l_norm2, 0.0)) * float(eps[0]) / float(beta[0])
            return np.array([p @ self.l_N[:, :n] @ c[0]]), np.array([bound])
        out = ((psi @ self.l_N[:, :n]).conj() * c).sum(axis=1)
        if self.dual is None:
            l_norm2 = ((psi.conj() @ self.dual_gram) * psi).sum(axis=1).real
            return out, np.sqrt(np.maximum(l_norm2, 0.0)) * eps / beta
        dual = self.dual.evaluate(m)
        # W^H r(u_N) = W^H f - sum_q theta_q W^H A_q V c, then z_N^H r = d^H (W^H r)
        w_r = phi @ self.dual_rhs - np.einsum("mq,qij,mj->mi", theta, self.dual_operator[:, :, :n], c)
        out = out + (dual.coefficients.conj() * w_r).sum(axis=1)
        return out, dual.residual_norm * eps / beta


@dataclass(eq=False, slots=True)
class OnlineResult:
    """Batched online evaluation.

    Attributes
    ----------
    coefficients : ndarray, shape (n_mu, n)
        Reduced coefficients (the basis is X-orthonormal, so ``||u_N||_V = ||c||_2``).
    residual_norm : ndarray, shape (n_mu,)
        Estimated ``||r(mu)||_{V'}`` (``eps_hat``).
    stability : ndarray, shape (n_mu,)
        Stability lower bounds ``beta_LB(mu)``.
    bound : ndarray, shape (n_mu,)
        Error bound on ``||u - u_N||_V``: ``(residual_norm + roundoff) / stability``
        (rounded up), rigorous under the assumptions of docs/roundoff.md when the
        estimator carries a round-off certificate (``rigorous``); otherwise ``estimate``.
    relative_bound : ndarray, shape (n_mu,)
        ``bound / ||u_N||_V``.
    output, output_bound : ndarray, shape (n_mu,), or None
        ``s_N(mu) = l(mu)^H u_N(mu)`` and the bound ``||l(mu)||_{V'} * bound``, or,
        with a dual model, the corrected output and the primal-dual bound
        (see :class:`ReducedOutput`).
    estimator : str
    n : int
    interpolation_error : ndarray, shape (n_mu,), or None
        Indicator of the operator's interpolation error (non-affine models), included in ``bound``
        and ``estimate`` (an indicator: such a bound is not rigorous).
    roundoff : ndarray, shape (n_mu,), or None
        Bound ``delta_fp`` of the floating-point error of ``residual_norm`` (NaN
        for estimators without a certificate).
    estimate : ndarray, shape (n_mu,), or None
        The plain error estimate ``residual_norm / stability``, without ``roundoff``.

    """

    coefficients: NDArray
    residual_norm: NDArray[np.float64]
    stability: NDArray[np.float64]
    bound: NDArray[np.float64]
    relative_bound: NDArray[np.float64]
    output: NDArray | None
    output_bound: NDArray[np.float64] | None
    estimator: str
    n: int
    interpolation_error: NDArray[np.float64] | None = None
    roundoff: NDArray[np.float64] | None = None
    estimate: NDArray[np.float64] | None = None

    @property
    def rigorous(self) -> bool:
        """Whether ``bound`` accounts for round-off (every ``roundoff`` finite) and no indicator enters it."""
        return self.roundoff is not None and self.interpolation_error is None and bool(
            np.isfinite(self.roundoff).all())


@dataclass(frozen=True, eq=False)
class ReducedModel:
    """A certified reduced model.

    Attributes
    ----------
    parameter_space : ParameterSpace
    operator_coefficients, rhs_coefficients : callable
        ``theta`` and ``phi``: (n_mu, P) -> (n_mu, Q_a), (n_mu, Q_f).
    A_N : ndarray, shape (Q_a, N, N)
    f_N : ndarray, shape (Q_f, N)
    stability : callable
        ``(n_mu, P) -> (n_mu,)`` positive lower bounds.
    estimators : mapping str -> Estimator
    default_estimator : str
    output : ReducedOutput or None
    basis : ndarray, shape (n_h, N), or None
        X-orthonormal basis, unless the model was saved online-only.
    interpolation : callable, optional
        ``(mus (n_mu, P), c (n_mu, n)) -> (n_mu,)`` indicator of the operator's
        interpolation error (:func:`certrb.nonaffine.interpolation_indicator`),
        added to the residual norm in the bound.

    Notes
    -----
    With numba installed (extra ``fast``), real models whose reduced operators are
    symmetric solve their reduced systems with the compiled Cholesky kernels of
    :mod:`certrb.online_kernels` (a batch at a time, or assembly, solve and residual
    coefficients of a single parameter in one call); the others, and parameters at which
    the reduced matrix is not positive definite, use LAPACK's LU.

    """

    parameter_space: ParameterSpace
    operator_coefficients: Coefficients
    rhs_coefficients: Coefficients
    A_N: NDArray
    f_N: NDArray
    stability: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    estimators: Mapping[str, Estimator]
    default_estimator: str
    output: ReducedOutput | None = None
    basis: NDArray | None = field(default=None, repr=False)
    interpolation: Callable[[NDArray, NDArray], NDArray] | None = field(default=None, repr=False)
    _flat: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _compiled: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.A_N.ndim != 3 or self.A_N.shape[1:] != (self.n_basis, self.n_basis):
            raise ShapeError(f"A_N must have shape (Q_a, N, N); got {self.A_N.shape}")
        if self.f_N.ndim != 2 or self.f_N.shape[1] != self.n_basis:
            raise ShapeError(f"f_N must have shape (Q_f, {self.n_basis}); got {self.f_N.shape}")
        if self.default_estimator not in self.estimators:
            raise EstimatorError(f"default_estimator {self.default_estimator!r} is not attached")

    @property
    def n_basis(self) -> int:
        """Reduced dimension N."""
        return self.A_N.shape[1]

    def _sizes(self, n: int | None) -> int:
        if n is None:
            return self.n_basis
        if int(n) != n or not 1 <= n <= self.n_basis:
            raise ShapeError(f"n must be an integer in [1, {self.n_basis}]; got {n!r}")
        return int(n)

    def _estimator(self, name: str | None) -> Estimator:
        name = self.default_estimator if name is None else check_name(name)
        if name not in self.estimators:
            attached = sorted(self.estimators)
            raise EstimatorError(f"estimator {name!r} is not attached to this model; attached: {attached}")
        return self.estimators[name]

    def solve(self, mus: ArrayLike, *, n: int | None = None) -> NDArray:
        """Reduced coefficients only, shape (n_mu, n)."""
        m = self.parameter_space.validate(mus)
        return self._solve(m, self._sizes(n))[0]

    def _operators(self, n: int) -> tuple[NDArray, NDArray]:
        """Flattened ``A_N`` (Q_a, n*n) and ``f_N`` (Q_f, n) of sub-model n, cached."""
        ops = self._flat.get(n)
        if ops is None:
            q_a = self.A_N.shape[0]
            ops = (np.ascontiguousarray(self.A_N[:, :n, :n]).reshape(q_a, n * n),
                   np.ascontiguousarray(self.f_N[:, :n]))
            self._flat[n] = ops
        return ops

    def _solve(self, m: NDArray, n: int, theta: NDArray | None = None) -> tuple[NDArray, NDArray]:
        if theta is None:
            theta = evaluate_coefficients(self.operator_coefficients, m, self.A_N.shape[0], "operator")
        phi = evaluate_coefficients(self.rhs_coefficients, m, self.f_N.shape[0], "rhs")
        return self._coefficients(n, theta, phi)

    def _kernels(self) -> tuple | None:
        """(compiled kernels, packed symmetric A_N) when the compiled SPD path applies, else None; cached."""
        if not self._compiled:
            kern = online_kernels.compiled()
            packed = None if kern is None else online_kernels.packed_symmetric(self.A_N)
            self._compiled.append(None if packed is None else (kern, packed))
        return self._compiled[0]

    def _coefficients(self, n: int, theta: NDArray, phi: NDArray) -> tuple[NDArray, NDArray]:
        """Reduced coefficients (n_mu, n) and residual coefficients (n_mu, K_n) (see :func:`reduced_solve`)."""
        spd = self._kernels()
        out = None if spd is None else cholesky_solve(*spd, self.f_N, theta, phi, n)
        return solve_flat(*self._operators(n), theta, phi) if out is None else out

    def _stability(self, m: NDArray, theta: NDArray) -> NDArray[np.float64]:
        # a bound computed from the operator coefficients (min-theta) reuses them
        from_theta = getattr(self.stability, "from_theta", None)
        values = from_theta(theta) if from_theta is not None else self.stability(m)
        return check_stability(values, m.shape[0])

    def evaluate(self, mus: ArrayLike, *, estimator: str | None = None, n: int | None = None,
                 output: bool = True) -> OnlineResult:
        """Solve the reduced problem and certify it, for a batch of parameters.

        Parameters
        ----------
        mus : array_like, shape (n_mu, P) or (P,)
        estimator : str, optional
            Residual-norm estimator name (default: the model's default).
        n : int, optional
            Evaluate the nested sub-model of the first ``n`` basis vectors.
        output : bool
            Also evaluate the output and its bound, if the model has one
            (``False`` leaves ``output`` and ``output_bound`` None).

        Returns
        -------
        OnlineResult

        """
        m = self.parameter_space.validate(mus)
        n = self._sizes(n)
        est = self._estimator(estimator)
        if m.shape[0] <= _CHUNK:
            return self._evaluate(m, n, est, output)
        # large batches in cache-sized chunks: about twice as fast as one huge batched solve
        parts = [self._evaluate(m[s:s + _CHUNK], n, est, output) for s in range(0, m.shape[0], _CHUNK)]
        fields = ("coefficients", "residual_norm", "stability", "bound", "relative_bound", "output", "output_bound",
                  "interpolation_error", "roundoff", "estimate")
        joined = {f: None if getattr(parts[0], f) is None else np.concatenate([getattr(p, f) for p in parts])
                  for f in fields}
        return OnlineResult(**joined, estimator=est.name, n=n)

    def _evaluate(self, m: NDArray, n: int, est: Estimator, output: bool) -> OnlineResult:
        theta = evaluate_coefficients(self.operator_coefficients, m, self.A_N.shape[0], "operator")
        phi = evaluate_coefficients(self.rhs_coefficients, m, self.f_N.shape[0], "rhs")
        c, x = self._coefficients(n, theta, phi)
        eps, fp = norm_and_roundoff(est, x, n)
        beta = self._stability(m, theta)
        delta = None if self.interpolation is None else self.interpolation(m, c)
        if delta is None and c.shape[0] == 1 and c.dtype.kind == "f":  # one real parameter: on Python floats
            estimate, certified, bound, rel = _single_bounds(float(eps[0]), float(fp[0]), float(beta[0]), c[0])
        else:
            estimate, certified, bound, rel = _bounds(eps if delta is None else eps + delta, fp, beta, c)
        out = out_bound = None
        if output and self.output is not None:
            out, out_bound = self.output.evaluate(m, theta, phi, c, certified * _ROUND_UP, beta)
        return OnlineResult(c, eps, beta, bound, rel, out, out_bound, est.name, n, delta, fp, estimate)

    def reconstruct(self, coefficients: ArrayLike) -> NDArray:
        """Truth vectors ``V[:, :n] c`` for coefficients (n_mu, n), n <= N; shape (n_mu, n_h)."""
        if self.basis is None:
            raise ShapeError("this model was saved without its basis; reconstruct needs it")
        c = np.asarray(coefficients)
        if c.ndim == 1:
            c = c[None, :]
        if c.ndim != 2 or not 1 <= c.shape[1] <= self.n_basis:
            raise ShapeError(f"coefficients must have shape (n_mu, n) with 1 <= n <= {self.n_basis}; got {c.shape}")
        return c @ self.basis[:, : c.shape[1]].T

    def with_estimators(self, estimators: Mapping[str, Estimator], default: str | None = None) -> ReducedModel:
        """A copy with more (or replaced) estimators attached."""
        merged = {**self.estimators, **estimators}
        return ReducedModel(self.parameter_space, self.operator_coefficients, self.rhs_coefficients, self.A_N,
                            self.f_N, self.stability, merged, default or self.default_estimator, self.output,
                            self.basis, self.interpolation)

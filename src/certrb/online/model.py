"""The reduced model: frozen small arrays, evaluated online by :func:`certrb.online.evaluate.evaluate_batch`.

Nothing here touches an n_h-sized array except :meth:`ReducedModel.reconstruct`,
which lifts coefficients back to the truth space when the basis is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import EstimatorError, ShapeError
from .coefficients import Coefficients, evaluate_coefficients
from .estimators import Estimator, check_name
from .evaluate import OnlineResult, evaluate_batch
from .parameters import ParameterSpace
from .solve import ReducedOperators
from .stability import stability_certificate

__all__ = ["OnlineResult", "ReducedModel", "ReducedOutput"]


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
        Reduced model of the dual problem (:func:`certrb.dual_problem`).
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
        out = ((psi @ self.l_N[:, :n]).conj() * c).sum(axis=1)
        if self.dual is None:
            l_norm2 = ((psi.conj() @ self.dual_gram) * psi).sum(axis=1).real
            return out, np.sqrt(np.maximum(l_norm2, 0.0)) * eps / beta
        if self.dual_rhs is None or self.dual_operator is None:
            raise ShapeError("a dual model needs dual_rhs and dual_operator")
        dual = self.dual.evaluate(m)
        # W^H r(u_N) = W^H f - sum_q theta_q W^H A_q V c, then z_N^H r = d^H (W^H r)
        w_r = phi @ self.dual_rhs - np.einsum("mq,qij,mj->mi", theta, self.dual_operator[:, :, :n], c)
        out = out + (dual.coefficients.conj() * w_r).sum(axis=1)
        return out, dual.residual_norm * eps / beta


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
        interpolation error (:func:`certrb.offline.nonaffine.interpolation_indicator`),
        added to the residual norm in the bound.
    reconstruction_weights : ndarray of float64, shape (N, N), optional
        ``H = |V|^T |X| |V|`` (rounded up), for :meth:`reconstruction_error_bound`.
    certificate : str
        What the stability bound rests on (:func:`certrb.online.stability.stability_certificate`),
        derived from ``stability`` once; every :class:`OnlineResult` carries it.

    Notes
    -----
    Reduced solves go through :meth:`certrb.online.solve.ReducedOperators.solve` (compiled
    Cholesky kernels for real symmetric models when numba is installed, LAPACK otherwise),
    evaluations through :func:`certrb.online.evaluate.evaluate_batch`.

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
    reconstruction_weights: NDArray[np.float64] | None = field(default=None, repr=False)
    operators: ReducedOperators = field(init=False, repr=False, compare=False)
    certificate: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "operators", ReducedOperators(self.A_N, self.f_N))
        object.__setattr__(self, "certificate", stability_certificate(self.stability))
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
        theta = evaluate_coefficients(self.operator_coefficients, m, self.A_N.shape[0], "operator")
        phi = evaluate_coefficients(self.rhs_coefficients, m, self.f_N.shape[0], "rhs")
        return self.operators.solve(theta, phi, self._sizes(n))[0]

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
        return evaluate_batch(self, m, self._sizes(n), self._estimator(estimator), output=output)

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

    def reconstruction_error_bound(self, coefficients: ArrayLike) -> NDArray[np.float64]:
        """Bound of ``||reconstruct(c) - V[:, :n] c||_V``, the rounding of the reconstruction; shape (n_mu,).

        The certified ``bound`` of :meth:`evaluate` covers the exact ``V c``; the vector
        :meth:`reconstruct` returns is ``V c`` rounded, ``|fl(V c) - V c| <= gamma_n |V| |c|``
        componentwise (a dot product of length n in any order; complex data with margin), so
        ``||fl(V c) - V c||_V^2 <= (gamma_n |V| |c|)^T |X| (gamma_n |V| |c|) = gamma_n^2 |c|^T H |c|``
        with ``H = |V|^T |X| |V|`` (:attr:`reconstruction_weights`). NaN for a model without ``H``.

        Parameters
        ----------
        coefficients : array_like, shape (n_mu, n) or (n,), n <= N

        """
        c = np.abs(np.atleast_2d(np.asarray(coefficients)))
        if c.ndim != 2 or not 1 <= c.shape[1] <= self.n_basis:
            raise ShapeError(f"coefficients must have shape (n_mu, n) with 1 <= n <= {self.n_basis}; got {c.shape}")
        n = c.shape[1]
        if self.reconstruction_weights is None or self.basis is None:
            return np.full(c.shape[0], np.nan)
        u = float(np.finfo(self.basis.dtype).eps) / 2
        terms = n + 2 if np.iscomplexobj(self.basis) or np.iscomplexobj(coefficients) else n
        g = (2.0 if terms > n else 1.0) * terms * u / (1 - terms * u)
        c = c.astype(np.float64)
        quad = np.einsum("mi,ij,mj->m", c, self.reconstruction_weights[:n, :n], c)
        return g * np.sqrt(quad) * (1.0 + 4 * (n + 4) * float(np.finfo(np.float64).eps))

    def with_estimators(self, estimators: Mapping[str, Estimator], default: str | None = None) -> ReducedModel:
        """A copy with more (or replaced) estimators attached."""
        merged = {**self.estimators, **estimators}
        return ReducedModel(self.parameter_space, self.operator_coefficients, self.rhs_coefficients, self.A_N,
                            self.f_N, self.stability, merged, default or self.default_estimator, self.output,
                            self.basis, self.interpolation, self.reconstruction_weights)

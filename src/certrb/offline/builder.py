"""The offline state of a reduced model, grown snapshot by snapshot: the only code that sees both n_h and N.

:class:`OfflineBuilder` holds the truth-size state (basis, residual components,
their Riesz representatives, the ``expanded`` Gram matrix and the ``orthonormal``
factor), updates it incrementally as the basis grows, and knows how the model is
built (estimators, precision, certificates, dual, options). :meth:`OfflineBuilder.model`
freezes it into a :class:`~certrb.online.model.ReducedModel` through the estimator
table :data:`certrb.offline.estimators.BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..errors import EstimatorError, ShapeError
from ..online.estimators import Estimator, check_name
from ..online.model import ReducedModel, ReducedOutput
from ..online.precision import check_precision, extended_dtype, is_extended, working_rtol
from ..online.solve import ReducedOperators
from .basis import orthonormalize
from .estimators import BUILDERS, OfflineData
from .estimators.expanded import gram
from .estimators.roundoff import exact_components
from .innerproduct import herm
from .problem import Problem

__all__ = ["OfflineBuilder"]

_DOUBLE_RTOL = 1e-14  # rank tolerance of snapshots and of the orthonormal factor in double precision


def _is_symmetric(a) -> bool:
    """Whether a (sparse or dense) matrix equals its transpose exactly."""
    if sp.issparse(a):
        return a.shape[0] == a.shape[1] and (a != a.T).nnz == 0
    a = np.asarray(a)
    return a.ndim == 2 and a.shape[0] == a.shape[1] and np.array_equal(a, a.T)


class _Columns:
    """A block of columns (n_h, n) stored column-major in a buffer that grows by doubling.

    Appending never moves the stored columns of an earlier :attr:`array` view
    (a full buffer is copied into a new one), so views stay valid snapshots.
    """

    def __init__(self, block: NDArray) -> None:
        self._data = np.asfortranarray(block)
        self.n = block.shape[1]

    @property
    def array(self) -> NDArray:
        """The stored columns, shape (n_h, n), a column-major view."""
        return self._data[:, :self.n]

    def append(self, block: NDArray) -> None:
        """Append columns (n_h, k), promoting the dtype if needed."""
        n, k = self.n, block.shape[1]
        dtype = np.result_type(self._data.dtype, block.dtype)
        if n + k > self._data.shape[1] or dtype != self._data.dtype:
            data = np.empty((self._data.shape[0], max(n + k, 2 * n)), dtype=dtype, order="F")
            data[:, :n] = self.array
            self._data = data
        self._data[:, n:n + k] = block
        self.n = n + k


class OfflineBuilder:
    """Incremental offline state of a reduced model.

    The basis, the residual components and their Riesz representatives grow in
    place (column-major buffers, no copy per step); the ``expanded`` Gram matrix
    and the ``orthonormal`` factor ``Psi R`` are brought up to date when they
    are read, in one block for all columns added since.

    With ``precision="extended"`` the whole offline state (basis, components,
    Riesz representatives, ``Psi R``, the Gram matrix, ``A_N``, ``f_N``) is kept in
    numpy.longdouble (numpy.clongdouble for complex problems): snapshots are cast
    to it, Gram-Schmidt, the components ``A_q v``, the projections and the
    reduced solves (:func:`certrb.online.precision.refined_solve`) run in extended
    precision, and the rank tolerances are ``100 eps`` of longdouble. Only the
    ``orthonormal`` and ``expanded`` estimators are available, without round-off
    certificates (those are derived for double online arithmetic): their
    ``roundoff`` is NaN and ``OnlineResult.rigorous`` is False.

    Parameters
    ----------
    problem : Problem
    estimators : sequence of str or str
        Estimators of the model it freezes, from ``expanded``, ``point-basis``, ``eim``,
        ``eim-stabilized``, ``orthonormal``.
    default : str, optional
        The model's default estimator, which also drives :func:`certrb.weak_greedy`
        (default: the first of ``estimators``).
    precision : {"double", "extended"}
        Working precision of the offline state and of the model it freezes.
    certify : bool
        Measure the round-off certificates of the estimators that have one, so that
        their bounds account for floating-point error (docs/roundoff.md). Costs a few
        truth-size operations per residual component, once per frozen model. Ignored
        with ``precision="extended"`` (certificates are derived for double online arithmetic).
    dual : ReducedModel, optional
        Reduced model of :func:`certrb.dual_problem` (keeping its basis): the output is
        then corrected and bounded by the primal-dual product.
    refine : int, optional
        Extended-precision refinement steps of the Riesz solves (default 1 in
        double precision, 2 in extended precision).
    snapshot_refine : int, optional
        Extended-precision refinement steps of the truth snapshot solves of
        :meth:`add_snapshots_at` (default 0 in double precision, 2 in extended precision).
    rtol : float, optional
        Relative norm under which a new snapshot counts as in the span (default
        1e-14 in double precision, ``100 eps`` of longdouble in extended precision).
    options : mapping, optional
        Per-estimator options, keyed by estimator name.
    rng : Generator, int or None
        Randomness of the interpolation-based estimators and of default training sets.

    Raises
    ------
    TypeError
        If ``problem`` is not a Problem.
    EstimatorError
        On an unknown estimator, one not available in extended precision, or a
        ``default`` not among ``estimators``.
    ValueError
        On an unknown ``precision`` or a negative ``snapshot_refine``.

    Examples
    --------
    >>> from certrb.problems import diffusion1d
    >>> problem = diffusion1d(50)
    >>> builder = certrb.OfflineBuilder(problem, ("orthonormal", "eim"), rng=0)
    >>> builder.add_snapshots_at(problem.parameter_space.sample(3, rng=0))
    3
    >>> builder.model().n_basis
    3

    """

    def __init__(self, problem: Problem, estimators: Sequence[str] | str = ("orthonormal",), *,
                 default: str | None = None, precision: str = "double", certify: bool = True,
                 dual: ReducedModel | None = None, refine: int | None = None, snapshot_refine: int | None = None,
                 rtol: float | None = None, options: Mapping | None = None, rng=None) -> None:
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a Problem; got {type(problem).__name__}")
        self.problem = problem
        self.precision = check_precision(precision)
        self.extended = precision == "extended"
        self.estimators = (estimators,) if isinstance(estimators, str) else tuple(estimators)
        if len(self.estimators) == 0:
            raise EstimatorError("attach at least one estimator")
        for name in self.estimators:
            self.check_estimator(name)
        self.default = self.estimators[0] if default is None else check_name(default)
        if self.default not in self.estimators:
            raise EstimatorError(f"default {self.default!r} is not among the estimators {self.estimators}")
        self.certify = bool(certify) and not self.extended
        self.dual = dual
        self.options = dict(options or {})
        self.rng = np.random.default_rng(rng)
        dtype = np.dtype(extended_dtype(problem.dtype)) if self.extended else problem.dtype
        self.dtype = dtype
        self.refine = (2 if self.extended else 1) if refine is None else refine
        steps = (2 if self.extended else 0) if snapshot_refine is None else snapshot_refine
        if int(steps) != steps or steps < 0:
            raise ValueError(f"snapshot_refine must be a non-negative integer; got {snapshot_refine!r}")
        self.snapshot_refine = int(steps)
        self._factor_rtol = working_rtol(dtype) if self.extended else _DOUBLE_RTOL
        self.rtol = self._factor_rtol if rtol is None else rtol
        components = problem.rhs.terms.T.astype(dtype)
        self._basis = _Columns(np.zeros((problem.size, 0), dtype=dtype))
        self._components = _Columns(components)
        self._riesz = _Columns(self._riesz_of(components))
        self._gram = np.zeros((0, 0), dtype=dtype)
        self._psi = _Columns(np.zeros((problem.size, 0), dtype=dtype))
        self._R = np.zeros((0, 0), dtype=dtype)
        self.A_N = np.zeros((problem.operator.n_terms, 0, 0), dtype=dtype)
        self.f_N = np.zeros((problem.rhs.n_terms, 0), dtype=dtype)
        # real symmetric terms: A_N is kept exactly symmetric (the projections round differently)
        self._symmetric = dtype.kind != "c" and all(_is_symmetric(a) for a in problem.operator.terms)
        self._operators: ReducedOperators | None = None

    @property
    def n_basis(self) -> int:
        """Current reduced dimension N."""
        return self._basis.n

    @property
    def basis(self) -> NDArray:
        """X-orthonormal reduced basis, shape (n_h, N)."""
        return self._basis.array

    @property
    def components(self) -> NDArray:
        """Residual components ``g_k`` (ordering: see :mod:`certrb.online.residual`), shape (n_h, K)."""
        return self._components.array

    @property
    def riesz(self) -> NDArray:
        """Riesz representatives ``X^{-1} g_k``, shape (n_h, K)."""
        return self._riesz.array

    @property
    def gram(self) -> NDArray:
        """``expanded`` Gram matrix ``(rho_k, rho_l)_V`` of the Riesz representatives, shape (K, K).

        Extended here by the columns added since it was last read.
        """
        k_old, K = self._gram.shape[0], self._components.n
        if k_old < K:
            ip = self.problem.inner_product
            G12 = gram(self.riesz[:, :k_old], ip, self.riesz[:, k_old:])
            G22 = gram(self.riesz[:, k_old:], ip)
            self._gram = np.block([[self._gram, G12], [G12.conj().T, G22]])
        return self._gram

    @property
    def psi(self) -> NDArray:
        """X-orthonormal ``Psi`` (n_h, r) of the ``orthonormal`` factorization ``X^{-1} g = Psi R``."""
        self._update_factor()
        return self._psi.array

    @property
    def R(self) -> NDArray:
        """Upper-trapezoidal ``R`` (r, K) of ``X^{-1} g = Psi R``; extended here by the new columns."""
        self._update_factor()
        return self._R

    def _update_factor(self) -> None:
        k_old, K = self._R.shape[1], self._riesz.n
        if k_old == K:
            return
        new, coeff, _ = orthonormalize(self._psi.array, self.riesz[:, k_old:], self.problem.inner_product,
                                       rtol=self._factor_rtol)
        self._psi.append(new)
        R = np.zeros((self._psi.n, K), dtype=np.result_type(self._R.dtype, coeff.dtype))
        R[: self._R.shape[0], :k_old] = self._R
        R[:, k_old:] = coeff
        self._R = R

    def _riesz_of(self, g: NDArray) -> NDArray:
        return np.asarray(self.problem.inner_product.riesz(g, refine=self.refine), dtype=g.dtype)

    def add_snapshots(self, snapshots: NDArray) -> int:
        """X-orthonormalize snapshots (n_h, k) into the basis in the working precision; return how many were added."""
        # refined (extended) snapshots are rounded to a double working precision, not promoted to longdouble
        vectors = snapshots.astype(self.dtype, copy=False) if self.extended or is_extended(snapshots) else snapshots
        new, _, accepted = orthonormalize(self.basis, vectors, self.problem.inner_product, rtol=self.rtol)
        self.append_orthonormal(new)
        return int(np.sum(accepted))

    def append_orthonormal(self, V_new: NDArray) -> None:
        """Append basis vectors (n_h, k) that are already X-orthonormal to the basis."""
        if V_new.shape[1] == 0:
            return
        dtype = np.result_type(self.basis.dtype, V_new.dtype)
        if self.extended:  # A_q v, V^H A_q v and V^H f_p then all accumulate in longdouble
            V_new = V_new.astype(self.dtype, copy=False)
            dtype = np.result_type(self.basis.dtype, V_new.dtype)
            # new components, ordered basis-vector-major: A_1 v, .., A_Qa v for each new v
            exact = self.problem.operator.apply_terms(V_new).transpose(1, 2, 0).reshape(self.problem.size, -1)
        else:  # the same, formed in extended precision: rounded once, they give an accurate A_N for any X
            exact = exact_components(self.problem, V_new)[:, self.problem.rhs.n_terms:]
        g_new = exact.astype(dtype)
        n_old, k_old = self.n_basis, self._components.n
        self._basis.append(V_new.astype(dtype, copy=False))
        self._components.append(g_new)
        # Riesz representatives of the exact A_q v (refined in extended precision unless refine=0)
        self._riesz.append(self._riesz_of(exact if self.refine > 0 else g_new).astype(dtype, copy=False))
        self.A_N = self._border_operators(n_old, k_old)
        self.f_N = np.concatenate([self.f_N, self.problem.rhs.project(V_new)], axis=1)

    def _border_operators(self, n_old: int, k_old: int) -> NDArray:
        """``A_N`` (Q_a, N, N) grown by the rows and columns of the new basis vectors.

        The components from column ``k_old`` on hold ``A_q v`` for the k new vectors
        ``v`` (vector-major).
        """
        q_a, n, k = self.problem.operator.n_terms, self.n_basis, self.n_basis - n_old
        g_new = self.components[:, k_old:]
        A = np.zeros((q_a, n, n), dtype=np.result_type(self.A_N.dtype, g_new.dtype, self.basis.dtype))
        A[:, :n_old, :n_old] = self.A_N
        cols = (herm(self.basis) @ g_new).reshape(n, k, q_a)  # [i, j, q] = v_i^H A_q v_new_j
        A[:, :, n_old:] = cols.transpose(2, 0, 1)
        old = self.components[:, self.problem.rhs.n_terms:k_old]
        rows = (herm(self.basis[:, n_old:]) @ old).reshape(k, n_old, q_a)  # [i, j, q] = v_new_i^H A_q v_j
        A[:, n_old:, :n_old] = rows.transpose(2, 0, 1)
        if self._symmetric:  # exact on the old (already symmetric) block
            A = 0.5 * (A + A.transpose(0, 2, 1))
        return A

    def add_snapshots_at(self, mus: NDArray[np.float64]) -> int:
        """Solve the truth problem at ``mus`` (k, P) (``snapshot_refine`` steps) and add the snapshots.

        Returns how many were added (a snapshot already in the span to ``rtol`` is not).
        """
        return self.add_snapshots(self.problem.solve(mus, refine=self.snapshot_refine).T)

    def operators(self) -> ReducedOperators:
        """The current reduced operators (``A_N``, ``f_N``), for reduced solves; cached until the basis grows."""
        if self._operators is None or self._operators.A_N is not self.A_N:
            self._operators = ReducedOperators(self.A_N, self.f_N)
        return self._operators

    def estimator(self, name: str, *, train: NDArray | None = None, certify: bool = False) -> Estimator:
        """Build the named estimator for the current basis (the greedy's sweeps: without certificate).

        ``train`` (n_train, P): training parameters of the interpolation-based estimators
        (default: 200 drawn from the builder's ``rng``). ``certify`` also measures the
        round-off certificate (ignored in extended precision).
        """
        self.check_estimator(name)
        return BUILDERS[name].build(self._offline_data(train, certify))

    def check_estimator(self, name: str) -> str:
        """Return ``name`` if the estimator can be built in this working precision, else raise EstimatorError."""
        check_name(name)
        if self.extended and not BUILDERS[name].extended:
            available = tuple(k for k, b in BUILDERS.items() if b.extended)
            raise EstimatorError(f"estimator {name!r} is not available with precision='extended'; choose one of "
                                 f"{available}")
        return name

    def _offline_data(self, train: NDArray | None, certify: bool) -> OfflineData:
        if self.n_basis == 0:
            raise ShapeError("the basis is empty")
        if train is None:
            train = self.problem.parameter_space.sample(200, rng=self.rng)
        train = self.problem.parameter_space.validate(train, name="train")
        return OfflineData(self, train, self.rng, self.options, certify and not self.extended)

    def model(self, *, train: NDArray | None = None, keep_basis: bool = True,
              estimators: Sequence[str] | None = None) -> ReducedModel:
        """Freeze the current state into a :class:`ReducedModel`.

        Round-off certificates (``certify``) are measured once and shared by the estimators.
        ``train`` (n_train, P): training parameters of the interpolation-based estimators.
        ``keep_basis``: keep the (n_h, N) basis (needed by ``reconstruct``). ``estimators``:
        attach these instead of the builder's (the first is then the default).
        """
        names = self.estimators if estimators is None else tuple(self.check_estimator(e) for e in estimators)
        if not names:
            raise EstimatorError("attach at least one estimator")
        data = self._offline_data(train, self.certify)
        built = {e: BUILDERS[e].build(data) for e in names}
        p = self.problem
        return ReducedModel(p.parameter_space, p.operator.coefficients, p.rhs.coefficients, self.A_N.copy(),
                            self.f_N.copy(), p.stability, built, self.default if estimators is None else names[0],
                            self._output(), self.basis.copy() if keep_basis else None,
                            reconstruction_weights=self._reconstruction_weights() if keep_basis else None)

    def _reconstruction_weights(self) -> NDArray[np.float64]:
        """``|V|^T |X| |V|`` (N, N), rounded up (sums of non-negative terms err by at most gamma_{n_h + w})."""
        X = self.problem.inner_product.matrix
        A = np.abs(self.basis).astype(np.float64)
        width = int(np.diff(X.indptr).max(initial=0))
        nu = (X.shape[0] + width + 2) * float(np.finfo(np.float64).eps) / 2
        return np.asarray(A.T @ (abs(X) @ A), dtype=np.float64) * (1.0 + 2 * nu / (1.0 - nu))

    def _output(self) -> ReducedOutput | None:
        p, dual = self.problem, self.dual
        if p.output is None:
            if dual is not None:
                raise ValueError("a dual model was given but the problem has no output")
            return None
        l_terms = p.output.terms.T
        out = ReducedOutput(p.output.coefficients, p.output.project(self.basis),
                            gram(self._riesz_of(l_terms), p.inner_product))
        if dual is None:
            return out
        if dual.basis is None or dual.basis.shape[0] != p.size:
            raise ShapeError("the dual model must keep its (n_h, N_du) basis")
        W = dual.basis
        dual_rhs = p.rhs.project(W)  # (Q_f, N_du): W^H f_p
        dual_op = np.stack([herm(W) @ (a @ self.basis) for a in p.operator.terms])  # (Q_a, N_du, N)
        return ReducedOutput(out.coefficients, out.l_N, out.dual_gram, dual, dual_rhs, dual_op)

"""From truth to reduced model: the only code that sees both n_h and N.

:class:`OfflineBuilder` holds the growing truth-size offline state (basis,
residual components, their Riesz representatives, the ``expanded`` Gram matrix
and the ``orthonormal`` QR factor) and updates it incrementally as the basis
grows; :func:`reduce` builds a model for a given basis in one go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .basis import orthonormalize
from .errors import EstimatorError, ShapeError
from .estimators import eim as eim_est
from .estimators import expanded, orthonormal, point_basis
from .estimators.base import Estimator, OfflineData, check_name
from .estimators.roundoff import ComponentBounds, component_bounds, exact_components
from .extended import check_precision, extended_dtype, is_extended, working_rtol
from .innerproduct import herm
from .problem import Problem
from .rom import ReducedModel, ReducedOutput, reduced_solve

__all__ = ["OfflineBuilder", "reduce"]

_BUILDERS = {
    "expanded": expanded.build,
    "point-basis": point_basis.build,
    "eim": eim_est.build,
    "eim-stabilized": eim_est.build_stabilized,
    "orthonormal": orthonormal.build,
}
_EXTENDED_ESTIMATORS = ("orthonormal", "expanded")  # the incremental ones, read off the extended state
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
    reduced solves (:func:`certrb.extended.refined_solve`) run in extended
    precision, and the rank tolerances are ``100 eps`` of longdouble. Only the
    ``orthonormal`` and ``expanded`` estimators are available, without round-off
    certificates (those are derived for double online arithmetic): their
    ``roundoff`` is NaN and ``OnlineResult.rigorous`` is False.

    Parameters
    ----------
    problem : Problem
    refine : int, optional
        Extended-precision refinement steps of the Riesz solves (default 1 in
        double precision, 2 in extended precision).
    rtol : float, optional
        Relative norm under which a new snapshot counts as in the span (default
        1e-14 in double precision, ``100 eps`` of longdouble in extended precision).
    precision : {"double", "extended"}
        Working precision of the offline state and of the model it freezes.

    Raises
    ------
    ValueError
        On an unknown ``precision``.

    """

    def __init__(self, problem: Problem, *, refine: int | None = None, rtol: float | None = None,
                 precision: str = "double") -> None:
        self.problem = problem
        self.precision = check_precision(precision)
        self.extended = precision == "extended"
        dtype = np.dtype(extended_dtype(problem.dtype)) if self.extended else problem.dtype
        self.dtype = dtype
        self.refine = (2 if self.extended else 1) if refine is None else refine
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
        """Residual components ``g_k`` (ordering: see :mod:`certrb.residual`), shape (n_h, K)."""
        return self._components.array

    @components.setter
    def components(self, value: NDArray) -> None:
        self._components = _Columns(value)

    @property
    def riesz(self) -> NDArray:
        """Riesz representatives ``X^{-1} g_k``, shape (n_h, K)."""
        return self._riesz.array

    @riesz.setter
    def riesz(self, value: NDArray) -> None:
        self._riesz = _Columns(value)

    @property
    def gram(self) -> NDArray:
        """``expanded`` Gram matrix ``(rho_k, rho_l)_V`` of the Riesz representatives, shape (K, K).

        Extended here by the columns added since it was last read.
        """
        k_old, K = self._gram.shape[0], self._components.n
        if k_old < K:
            ip = self.problem.inner_product
            G12 = expanded.gram(self.riesz[:, :k_old], ip, self.riesz[:, k_old:])
            G22 = expanded.gram(self.riesz[:, k_old:], ip)
            self._gram = np.block([[self._gram, G12], [G12.conj().T, G22]])
        return self._gram

    @gram.setter
    def gram(self, value: NDArray) -> None:
        self._gram = value

    @property
    def psi(self) -> NDArray:
        """X-orthonormal ``Psi`` (n_h, r) of the ``orthonormal`` factorization ``X^{-1} g = Psi R``."""
        self._update_factor()
        return self._psi.array

    @psi.setter
    def psi(self, value: NDArray) -> None:
        self._psi = _Columns(value)

    @property
    def R(self) -> NDArray:
        """Upper-trapezoidal ``R`` (r, K) of ``X^{-1} g = Psi R``; extended here by the new columns."""
        self._update_factor()
        return self._R

    @R.setter
    def R(self, value: NDArray) -> None:
        self._R = value

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
        op = self.problem.operator
        if self.extended:  # A_q v, V^H A_q v and V^H f_p then all accumulate in longdouble
            V_new = V_new.astype(self.dtype, copy=False)
        dtype = np.result_type(self.basis.dtype, V_new.dtype)
        # new components, ordered basis-vector-major: A_1 v, .., A_Qa v for each new v
        g_new = op.apply_terms(V_new).transpose(1, 2, 0).reshape(self.problem.size, -1).astype(dtype)
        n_old, k_old = self.n_basis, self._components.n
        self._basis.append(V_new.astype(dtype, copy=False))
        self._components.append(g_new)
        # Riesz representatives of the exact A_q v (formed in extended precision when refining)
        refine_double = self.refine > 0 and not self.extended
        exact = exact_components(self.problem, V_new)[:, self.problem.rhs.n_terms:] if refine_double else g_new
        self._riesz.append(self._riesz_of(exact).astype(dtype, copy=False))
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

    def solve_reduced(self, mus: NDArray, n: int) -> tuple[NDArray, NDArray]:
        """Reduced coefficients (n_mu, n) and residual coefficients (n_mu, K_n)."""
        theta = self.problem.operator.theta(mus)
        phi = self.problem.rhs.theta(mus)
        return reduced_solve(self.A_N, self.f_N, theta, phi, n)

    def estimator(
        self, name: str, *, train: NDArray | None = None, rng=None, options: Mapping | None = None,
        certify: bool = False, bounds: ComponentBounds | None = None,
    ) -> Estimator:
        """Build (or read off the incremental state) the named estimator for the current basis.

        ``certify`` also measures its round-off certificate (docs/roundoff.md); greedy
        sweeps do without, :meth:`model` measures it once for the frozen model. In
        extended precision ``certify`` is ignored (no certificate) and only
        ``orthonormal`` and ``expanded`` are available (others raise EstimatorError).
        ``bounds`` (:func:`~certrb.estimators.roundoff.component_bounds` of the current state)
        lets several certified estimators share one measurement.
        """
        self.check_estimator(name)
        if self.n_basis == 0:
            raise ShapeError("the basis is empty")
        certify = certify and not self.extended
        if name == "expanded" and not certify:
            return expanded.ExpandedEstimator(self.gram)
        if name == "orthonormal" and not certify:
            return orthonormal.OrthonormalEstimator(self.R)
        certify = certify and name != "point-basis"  # E2 has no certificate
        if certify and bounds is None:
            bounds = component_bounds(self.problem, self.basis, self.riesz)
        if name in ("orthonormal", "expanded"):
            return self._certified(name, bounds)  # type: ignore[arg-type]
        gen = np.random.default_rng(rng)
        if train is None:
            train = self.problem.parameter_space.sample(200, rng=gen)
        data = OfflineData(self.problem, self.basis, self.components, self.riesz, self.solve_reduced,
                           self.problem.parameter_space.validate(train, name="train"), gen, self.refine,
                           dict(options or {}), certify,
                           self._certified("expanded", bounds) if certify else None)  # type: ignore[arg-type]
        return _BUILDERS[name](data)

    def check_estimator(self, name: str) -> str:
        """Return ``name`` if the estimator can be built in this working precision, else raise EstimatorError."""
        check_name(name)
        if self.extended and name not in _EXTENDED_ESTIMATORS:
            raise EstimatorError(f"estimator {name!r} is not available with precision='extended'; choose one of "
                                 f"{_EXTENDED_ESTIMATORS}")
        return name

    def _certified(self, name: str, bounds: ComponentBounds) -> Estimator:
        """The incremental estimator ``name`` (orthonormal or expanded) with its round-off certificate."""
        if name == "orthonormal":
            return orthonormal.certify(self.problem, self.basis, self.riesz, self.psi, self.R, bounds)
        return expanded.certify(self.problem, self.basis, self.riesz, self.gram, bounds)

    def model(
        self,
        estimators: Sequence[str] = ("orthonormal",),
        *,
        default: str | None = None,
        train: NDArray | None = None,
        rng=None,
        options: Mapping | None = None,
        keep_basis: bool = True,
        dual: ReducedModel | None = None,
        certify: bool = True,
    ) -> ReducedModel:
        """Freeze the current state into a :class:`ReducedModel` (``dual``, ``certify``: see :func:`reduce`)."""
        if isinstance(estimators, str):
            estimators = (estimators,)
        if len(estimators) == 0:
            raise EstimatorError("attach at least one estimator")
        gen = np.random.default_rng(rng)
        names = [self.check_estimator(e) for e in estimators]
        certify = certify and not self.extended
        measure = certify and not self.extended and any(e != "point-basis" for e in names)
        bounds = component_bounds(self.problem, self.basis, self.riesz) if measure else None  # measured once
        built = {e: self.estimator(e, train=train, rng=gen, options=options, certify=certify, bounds=bounds)
                 for e in names}
        default = estimators[0] if default is None else check_name(default)
        return ReducedModel(self.problem.parameter_space, self.problem.operator.coefficients,
                            self.problem.rhs.coefficients, self.A_N.copy(), self.f_N.copy(), self.problem.stability,
                            built, default, self._output(dual), self.basis.copy() if keep_basis else None)

    def _output(self, dual: ReducedModel | None) -> ReducedOutput | None:
        p = self.problem
        if p.output is None:
            if dual is not None:
                raise ValueError("a dual model was given but the problem has no output")
            return None
        l_terms = p.output.terms.T
        out = ReducedOutput(p.output.coefficients, p.output.project(self.basis),
                            expanded.gram(self._riesz_of(l_terms), p.inner_product))
        if dual is None:
            return out
        if dual.basis is None or dual.basis.shape[0] != p.size:
            raise ShapeError("the dual model must keep its (n_h, N_du) basis")
        W = dual.basis
        dual_rhs = p.rhs.project(W)  # (Q_f, N_du): W^H f_p
        dual_op = np.stack([herm(W) @ (a @ self.basis) for a in p.operator.terms])  # (Q_a, N_du, N)
        return ReducedOutput(out.coefficients, out.l_N, out.dual_gram, dual, dual_rhs, dual_op)


def _is_orthonormal(problem: Problem, V: NDArray, tol: float = 1e-10) -> bool:
    M = problem.inner_product.gram(V)
    return bool(np.max(np.abs(M - np.eye(V.shape[1])), initial=0.0) <= tol)


def reduce(
    problem: Problem,
    basis: NDArray,
    estimators: Sequence[str] = ("orthonormal",),
    *,
    default: str | None = None,
    train: NDArray | None = None,
    rng=None,
    refine: int | None = None,
    options: Mapping | None = None,
    keep_basis: bool = True,
    dual: ReducedModel | None = None,
    certify: bool = True,
    precision: str = "double",
) -> ReducedModel:
    """Build a certified reduced model for a given basis.

    Parameters
    ----------
    problem : Problem
    basis : ndarray, shape (n_h, N)
        Reduced basis; X-orthonormalized here unless it already is (to 1e-10). With
        ``precision="extended"`` it is always X-orthonormalized again, in extended
        precision.
    estimators : sequence of str
        Estimators to attach, from ``expanded``, ``point-basis``, ``eim``,
        ``eim-stabilized``, ``orthonormal``. The first is the default unless
        ``default`` says otherwise.
    train : ndarray, shape (n_train, P), optional
        Training parameters of the EIM-based estimators (default: 200 random).
    rng : Generator, int or None
        Randomness for default training sets and point-basis candidates.
    refine : int, optional
        Extended-precision refinement steps of offline truth-space solves (default 1
        in double precision, 2 in extended precision).
    options : mapping, optional
        Per-estimator options, keyed by estimator name.
    keep_basis : bool
        Keep the (n_h, N) basis in the model (needed by ``reconstruct``).
    dual : ReducedModel, optional
        Reduced model of :func:`certrb.dual_problem` (keeping its basis): the
        output is then corrected and bounded by the primal-dual product.
    certify : bool
        Measure the round-off certificates of the estimators that have one, so that
        their bounds account for floating-point error (docs/roundoff.md). Costs a few
        truth-size operations per residual component, once. Ignored with
        ``precision="extended"``: the certificates are derived for double-precision
        online arithmetic, so such a model's ``roundoff`` is NaN, its ``bound`` the
        estimate and ``OnlineResult.rigorous`` False.
    precision : {"double", "extended"}
        ``"extended"`` keeps the basis, the residual data, ``A_N``, ``f_N`` and the
        estimator in numpy.longdouble and refines the online reduced solves in
        extended precision (see :class:`OfflineBuilder`): the reduced-basis floor can
        then go below what a double-precision basis represents. Only ``orthonormal``
        and ``expanded`` are available.

    Returns
    -------
    ReducedModel

    Raises
    ------
    ShapeError
        If the basis has the wrong shape, non-finite entries or dependent columns.
    EstimatorError
        On an unknown estimator name, or one not available in extended precision.
    ValueError
        On an unknown ``precision``.

    """
    if not isinstance(problem, Problem):
        raise TypeError("problem must be a Problem")
    V = np.asarray(basis)
    if V.ndim != 2 or V.shape[0] != problem.size or V.shape[1] == 0:
        raise ShapeError(f"basis must have shape ({problem.size}, N) with N >= 1; got {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ShapeError("basis contains NaN or infinite values")
    builder = OfflineBuilder(problem, refine=refine, precision=precision)
    for name in (estimators,) if isinstance(estimators, str) else estimators:
        builder.check_estimator(name)
    if not builder.extended and _is_orthonormal(problem, V):
        builder.append_orthonormal(V.astype(np.result_type(V.dtype, problem.dtype)))
    elif builder.add_snapshots(V) < V.shape[1]:
        raise ShapeError("basis columns are linearly dependent")
    return builder.model(estimators, default=default, train=train, rng=rng, options=options, keep_basis=keep_basis,
                         dual=dual, certify=certify)

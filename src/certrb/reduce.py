"""From truth to reduced model: the only code that sees both n_h and N.

:class:`OfflineBuilder` holds the growing truth-size offline state (basis,
residual components, their Riesz representatives, the ``expanded`` Gram matrix
and the ``orthonormal`` QR factor) and updates it incrementally as the basis
grows; :func:`reduce` builds a model for a given basis in one go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from .basis import qr_extend
from .errors import EstimatorError, ShapeError
from .estimators import eim as eim_est
from .estimators import expanded, orthonormal, point_basis
from .estimators.base import Estimator, OfflineData, check_name
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


class OfflineBuilder:
    """Incremental offline state of a reduced model.

    Parameters
    ----------
    problem : Problem
    refine : int
        Extended-precision refinement steps of the Riesz solves.
    rtol : float
        Relative norm under which a new snapshot counts as in the span.

    """

    def __init__(self, problem: Problem, *, refine: int = 1, rtol: float = 1e-14) -> None:
        self.problem = problem
        self.refine = refine
        self.rtol = rtol
        n_h = problem.size
        dtype = problem.dtype
        self.basis = np.zeros((n_h, 0), dtype=dtype)
        self.components = problem.rhs.terms.T.astype(dtype)
        self.riesz = self._riesz(self.components)
        self.gram = expanded.gram(self.components, self.riesz)
        self.psi, self.R = orthonormal.extend_factor(
            np.zeros((n_h, 0), dtype=dtype), np.zeros((0, 0), dtype=dtype), self.riesz, problem.inner_product
        )
        self.A_N = np.zeros((problem.operator.n_terms, 0, 0), dtype=dtype)
        self.f_N = np.zeros((problem.rhs.n_terms, 0), dtype=dtype)

    @property
    def n_basis(self) -> int:
        """Current reduced dimension N."""
        return self.basis.shape[1]

    def _riesz(self, g: NDArray) -> NDArray:
        return np.asarray(self.problem.inner_product.riesz(g, refine=self.refine), dtype=g.dtype)

    def add_snapshots(self, snapshots: NDArray) -> int:
        """X-orthonormalize snapshots (n_h, k) into the basis; return how many were accepted."""
        new_basis, _, accepted = qr_extend(self.basis, snapshots, self.problem.inner_product, rtol=self.rtol)
        self.append_orthonormal(new_basis[:, self.n_basis:])
        return int(np.sum(accepted))

    def append_orthonormal(self, V_new: NDArray) -> None:
        """Append basis vectors (n_h, k) that are already X-orthonormal to the basis."""
        if V_new.shape[1] == 0:
            return
        op = self.problem.operator
        dtype = np.result_type(self.basis.dtype, V_new.dtype)
        # new components, ordered basis-vector-major: A_1 v, .., A_Qa v for each new v
        g_new = op.apply_terms(V_new).transpose(1, 2, 0).reshape(self.problem.size, -1).astype(dtype)
        rho_new = self._riesz(g_new)
        G12 = herm(self.components) @ rho_new
        G22 = expanded.gram(g_new, rho_new)
        self.gram = np.block([[self.gram, G12], [G12.conj().T, G22]])
        self.psi, self.R = orthonormal.extend_factor(self.psi, self.R, rho_new, self.problem.inner_product)
        self.components = np.concatenate([self.components, g_new], axis=1)
        self.riesz = np.concatenate([self.riesz, rho_new], axis=1)
        n_old = self.n_basis
        self.basis = np.concatenate([self.basis.astype(dtype), V_new.astype(dtype)], axis=1)
        self.A_N = self._border_operators(n_old, g_new)
        self.f_N = np.concatenate([self.f_N, self.problem.rhs.project(V_new)], axis=1)

    def _border_operators(self, n_old: int, g_new: NDArray) -> NDArray:
        """``A_N`` (Q_a, N, N) grown by the rows and columns of the new basis vectors.

        ``g_new`` (n_h, k Q_a) holds ``A_q v`` for the k new vectors ``v`` (vector-major).
        """
        q_a, n, k = self.problem.operator.n_terms, self.n_basis, self.n_basis - n_old
        A = np.zeros((q_a, n, n), dtype=np.result_type(self.A_N.dtype, g_new.dtype, self.basis.dtype))
        A[:, :n_old, :n_old] = self.A_N
        cols = (herm(self.basis) @ g_new).reshape(n, k, q_a)  # [i, j, q] = v_i^H A_q v_new_j
        A[:, :, n_old:] = cols.transpose(2, 0, 1)
        old = self.components[:, self.problem.rhs.n_terms:self.problem.rhs.n_terms + q_a * n_old]
        rows = (herm(self.basis[:, n_old:]) @ old).reshape(k, n_old, q_a)  # [i, j, q] = v_new_i^H A_q v_j
        A[:, n_old:, :n_old] = rows.transpose(2, 0, 1)
        return A

    def solve_reduced(self, mus: NDArray, n: int) -> tuple[NDArray, NDArray]:
        """Reduced coefficients (n_mu, n) and residual coefficients (n_mu, K_n)."""
        theta = self.problem.operator.theta(mus)
        phi = self.problem.rhs.theta(mus)
        return reduced_solve(self.A_N, self.f_N, theta, phi, n)

    def estimator(
        self, name: str, *, train: NDArray | None = None, rng=None, options: Mapping | None = None
    ) -> Estimator:
        """Build (or read off the incremental state) the named estimator for the current basis."""
        check_name(name)
        if self.n_basis == 0:
            raise ShapeError("the basis is empty")
        if name == "expanded":
            return expanded.ExpandedEstimator(self.gram)
        if name == "orthonormal":
            return orthonormal.OrthonormalEstimator(self.R)
        gen = np.random.default_rng(rng)
        if train is None:
            train = self.problem.parameter_space.sample(200, rng=gen)
        data = OfflineData(self.problem, self.basis, self.components, self.riesz, self.solve_reduced,
                           self.problem.parameter_space.validate(train, name="train"), gen, self.refine,
                           dict(options or {}))
        return _BUILDERS[name](data)

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
    ) -> ReducedModel:
        """Freeze the current state into a :class:`ReducedModel` (``dual``: see :func:`reduce`)."""
        if isinstance(estimators, str):
            estimators = (estimators,)
        if len(estimators) == 0:
            raise EstimatorError("attach at least one estimator")
        gen = np.random.default_rng(rng)
        built = {check_name(e): self.estimator(e, train=train, rng=gen, options=options) for e in estimators}
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
                            expanded.gram(l_terms, self._riesz(l_terms)))
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
    refine: int = 1,
    options: Mapping | None = None,
    keep_basis: bool = True,
    dual: ReducedModel | None = None,
) -> ReducedModel:
    """Build a certified reduced model for a given basis.

    Parameters
    ----------
    problem : Problem
    basis : ndarray, shape (n_h, N)
        Reduced basis; X-orthonormalized here unless it already is (to 1e-10).
    estimators : sequence of str
        Estimators to attach, from ``expanded``, ``point-basis``, ``eim``,
        ``eim-stabilized``, ``orthonormal``. The first is the default unless
        ``default`` says otherwise.
    train : ndarray, shape (n_train, P), optional
        Training parameters of the EIM-based estimators (default: 200 random).
    rng : Generator, int or None
        Randomness for default training sets and point-basis candidates.
    refine : int
        Extended-precision refinement steps of offline truth-space solves.
    options : mapping, optional
        Per-estimator options, keyed by estimator name.
    keep_basis : bool
        Keep the (n_h, N) basis in the model (needed by ``reconstruct``).
    dual : ReducedModel, optional
        Reduced model of :func:`certrb.dual_problem` (keeping its basis): the
        output is then corrected and bounded by the primal-dual product.

    Returns
    -------
    ReducedModel

    Raises
    ------
    ShapeError
        If the basis has the wrong shape, non-finite entries or dependent columns.
    EstimatorError
        On an unknown estimator name.

    """
    if not isinstance(problem, Problem):
        raise TypeError("problem must be a Problem")
    V = np.asarray(basis)
    if V.ndim != 2 or V.shape[0] != problem.size or V.shape[1] == 0:
        raise ShapeError(f"basis must have shape ({problem.size}, N) with N >= 1; got {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ShapeError("basis contains NaN or infinite values")
    builder = OfflineBuilder(problem, refine=refine)
    if _is_orthonormal(problem, V):
        builder.append_orthonormal(V.astype(np.result_type(V.dtype, problem.dtype)))
    elif builder.add_snapshots(V) < V.shape[1]:
        raise ShapeError("basis columns are linearly dependent")
    return builder.model(estimators, default=default, train=train, rng=rng, options=options, keep_basis=keep_basis,
                         dual=dual)

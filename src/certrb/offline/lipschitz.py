"""Offline stage of the Lipschitz grid bound: certified continuity constants and the grid of values.

:func:`continuity_constants` proves ``gamma_q >= ||A_q||_{X -> X'}`` for each operator term,
splitting ``A_q`` into its Hermitian part ``H`` and skew part ``S`` (``||A_q|| <= ||H|| + ||S||``)
and proving ``t X - H`` and ``t X + H`` (and the same with ``i S``) positive semi-definite with
:func:`certrb.offline.certify.certify_psd`. :func:`lipschitz_grid` evaluates a certified
stability bound (an SCM, say) at the nodes of a tensor grid and refines the grid until the
online bound (:class:`certrb.online.lipschitz.LipschitzBound`) keeps a set fraction of that
bound at every cell's centre.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from ..errors import StabilityError
from ..online.lipschitz import LipschitzBound
from ..online.parameters import ParameterSpace
from ..online.stability import stability_certificate
from .certify import certify_psd, hermitian_sum
from .problem import Problem

__all__ = ["continuity_constants", "lipschitz_grid"]

_DENSE = 2000  # dense generalized eigensolver for the estimate up to this size
_STEPS = (1e-8, 1e-6, 1e-4, 1e-2, 0.1, 1.0, 10.0)


def continuity_constants(terms: Sequence[sp.spmatrix], X: sp.spmatrix) -> NDArray[np.float64]:
    """Certified upper bounds ``gamma_q >= ||A_q||_{X -> X'} = ||X^{-1/2} A_q X^{-1/2}||_2``.

    Parameters
    ----------
    terms : sequence of sparse matrices, shape (n_h, n_h)
        The operator terms ``A_q``, real or complex.
    X : sparse matrix, shape (n_h, n_h)
        The inner product (Hermitian positive definite).

    Returns
    -------
    gamma : ndarray of float64, shape (Q,)

    Raises
    ------
    StabilityError
        If a bound cannot be proved.

    """
    X = sp.csr_matrix(X)
    out = np.zeros(len(terms))
    for q, A in enumerate(terms):
        A = sp.csr_matrix(A)
        AH = sp.csr_matrix(A.conj().T)
        # Hermitian part (A + A^H) / 2, and i times the skew part: i (A - A^H) / 2, both exactly Hermitian
        for parts in ([(0.5, A), (0.5, AH)], [(0.5, 1j * A), (-0.5, 1j * AH)]):
            H = sp.csr_matrix(parts[0][0] * parts[0][1] + parts[1][0] * parts[1][1])
            if H.count_nonzero():
                out[q] += _norm_bound(H, parts, X, q)
    return out


def _norm_bound(H: sp.csr_matrix, parts: list[tuple[float, sp.csr_matrix]], X: sp.csr_matrix, q: int) -> float:
    """Proved ``t >= max |lambda(H, X)|`` for ``H``, the computed sum of ``parts`` (proofs use the exact sum)."""
    estimate = _largest_magnitude(H, X)
    minus = [(-c, M) for c, M in parts]
    for step in _STEPS:
        t = max(estimate, np.finfo(float).tiny) * (1 + step)
        if certify_psd(*hermitian_sum([(t, X), *minus])) and certify_psd(*hermitian_sum([(t, X), *parts])):
            return float(t)
    raise StabilityError(f"no bound of the norm of operator term {q} could be certified (estimate {estimate:.6g})")


def _largest_magnitude(H: sp.csr_matrix, X: sp.csr_matrix) -> float:
    """Estimate of ``max |lambda(H, X)|`` (dense up to ``_DENSE`` unknowns, else Lanczos)."""
    if H.shape[0] <= _DENSE:
        w = sla.eigh(H.toarray(), X.toarray(), eigvals_only=True)
        return float(np.abs(w).max())
    lu = spla.splu(sp.csc_matrix(X))

    def solve(b: NDArray) -> NDArray:  # a real factor solves the real and imaginary parts apart
        if np.iscomplexobj(b) and not np.iscomplexobj(X.data):
            return lu.solve(np.ascontiguousarray(b.real)) + 1j * lu.solve(np.ascontiguousarray(b.imag))
        return lu.solve(b)

    minv = spla.LinearOperator(X.shape, matvec=solve, dtype=np.result_type(H.dtype, X.dtype))
    try:
        w = spla.eigsh(H, k=1, M=X, Minv=minv, which="LM", tol=1e-6, return_eigenvectors=False)
    except spla.ArpackNoConvergence as exc:
        w = np.asarray(exc.eigenvalues)
    if not w.size:
        raise StabilityError("the largest eigenvalue of an operator term did not converge")
    return float(np.abs(w).max())


def lipschitz_grid(problem: Problem, *, source: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
                   nodes: int | Sequence[int] = 17, target: float = 0.5, max_nodes: int = 4097) -> LipschitzBound:
    """Lipschitz grid bound of a problem's stability, refined until it keeps ``target`` of ``source``.

    Parameters
    ----------
    problem : Problem
        Operator, inner product and parameter space.
    source : callable, optional
        Stability lower bound evaluated at the nodes, (n_mu, P) -> (n_mu,); default the
        problem's ``stability``. The result is certified when the source is
        (:func:`certrb.online.stability.stability_certificate`).
    nodes : int or sequence of int
        Starting nodes per axis (at least 2).
    target : float
        Refine (``n -> 2 n - 1`` on every axis) until, at every cell centre, the grid bound is
        at least ``target`` times the source; stop refining at ``max_nodes`` nodes per axis.
    max_nodes : int

    Returns
    -------
    LipschitzBound
        Its ``quality`` is the smallest ratio to the source at the cell centres.

    Raises
    ------
    StabilityError
        If the source is not positive at a node, or no continuity constant can be proved.

    """
    source = problem.stability if source is None else source
    if source is None:
        raise ValueError("lipschitz_grid needs a stability bound: the problem has none and no source was given")
    if not 0 <= target < 1:
        raise ValueError(f"target must lie in [0, 1); got {target!r}")
    space, operator = problem.parameter_space, problem.operator
    counts = np.broadcast_to(np.asarray(nodes, dtype=int), (space.dim,)).copy()
    if (counts < 2).any():
        raise ValueError(f"nodes must be at least 2 per axis; got {nodes!r}")
    gamma = continuity_constants(operator.terms, problem.inner_product.matrix)
    certified = stability_certificate(source).endswith("(certified)")
    axes = [np.linspace(0.0, 1.0, int(c)) for c in counts]  # unit coordinates of the nodes, per axis
    known: dict[bytes, tuple[NDArray[np.float64], float]] = {}  # a level's centres are the next one's nodes
    while True:
        mus, values = _source_values(source, space, _tensor(axes), known)
        if not (values > 0).all():
            raise StabilityError(f"the source stability bound is not positive at node mu = "
                                 f"{mus[int(np.argmin(values > 0))].tolist()}")
        bound = LipschitzBound(operator.coefficients, space, values.reshape(tuple(a.size for a in axes)),
                               operator.theta(mus), gamma, certified)
        mids = [(a[:-1] + a[1:]) / 2 for a in axes]
        centres, reference = _source_values(source, space, _tensor(mids), known)
        try:
            ratio = float(np.min(bound(centres) / reference))
        except StabilityError:  # not positive at a centre
            ratio = 0.0
        if ratio >= target or any(2 * a.size - 1 > max_nodes for a in axes):
            return replace(bound, quality=ratio)
        axes = [np.sort(np.concatenate([a, m])) for a, m in zip(axes, mids, strict=True)]


def _tensor(axes: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    """The tensor grid of per-axis unit coordinates, (prod n_i, P) in C order."""
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)


def _source_values(source: Callable, space: ParameterSpace, u: NDArray[np.float64],
                   known: dict[bytes, tuple[NDArray[np.float64], float]]) -> tuple[NDArray[np.float64], NDArray]:
    """Parameters (n, P) of unit coordinates ``u`` and ``source`` there (n,), evaluated only where not ``known``.

    A parameter is mapped from its unit coordinates once and kept with its value, so that the
    coefficients at a node are those of the very parameter the source was evaluated at.
    """
    keys = [row.tobytes() for row in u]
    new = [i for i, key in enumerate(keys) if key not in known]
    if new:
        mus = space.from_unit(u[new])
        fresh = np.asarray(source(mus), dtype=np.float64)
        known.update(zip((keys[i] for i in new), zip(mus, fresh.tolist(), strict=True), strict=True))
    pairs = [known[key] for key in keys]
    return np.array([mu for mu, _ in pairs]), np.array([value for _, value in pairs])

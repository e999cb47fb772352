"""Successive constraint method (SCM), online: stability lower bounds from small linear programs.

For each parameter (cost independent of n_h): the lower bound is the LP
``min c(mu) . y`` over ``y`` in the certified box ``B``, subject to
``c(mu_k) . y >= lambda(mu_k)`` for the ``n_neighbors`` SCM points nearest to ``mu``;
its value is taken from the solver's dual multipliers by weak duality, minus a
rounding allowance, so solver tolerances cannot make it exceed the exact constant.
The upper bound is ``min_k c(mu) . y(mu_k)``. See :mod:`certrb.offline.scm` for the
offline stage (box, SCM points) and its rigor. The LP solver (HiGHS through
:func:`scipy.optimize.linprog`) is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ParameterError, ShapeError, StabilityError
from .coefficients import Coefficients, evaluate_coefficients

__all__ = ["KINDS", "SCMBound", "infsup_coefficients"]

KINDS = ("coercive", "inf-sup")
_EPS = float(np.finfo(float).eps)


# --- coefficients ---------------------------------------------------------------------------


def infsup_coefficients(theta: NDArray, imag_terms: bool) -> NDArray[np.float64]:
    """SCM coefficients of ``A(mu)^H X^{-1} A(mu)`` from the operator coefficients.

    Parameters
    ----------
    theta : ndarray, shape (n_mu, Q)
        Operator coefficients, real or complex.
    imag_terms : bool
        Include the terms ``2 Im(conj(theta_q) theta_q')``.

    Returns
    -------
    c : ndarray, shape (n_mu, Q (Q + 1) / 2) or (n_mu, Q^2)
        ``|theta_q|^2`` for ``q < Q``, then ``2 Re(conj(theta_q) theta_q')`` and (with
        ``imag_terms``) ``2 Im(conj(theta_q) theta_q')`` for ``q < q'`` in
        ``numpy.triu_indices(Q, 1)`` order.

    Examples
    --------
    >>> infsup_coefficients(np.array([[1.0, 2j]]), True)
    array([[1., 4., 0., 4.]])

    """
    iu = np.triu_indices(theta.shape[1], 1)
    prod = 2.0 * theta.conj()[:, iu[0]] * theta[:, iu[1]]
    parts = [np.abs(theta) ** 2, np.real(prod)] + ([np.imag(prod)] if imag_terms else [])
    return np.concatenate(parts, axis=1).astype(np.float64, copy=False)


def coercive_theta(theta: NDArray) -> NDArray[np.float64]:
    if theta.dtype.kind == "c":
        if theta.imag.any():
            raise StabilityError(
                "the coercive SCM needs real operator coefficients theta_q(mu); use kind='inf-sup' for complex ones"
            )
        theta = theta.real
    return np.ascontiguousarray(theta, dtype=np.float64)


def infsup_theta(theta: NDArray, imag_terms: bool) -> NDArray[np.float64]:
    c = infsup_coefficients(theta, True)
    q = theta.shape[1]
    n_imag = q * (q - 1) // 2
    if imag_terms or n_imag == 0:
        return c
    if c[:, -n_imag:].any():
        raise StabilityError(
            "Im(conj(theta_q) theta_q') is not zero here, but this inf-sup SCM was built without imaginary "
            "terms (the coefficients were real on the training set)"
        )
    return c[:, :-n_imag]


def n_scm_terms(kind: str, q: int, imag_terms: bool) -> int:
    if kind == "coercive":
        return q
    return q * q if imag_terms else q * (q + 1) // 2




def check_options(kind: str, tol: float, max_iter: int, n_neighbors: int, margin: float) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol!r}")
    for name, value in (("max_iter", max_iter), ("n_neighbors", n_neighbors)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a non-negative number; got {margin!r}")



def check_values(fields: dict[str, Any]) -> None:
    """The value checks of :meth:`SCMBound.from_data` on its float64 arrays (ValueError naming the array)."""
    for key in ("box", "points", "values", "lower_values", "y", "scaling"):
        if not np.isfinite(fields[key]).all():
            raise ValueError(f"SCM {key} is not finite everywhere")
    problems = {"history": np.isnan(fields["history"]).any(), "box": (fields["box"][:, 0] > fields["box"][:, 1]).any(),
                "scaling": not (fields["scaling"][1] > 0).all(),
                "lower_values": not (fields["lower_values"] > 0).all()}
    for key, bad in problems.items():
        if bad:
            raise ValueError(f"SCM {key} is invalid (history without NaN, box rows lower <= upper, positive scaling "
                             f"widths, positive lower_values)")


# --- linear programs ------------------------------------------------------------------------


def lp_bound(c: NDArray, G: NDArray, b: NDArray, box: NDArray, mu: NDArray) -> tuple[float, NDArray]:
    """Certified value of ``min c.y`` s.t. ``G y >= b``, ``y`` in ``box``; and the LP's minimizer.

    Parameters
    ----------
    c : ndarray, shape (Q_s,)
    G : ndarray, shape (k, Q_s)
    b : ndarray, shape (k,)
    box : ndarray, shape (Q_s, 2)
    mu : ndarray, shape (P,)
        The parameter, for error messages.

    Returns
    -------
    value : float
        The weak-duality bound from the solver's multipliers (see the module notes), or the
        box bound (multipliers 0) when that is larger.
    y : ndarray, shape (Q_s,)

    """
    # round-off-sized objective entries (e.g. at an EIM magic parameter, where all but one interpolation
    # coefficient vanish up to round-off) can stall HiGHS' simplex; the certificate below uses the exact c
    solver_c = np.where(np.abs(c) > _EPS * np.abs(c).max(initial=0.0), c, 0.0)
    from scipy.optimize import linprog  # imports scipy.sparse: only when an LP is solved

    res = linprog(solver_c, A_ub=-G, b_ub=-b, bounds=box, method="highs")
    if res.status != 0 or res.x is None:  # HiGHS' simplex can stall on badly scaled data: its interior-point method
        res = linprog(solver_c, A_ub=-G, b_ub=-b, bounds=box, method="highs-ipm")
    if res.status != 0 or res.x is None:
        raise StabilityError(f"the SCM linear program failed at mu = {mu.tolist()}: {res.message}")
    size = np.abs(box).max(axis=1)
    values = []
    for lam in (np.maximum(-np.asarray(res.ineqlin.marginals), 0.0), np.zeros(G.shape[0])):
        # lam = 0 is dual feasible too (the box bound): it wins when the multipliers of a badly
        # scaled LP are off enough that r = c - G^T lam times a wide box end is large
        r = c - lam @ G
        t = np.minimum(r * box[:, 0], r * box[:, 1])
        slack = 8 * (G.shape[0] + c.size) * _EPS * (lam @ np.abs(b) + (np.abs(c) + lam @ np.abs(G)) @ size)
        values.append(float(lam @ b + t.sum() - slack))
    return max(values), res.x


def nearest(a: NDArray, b: NDArray, k: int) -> NDArray[np.intp]:
    """Indices (n_a, min(k, n_b)) of the rows of ``b`` nearest to each row of ``a``."""
    k = min(k, b.shape[0])
    if k == b.shape[0]:
        return np.broadcast_to(np.arange(k), (a.shape[0], k))
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return np.argpartition(d, k - 1, axis=1)[:, :k]


@dataclass(frozen=True, eq=False)
class SCMBound:
    """Online SCM stability bounds: one small LP per parameter, usable as a Problem's ``stability``.

    Built offline by :class:`certrb.SCM` (a subclass whose constructor runs the SCM
    greedy) or rebuilt from stored arrays by :meth:`from_data`. Holds only small arrays
    and the operator's coefficient function; picklable when that function is.

    Attributes
    ----------
    kind : str
    n_terms : int
        Number Q of operator terms.
    imag_terms : bool
        Inf-sup kind with the ``Im(conj(theta_q) theta_q')`` terms (``Q_s = Q^2``).
    box : ndarray, shape (Q_s, 2)
        Certified bounds of each Rayleigh quotient ``y_j``.
    points : ndarray, shape (K, P)
        SCM points.
    values : ndarray, shape (K,)
        Computed ``alpha(mu_k)`` (or ``beta(mu_k)^2``).
    lower_values : ndarray, shape (K,)
        Certified lower values of ``values``: the LP right-hand sides.
    y : ndarray, shape (K, Q_s)
        Rayleigh quotients of the minimizing eigenvector at each SCM point.
    history : ndarray, shape (K,)
        Maximum relative gap over the training set after each added point.
    n_neighbors : int
    scaling : ndarray, shape (2, P)
        Offset and width per parameter axis for the neighbour distance.
    theta_points : ndarray, shape (K, Q_s)
        SCM coefficients at the SCM points.
    certified : bool
        Every box end and every ``lower_values`` entry was proved by
        :func:`certrb.offline.certify.certify_psd` (set by :class:`certrb.SCM`; stored data
        without the flag counts as not certified).

    """

    coefficients: Coefficients
    kind: str
    n_terms: int
    imag_terms: bool
    box: NDArray[np.float64]
    points: NDArray[np.float64]
    values: NDArray[np.float64]
    lower_values: NDArray[np.float64]
    y: NDArray[np.float64]
    history: NDArray[np.float64]
    n_neighbors: int
    scaling: NDArray[np.float64]
    theta_points: NDArray[np.float64]
    certified: bool = False

    @classmethod
    def from_data(cls, coefficients: Coefficients, *, kind: str, n_terms: int, imag_terms: bool, box: ArrayLike,
                  points: ArrayLike, values: ArrayLike, lower_values: ArrayLike, y: ArrayLike, history: ArrayLike,
                  n_neighbors: int, scaling: ArrayLike, certified: bool = False) -> SCMBound:
        """Rebuild SCM bounds from its stored online data (the attributes of the same names).

        ``theta_points`` is recomputed from ``coefficients``. Checked: ``kind``, ``n_terms``,
        ``imag_terms`` and ``n_neighbors`` of their types (ValueError), the arrays' shapes
        (ShapeError) and values (ValueError: real floats, finite but for ``history``, which has
        no NaN; ordered ``box`` rows; positive ``scaling`` widths; positive ``lower_values``).
        """
        obj = object.__new__(cls)
        obj._assign(coefficients=coefficients, kind=kind, n_terms=int(n_terms), imag_terms=bool(imag_terms),
                    box=box, points=points, values=values, lower_values=lower_values, y=y, history=history,
                    n_neighbors=int(n_neighbors), scaling=scaling, certified=bool(certified))
        return obj

    def _assign(self, **fields: Any) -> None:
        check_options(fields["kind"], 1.0, 1, fields["n_neighbors"], 0.0)
        if isinstance(fields["n_terms"], bool) or int(fields["n_terms"]) != fields["n_terms"] or fields["n_terms"] < 1:
            raise ValueError(f"n_terms must be an integer >= 1; got {fields['n_terms']!r}")
        for key in ("box", "points", "values", "lower_values", "y", "history", "scaling"):
            dtype = np.asarray(fields[key]).dtype
            if dtype.kind != "f":
                raise ValueError(f"SCM {key} must be real floating-point data; got dtype {dtype}")
            fields[key] = np.array(fields[key], dtype=np.float64)
            fields[key].flags.writeable = False
        q_s = n_scm_terms(fields["kind"], fields["n_terms"], fields["imag_terms"])
        k, p = fields["points"].shape if fields["points"].ndim == 2 else (0, 0)
        expected = {"box": (q_s, 2), "values": (k,), "lower_values": (k,), "y": (k, q_s), "history": (k,),
                    "scaling": (2, p)}
        for key, shape in expected.items():
            if k == 0 or fields[key].shape != shape:
                raise ShapeError(f"SCM {key} must have shape {shape} (K >= 1 points of shape (K, P)); "
                                 f"got {fields[key].shape}")
        check_values(fields)
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        theta_points = self._scm_theta(self.points)
        theta_points.flags.writeable = False
        object.__setattr__(self, "theta_points", theta_points)

    def __repr__(self) -> str:
        return (f"SCM(kind={self.kind!r}, n_points={self.points.shape[0]}, n_scm_terms={self.box.shape[0]}, "
                f"max_gap={self.history[-1]:.3g})")

    @property
    def n_points(self) -> int:
        """Number K of SCM points."""
        return self.points.shape[0]

    def _validate(self, mus: ArrayLike) -> NDArray[np.float64]:
        p = self.points.shape[1]
        if isinstance(mus, np.ndarray) and mus.dtype == np.float64 and mus.ndim == 2 and mus.shape[1] == p:
            m = mus
        else:
            raw = np.asarray(mus)
            if raw.dtype.kind not in "iuf":
                raise ParameterError(f"mus must be a real array of shape (n_mu, {p}); got dtype {raw.dtype}")
            m = raw.astype(np.float64)
            m = m[None, :] if m.ndim == 1 and m.shape[0] == p else m
            if m.ndim != 2 or m.shape[1] != p:
                raise ParameterError(f"mus must have shape (n_mu, {p}); got {raw.shape}")
        if not np.isfinite(m).all():
            raise ParameterError("mus contains NaN or infinite values")
        return m

    def _scm_theta(self, mus: NDArray[np.float64]) -> NDArray[np.float64]:
        theta = evaluate_coefficients(self.coefficients, mus, self.n_terms, "operator")
        if self.kind == "coercive":
            return coercive_theta(theta)
        return infsup_theta(theta, self.imag_terms)

    def _to_constant(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return values if self.kind == "coercive" else np.sqrt(np.maximum(values, 0.0))

    def lp_values(self, mus: ArrayLike) -> NDArray[np.float64]:
        """Certified LP values: lower bounds of ``alpha(mu)`` or of ``beta(mu)^2``, shape (n_mu,).

        Raises
        ------
        StabilityError
            If a linear program is infeasible or fails; the message names the parameter.

        """
        m = self._validate(mus)
        c = self._scm_theta(m)
        near = nearest((m - self.scaling[0]) / self.scaling[1], (self.points - self.scaling[0]) / self.scaling[1],
                        self.n_neighbors)
        out = np.empty(m.shape[0])
        for i in range(m.shape[0]):
            idx = near[i]
            out[i] = lp_bound(c[i], self.theta_points[idx], self.lower_values[idx], self.box, m[i])[0]
        return out

    def __call__(self, mus: ArrayLike) -> NDArray[np.float64]:
        """Lower bounds of the stability constant (``alpha`` or ``beta``) for ``mus`` (n_mu, P), shape (n_mu,).

        The coercive kind may return non-positive values where the SCM is not
        tight enough; the inf-sup kind returns ``sqrt(max(LP value, 0))``.
        """
        return self._to_constant(self.lp_values(mus))

    def upper_bound(self, mus: ArrayLike) -> NDArray[np.float64]:
        """Upper bounds ``min_k c(mu) . y_k`` of the stability constant (its square root for inf-sup), (n_mu,)."""
        m = self._validate(mus)
        return self._to_constant((self._scm_theta(m) @ self.y.T).min(axis=1))

r"""Galerkin P0 boundary operators of the Helmholtz equation on flat triangles (numba).

``G(x, y) = exp(i k r) / (4 pi r)``, ``r = |x - y|``, piecewise-constant trial
and test functions (one per triangle, ``n_i`` the right-hand unit normal):

* single layer ``V_ij = int_{T_i} int_{T_j} G(x, y) dy dx`` (symmetric);
* adjoint double layer ``K'_ij = int_{T_i} int_{T_j} n_i . grad_x G(x, y) dy dx``
  (``K'_ii = 0`` on flat triangles);
* combined ``A_ij = |T_i| delta_ij / 2 + K'_ij - i eta V_ij``.

Every entry, whether requested alone or as part of a full matrix, is computed
by the same compiled function (:func:`operator_entries`; the matrix is
assembled by calling it on all pairs), so matrices and entries agree bit for
bit, which the matrix EIM needs.

Quadrature per pair ``(i, j)``; ``V_ij`` is evaluated in the canonical order
``(min(i, j), max(i, j))``, which makes ``V`` exactly symmetric:

* regular pairs (no shared vertex, centroid distance ``>= near * h``, ``h`` the
  larger triangle diameter): 7-point symmetric Gauss rule (degree 5) on both
  triangles, 49 kernel evaluations;
* near pairs (no shared vertex, centroid distance ``< near * h``): singularity
  subtraction ``G = 1 / (4 pi r) + (exp(i k r) - 1) / (4 pi r)`` and
  ``grad G = grad (1 / (4 pi r)) + [exp(i k r) (i k r - 1) + 1] (x - y) / (4 pi r^3)``.
  The inner integrals of ``1 / r`` and of its gradient over ``T_j`` are exact
  (closed-form potential of a uniform flat triangle: edge logarithms and the
  solid angle, after Wilton et al. 1984 / Graglia 1993; ``R + s`` is evaluated
  as ``R0^2 / (R - s)`` for ``s < 0`` to avoid cancellation); the bounded
  remainders use the 7-point rule on ``T_j``, the outer integral the 7-point
  rule on ``T_i``;
* touching pairs (coincident, shared edge or shared vertex): the same
  subtraction, with the outer rule refined to 16 sub-triangles of ``T_i``
  (112 points), because the inner potential is only continuous (logarithmic
  gradient) on the common edges and vertices.

Right-hand sides (:func:`load_vector`) use the 7-point rule. Equations and sign
conventions: :mod:`certrb.bem`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray

__all__ = ["gauss7", "load_vector", "operator_entries", "operator_matrix", "single_layer_entries",
           "single_layer_matrix", "subdivided_rule"]

_A1, _B1, _W1 = 0.0597158717897698, 0.4701420641051151, 0.1323941527885062
_A2, _B2, _W2 = 0.7974269853530873, 0.1012865073234563, 0.1259391805448271


def gauss7() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """7-point symmetric rule, exact for degree 5: barycentric points (7, 3) and weights (7,) summing to 1."""
    pts = [[1 / 3, 1 / 3, 1 / 3]]
    for a, b in ((_A1, _B1), (_A2, _B2)):
        pts += [[a, b, b], [b, a, b], [b, b, a]]
    return np.array(pts), np.array([0.225] + [_W1] * 3 + [_W2] * 3)


def subdivided_rule(levels: int = 2) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The 7-point rule on the ``4**levels`` congruent sub-triangles: barycentric points and weights (sum 1)."""
    tris = [np.eye(3)]  # rows: barycentric coordinates of the sub-triangle corners
    for _ in range(levels):
        new = []
        for c in tris:
            m01, m12, m20 = (c[0] + c[1]) / 2, (c[1] + c[2]) / 2, (c[2] + c[0]) / 2
            new += [np.array(t) for t in ((c[0], m01, m20), (c[1], m12, m01), (c[2], m20, m12), (m01, m12, m20))]
        tris = new
    b, w = gauss7()
    pts = np.concatenate([b @ c for c in tris])
    return pts, np.tile(w, len(tris)) / len(tris)


@njit(cache=True)
def _unit_normal(p):
    """Unit normal ``(p1 - p0) x (p2 - p0) / |...|`` of the triangle with corners ``p: (3, 3)``, a 3-tuple."""
    a0, a1, a2 = p[1, 0] - p[0, 0], p[1, 1] - p[0, 1], p[1, 2] - p[0, 2]
    b0, b1, b2 = p[2, 0] - p[0, 0], p[2, 1] - p[0, 1], p[2, 2] - p[0, 2]
    n0, n1, n2 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0
    nn = np.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
    return n0 / nn, n1 / nn, n2 / nn


@njit(cache=True)
def _triangle_potential(p, x0, x1, x2):
    """``int_T 1 / |x - y| dy`` for the flat triangle with corners ``p: (3, 3)`` (closed form)."""
    n0, n1, n2 = _unit_normal(p)
    w = abs(n0 * (x0 - p[0, 0]) + n1 * (x1 - p[0, 1]) + n2 * (x2 - p[0, 2]))
    total = 0.0
    for e in range(3):
        f = (e + 1) % 3
        dm0, dm1, dm2 = p[e, 0] - x0, p[e, 1] - x1, p[e, 2] - x2  # p^- - x
        dp0, dp1, dp2 = p[f, 0] - x0, p[f, 1] - x1, p[f, 2] - x2  # p^+ - x
        s0, s1, s2 = dp0 - dm0, dp1 - dm1, dp2 - dm2
        ls = np.sqrt(s0 * s0 + s1 * s1 + s2 * s2)
        s0, s1, s2 = s0 / ls, s1 / ls, s2 / ls
        m0, m1, m2 = s1 * n2 - s2 * n1, s2 * n0 - s0 * n2, s0 * n1 - s1 * n0  # outward in-plane edge normal
        t0 = m0 * dm0 + m1 * dm1 + m2 * dm2
        sm, sp = s0 * dm0 + s1 * dm1 + s2 * dm2, s0 * dp0 + s1 * dp1 + s2 * dp2
        rm = np.sqrt(dm0 * dm0 + dm1 * dm1 + dm2 * dm2)
        rp = np.sqrt(dp0 * dp0 + dp1 * dp1 + dp2 * dp2)
        r0sq = t0 * t0 + w * w
        if abs(t0) > 1e-14 * (rm + rp):
            # R + s without cancellation when s < 0: R + s = R0^2 / (R - s)
            fp = rp + sp if sp > 0 else r0sq / (rp - sp)
            fm = rm + sm if sm > 0 else r0sq / (rm - sm)
            total += t0 * np.log(fp / fm)
            if w > 0:
                total -= w * (np.arctan(t0 * sp / (r0sq + w * rp)) - np.arctan(t0 * sm / (r0sq + w * rm)))
    return total


@njit(cache=True)
def _triangle_potential_gradient(p, x0, x1, x2):
    """``grad_x int_T 1 / |x - y| dy`` (closed form: edge logarithms and the solid angle), a 3-tuple."""
    n0, n1, n2 = _unit_normal(p)
    ws = n0 * (x0 - p[0, 0]) + n1 * (x1 - p[0, 1]) + n2 * (x2 - p[0, 2])
    w = abs(ws)
    g0 = g1 = g2 = 0.0
    beta = 0.0
    for e in range(3):
        f = (e + 1) % 3
        dm0, dm1, dm2 = p[e, 0] - x0, p[e, 1] - x1, p[e, 2] - x2
        dp0, dp1, dp2 = p[f, 0] - x0, p[f, 1] - x1, p[f, 2] - x2
        s0, s1, s2 = dp0 - dm0, dp1 - dm1, dp2 - dm2
        ls = np.sqrt(s0 * s0 + s1 * s1 + s2 * s2)
        s0, s1, s2 = s0 / ls, s1 / ls, s2 / ls
        m0, m1, m2 = s1 * n2 - s2 * n1, s2 * n0 - s0 * n2, s0 * n1 - s1 * n0
        t0 = m0 * dm0 + m1 * dm1 + m2 * dm2
        sm, sp = s0 * dm0 + s1 * dm1 + s2 * dm2, s0 * dp0 + s1 * dp1 + s2 * dp2
        rm = np.sqrt(dm0 * dm0 + dm1 * dm1 + dm2 * dm2)
        rp = np.sqrt(dp0 * dp0 + dp1 * dp1 + dp2 * dp2)
        r0sq = t0 * t0 + w * w
        if r0sq <= 1e-28 * (rm + rp) ** 2:  # x on the edge line: log singular, only reached off-rule
            continue
        fp = rp + sp if sp > 0 else r0sq / (rp - sp)
        fm = rm + sm if sm > 0 else r0sq / (rm - sm)
        L = np.log(fp / fm)
        g0 -= m0 * L
        g1 -= m1 * L
        g2 -= m2 * L
        if w > 0:
            beta += np.arctan(t0 * sp / (r0sq + w * rp)) - np.arctan(t0 * sm / (r0sq + w * rm))
    sg = 1.0 if ws > 0 else -1.0
    return g0 - sg * n0 * beta, g1 - sg * n1 * beta, g2 - sg * n2 * beta


@njit(cache=True)
def _smooth_kernel(k, r):
    """``(exp(i k r) - 1) / r`` without cancellation; ``i k`` at ``r = 0``."""
    if r < 1e-300:
        return 1j * k
    s = np.sin(0.5 * k * r)
    return complex(-2.0 * s * s / r, np.sin(k * r) / r)


@njit(cache=True)
def _dist(x, q, y, s):
    d0, d1, d2 = x[q, 0] - y[s, 0], x[q, 1] - y[s, 1], x[q, 2] - y[s, 2]
    return np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)


@njit(cache=True)
def _regular(xa, wa, xb, wb, k):
    acc = 0.0j
    for q in range(xa.shape[0]):
        inner = 0.0j
        for s in range(xb.shape[0]):
            r = _dist(xa, q, xb, s)
            inner += wb[s] * np.exp(1j * k * r) / r
        acc += wa[q] * inner
    return acc


@njit(cache=True)
def _semi_analytic(xa, wa, pb, xb, wb, k):
    acc = 0.0j
    for q in range(xa.shape[0]):
        inner = 0.0j
        for s in range(xb.shape[0]):
            inner += wb[s] * _smooth_kernel(k, _dist(xa, q, xb, s))
        acc += wa[q] * (inner + _triangle_potential(pb, xa[q, 0], xa[q, 1], xa[q, 2]))
    return acc


@njit(cache=True)
def _entry(i, j, k, tri, corners, area, diam, x7, w7, xfine, wfine, near):
    a, b = min(i, j), max(i, j)
    touching = False
    for u in range(3):
        for v in range(3):
            touching = touching or tri[a, u] == tri[b, v]
    if touching:
        val = _semi_analytic(xfine[a], wfine * area[a], corners[b], x7[b], w7 * area[b], k)
        return val / (4.0 * np.pi)
    c0 = (x7[a, 0, 0] - x7[b, 0, 0]) ** 2 + (x7[a, 0, 1] - x7[b, 0, 1]) ** 2 + (x7[a, 0, 2] - x7[b, 0, 2]) ** 2
    if np.sqrt(c0) < near * max(diam[a], diam[b]):  # x7[:, 0] is the centroid
        return _semi_analytic(x7[a], w7 * area[a], corners[b], x7[b], w7 * area[b], k) / (4.0 * np.pi)
    return area[a] * area[b] * _regular(x7[a], w7, x7[b], w7, k) / (4.0 * np.pi)


@njit(cache=True)
def _smooth_gradient_kernel(k, r):
    """``(exp(i k r) (i k r - 1) + 1) / r^3``; series ``sum_{m>=2} (m-1) (i k r)^m / (m! r^3)`` for ``k r < 0.1``."""
    z = k * r
    if z < 0.1:
        acc, term = 0.0j, 1.0 + 0.0j  # term = (i z)^m / m!
        for m in range(1, 11):
            term *= 1j * z / m
            acc += (m - 1) * term
        return acc / (r * r * r)
    return (np.exp(1j * z) * (1j * z - 1.0) + 1.0) / (r * r * r)


@njit(cache=True)
def _normal_dot(n, x, q, y, s):
    return n[0] * (x[q, 0] - y[s, 0]) + n[1] * (x[q, 1] - y[s, 1]) + n[2] * (x[q, 2] - y[s, 2])


@njit(cache=True)
def _regular_kp(n, xa, wa, xb, wb, k):
    acc = 0.0j
    for q in range(xa.shape[0]):
        inner = 0.0j
        for s in range(xb.shape[0]):
            r = _dist(xa, q, xb, s)
            inner += wb[s] * _normal_dot(n, xa, q, xb, s) * np.exp(1j * k * r) * (1j * k * r - 1.0) / (r * r * r)
        acc += wa[q] * inner
    return acc


@njit(cache=True)
def _semi_analytic_kp(n, xa, wa, pb, xb, wb, k):
    acc = 0.0j
    for q in range(xa.shape[0]):
        inner = 0.0j
        for s in range(xb.shape[0]):
            inner += wb[s] * _normal_dot(n, xa, q, xb, s) * _smooth_gradient_kernel(k, _dist(xa, q, xb, s))
        g0, g1, g2 = _triangle_potential_gradient(pb, xa[q, 0], xa[q, 1], xa[q, 2])
        acc += wa[q] * (inner + n[0] * g0 + n[1] * g1 + n[2] * g2)  # -n.(x-y)/r^3 = n.grad_x(1/r)
    return acc


@njit(cache=True)
def _entry_kp(i, j, k, tri, corners, area, diam, normal, x7, w7, xfine, wfine, near):
    """``K'_ij = int_{T_i} int_{T_j} n_i . grad_x G(x, y) dy dx`` (zero on the diagonal: flat triangles)."""
    if i == j:
        return 0.0j
    touching = False
    for u in range(3):
        for v in range(3):
            touching = touching or tri[i, u] == tri[j, v]
    n = normal[i]
    if touching:
        return _semi_analytic_kp(n, xfine[i], wfine * area[i], corners[j], x7[j], w7 * area[j], k) / (4.0 * np.pi)
    c0 = (x7[i, 0, 0] - x7[j, 0, 0]) ** 2 + (x7[i, 0, 1] - x7[j, 0, 1]) ** 2 + (x7[i, 0, 2] - x7[j, 0, 2]) ** 2
    if np.sqrt(c0) < near * max(diam[i], diam[j]):
        return _semi_analytic_kp(n, x7[i], w7 * area[i], corners[j], x7[j], w7 * area[j], k) / (4.0 * np.pi)
    return area[i] * area[j] * _regular_kp(n, x7[i], w7, x7[j], w7, k) / (4.0 * np.pi)


@njit(cache=True)
def _entry_value(op, eta, i, j, k, tri, corners, area, diam, normal, x7, w7, xfine, wfine, near):
    """Entry ``(i, j)`` of op 0: ``V``; op 1: ``K'``; op 2: ``M / 2 + K' - i eta V`` (``M`` the P0 mass matrix)."""
    val = 0.0j
    if op != 1:
        val = _entry(i, j, k, tri, corners, area, diam, x7, w7, xfine, wfine, near)
        if op == 2:
            val = -1j * eta * val
    if op != 0:
        val += _entry_kp(i, j, k, tri, corners, area, diam, normal, x7, w7, xfine, wfine, near)
        if op == 2 and i == j:
            val += 0.5 * area[i]
    return val


@njit(cache=True, parallel=True)
def _entries(op, eta, rows, cols, k, tri, corners, area, diam, normal, x7, w7, xfine, wfine, near):
    """:func:`_entry_value` for all pairs ``(rows[m], cols[m])``, in parallel."""
    out = np.empty(rows.shape[0], dtype=np.complex128)
    for m in prange(rows.shape[0]):
        out[m] = _entry_value(op, eta, rows[m], cols[m], k, tri, corners, area, diam, normal, x7, w7, xfine, wfine,
                              near)
    return out


@njit(cache=True)
def _entries_serial(op, eta, rows, cols, k, tri, corners, area, diam, normal, x7, w7, xfine, wfine, near):
    """:func:`_entries` in one thread: for the few entries of an online query, where waking threads costs more."""
    out = np.empty(rows.shape[0], dtype=np.complex128)
    for m in range(rows.shape[0]):
        out[m] = _entry_value(op, eta, rows[m], cols[m], k, tri, corners, area, diam, normal, x7, w7, xfine, wfine,
                              near)
    return out


def _geometry(v, t):
    """Per-triangle data shared by all entries: corners, areas, diameters, normals, quadrature points, weights."""
    corners = np.ascontiguousarray(v[t])
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    diam = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normal = np.ascontiguousarray(normal / np.linalg.norm(normal, axis=1, keepdims=True))
    b7, w7 = gauss7()
    bf, wf = subdivided_rule(2)
    x7 = np.ascontiguousarray(np.einsum("qa,tad->tqd", b7, corners))
    xf = np.ascontiguousarray(np.einsum("qa,tad->tqd", bf, corners))
    return corners, area, diam, normal, x7, w7, xf, wf


def _check(vertices: ArrayLike, triangles: ArrayLike, k: float) -> tuple[NDArray, NDArray, float]:
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    t = np.ascontiguousarray(triangles, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (n_v, 3); got {v.shape}")
    if t.ndim != 2 or t.shape[1] != 3 or t.min(initial=0) < 0 or t.max(initial=0) >= v.shape[0]:
        raise ValueError(f"triangles must have shape (n_t, 3) with indices in [0, {v.shape[0]}); got {t.shape}")
    k = float(k)
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"the wavenumber k must be positive and finite; got k = {k}")
    return v, t, k


_OPERATORS = {"single_layer": 0, "adjoint_double_layer": 1, "combined": 2}
_PARALLEL_MIN = 256  # fewer entries are computed in one thread (same values, bit for bit)


def operator_entries(vertices: ArrayLike, triangles: ArrayLike, k: float, rows: ArrayLike, cols: ArrayLike, *,
                     operator: str = "single_layer", eta: float | None = None,
                     near: float = 2.0) -> NDArray[np.complex128]:
    """Entries ``A[rows[m], cols[m]]`` of a Galerkin P0 boundary operator (quadrature: module docstring).

    Parameters
    ----------
    vertices : (n_v, 3) float array
    triangles : (n_t, 3) int array
        Right-hand orientation gives the normals (outward for :func:`certrb.bem.mesh.icosphere`).
    k : float
        Wavenumber, > 0.
    rows, cols : (n_e,) int arrays
        Triangle indices of the requested entries.
    operator : {"single_layer", "adjoint_double_layer", "combined"}
        ``V``, ``K'`` or the combined-field matrix ``M / 2 + K' - i eta V``.
    eta : float, optional
        Coupling of ``"combined"``; default ``k``.
    near : float
        Non-touching pairs closer than ``near`` times the larger diameter (centroid distance) get the
        semi-analytic rule.

    Returns
    -------
    (n_e,) complex array

    Raises
    ------
    ValueError
        On malformed meshes, ``k <= 0``, an unknown ``operator`` or indices out of range / of different lengths.
    """
    v, t, k = _check(vertices, triangles, k)
    if operator not in _OPERATORS:
        raise ValueError(f"operator must be one of {sorted(_OPERATORS)}; got {operator!r}")
    r = np.ascontiguousarray(rows, dtype=np.int64).ravel()
    c = np.ascontiguousarray(cols, dtype=np.int64).ravel()
    if r.shape != c.shape:
        raise ValueError(f"rows and cols must have the same length; got {r.size} and {c.size}")
    if r.size and (min(r.min(), c.min()) < 0 or max(r.max(), c.max()) >= t.shape[0]):
        raise ValueError(f"rows and cols must lie in [0, {t.shape[0]})")
    eta = k if eta is None else float(eta)
    kernel = _entries if r.size >= _PARALLEL_MIN else _entries_serial
    out: NDArray[np.complex128] = kernel(_OPERATORS[operator], eta, r, c, k, t, *_geometry(v, t),  # type: ignore[call-arg]
                                           float(near))
    return out


def operator_matrix(vertices: ArrayLike, triangles: ArrayLike, k: float, *, operator: str = "single_layer",
                    eta: float | None = None, near: float = 2.0) -> NDArray[np.complex128]:
    """The full matrix ``(n_t, n_t)``, assembled by :func:`operator_entries` on all pairs in row blocks."""
    n = np.asarray(triangles).shape[0]
    A = np.empty((n, n), dtype=np.complex128)
    block = max(1, 2**20 // max(n, 1))
    cols = np.tile(np.arange(n), block)
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = np.repeat(np.arange(start, stop), n)
        A[start:stop] = operator_entries(vertices, triangles, k, rows, cols[: rows.size], operator=operator,
                                         eta=eta, near=near).reshape(-1, n)
    return A


def single_layer_entries(vertices: ArrayLike, triangles: ArrayLike, k: float, rows: ArrayLike, cols: ArrayLike, *,
                         near: float = 2.0) -> NDArray[np.complex128]:
    """Entries ``V[rows[m], cols[m]]`` of the single-layer matrix (:func:`operator_entries`)."""
    return operator_entries(vertices, triangles, k, rows, cols, operator="single_layer", near=near)


def single_layer_matrix(vertices: ArrayLike, triangles: ArrayLike, k: float, *,
                        near: float = 2.0) -> NDArray[np.complex128]:
    """The single-layer matrix ``V: (n_t, n_t)`` (:func:`operator_matrix`)."""
    return operator_matrix(vertices, triangles, k, operator="single_layer", near=near)


def load_vector(vertices: ArrayLike, triangles: ArrayLike, k: float, direction: ArrayLike = (0.0, 0.0, 1.0), *,
                formulation: str = "first_kind", eta: float | None = None) -> NDArray[np.complex128]:
    """Right-hand side for the plane wave ``exp(i k x . d)`` (7-point rule), shape (n_t,); ``d`` is normalised.

    ``"first_kind"``: ``g_i = int_{T_i} u_inc``; ``"combined"``:
    ``g_i = int_{T_i} (d u_inc / d n - i eta u_inc)`` with ``eta = k`` by default.
    """
    v, t, k = _check(vertices, triangles, k)
    d = np.asarray(direction, dtype=float)
    if d.shape != (3,) or not np.linalg.norm(d) > 0:
        raise ValueError(f"direction must be a nonzero 3-vector; got {direction!r}")
    if formulation not in ("first_kind", "combined"):
        raise ValueError(f"formulation must be 'first_kind' or 'combined'; got {formulation!r}")
    d = d / np.linalg.norm(d)
    _, area, _, normal, x7, w7, _, _ = _geometry(v, t)
    u = np.exp(1j * k * x7 @ d)  # (n_t, 7)
    if formulation == "combined":
        u = u * (1j * k * (normal @ d)[:, None] - 1j * (k if eta is None else float(eta)))
    return area * (u @ w7)

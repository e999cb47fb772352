"""The thermal block problem on the unit square (scikit-fem).

``-div(mu_b grad u) = 1`` in ``(0, 1)^2``, ``u = 0`` on the boundary, where the
diffusivity is the constant ``mu_b`` on block ``b`` of a ``B1 x B2`` partition
of the square. Blocks are numbered row-major with rows counted from the bottom:
block ``b = r * B1 + c`` (``c = 0 .. B1-1`` along x, ``r = 0 .. B2-1`` along y)
covers ``[c / B1, (c + 1) / B1] x [r / B2, (r + 1) / B2]``.

Discretization: P1 elements on ``n x n`` squares, each split into four
triangles through its centre, so the mesh has ``(n + 1)^2 + n^2`` nodes
(20,201 for ``n = 100``, the size of pyMOR's thermal block demo); the unknowns
are the ``(n - 1)^2 + n^2`` interior nodes in mesh order (vertices first, row by
row from the bottom, then centres). All triangles are right-angled, so the
stiffness matrices are M-matrices and the discrete maximum principle holds.

Affine with ``A(mu) = sum_b mu_b A_b`` (``A_b`` the stiffness restricted to
block ``b``), ``f = F`` (load of ``f = 1``), inner product ``X = sum_b A_b``
(the H1_0 stiffness) and output ``s(mu) = int u`` (the mean value of ``u``,
``l = F``). Since ``A(c, ..., c) = c X``, the min-theta bound with reference
``(c, ..., c)`` and ``alpha_ref = c`` is exact, and gives
``alpha(mu) >= min_b mu_b``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..offline.affine import AffineFunctional, AffineOperator
from ..offline.problem import Problem
from ..offline.stability import MinTheta
from ..online.parameters import ParameterSpace

__all__ = [
    "block_index",
    "cross_mesh",
    "interior_points",
    "operator_coefficients",
    "rhs_coefficients",
    "thermal_block",
]


def operator_coefficients(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """``theta(mu) = mu`` (one term per block), shape (n_mu, B)."""
    return np.array(mus, dtype=float)


def rhs_coefficients(mus: NDArray[np.float64]) -> NDArray[np.float64]:
    """``phi(mu) = (1,)``, shape (n_mu, 1)."""
    return np.ones((mus.shape[0], 1))


def _check_blocks(blocks: Sequence[int], n: int) -> tuple[int, int]:
    if isinstance(blocks, str) or not isinstance(blocks, Sequence | np.ndarray):
        raise TypeError(f"blocks must be a pair of positive integers (B1, B2); got {blocks!r}")
    if len(blocks) != 2 or any(isinstance(b, bool) or int(b) != b or b < 1 for b in blocks):
        raise ValueError(f"blocks must be a pair of positive integers (B1, B2); got {tuple(blocks)!r}")
    b1, b2 = int(blocks[0]), int(blocks[1])
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    if n % b1 or n % b2:
        raise ValueError(
            f"n must be a multiple of each block count so that blocks align with elements; "
            f"got n={n} and blocks=({b1}, {b2})"
        )
    return b1, b2


def cross_mesh(n: int):
    """The ``n x n`` mesh of the unit square, each square split in 4 triangles through its centre.

    Parameters
    ----------
    n : int
        Squares per side, ``n >= 1``.

    Returns
    -------
    skfem.MeshTri
        ``(n + 1)^2`` vertices (index ``i + j (n + 1)`` for the point
        ``(i / n, j / n)``) followed by ``n^2`` centres (index
        ``(n + 1)^2 + i + j n``); ``4 n^2`` counter-clockwise triangles.

    """
    import skfem

    n = int(n)
    x = np.linspace(0.0, 1.0, n + 1)
    vx, vy = np.meshgrid(x, x, indexing="xy")
    cx, cy = np.meshgrid((x[:-1] + x[1:]) / 2, (x[:-1] + x[1:]) / 2, indexing="xy")
    points = np.vstack([np.concatenate([vx.ravel(), cx.ravel()]), np.concatenate([vy.ravel(), cy.ravel()])])
    i, j = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), indexing="xy"))
    v00 = i + j * (n + 1)
    v10, v01 = v00 + 1, v00 + n + 1
    v11 = v01 + 1
    centre = (n + 1) ** 2 + i + j * n
    corners = [v00, v10, v11, v01]
    triangles = np.hstack([np.vstack([corners[k], corners[(k + 1) % 4], centre]) for k in range(4)])
    return skfem.MeshTri(points, triangles)


def block_index(points: NDArray[np.float64], blocks: Sequence[int] = (2, 2)) -> NDArray[np.int64]:
    """Block number of points in the unit square (row-major, rows from the bottom).

    Parameters
    ----------
    points : ndarray, shape (2, k)
        Coordinates; points on a block interface are given to the block above / to the right.
    blocks : (int, int)
        ``(B1, B2)``: blocks along x and along y.

    Returns
    -------
    b : ndarray, shape (k,), int
        ``r * B1 + c`` for the block in column ``c`` and row ``r``.

    """
    b1, b2 = int(blocks[0]), int(blocks[1])
    col = np.clip(np.floor(points[0] * b1).astype(np.int64), 0, b1 - 1)
    row = np.clip(np.floor(points[1] * b2).astype(np.int64), 0, b2 - 1)
    return row * b1 + col


def interior_points(n: int) -> NDArray[np.float64]:
    """Coordinates of the unknowns of :func:`thermal_block` with ``n``, shape (2, n_h)."""
    mesh = cross_mesh(n)
    boundary = np.zeros(mesh.p.shape[1], dtype=bool)
    boundary[mesh.boundary_nodes()] = True
    return mesh.p[:, ~boundary]


def _block_terms(basis, interior: NDArray, element_block: NDArray, n_blocks: int) -> list[sp.csr_matrix]:
    """Interior stiffness matrices ``A_b`` restricted to each block, exactly symmetric."""
    import skfem
    from skfem.helpers import dot, grad

    @skfem.BilinearForm
    def weighted_stiffness(u, v, w):
        return w.chi * dot(grad(u), grad(v))

    n_qp = basis.X.shape[1]
    terms = []
    for b in range(n_blocks):
        chi = np.repeat((element_block == b).astype(float)[:, None], n_qp, axis=1)
        a = weighted_stiffness.assemble(basis, chi=chi)[interior][:, interior].tocsr()
        a = ((a + a.T) * 0.5).tocsr()
        a.eliminate_zeros()
        terms.append(a)
    return terms


def _check_range(mu_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in mu_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"mu_range must be finite with 0 < low <= high; got {tuple(mu_range)!r}")
    return lo, hi


def thermal_block(blocks: Sequence[int] = (2, 2), n: int = 100, mu_range: Sequence[float] = (0.1, 1.0)) -> Problem:
    """Build the thermal block problem.

    Parameters
    ----------
    blocks : (int, int)
        ``(B1, B2)``: number of blocks along x and along y; ``B = B1 * B2``
        parameters ``mu_1 .. mu_B`` in row-major block order (see the module docstring).
    n : int
        Squares per side of the mesh; ``n >= 2`` and a multiple of ``B1`` and ``B2``.
        The truth space has ``(n - 1)^2 + n^2`` unknowns (19,801 for ``n = 100``).
    mu_range : (float, float)
        Bounds ``0 < low <= high`` of every diffusivity.

    Returns
    -------
    Problem
        Real, coercive, symmetric, Q_a = B, Q_f = 1, with the output ``int u``.

    Raises
    ------
    ValueError
        If ``blocks``, ``n`` or ``mu_range`` are invalid.
    TypeError
        If ``blocks`` is not a pair of integers.

    Examples
    --------
    >>> problem = thermal_block((2, 2), n=4)
    >>> problem.size, problem.parameter_space.names
    (25, ('mu_1', 'mu_2', 'mu_3', 'mu_4'))

    """
    import skfem

    b1, b2 = _check_blocks(blocks, n)
    lo, hi = _check_range(mu_range)
    n_blocks = b1 * b2
    mesh = cross_mesh(int(n))
    basis = skfem.Basis(mesh, skfem.ElementTriP1())
    interior = basis.complement_dofs(basis.get_dofs())
    centroids = mesh.p[:, mesh.t].mean(axis=1)
    terms = _block_terms(basis, interior, block_index(centroids, (b1, b2)), n_blocks)
    X = terms[0]
    for a in terms[1:]:
        X = X + a
    load = skfem.LinearForm(lambda v, w: 1.0 * v).assemble(basis)[interior]
    space = ParameterSpace([f"mu_{b + 1}" for b in range(n_blocks)], [lo] * n_blocks, [hi] * n_blocks)
    c = 1.0 if lo <= 1.0 <= hi else hi  # A(c, ..., c) = c X, so alpha_ref = c exactly
    return Problem(
        AffineOperator(terms, operator_coefficients),
        AffineFunctional([load], rhs_coefficients),
        X,
        space,
        stability=MinTheta(np.full(n_blocks, c), alpha_ref=c),
        output=AffineFunctional([load], rhs_coefficients),
    )

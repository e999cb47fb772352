"""Triangulated unit sphere (subdivided icosahedron) and flat-triangle geometry.

``icosphere(level)`` returns ``vertices: (n_v, 3)`` on the unit sphere and
``triangles: (n_t, 3)`` (vertex indices, counter-clockwise seen from outside, so
the right-hand normal points outward). Level 0 is the icosahedron (20
triangles); each level splits every triangle into four through its edge
midpoints, which are projected onto the sphere: ``n_t = 20 * 4**level``,
``n_v = 10 * 4**level + 2``. The boundary elements are the flat triangles.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["icosphere", "mean_edge_length", "triangle_areas", "triangle_centroids", "triangle_edges",
           "triangle_normals"]


def _icosahedron() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The 12 vertices on the unit sphere and the 20 outward-oriented faces."""
    from scipy.spatial import ConvexHull

    g = (1.0 + np.sqrt(5.0)) / 2.0
    base = np.array([[0.0, 1.0, g], [1.0, g, 0.0], [g, 0.0, 1.0]])
    signs = np.array([[s1, s2] for s1 in (-1.0, 1.0) for s2 in (-1.0, 1.0)])
    v = []
    for row in base:
        nz = np.flatnonzero(row)
        for s in signs:
            p = row.copy()
            p[nz] *= s
            v.append(p)
    vertices = np.array(v) / np.linalg.norm(v[0])
    triangles = ConvexHull(vertices).simplices.astype(np.int64)
    return vertices, _orient_outward(vertices, triangles)


def _orient_outward(vertices: NDArray[np.float64], triangles: NDArray[np.int64]) -> NDArray[np.int64]:
    """Swap two vertices of every triangle whose right-hand normal points to the origin."""
    p = vertices[triangles]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    flip = np.einsum("ij,ij->i", n, p.mean(axis=1)) < 0
    out = triangles.copy()
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def _subdivide(vertices: NDArray[np.float64],
               triangles: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Split each triangle into four through projected edge midpoints (orientation kept)."""
    edges = triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 3, 2)
    unique, inverse = np.unique(np.sort(edges.reshape(-1, 2), axis=1), axis=0, return_inverse=True)
    mid = vertices[unique].mean(axis=1)
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    m = vertices.shape[0] + inverse.reshape(-1, 3)  # midpoints of edges (01, 12, 20)
    a, b, c = triangles.T
    ab, bc, ca = m.T
    new = np.concatenate([np.column_stack(t) for t in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return np.vstack([vertices, mid]), new


def icosphere(level: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Triangulate the unit sphere by ``level`` subdivisions of an icosahedron.

    Parameters
    ----------
    level : int
        Number of subdivisions, ``>= 0``.

    Returns
    -------
    vertices : (n_v, 3) float array
        Points on the unit sphere, ``n_v = 10 * 4**level + 2``.
    triangles : (n_t, 3) int array
        Vertex indices, outward right-hand orientation, ``n_t = 20 * 4**level``.

    Raises
    ------
    ValueError
        If ``level`` is not a non-negative integer.

    Examples
    --------
    >>> v, t = icosphere(1)
    >>> v.shape, t.shape
    ((42, 3), (80, 3))
    """
    if isinstance(level, bool) or int(level) != level or level < 0:
        raise ValueError(f"level must be a non-negative integer; got {level!r}")
    vertices, triangles = _icosahedron()
    for _ in range(int(level)):
        vertices, triangles = _subdivide(vertices, triangles)
    return vertices, triangles


def _cross(vertices: NDArray[np.float64], triangles: NDArray[np.int64]) -> NDArray[np.float64]:
    p = vertices[triangles]
    return np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])


def triangle_areas(vertices: NDArray[np.float64], triangles: NDArray[np.int64]) -> NDArray[np.float64]:
    """Areas of the flat triangles, shape (n_t,)."""
    return 0.5 * np.linalg.norm(_cross(vertices, triangles), axis=1)


def triangle_normals(vertices: NDArray[np.float64], triangles: NDArray[np.int64]) -> NDArray[np.float64]:
    """Unit right-hand normals of the flat triangles (outward for :func:`icosphere`), shape (n_t, 3)."""
    n = _cross(vertices, triangles)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def triangle_centroids(vertices: NDArray[np.float64], triangles: NDArray[np.int64]) -> NDArray[np.float64]:
    """Centroids of the flat triangles, shape (n_t, 3)."""
    return vertices[triangles].mean(axis=1)


def triangle_edges(triangles: NDArray[np.int64]) -> NDArray[np.int64]:
    """Unique undirected edges ``(n_e, 2)`` (sorted vertex pairs)."""
    return np.unique(np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)


def mean_edge_length(vertices: NDArray[np.float64], triangles: NDArray[np.int64]) -> float:
    """Mean length of the unique edges of the mesh."""
    e = triangle_edges(triangles)
    return float(np.mean(np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)))

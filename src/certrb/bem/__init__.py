"""Boundary elements for a plane wave scattered by the sound-soft unit sphere (3D Helmholtz).

Truth solver for the Neumann trace ``phi = d u_tot / d n`` (outward normal) on a
flat-triangle icosphere (:mod:`certrb.bem.mesh`, :mod:`certrb.bem.kernels`),
Galerkin P0, validated against the Mie series (:mod:`certrb.bem.mie`). From
``u_s = -S phi`` outside (``S`` the single-layer potential) two direct equations follow:

* ``"first_kind"``: ``V(k) phi = u_inc``. Not uniquely solvable at the interior
  Dirichlet eigenvalues of the unit ball (``k`` a zero of some ``j_n``: ``pi``,
  ``4.493``, ``5.763``, ``2 pi``, ...), ill-conditioned near them;
* ``"combined"`` (default; Burton-Miller-type direct combined field, no
  hypersingular operator): ``(I/2 + K'(k) - i eta V(k)) phi = d u_inc / d n - i eta u_inc``
  with ``eta = k``; uniquely solvable for every ``k > 0``.

The kernels need numba (extra ``bem``); :mod:`certrb.bem.kernels` and the Mie series
(:mod:`certrb.bem.mie`, scipy.special) are imported on first use, so the online
entry evaluators of :mod:`certrb.bem.entries` import neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .mesh import icosphere, mean_edge_length, triangle_areas, triangle_centroids, triangle_normals

__all__ = ["check_resolution", "icosphere", "load_vector", "mean_edge_length", "mie_neumann_trace",
           "operator_entries", "operator_matrix", "relative_surface_error", "single_layer_entries",
           "single_layer_matrix", "sphere_scattering", "triangle_areas", "triangle_centroids", "triangle_normals"]

_KERNELS = ("load_vector", "operator_entries", "operator_matrix", "single_layer_entries", "single_layer_matrix")


def __getattr__(name: str) -> Any:
    if name in _KERNELS:
        from . import kernels

        return getattr(kernels, name)
    if name == "mie_neumann_trace":
        from .mie import mie_neumann_trace

        return mie_neumann_trace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_resolution(level: int, k: float, *, per_wavelength: float = 6.0) -> float:
    """Return the mean edge length of ``icosphere(level)`` after checking that it resolves ``k``.

    Raises
    ------
    ValueError
        If ``k <= 0``, or if the wavelength ``2 pi / k`` holds fewer than ``per_wavelength``
        mean edge lengths (the message names ``level``, ``k`` and the largest admissible ``k``).
    """
    k = float(k)
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"the wavenumber k must be positive and finite; got k = {k}")
    h = mean_edge_length(*icosphere(level))
    k_max = 2 * np.pi / (per_wavelength * h)
    if k > k_max:
        raise ValueError(f"level = {level} (mean edge {h:.4f}) does not resolve k = {k}: fewer than "
                         f"{per_wavelength:g} elements per wavelength; use k <= {k_max:.3f} or a finer level")
    return h


def sphere_scattering(level: int, k: float, *, formulation: str = "combined", eta: float | None = None,
                      direction: ArrayLike = (0.0, 0.0, 1.0),
                      per_wavelength: float = 6.0) -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
    """Solve for the Neumann trace on ``icosphere(level)`` (Galerkin P0, dense ``numpy.linalg.solve``).

    Parameters
    ----------
    level : int
        Icosphere level (``20 * 4**level`` triangles).
    k : float
        Wavenumber, > 0, resolved by the mesh (:func:`check_resolution`).
    formulation : {"combined", "first_kind"}
        Boundary integral equation (module docstring).
    eta : float, optional
        Coupling of the combined formulation; default ``k``.
    direction : (3,) array_like
        Incident direction ``d`` (normalised).
    per_wavelength : float
        Minimum number of mean edge lengths per wavelength.

    Returns
    -------
    phi : (n_t,) complex array
        Neumann trace ``d u_tot / d n`` per triangle.
    centroids : (n_t, 3) float array

    Raises
    ------
    ValueError
        If ``k <= 0``, the mesh does not resolve ``k`` or ``formulation`` is unknown.
    """
    from .kernels import load_vector, operator_matrix

    if formulation not in ("combined", "first_kind"):
        raise ValueError(f"formulation must be 'combined' or 'first_kind'; got {formulation!r}")
    check_resolution(level, k, per_wavelength=per_wavelength)
    v, t = icosphere(level)
    operator = "combined" if formulation == "combined" else "single_layer"
    A = operator_matrix(v, t, k, operator=operator, eta=eta)
    phi = np.linalg.solve(A, load_vector(v, t, k, direction, formulation=formulation, eta=eta)).astype(np.complex128)
    return phi, triangle_centroids(v, t)  # P0 coefficients are the values


def relative_surface_error(level: int, k: float, phi: NDArray[np.complex128], *,
                           direction: ArrayLike = (0.0, 0.0, 1.0)) -> float:
    """``sqrt(sum_i |T_i| |phi_i - phi_mie(c_i)|^2 / sum_i |T_i| |phi_mie(c_i)|^2)``, Mie at the centroids."""
    from .mie import mie_neumann_trace

    v, t = icosphere(level)
    c = triangle_centroids(v, t)
    d = np.asarray(direction, dtype=float)
    exact = mie_neumann_trace((c / np.linalg.norm(c, axis=1, keepdims=True)) @ (d / np.linalg.norm(d)), k)
    if np.shape(phi) != exact.shape:
        raise ValueError(f"phi must have shape {exact.shape}; got {np.shape(phi)}")
    w = triangle_areas(v, t)
    return float(np.sqrt(np.sum(w * np.abs(phi - exact) ** 2) / np.sum(w * np.abs(exact) ** 2)))

"""Working precisions and the extended-precision dense solve (online: reduced-size arrays only).

Refined truth solves are accurate far below the double-precision floor, but a reduced
model kept in double gives most of those digits back (a double basis represents a truth
solution to about ``u sqrt(cond(X))``, and ``V^H A_q V`` in double carries ``u |V|^H |A_q| |V|``).
With ``precision="extended"`` (:class:`certrb.offline.builder.OfflineBuilder`) the offline
state and the model are kept in numpy.longdouble (x86: 64-bit mantissa, ``u = 5.4e-20``),
and the online reduced solves go through :func:`refined_solve`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..errors import ShapeError

__all__ = ["PRECISIONS", "check_precision", "extended_dtype", "is_extended", "refined_solve", "working_rtol"]

PRECISIONS = ("double", "extended")
"""Working precisions of the offline state (``precision=`` of :class:`certrb.OfflineBuilder`)."""


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise ValueError."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    return precision


def working_rtol(dtype: np.dtype | type) -> float:
    """Rank tolerance ``100 eps`` of a working precision (float64: 2.2e-14, x86 longdouble: 1.1e-17)."""
    return 100 * float(np.finfo(dtype).eps)


def extended_dtype(*arrays_or_dtypes) -> type:
    """numpy.clongdouble if any argument is complex, else numpy.longdouble."""
    complex_ = any(np.issubdtype(np.result_type(a), np.complexfloating) for a in arrays_or_dtypes)
    return np.clongdouble if complex_ else np.longdouble


def is_extended(a: NDArray) -> bool:
    """Whether an array is stored in numpy.longdouble or numpy.clongdouble."""
    return np.asarray(a).dtype.type in (np.longdouble, np.clongdouble)


def _ext(a: NDArray, ext: type) -> NDArray:
    return np.asarray(a).astype(ext, copy=False)


def refined_solve(A: NDArray, b: NDArray, *, steps: int = 2) -> NDArray:
    """Batched dense solves ``A c = b`` refined with extended-precision residuals.

    The first solve and each correction ``A d = b - A c`` use double precision
    (LAPACK via numpy.linalg.solve); the residuals and the updates ``c + d`` are
    carried in extended precision. Each step divides the error by about
    ``1 / (u cond(A))``, down to the extended-precision floor.

    Parameters
    ----------
    A : ndarray, shape (n_mu, n, n)
    b : ndarray, shape (n_mu, n)
    steps : int
        Refinement steps (0: a plain double solve, returned in extended).

    Returns
    -------
    c : ndarray, shape (n_mu, n), extended

    Raises
    ------
    ShapeError
        On inconsistent shapes.
    numpy.linalg.LinAlgError
        If a system is singular in double precision.

    """
    if A.ndim != 3 or A.shape[1] != A.shape[2] or b.shape != A.shape[:2]:
        raise ShapeError(f"A must have shape (n_mu, n, n) and b (n_mu, n); got {A.shape}, {b.shape}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    ext = extended_dtype(A, b)
    Ae, be = _ext(A, ext), _ext(b, ext)
    work = np.complex128 if ext is np.clongdouble else np.float64
    Ad = Ae.astype(work)

    def solve(rhs: NDArray) -> NDArray:
        return np.linalg.solve(Ad, rhs.astype(work)[:, :, None])[:, :, 0].astype(ext)

    c = solve(be)
    for _ in range(int(steps)):
        c = c + solve(be - (Ae @ c[:, :, None])[:, :, 0])
    return c

"""scikit-fem in: affine terms assembled on the free dofs of a basis, solutions scattered back.

A truth problem with homogeneous Dirichlet conditions lives on the free (non-Dirichlet)
degrees of freedom: each ``BilinearForm`` of an affine term is assembled on the whole
basis and restricted to the free dofs, each ``LinearForm`` likewise, and a reduced or
truth solution on the free dofs is put back into a full vector with zeros on the
Dirichlet dofs (to plot or post-process with scikit-fem). scikit-fem (extra ``fem``)
is imported only when a :class:`Dirichlet` is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError

__all__ = ["Dirichlet"]


def _skfem() -> Any:
    try:
        import skfem
    except ImportError as exc:  # pragma: no cover - the fem extra is part of the test extra
        raise ImportError("certrb.interop.skfem needs scikit-fem: pip install 'certrb[fem]'") from exc
    return skfem


def _dof_indices(dofs: Any, n_dofs: int) -> NDArray[np.intp]:
    """Sorted unique dof numbers from a scikit-fem ``DofsView`` / ``Dofs`` or an integer array."""
    if hasattr(dofs, "flatten") and not isinstance(dofs, np.ndarray):
        dofs = dofs.flatten()
    arr = np.asarray(dofs)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"Dirichlet dofs must be integers or a scikit-fem DofsView; got dtype {arr.dtype}")
    arr = arr.astype(np.intp).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= n_dofs):
        raise ShapeError(f"Dirichlet dofs must lie in [0, {n_dofs}); got values in [{arr.min()}, {arr.max()}]")
    return np.unique(arr)


class Dirichlet:
    """Homogeneous Dirichlet conditions on a scikit-fem basis: the truth space is its free dofs.

    Parameters
    ----------
    basis : skfem.AbstractBasis
        The finite element basis (e.g. ``skfem.Basis(mesh, skfem.ElementTriP1())``).
    dofs : skfem DofsView or array_like of int, optional
        The Dirichlet dofs, where the solution is zero. Default: every boundary dof,
        ``basis.get_dofs()``.

    Attributes
    ----------
    basis : skfem.AbstractBasis
    dirichlet : ndarray of intp, shape (n_dirichlet,)
        Sorted Dirichlet dof numbers.
    free : ndarray of intp, shape (n_h,)
        Sorted free dof numbers: the unknowns of the truth problem, in this order.

    Raises
    ------
    ShapeError
        If a dof number is outside the basis, or no dof is free.
    TypeError
        If ``dofs`` holds non-integers.

    Examples
    --------
    >>> import skfem
    >>> basis = skfem.Basis(skfem.MeshTri().refined(2), skfem.ElementTriP1())
    >>> dirichlet = Dirichlet(basis)
    >>> basis.N, dirichlet.size
    (25, 9)

    """

    def __init__(self, basis: Any, dofs: Any = None) -> None:
        skfem = _skfem()
        if not isinstance(basis, skfem.AbstractBasis):
            raise TypeError(f"basis must be a scikit-fem basis; got {type(basis).__name__}")
        n_dofs = int(basis.N)
        self.basis = basis
        self.dirichlet = _dof_indices(basis.get_dofs() if dofs is None else dofs, n_dofs)
        free = np.ones(n_dofs, dtype=bool)
        free[self.dirichlet] = False
        self.free = np.flatnonzero(free).astype(np.intp)
        if self.free.size == 0:
            raise ShapeError("every dof of the basis is a Dirichlet dof: the truth space would be empty")

    @property
    def size(self) -> int:
        """Number of free dofs, the truth dimension n_h."""
        return int(self.free.size)

    def matrices(self, forms: Sequence[Any], **fields: Any) -> list[sp.csr_matrix]:
        """Assemble bilinear forms on the basis and restrict them to the free dofs.

        Parameters
        ----------
        forms : sequence of skfem.BilinearForm
            One form per affine term ``A_q``.
        **fields
            Passed to every ``form.assemble`` (available as ``w.<name>`` in the forms).

        Returns
        -------
        list of scipy.sparse.csr_matrix, each (n_h, n_h)
            Real or complex, as the forms assemble.

        Raises
        ------
        TypeError
            If a form is not a ``skfem.BilinearForm``.

        """
        skfem = _skfem()
        out = []
        for q, form in enumerate(forms):
            if not isinstance(form, skfem.BilinearForm):
                raise TypeError(f"forms[{q}] must be a skfem.BilinearForm; got {type(form).__name__}")
            a = sp.csr_matrix(form.assemble(self.basis, **fields))
            out.append(a[self.free][:, self.free].tocsr())
        return out

    def vectors(self, forms: Sequence[Any], **fields: Any) -> list[NDArray]:
        """Assemble linear forms on the basis and restrict them to the free dofs.

        Parameters
        ----------
        forms : sequence of skfem.LinearForm
            One form per affine term ``f_p`` (or output term ``l_p``).
        **fields
            Passed to every ``form.assemble``.

        Returns
        -------
        list of ndarray, each (n_h,)
            float64 or complex128, as the forms assemble.

        Raises
        ------
        TypeError
            If a form is not a ``skfem.LinearForm``.

        """
        skfem = _skfem()
        out = []
        for p, form in enumerate(forms):
            if not isinstance(form, skfem.LinearForm):
                raise TypeError(f"forms[{p}] must be a skfem.LinearForm; got {type(form).__name__}")
            out.append(np.asarray(form.assemble(self.basis, **fields))[self.free])
        return out

    def scatter(self, u: ArrayLike) -> NDArray:
        """Full dof vectors from vectors on the free dofs, zero on the Dirichlet dofs.

        Parameters
        ----------
        u : array_like, shape (..., n_h)
            Truth or reconstructed reduced solutions (any dtype; kept).

        Returns
        -------
        ndarray, shape (..., n_dofs)
            ``n_dofs = basis.N``; usable with ``basis.interpolate`` or ``mesh.plot``.

        Raises
        ------
        ShapeError
            If the last axis of ``u`` is not n_h long.

        """
        arr = np.asarray(u)
        if arr.ndim == 0 or arr.shape[-1] != self.size:
            raise ShapeError(f"u must have shape (..., {self.size}) (the free dofs); got {arr.shape}")
        full = np.zeros((*arr.shape[:-1], int(self.basis.N)), dtype=arr.dtype)
        full[..., self.free] = arr
        return full

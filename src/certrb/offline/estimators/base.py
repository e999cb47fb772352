"""What an estimator's offline builder reads: the truth-size state of an OfflineBuilder and the build options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ...online.estimators.expanded import ExpandedEstimator
from .roundoff import ComponentBounds, component_bounds

if TYPE_CHECKING:
    from ..builder import OfflineBuilder
    from ..problem import Problem

__all__ = ["OfflineData"]


@dataclass(eq=False)
class OfflineData:
    """Truth-size data shared by the estimators' offline builders for one basis.

    Attributes
    ----------
    builder : OfflineBuilder
        Its basis (n_h, N), residual components and Riesz representatives (n_h, K),
        and the incrementally updated ``gram`` (K, K) and factor ``psi`` (n_h, r), ``R`` (r, K).
    train : ndarray, shape (n_train, P)
        Training parameters for the interpolation-based estimators.
    rng : numpy.random.Generator
    options : dict
        Per-estimator options, e.g. ``{"point-basis": {"max_points": 3000}}``.
    certify : bool
        Measure the round-off certificates (docs/roundoff.md) of the estimators that have one.

    """

    builder: OfflineBuilder
    train: NDArray
    rng: np.random.Generator
    options: dict = field(default_factory=dict)
    certify: bool = True
    _bounds: ComponentBounds | None = field(default=None, init=False, repr=False)
    _remainder: ExpandedEstimator | None = field(default=None, init=False, repr=False)

    @property
    def problem(self) -> Problem:
        """The truth model."""
        return self.builder.problem

    @property
    def basis(self) -> NDArray:
        """X-orthonormal reduced basis, shape (n_h, N)."""
        return self.builder.basis

    @property
    def components(self) -> NDArray:
        """Residual components ``g_k``, shape (n_h, K)."""
        return self.builder.components

    @property
    def riesz(self) -> NDArray:
        """Their Riesz representatives ``X^{-1} g_k``, shape (n_h, K)."""
        return self.builder.riesz

    @property
    def refine(self) -> int:
        """Extended-precision refinement steps of truth-space solves."""
        return self.builder.refine

    @property
    def q_f(self) -> int:
        """Number of right-hand-side terms."""
        return self.problem.rhs.n_terms

    @property
    def q_a(self) -> int:
        """Number of operator terms."""
        return self.problem.operator.n_terms

    @property
    def n_basis(self) -> int:
        """Reduced dimension N."""
        return self.basis.shape[1]

    def solve_reduced(self, mus: NDArray, n: int) -> tuple[NDArray, NDArray]:
        """Reduced coefficients (n_mu, n) and residual coefficients (n_mu, Q_f + Q_a n) of sub-model ``n``."""
        return self.builder.operators().solve(self.problem.operator.theta(mus), self.problem.rhs.theta(mus), n)

    def bounds(self) -> ComponentBounds:
        """The components in extended precision and bounds of their Riesz representatives, measured once."""
        if self._bounds is None:
            self._bounds = component_bounds(self.problem, self.basis, self.riesz)
        return self._bounds

    def remainder(self) -> ExpandedEstimator:
        """The certified ``expanded`` estimator over all K components (bounds EIM remainders), built once."""
        if self._remainder is None:
            from .expanded import certify  # the builders import this module

            self._remainder = certify(self.problem, self.basis, self.riesz, self.builder.gram, self.bounds())
        return self._remainder

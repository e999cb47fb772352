"""A dictionary of local certified reduced models and the online choice of one model per parameter.

Every local model is a :class:`~certrb.online.model.ReducedModel` with its own certified bound, so
whatever model a rule picks, the bound returned is that model's certified bound at that parameter.
Rules (docs/dictionary.md):

``"nearest"``
    the model whose center (a representative training parameter) is nearest in the unit box;
``"bound"``
    every model, the smallest certified bound wins;
``"nearest-then-bound"``
    the ``n_candidates`` nearest models, the smallest certified bound among them wins.

The stability lower bound does not depend on the model: it is evaluated once per parameter for
each distinct stability callable of the models (one, for a dictionary built from one problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ShapeError
from .coefficients import evaluate_coefficients
from .evaluate import OnlineResult, evaluate_batch, with_output
from .model import ReducedModel
from .parameters import ParameterSpace
from .stability import check_stability

__all__ = ["SELECTIONS", "Dictionary", "DictionaryResult"]

SELECTIONS = ("nearest", "bound", "nearest-then-bound")
"""The online selection rules."""

_FIELDS = ("residual_norm", "stability", "bound", "relative_bound", "output", "output_bound",
           "interpolation_error", "roundoff", "estimate")


@dataclass(eq=False, slots=True)
class DictionaryResult(OnlineResult):
    """:class:`~certrb.online.evaluate.OnlineResult` of a dictionary, one chosen model per parameter.

    ``coefficients`` has shape (n_mu, n) with ``n`` the largest local size, each row zero-padded
    past its model's size; every other array holds the chosen model's values (``bound`` is its
    certified bound).

    Attributes
    ----------
    model : ndarray of intp, shape (n_mu,)
        Index into :attr:`Dictionary.models` of the model chosen for each parameter.

    """

    model: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))


@dataclass(frozen=True, eq=False)
class Dictionary:
    """Local certified reduced models with centers in parameter space and an online selection rule.

    Parameters
    ----------
    models : sequence of ReducedModel
        Local models on one parameter space (names and box).
    centers : array_like, shape (n_models, P)
        A representative parameter per model (the medoid of its cluster), inside the space.
    selection : str
        Default rule, one of :data:`SELECTIONS`.
    n_candidates : int
        Models compared by ``"nearest-then-bound"`` (at least 1, at most ``n_models``).

    Raises
    ------
    ShapeError
        On no model, mismatched parameter spaces or centers of the wrong shape.
    ValueError
        On an unknown rule or ``n_candidates`` outside ``[1, n_models]``.

    """

    models: tuple[ReducedModel, ...]
    centers: NDArray[np.float64]
    selection: str = "nearest-then-bound"
    n_candidates: int = 2
    _unit_centers: NDArray[np.float64] = field(init=False, repr=False)
    _n_max: int = field(init=False, repr=False)
    _same_coefficients: bool = field(init=False, repr=False)

    def __init__(self, models: Sequence[ReducedModel], centers: ArrayLike, selection: str = "nearest-then-bound",
                 n_candidates: int = 2) -> None:
        models = tuple(models)
        if not models or not all(isinstance(m, ReducedModel) for m in models):
            raise ShapeError("a dictionary needs at least one ReducedModel")
        space = models[0].parameter_space
        for i, m in enumerate(models):
            s = m.parameter_space
            if s.names != space.names or not (np.array_equal(s.lower, space.lower)
                                               and np.array_equal(s.upper, space.upper)) or s.scale != space.scale:
                raise ShapeError(f"models[{i}] has parameter space {s!r}; models[0] has {space!r}")
        c = space.validate(centers, name="centers")
        if c.shape[0] != len(models):
            raise ShapeError(f"centers must have one row per model ({len(models)}); got {c.shape[0]}")
        check_selection(selection)
        if int(n_candidates) != n_candidates or not 1 <= n_candidates <= len(models):
            raise ValueError(f"n_candidates must be an integer in [1, {len(models)}]; got {n_candidates!r}")
        c = c.copy()
        c.flags.writeable = False
        for key, value in (("models", models), ("centers", c), ("selection", selection),
                           ("n_candidates", int(n_candidates)), ("_unit_centers", space.to_unit(c)),
                           ("_n_max", max(m.n_basis for m in models)),
                           ("_same_coefficients", all(m.operator_coefficients is models[0].operator_coefficients
                                                      and m.rhs_coefficients is models[0].rhs_coefficients
                                                      for m in models))):
            object.__setattr__(self, key, value)

    @property
    def parameter_space(self) -> ParameterSpace:
        """The models' parameter space."""
        return self.models[0].parameter_space

    @property
    def n_basis(self) -> NDArray[np.intp]:
        """Basis size of each local model, shape (n_models,)."""
        return np.array([m.n_basis for m in self.models], dtype=np.intp)

    def candidates(self, mus: ArrayLike, selection: str | None = None) -> NDArray[np.intp]:
        """Models a rule compares at each parameter, nearest center first; shape (n_mu, k) of intp."""
        return self._candidates(self.parameter_space.validate(mus), selection)

    def _candidates(self, m: NDArray[np.float64], selection: str | None) -> NDArray[np.intp]:
        rule = check_selection(self.selection if selection is None else selection)
        k = {"nearest": 1, "bound": len(self.models), "nearest-then-bound": self.n_candidates}[rule]
        d = ((self.parameter_space.to_unit(m)[:, None, :] - self._unit_centers[None]) ** 2).sum(axis=2)
        if k == 1:
            return np.argmin(d, axis=1).astype(np.intp)[:, None]
        return np.argsort(d, axis=1, kind="stable")[:, :k].astype(np.intp)

    def evaluate(self, mus: ArrayLike, *, selection: str | None = None, output: bool = True,
                 stability: ArrayLike | None = None) -> DictionaryResult:
        """Choose a local model per parameter and return its solution and certified bound.

        Parameters
        ----------
        mus : array_like, shape (n_mu, P) or (P,)
        selection : str, optional
            Rule (default: the dictionary's), one of :data:`SELECTIONS`.
        output : bool
            Also evaluate the output and its bound, if the models have one.
        stability : array_like of float64, shape (n_mu,), optional
            Stability lower bounds at ``mus``, already evaluated, used for every candidate model
            (as a greedy passes its training set's values); by default each distinct stability
            object of the candidates is evaluated once per parameter.

        Returns
        -------
        DictionaryResult
            ``bound`` is the chosen model's certified bound (rigorous as that model's),
            ``model`` the chosen model per parameter.

        Raises
        ------
        ValueError
            On an unknown rule.
        StabilityError
            If ``stability`` is not of shape (n_mu,), positive and finite.

        """
        m = self.parameter_space.validate(mus)
        cand = self._candidates(m, selection)
        if stability is None:
            beta = self._stability(m, np.unique(cand))
        else:
            given = check_stability(stability, m.shape[0])
            beta = {id(model.stability): given for model in self.models}
        if m.shape[0] == 1:
            return self._evaluate_one(m, cand[0], beta, output)
        results: dict[int, tuple[NDArray[np.intp], OnlineResult]] = {}
        bounds = np.full(cand.shape, np.inf)
        for j in np.unique(cand):
            rows = np.flatnonzero((cand == j).any(axis=1))
            model = self.models[j]
            res = evaluate_batch(model, m[rows], model.n_basis, model.estimators[model.default_estimator],
                                 stability=beta[id(model.stability)][rows], output=output)
            results[int(j)] = (rows, res)
            bounds[rows, np.argmax(cand[rows] == j, axis=1)] = res.bound
        chosen = cand[np.arange(m.shape[0]), np.argmin(bounds, axis=1)] if cand.shape[1] > 1 else cand[:, 0]
        return _assemble(self, chosen, results, m.shape[0])

    def _evaluate_one(self, m: NDArray[np.float64], cand: NDArray[np.intp], beta: dict[int, NDArray[np.float64]],
                      output: bool) -> DictionaryResult:
        """:meth:`evaluate` at one parameter (1, P): the candidates in order, the first smallest bound wins."""
        shared = self._shared_coefficients(m)

        def one(j: int, with_out: bool) -> OnlineResult:
            model = self.models[j]
            return evaluate_batch(model, m, model.n_basis, model.estimators[model.default_estimator],
                                  stability=beta[id(model.stability)], output=with_out, coefficients=shared)

        order = cand.tolist()
        if len(order) == 1:
            best_j, best = order[0], one(order[0], output)
        else:  # the bounds decide; only the chosen model's output is evaluated
            best_j, best = order[0], one(order[0], False)
            for j in order[1:]:
                res = one(j, False)
                if res.bound[0] < best.bound[0]:
                    best, best_j = res, j
            if output:
                best = with_output(self.models[best_j], m, best, shared)
        coefficients = np.zeros((1, int(self._n_max)), dtype=best.coefficients.dtype)
        coefficients[:, : best.coefficients.shape[1]] = best.coefficients
        return DictionaryResult(coefficients, best.residual_norm, best.stability, best.bound, best.relative_bound,
                                best.output, best.output_bound, best.estimator, int(self._n_max),
                                best.interpolation_error, best.roundoff, best.estimate, best.certificate,
                                np.array([best_j], dtype=np.intp))

    def _shared_coefficients(self, m: NDArray[np.float64]) -> tuple[NDArray, NDArray] | None:
        """Operator and right-hand side coefficients at ``m``, once, if every model has the same functions."""
        first = self.models[0]
        if not self._same_coefficients:
            return None
        return (evaluate_coefficients(first.operator_coefficients, m, first.A_N.shape[0], "operator"),
                evaluate_coefficients(first.rhs_coefficients, m, first.f_N.shape[0], "rhs"))

    def _stability(self, m: NDArray[np.float64], used: NDArray[np.intp]) -> dict[int, NDArray[np.float64]]:
        """Stability lower bounds at ``m`` for each distinct stability callable of the ``used`` models."""
        out: dict[int, NDArray[np.float64]] = {}
        for j in used:
            f = self.models[j].stability
            if id(f) not in out:
                from_theta: Any = getattr(f, "from_theta", None)
                if from_theta is not None:
                    model = self.models[j]
                    theta = evaluate_coefficients(model.operator_coefficients, m, model.A_N.shape[0], "operator")
                    out[id(f)] = np.asarray(from_theta(theta), dtype=np.float64)
                else:
                    out[id(f)] = np.asarray(f(m), dtype=np.float64)
        return out


def check_selection(selection: str) -> str:
    """``selection`` if it is one of :data:`SELECTIONS`, else ValueError."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection rule {selection!r}; known: {SELECTIONS}")
    return selection


def _assemble(dictionary: Dictionary, chosen: NDArray[np.intp], results: dict[int, tuple[NDArray[np.intp],
              OnlineResult]], n_mu: int) -> DictionaryResult:
    """The chosen model's values per parameter, coefficients zero-padded to the largest local size."""
    n_max = int(dictionary.n_basis.max())
    dtype = np.result_type(*(r.coefficients.dtype for _, r in results.values()))
    coefficients = np.zeros((n_mu, n_max), dtype=dtype)
    arrays: dict[str, Any] = {}
    for name in _FIELDS:
        parts = [getattr(r, name) for _, r in results.values()]
        if all(p is None for p in parts):
            arrays[name] = None
        else:
            kind = np.result_type(*(p.dtype for p in parts if p is not None))
            arrays[name] = np.full(n_mu, np.nan, dtype=kind)
    names, certificates = set(), set()
    for j, (rows, res) in results.items():
        mine = chosen[rows] == j
        dest, src = rows[mine], np.flatnonzero(mine)
        if dest.size == 0:
            continue
        names.add(res.estimator)
        certificates.add(res.certificate)
        coefficients[dest, : res.coefficients.shape[1]] = res.coefficients[src]
        for name in _FIELDS:
            value, target = getattr(res, name), arrays[name]
            if value is not None and target is not None:
                target[dest] = value[src]
    return DictionaryResult(coefficients, arrays["residual_norm"], arrays["stability"], arrays["bound"],
                            arrays["relative_bound"], arrays["output"], arrays["output_bound"],
                            "+".join(sorted(names)), n_max, arrays["interpolation_error"], arrays["roundoff"],
                            arrays["estimate"], " + ".join(sorted(certificates)) or "none", chosen.astype(np.intp))

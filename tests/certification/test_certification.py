"""Certification: the rigorous bound is never below the true error, at every N, down to the floor.

For each study problem a model is built by a weak greedy that runs until the
next snapshot is in the span (the truth floor), then every nested sub-model
``n = 1 .. N`` is evaluated at random parameters against the truth refined in
extended precision (see :mod:`.reference`). The rigorous ``bound`` of every
estimator that reports a finite round-off term must never be below the true
error; violations of the plain ``estimate`` are recorded, not asserted. The
CI variant uses a few hundred parameters; the ``slow`` one 10^4 per case.
Run with ``-s`` to see the tables (violations, effectivity quantiles).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import certrb
from certrb.problems import diffusion1d, thermal_block
from certrb.problems.helmholtz1d import helmholtz1d

from .reference import Certification, certify, format_table

# the issue asks for a round-off-aware bound from these estimators
REQUIRED_RIGOROUS = ("orthonormal", "eim", "eim-stabilized")
ESTIMATORS = ("orthonormal", "eim-stabilized", "eim", "expanded")
# the tight-bound requirement: where the error is 1e3 times above the floor, rigor costs at most 2x
TIGHT_FACTOR, TIGHT_MARGIN = 2.0, 1e3


@dataclass(frozen=True)
class Case:
    """One certification case: a truth problem, greedy training size and test parameter count."""

    build: Callable[[], certrb.Problem]
    n_train: int
    n_mu: int
    max_basis: int = 60


CI = {
    "diffusion1d": Case(lambda: diffusion1d(200), n_train=1000, n_mu=300),
    "thermal_block": Case(lambda: thermal_block((2, 2), n=10), n_train=300, n_mu=300),
    "helmholtz1d": Case(lambda: helmholtz1d(80, (1.0, 6.0), scm_train=60), n_train=200, n_mu=300),
}
SLOW = {
    "diffusion1d": Case(lambda: diffusion1d(500), n_train=1000, n_mu=10_000),
    "thermal_block": Case(lambda: thermal_block((2, 2), n=20), n_train=1000, n_mu=10_000),
    "helmholtz1d": Case(lambda: helmholtz1d(200, (1.0, 10.0), scm_train=100), n_train=500, n_mu=10_000),
}


@functools.cache
def certification(name: str, slow: bool, /) -> tuple[certrb.GreedyResult, Certification]:
    """Greedy model of a case down to the floor, and its certification (computed once per session)."""
    case = (SLOW if slow else CI)[name]
    problem = case.build()
    space = problem.parameter_space
    builder = certrb.OfflineBuilder(problem, ESTIMATORS, rng=0)
    greedy = certrb.weak_greedy(builder, space.sample(case.n_train, rng=1), tol=0.0, max_basis=case.max_basis,
                                stagnation=None)  # down to the truth floor on purpose
    cert = certify(problem, greedy.model, space.sample(case.n_mu, rng=2), estimators=ESTIMATORS)
    print(f"\n{name} (n_h = {problem.size}, greedy stopped: {greedy.reason})\n{format_table(cert)}")
    return greedy, cert


def check_no_violation(name: str, slow: bool) -> None:
    greedy, cert = certification(name, slow)
    assert greedy.reason == "in_span", "the greedy must run down to the truth floor"
    rigorous = {t.estimator for t in cert.tallies if t.rigorous}
    assert set(REQUIRED_RIGOROUS) <= rigorous, f"no finite round-off term from {set(REQUIRED_RIGOROUS) - rigorous}"
    bad = [t for t in cert.tallies if t.rigorous and t.bound_violations]
    assert not bad, "rigorous bound below the true error:\n" + "\n".join(
        f"{t.estimator} n={t.n}: {t.bound_violations}/{t.n_mu}, worst {t.worst}" for t in bad)


def check_floor_reached(name: str, slow: bool, median_rel_error: float) -> None:
    """The sweep must reach the machine-precision regime, else the certification proves little there."""
    _, cert = certification(name, slow)
    last = [t for t in cert.tallies if t.n == cert.n_basis]
    assert min(t.median_relative_error for t in last) < median_rel_error


@pytest.mark.parametrize("name", sorted(CI))
def test_rigorous_bound_is_never_below_the_true_error(name):
    check_no_violation(name, slow=False)


@pytest.mark.parametrize("name", sorted(CI))
def test_sweep_reaches_the_machine_precision_regime(name):
    check_floor_reached(name, slow=False, median_rel_error=1e-12)


@pytest.mark.parametrize("estimator", REQUIRED_RIGOROUS)
@pytest.mark.parametrize("name", sorted(CI))
def test_rigorous_bound_is_tight_above_the_floor(name, estimator):
    """``bound <= 2 estimate`` wherever the relative error is 1e3 times above the floor.

    The floor is the truth floor: the largest relative error of a plain double-precision
    truth solve (against the refined one) over the test parameters.
    """
    _, cert = certification(name, False)
    floor = cert.double_error["max"]
    for n in range(1, cert.n_basis + 1):
        samples = cert.samples[estimator, n]
        above = samples["error"] / cert.norms > TIGHT_MARGIN * floor
        ratio = samples["bound"][above] / samples["estimate"][above]
        assert np.all(ratio <= TIGHT_FACTOR), (n, float(np.max(ratio)), float(floor))


def test_estimate_is_recorded_not_asserted():
    """The plain estimate is counted too: the table holds both counts for every (estimator, n)."""
    _, cert = certification("helmholtz1d", False)
    assert len(cert.tallies) == len(ESTIMATORS) * cert.n_basis
    for t in cert.tallies:
        assert 0 <= t.estimate_violations <= t.n_mu
        assert t.effectivity["q0"] <= t.effectivity["q0.5"] <= t.effectivity["q1"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_rigorous_bound_is_never_below_the_true_error_many(name):
    check_no_violation(name, slow=True)
    check_floor_reached(name, slow=True, median_rel_error=1e-10)

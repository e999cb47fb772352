"""Small truth problems shared by the tests."""

from __future__ import annotations

import os

# tiny dense products everywhere: one BLAS thread spends no CPU time spinning (set before numpy loads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import certrb
from certrb.online import kernels
from certrb.problems import diffusion1d


def p1_matrices(n_elements: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
    """Interior P1 stiffness K, mass M, load F and node coordinates on (0, 1)."""
    import skfem
    from skfem.helpers import dot, grad

    mesh = skfem.MeshLine(np.linspace(0.0, 1.0, n_elements + 1))
    basis = skfem.Basis(mesh, skfem.ElementLineP1())
    K = skfem.BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(basis)
    M = skfem.BilinearForm(lambda u, v, w: u * v).assemble(basis)
    F = skfem.LinearForm(lambda v, w: 1.0 * v).assemble(basis)
    inner = basis.complement_dofs(basis.get_dofs())
    return K[inner][:, inner], M[inner][:, inner], F[inner], mesh.p[0, inner]


def complex_theta(mus):
    return np.column_stack([np.ones(mus.shape[0]), mus[:, 0] + 1j * mus[:, 1]])


def complex_phi(mus):
    return np.column_stack([np.ones(mus.shape[0]), 1j * mus[:, 1]])


def unit_stability(mus):
    return np.ones(mus.shape[0])


def complex_output(mus):
    return np.ones((mus.shape[0], 1))


def make_complex_problem(n_elements: int = 60) -> certrb.Problem:
    """``-u'' + (mu1 + i mu2) u = 1 + i mu2 x`` on (0, 1), mu in [0, 10] x [0, 50].

    Complex coefficients and right-hand side; coercive w.r.t. the H1_0 product
    with ``Re a(v, v) >= |v|_1^2``, so the stability bound is 1.
    """
    K, M, F, x = p1_matrices(n_elements)
    space = certrb.ParameterSpace(["mu1", "mu2"], [0.0, 0.0], [10.0, 50.0])
    return certrb.Problem(
        certrb.AffineOperator([K, M], complex_theta),
        certrb.AffineFunctional([F, x * F], complex_phi),
        K,
        space,
        stability=unit_stability,
        output=certrb.AffineFunctional([F], complex_output),
    )


@pytest.fixture(scope="session")
def small_problem() -> certrb.Problem:
    """The 1D study problem on 80 elements."""
    return diffusion1d(80)


@pytest.fixture(scope="session")
def complex_problem() -> certrb.Problem:
    """A small complex coercive problem."""
    return make_complex_problem()


@pytest.fixture(scope="session")
def small_greedy(small_problem):
    """A greedy model of the small problem with every estimator attached."""
    train = small_problem.parameter_space.sample(300, rng=11)
    builder = certrb.OfflineBuilder(small_problem, ("orthonormal", "expanded", "eim", "eim-stabilized", "point-basis",
                                                    "point-basis-square"), rng=3)
    return certrb.weak_greedy(builder, train, tol=1e-10, max_basis=8)


@pytest.fixture
def run_script(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """Run a Python script in a fresh interpreter in ``tmp_path``; fail the test if it fails.

    ``run_script(path, *args, timeout=300)`` returns the CompletedProcess (text output).
    BLAS runs single-threaded (oversubscribed threads make small dense algebra far slower
    on busy machines), matplotlib without a display, and a deprecated certrb call made by
    the script itself is an error.
    """
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **os.environ, "MPLBACKEND": "Agg"}

    def run(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-W", "error::DeprecationWarning:__main__", str(script), *args]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        assert proc.returncode == 0, f"{Path(script).name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return proc

    return run


class CountingKernels:
    """Stands in for ``kernels.compiled()``: the compiled kernels, recording each call and its ``ok`` flags."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.calls = []

    def __getattr__(self, name):
        kernel = getattr(self.compiled, name)

        def call(*args):
            out = kernel(*args)
            ok = out if name == "cholesky_solve_batch" else out[2] if name == "cholesky_solve_one" else None
            self.calls.append((name, None if ok is None else np.all(ok)))
            return out

        return call


@pytest.fixture
def counting(monkeypatch):
    """Record the calls of the compiled kernels (none without numba)."""
    spy = CountingKernels(kernels.compiled())
    if spy.compiled is not None:
        monkeypatch.setattr(kernels, "compiled", lambda: spy)
    return spy

"""Output bounds: corrected output and primal-dual bound, real and complex."""

import numpy as np
import pytest

import certrb


def exact_outputs(problem, mus):
    U = problem.solve(mus)
    L = problem.output.assemble(mus)
    return np.einsum("mh,mh->m", L.conj(), U)


@pytest.fixture(scope="module", params=["real", "complex"])
def models(request, small_problem, complex_problem):
    problem = small_problem if request.param == "real" else complex_problem
    train = problem.parameter_space.sample(150, rng=0)
    dual = certrb.weak_greedy(certrb.OfflineBuilder(certrb.dual_problem(problem)), train, tol=0.0, max_basis=4).model
    plain = certrb.weak_greedy(certrb.OfflineBuilder(problem), train, tol=0.0, max_basis=4).model
    corrected = certrb.reduce(certrb.OfflineBuilder(problem, dual=dual), plain.basis)
    return problem, plain, corrected


def test_dual_problem_is_the_adjoint(small_problem, complex_problem):
    for problem in (small_problem, complex_problem):
        dual = certrb.dual_problem(problem)
        mus = problem.parameter_space.sample(3, rng=1)
        Z = dual.solve(mus)
        F = problem.rhs.assemble(mus)
        # s = l^H u = z^H f
        assert np.allclose(np.einsum("mh,mh->m", Z.conj(), F), exact_outputs(problem, mus), rtol=1e-10)


def test_primal_dual_bound_holds_and_is_tighter(models):
    problem, plain, corrected = models
    mus = problem.parameter_space.sample(80, rng=2)
    s = exact_outputs(problem, mus)
    a, b = plain.evaluate(mus), corrected.evaluate(mus)
    assert np.all(np.abs(s - a.output) <= a.output_bound)
    assert np.all(np.abs(s - b.output) <= b.output_bound)
    # the primal-dual bound is orders of magnitude tighter; the correction never hurts much
    # (for the compliant real problem the plain output is already second-order accurate)
    assert np.median(b.output_bound) < 1e-2 * np.median(a.output_bound)
    assert np.median(np.abs(s - b.output)) <= 2 * np.median(np.abs(s - a.output))


def test_corrected_output_with_nested_primal(models):
    problem, _, corrected = models
    mus = problem.parameter_space.sample(20, rng=3)
    s = exact_outputs(problem, mus)
    for n in (1, 2, 3):
        res = corrected.evaluate(mus, n=n)
        assert np.all(np.abs(s - res.output) <= res.output_bound)


def test_dual_needs_an_output(small_problem, models):
    _, plain, _ = models
    no_output = certrb.Problem(small_problem.operator, small_problem.rhs, small_problem.inner_product,
                               small_problem.parameter_space, stability=small_problem.stability)
    with pytest.raises(ValueError, match="output"):
        certrb.dual_problem(no_output)
    train = small_problem.parameter_space.sample(20, rng=0)
    dual = certrb.weak_greedy(certrb.OfflineBuilder(certrb.dual_problem(small_problem)), train, tol=0.0,
                              max_basis=2).model
    with pytest.raises(ValueError, match="no output"):
        certrb.reduce(certrb.OfflineBuilder(no_output, dual=dual),
                      plain.basis[: no_output.size] if plain.basis.shape[0] == no_output.size
                      else np.eye(no_output.size, 2))


def test_save_load_with_dual(models, tmp_path):
    problem, _, corrected = models
    path = tmp_path / "m.h5"
    certrb.save(corrected, path)
    loaded = certrb.load(path, trusted=True)
    mus = problem.parameter_space.sample(10, rng=4)
    a, b = corrected.evaluate(mus), loaded.evaluate(mus)
    assert np.array_equal(a.output, b.output)
    assert np.array_equal(a.output_bound, b.output_bound)
    assert loaded.output.dual is not None

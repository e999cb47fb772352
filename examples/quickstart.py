"""Quickstart: build a certified reduced model and check its error bounds.

Builds the 1D diffusion-reaction problem, runs a weak greedy driven by the
orthonormal residual estimator, then evaluates a batch of new parameters with
every attached estimator and compares against truth-space references.
"""

import numpy as np

import certrb
from certrb.problems import diffusion1d

problem = diffusion1d(100)  # truth model: P1 finite elements, n_h = 99
space = problem.parameter_space
train = space.sample(200, rng=0)
# how the model is built: every estimator attached, the orthonormal one drives the greedy
builder = certrb.OfflineBuilder(problem, certrb.ESTIMATOR_NAMES, default="orthonormal", rng=0)
greedy = certrb.weak_greedy(builder, train, tol=1e-6, max_basis=8)
model = greedy.model
print(f"{space}\ngreedy stopped ({greedy.reason}) at N = {model.n_basis}, "
      f"max relative training bound {greedy.max_bounds[-1]:.2e}\n")

test = space.sample(50, rng=1)
eps_ref = certrb.truth_residual_norm(problem, model, test, precision="extended")  # E0 reference
err, norm_u = certrb.true_error(problem, model, test)

print(f"{'estimator':<16}{'max rel. diff to E0':>20}{'min eff.':>10}{'max eff.':>10}{'max rel. bound':>16}")
for name in certrb.ESTIMATOR_NAMES:
    res = model.evaluate(test, estimator=name)  # batched: coefficients, residual norm, bound, output
    diff = np.max(np.abs(res.residual_norm - eps_ref) / eps_ref)
    eff = res.bound / err  # effectivity: bound / true error, >= 1 for a valid bound
    print(f"{name:<16}{diff:>20.2e}{eff.min():>10.2f}{eff.max():>10.2f}{res.relative_bound.max():>16.2e}")

res = model.evaluate(test[:3])
for mu, s, ds in zip(test[:3], res.output, res.output_bound, strict=True):
    print(f"mu = {np.round(mu, 2)}: output s_N = {s:.6e} +- {ds:.1e}")

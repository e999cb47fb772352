import scipy.io

import certrb

A = [scipy.io.mmread(f"A{q}.mtx") for q in range(1, 5)]
f = scipy.io.mmread("f.mtx").ravel()
names = ["mu1", "mu2", "mu3", "mu4"]
space = certrb.ParameterSpace(names, [0.1] * 4, [1.0] * 4, scale=["linear"] * 3 + ["log"])
rhs = certrb.AffineFunctional([f], ["1"])
problem = certrb.Problem(certrb.AffineOperator(A, names), rhs, sum(A), space,
                         stability=certrb.MinTheta([1.0] * 4), output=rhs)
train = space.sample(300, rng=0)
result = certrb.weak_greedy(certrb.OfflineBuilder(problem, rng=0), train, tol=1e-6, max_basis=20)
certrb.save(result.model, "plain.h5")

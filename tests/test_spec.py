"""Problems from a TOML spec naming matrix files (certrb.offline.spec)."""

import gzip

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import certrb
from certrb.errors import SpecError
from certrb.offline.spec import Reduction, load_spec, read_matrix, read_vector

N_ELEMENTS = 40


def two_subdomains(n: int = N_ELEMENTS) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """1D P1 stiffness of (0, 1/2) and (1/2, 1) on the interior nodes, and the load of f = 1."""
    h = 1.0 / n
    parts = [sp.lil_matrix((n + 1, n + 1)) for _ in range(2)]
    for e in range(n):
        block = parts[0 if e < n // 2 else 1]
        block[e:e + 2, e:e + 2] += np.array([[1.0, -1.0], [-1.0, 1.0]]) / h
    return sp.csr_matrix(parts[0][1:-1, 1:-1]), sp.csr_matrix(parts[1][1:-1, 1:-1]), np.full(n - 1, h)


SPEC = """\
[parameters]
mu1 = [0.1, 10.0]
mu2 = { range = [1e-2, 1e2], scale = "log" }
[operator]
terms = ["K1.mtx", "K2.mtx.gz"]
coefficients = ["mu1", "mu2"]
[rhs]
terms = ["f.npy"]
coefficients = ["1"]
[output]
terms = ["l.npz"]
coefficients = ["sin(mu1) + 2"]
[inner_product]
matrix = "X.npz"
[stability]
kind = "min-theta"
reference = { mu1 = 1.0, mu2 = 1.0 }
[reduction]
tol = 1e-8
max_basis = 12
estimator = "orthonormal"
train = 200
"""


@pytest.fixture
def folder(tmp_path):
    """The two-subdomain matrices in every supported format: .mtx, .mtx.gz, .npy (n, 1), .npz sparse and vector."""
    K1, K2, f = two_subdomains()
    scipy.io.mmwrite(tmp_path / "K1.mtx", K1)
    with gzip.open(tmp_path / "K2.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, K2)
    np.save(tmp_path / "f.npy", f[:, None])
    sp.save_npz(tmp_path / "X.npz", sp.csr_matrix(K1 + K2))
    np.savez(tmp_path / "l.npz", l=f[None, :])
    return tmp_path


def write(folder, text=SPEC, name="spec.toml"):
    path = folder / name
    path.write_text(text)
    return path


def python_problem():
    K1, K2, f = two_subdomains()
    space = certrb.ParameterSpace(["mu1", "mu2"], [0.1, 1e-2], [10.0, 1e2], scale=["linear", "log"])
    return certrb.Problem(certrb.AffineOperator([K1, K2], ["mu1", "mu2"]), certrb.AffineFunctional([f], ["1"]),
                          K1 + K2, space, stability=certrb.MinTheta([1.0, 1.0]),
                          output=certrb.AffineFunctional([f], ["sin(mu1) + 2"]))


def test_spec_gives_the_problem_built_in_python(folder):
    spec = load_spec(write(folder))
    reference = python_problem()
    mus = reference.parameter_space.sample(5, rng=3)
    np.testing.assert_allclose(spec.problem.solve(mus), reference.solve(mus), rtol=1e-13, atol=0)
    np.testing.assert_allclose(spec.problem.stability_lower_bound(mus), reference.stability_lower_bound(mus),
                               rtol=1e-12)
    np.testing.assert_array_equal(spec.problem.output.theta(mus), reference.output.theta(mus))
    assert spec.reduction == Reduction(tol=1e-8, max_basis=12, estimators=("orthonormal",), train=200)
    assert spec.stability == "min-theta"


def test_problem_from_spec_and_relative_paths(folder, tmp_path_factory):
    sub = folder / "specs"
    sub.mkdir()
    text = SPEC.replace('"K1.mtx"', '"../K1.mtx"').replace('"K2.mtx.gz"', f'"{folder / "K2.mtx.gz"}"')
    text = text.replace('"f.npy"', '"../f.npy"').replace('"l.npz"', '"../l.npz"').replace('"X.npz"', '"../X.npz"')
    problem = certrb.Problem.from_spec(write(sub, text))
    assert isinstance(problem, certrb.Problem)
    assert problem.size == N_ELEMENTS - 1


def test_log_scale_samples_uniformly_in_log(folder):
    spec = load_spec(write(folder))
    space = spec.problem.parameter_space
    assert space.scale == ("linear", "log")
    train = spec.training_set()
    assert train.shape == (200, 2)
    assert abs(np.median(np.log10(train[:, 1]))) < 0.3  # range 1e-2..1e2: log-uniform median at 1e0
    np.testing.assert_array_equal(train, spec.training_set())  # seeded


def test_reduction_overrides_and_defaults(folder):
    text = SPEC[:SPEC.index("[reduction]")]
    assert load_spec(write(folder, text)).reduction == Reduction()
    spec = load_spec(write(folder), reduction={"max_basis": 3, "estimator": ["expanded", "orthonormal"]})
    assert (spec.reduction.max_basis, spec.reduction.estimators) == (3, ("expanded", "orthonormal"))


@pytest.mark.parametrize(("suffix", "shape"), [(s, v) for s in (".npy", ".npz", ".mtx", ".mtx.gz")
                                               for v in ("(n,)", "(n, 1)", "(1, n)") if s[:4] != ".mtx" or v != "(n,)"])
def test_vectors_in_every_shape_and_format(tmp_path, shape, suffix):
    v = np.arange(1.0, 6.0) + 0.5j * np.arange(5)  # complex values are kept
    arr = {"(n,)": v, "(n, 1)": v[:, None], "(1, n)": v[None, :]}[shape]
    path = tmp_path / f"v{suffix}"
    if suffix == ".npy":
        np.save(path, arr)
    elif suffix == ".npz":
        np.savez(path, arr)
    else:  # Matrix Market holds 2-D arrays only
        with (gzip.open(path, "wb") if suffix.endswith(".gz") else path.open("wb")) as fh:
            scipy.io.mmwrite(fh, arr)
    got = read_vector(path)
    assert got.dtype == np.complex128
    np.testing.assert_array_equal(got, v)


@pytest.mark.parametrize("suffix", [".mtx", ".mtx.gz", ".npz", ".npy"])
def test_matrices_keep_complex_values(tmp_path, suffix):
    a = sp.csr_matrix(np.array([[2.0, 1j], [-1j, 3.0 + 0.5j]]))
    path = tmp_path / f"a{suffix}"
    if suffix == ".npz":
        sp.save_npz(path, a)
    elif suffix == ".npy":
        np.save(path, a.toarray())
    else:
        with (gzip.open(path, "wb") if suffix.endswith(".gz") else path.open("wb")) as fh:
            scipy.io.mmwrite(fh, a)
    got = read_matrix(path)
    assert sp.issparse(got)
    assert got.dtype == np.complex128
    np.testing.assert_array_equal(got.toarray(), a.toarray())


def test_sparse_column_is_a_vector(tmp_path):
    scipy.io.mmwrite(tmp_path / "v.mtx", sp.csr_matrix(np.array([[1.0], [0.0], [2.0]])))
    np.testing.assert_array_equal(read_vector(tmp_path / "v.mtx"), [1.0, 0.0, 2.0])


def _replace(old, new):
    def edit(text):
        assert old in text
        return text.replace(old, new)
    return edit


def _append(extra):
    return lambda text: text + extra


ERRORS = {
    "unknown section": (_append("[solver]\nx = 1\n"), r"unknown section\(s\) \['solver'\]; allowed: \['parameters'"),
    "missing section": (_replace("[rhs]\nterms", "[rhs_]\nterms"), r"unknown section"),
    "no rhs": (_replace('[rhs]\nterms = ["f.npy"]\ncoefficients = ["1"]\n', ""), r"missing section\(s\) \['rhs'\]"),
    "bad toml": (_replace("[parameters]", "[parameters"), "not valid TOML"),
    "unknown key": (_replace('coefficients = ["mu1", "mu2"]', 'coefficients = ["mu1", "mu2"]\nterm = 1'),
                    r"\[operator\]: unknown key\(s\) \['term'\]; allowed: \['terms', 'coefficients'\]"),
    "unknown reduction key": (_append("tolerance = 1\n"), r"\[reduction\]: unknown key.*allowed: \['tol'"),
    "missing file": (_replace('"K2.mtx.gz"', '"K3.mtx"'), r"\[operator\] terms\[1\] 'K3.mtx'.*not found"),
    "unknown file type": (_replace('"f.npy"', '"f.txt"'), r"\[rhs\] terms\[0\] 'f.txt'.*unknown file type"),
    "corrupt file": (_replace('"K1.mtx"', '"junk.mtx"'), r"\[operator\] terms\[0\] 'junk.mtx': cannot read"),
    "not square": (_replace('"K2.mtx.gz"', '"rect.mtx"'), r"terms\[1\] 'rect.mtx' must be a non-empty square"),
    "size mismatch": (_replace('matrix = "X.npz"', 'matrix = "small.mtx"'), r"\[inner_product\].*has size 3"),
    "vector size": (_replace('"l.npz"', '"short.npy"'), r"\[output\] terms\[0\] 'short.npy' has length 3"),
    "not a vector": (_replace('"f.npy"', '"rect.mtx"'), r"\[rhs\] terms\[0\].*expected a vector"),
    "count": (_replace('["mu1", "mu2"]', '["mu1"]'), "2 terms and 1 coefficients"),
    "undeclared name": (_replace('"mu2"]', '"mu3"]'), r"\[operator\] coefficients\[1\] = 'mu3'.*unknown name 'mu3'"),
    "bad expression": (_replace('"sin(mu1) + 2"', '"mu1 +"'), r"\[output\] coefficients\[0\] = 'mu1 \+'"),
    "not finite": (_replace('"sin(mu1) + 2"', '"log(mu1 - 0.1)"'), r"\[output\] coefficients\[0\].*not finite"),
    "range order": (_replace("mu1 = [0.1, 10.0]", "mu1 = [10.0, 0.1]"), r"\[parameters\] mu1: low 10 exceeds"),
    "range shape": (_replace("mu1 = [0.1, 10.0]", "mu1 = 0.1"), r"\[parameters\] mu1: the range must be"),
    "log low": (_replace("range = [1e-2, 1e2]", "range = [0.0, 1e2]"), "log scale needs low > 0"),
    "scale": (_replace('scale = "log"', 'scale = "ln"'), r"\[parameters\] mu2: scale must be"),
    "parameter key": (_replace('scale = "log"', 'scal = "log"'), r"\[parameters\] mu2: unknown key.*'range', 'scale'"),
    "name clash": (_replace("mu1 = [0.1", "exp = [0.1"), r"\[parameters\] exp: a parameter name"),
    "estimator": (_replace('"orthonormal"', '"orthogonal"'), r"unknown estimator 'orthogonal'; choose from"),
    "train": (_replace("train = 200", "train = 0"), r"\[reduction\] train must be an integer >= 1"),
    "tol": (_replace("tol = 1e-8", 'tol = "small"'), r"\[reduction\] tol must be a finite number"),
    "X not SPD": (_replace('matrix = "X.npz"', 'matrix = "negX.npz"'), r"\[inner_product\] matrix 'negX.npz'.*"
                                                                           "positive definite"),
    "X and reference": (_replace('matrix = "X.npz"', 'matrix = "X.npz"\nreference = { mu1 = 1.0, mu2 = 1.0 }'),
                        "either matrix"),
    "stability kind": (_replace('kind = "min-theta"', 'kind = "coercive"'), r"\[stability\] kind must be one of"),
    "stability key": (_replace("reference = { mu1 = 1.0, mu2 = 1.0 }\n[red",
                               "reference = { mu1 = 1.0, mu2 = 1.0 }\ntrain = 5\n[red"),
                      r"\[stability\] \(kind = 'min-theta'\): unknown key\(s\) \['train'\]"),
    "reference missing": (_replace("reference = { mu1 = 1.0, mu2 = 1.0 }", "reference = { mu1 = 1.0 }"),
                          r"\[stability\] reference misses the parameter\(s\) \['mu2'\]"),
    "reference outside": (_replace("reference = { mu1 = 1.0, mu2 = 1.0 }", "reference = { mu1 = 1.0, mu2 = 1e3 }"),
                          r"\[stability\] reference mu2 = 1000.0 lies outside"),
    "negative coefficient": (_replace('["mu1", "mu2"]', '["mu1 - 1", "mu2"]'),
                             r"min-theta.*non-negative.*coefficients\[0\] = 'mu1 - 1'.*use kind = \"scm\""),
    "complex coefficient": (_replace('["mu1", "mu2"]', '["mu1", "1j * mu2"]'),
                            r"min-theta.*real operator coefficients.*constant = \"inf-sup\""),
    "not coercive": (_replace('"K2.mtx.gz"', '"negX.npz"'), r"\[stability\] kind = 'min-theta'.*inf-sup"),
    "scm coercive complex": (_replace('kind = "min-theta"\nreference = { mu1 = 1.0, mu2 = 1.0 }',
                                      'kind = "scm"\nconstant = "coercive"'),
                             r"constant = \"coercive\" needs real operator coefficients"),
    "scm option": (_replace('kind = "min-theta"\nreference = { mu1 = 1.0, mu2 = 1.0 }', 'kind = "scm"\ntol = -1'),
                   r"\[stability\] tol must be a positive number"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_each_invalid_spec_raises_a_spec_error_naming_where(folder, case):
    edit, match = ERRORS[case]
    text = edit(SPEC)
    if case == "scm coercive complex":
        text = text.replace('["mu1", "mu2"]', '["mu1", "1j * mu2"]')
    (folder / "junk.mtx").write_text("%%MatrixMarket matrix coordinate real general\nnot numbers\n")
    scipy.io.mmwrite(folder / "rect.mtx", sp.csr_matrix(np.ones((N_ELEMENTS - 1, 2))))
    scipy.io.mmwrite(folder / "small.mtx", sp.identity(3, format="csr"))
    np.save(folder / "short.npy", np.ones(3))
    sp.save_npz(folder / "negX.npz", -sp.load_npz(folder / "X.npz"))
    (folder / "f.txt").write_text("1\n")
    with pytest.raises(SpecError, match=match) as info:
        load_spec(write(folder, text))
    assert str(info.value).startswith("spec.toml: ")
    assert isinstance(info.value, ValueError)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "none.toml")


def test_scm_stability_from_the_spec(folder):
    text = SPEC.replace('kind = "min-theta"\nreference = { mu1 = 1.0, mu2 = 1.0 }',
                        'kind = "scm"\ntrain = 30\nmax_iter = 8')
    spec = load_spec(write(folder, text))
    assert spec.stability == "scm coercive"
    mus = spec.problem.parameter_space.sample(20, rng=1)
    lower = spec.problem.stability_lower_bound(mus)
    # X = K1 + K2, A = mu1 K1 + mu2 K2: alpha(mu) = min(mu1, mu2) exactly
    assert np.all(lower > 0)
    assert np.all(lower <= mus.min(axis=1) * (1 + 1e-8))


def test_inner_product_at_a_reference_parameter(folder):
    text = SPEC.replace('matrix = "X.npz"', "reference = { mu1 = 1.0, mu2 = 1.0 }")
    spec = load_spec(write(folder, text))
    X = sp.load_npz(folder / "X.npz")
    assert abs(spec.problem.inner_product.matrix - X).max() < 1e-12 * abs(X).max()


def test_problem_without_stability_fails_before_any_factorization():
    K1, K2, f = two_subdomains(6)
    space = certrb.ParameterSpace(["mu1"], [1.0], [2.0])
    with pytest.raises(TypeError, match=r"stability is missing.*MinTheta.*SCM"):
        # the inner product is not even positive definite: the missing bound is reported first
        certrb.Problem(certrb.AffineOperator([K1 + K2], ["mu1"]), certrb.AffineFunctional([f], ["1"]),
                       -(K1 + K2), space)

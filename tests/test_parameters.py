"""ParameterSpace: sampling, grids, validation and construction errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certrb import ParameterError, ParameterSpace


@pytest.fixture
def space() -> ParameterSpace:
    return ParameterSpace(["k", "c"], [-1.0, 2.0], [3.0, 5.0])


@pytest.fixture
def log_space() -> ParameterSpace:
    return ParameterSpace(["a", "b"], [1e-3, 0.0], [1e3, 1.0], scale=["log", "linear"])


# --- construction -------------------------------------------------------------------------


def test_attributes(space):
    assert space.names == ("k", "c")
    assert space.dim == 2
    np.testing.assert_array_equal(space.lower, [-1.0, 2.0])
    np.testing.assert_array_equal(space.upper, [3.0, 5.0])
    assert space.scale == ("linear", "linear")
    assert "k in [-1, 3]" in repr(space)


def test_single_name_string():
    s = ParameterSpace("k", 0.0, 1.0)
    assert s.names == ("k",)
    assert s.dim == 1
    assert s.sample(3, rng=0).shape == (3, 1)


def test_bounds_are_copied_and_read_only():
    lo = np.array([0.0, 1.0])
    s = ParameterSpace(["a", "b"], lo, [1.0, 2.0])
    lo[0] = 5.0
    assert s.lower[0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        s.lower[0] = 3.0


def test_degenerate_axis_allowed():
    s = ParameterSpace(["a", "b"], [1.0, 0.0], [1.0, 2.0])
    mus = s.sample(20, rng=1)
    np.testing.assert_array_equal(mus[:, 0], 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": ["a", "b"], "lower": [0.0, 2.0], "upper": [1.0, 1.0]}, "lower must not exceed upper"),
        ({"names": ["a", "b"], "lower": [0.0], "upper": [1.0, 1.0]}, "shape"),
        ({"names": ["a", "b"], "lower": [0.0, 0.0], "upper": [1.0, 1.0, 1.0]}, "shape"),
        ({"names": ["a"], "lower": [[0.0]], "upper": [1.0]}, "shape"),
        ({"names": ["a", "b"], "lower": [0.0, np.nan], "upper": [1.0, 1.0]}, "finite"),
        ({"names": ["a", "b"], "lower": [0.0, 0.0], "upper": [np.inf, 1.0]}, "finite"),
        ({"names": ["a", "b"], "lower": [0.0, 0.0], "upper": [1.0, 1.0], "scale": "cubic"}, "scale"),
        ({"names": ["a", "b"], "lower": [0.0, 0.0], "upper": [1.0, 1.0], "scale": ["linear"]}, "scale"),
        ({"names": ["a", "b"], "lower": [1.0, 0.0], "upper": [2.0, 1.0], "scale": ["log", "log"]}, "lower > 0"),
        ({"names": ["a"], "lower": [-1.0], "upper": [2.0], "scale": "log"}, "lower > 0"),
    ],
)
def test_invalid_construction(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        ParameterSpace(**kwargs)


def test_parameter_error_is_value_error():
    with pytest.raises(ValueError, match="lower must not exceed upper"):
        ParameterSpace(["a"], [1.0], [0.0])


# --- sampling -----------------------------------------------------------------------------


def test_sample_shape_bounds_dtype(space):
    mus = space.sample(500, rng=0)
    assert mus.shape == (500, 2)
    assert mus.dtype == np.float64
    assert np.all(mus >= space.lower)
    assert np.all(mus <= space.upper)
    # the samples actually fill the box (not a degenerate corner)
    assert np.all(mus.min(axis=0) < space.lower + 0.05 * (space.upper - space.lower))
    assert np.all(mus.max(axis=0) > space.upper - 0.05 * (space.upper - space.lower))


def test_sample_reproducible_with_seed(space):
    np.testing.assert_array_equal(space.sample(10, rng=7), space.sample(10, rng=7))
    assert not np.array_equal(space.sample(10, rng=7), space.sample(10, rng=8))


def test_sample_with_generator(space):
    a = space.sample(5, rng=np.random.default_rng(3))
    b = space.sample(5, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(3)
    first, second = space.sample(5, rng=gen), space.sample(5, rng=gen)
    np.testing.assert_array_equal(first, a)
    assert not np.array_equal(first, second)  # the generator advanced


def test_sample_zero(space):
    assert space.sample(0, rng=0).shape == (0, 2)


@pytest.mark.parametrize("n", [-1, 2.5, "3"])
def test_sample_bad_n(space, n):
    with pytest.raises(ParameterError, match="n must be a non-negative integer"):
        space.sample(n, rng=0)


def test_sample_uniform_linear_quantiles(space):
    mus = space.sample(20000, rng=5)
    u = (mus - space.lower) / (space.upper - space.lower)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        np.testing.assert_allclose(np.quantile(u, q, axis=0), q, atol=0.02)


def test_sample_log_scaling_quantiles(log_space):
    mus = log_space.sample(20000, rng=2)
    assert np.all(mus[:, 0] >= 1e-3)
    assert np.all(mus[:, 0] <= 1e3)
    logs = np.log10(mus[:, 0])  # uniform on [-3, 3]
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(np.quantile(logs, q) - (-3.0 + 6.0 * q)) < 0.1
    # the median of a log-uniform sample on [1e-3, 1e3] is ~1, far below the linear midpoint 500
    assert 0.5 < np.median(mus[:, 0]) < 2.0
    # the linear axis is unaffected
    for q in (0.25, 0.5, 0.75):
        assert abs(np.quantile(mus[:, 1], q) - q) < 0.02


# --- grid ---------------------------------------------------------------------------------


def test_grid_linear(space):
    g = space.grid(3)
    assert g.shape == (9, 2)
    np.testing.assert_allclose(np.unique(g[:, 0]), [-1.0, 1.0, 3.0])
    np.testing.assert_allclose(np.unique(g[:, 1]), [2.0, 3.5, 5.0])
    # tensor structure: every pair occurs once, first axis slowest
    assert len({tuple(row) for row in g}) == 9
    np.testing.assert_allclose(g[:3, 0], -1.0)


def test_grid_per_axis_counts(space):
    g = space.grid([2, 4])
    assert g.shape == (8, 2)
    np.testing.assert_allclose(np.unique(g[:, 0]), [-1.0, 3.0])
    np.testing.assert_allclose(np.unique(g[:, 1]), np.linspace(2.0, 5.0, 4))


def test_grid_log_axis(log_space):
    g = log_space.grid([4, 2])
    np.testing.assert_allclose(np.unique(g[:, 0]), [1e-3, 1e-1, 1e1, 1e3], rtol=1e-12)
    np.testing.assert_allclose(np.unique(g[:, 1]), [0.0, 1.0])


def test_grid_single_point_is_midpoint(log_space):
    g = log_space.grid(1)
    assert g.shape == (1, 2)
    np.testing.assert_allclose(g[0], [1.0, 0.5], rtol=1e-12)  # geometric midpoint on the log axis


def test_grid_inside_box(log_space):
    g = log_space.grid(7)
    assert np.all(g >= log_space.lower)
    assert np.all(g <= log_space.upper)
    np.testing.assert_array_equal(log_space.validate(g), g)


# --- validate -----------------------------------------------------------------------------


def test_validate_promotes_single_parameter(space):
    out = space.validate([0.0, 3.0])
    assert out.shape == (1, 2)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.0, 3.0]])


def test_validate_batch_passthrough(space):
    mus = space.sample(6, rng=1)
    out = space.validate(mus)
    np.testing.assert_array_equal(out, mus)
    assert out.shape == (6, 2)


def test_validate_integer_input_becomes_float(space):
    out = space.validate([[1, 3], [0, 4]])
    assert out.dtype == np.float64


def test_validate_empty_batch(space):
    assert space.validate(np.zeros((0, 2))).shape == (0, 2)


def test_validate_boundary_included(space):
    corners = np.array([space.lower, space.upper])
    np.testing.assert_array_equal(space.validate(corners), corners)  # closed box: corners pass unchanged
    with pytest.raises(ParameterError, match="outside"):
        space.validate([np.nextafter(space.upper, np.inf)])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(3),
        np.zeros((4, 3)),
        np.zeros((2, 1)),
        np.zeros((1, 2, 2)),
        0.5,
    ],
)
def test_validate_wrong_shape(space, bad):
    with pytest.raises(ParameterError, match=r"train must have shape \(n_mu, 2\)"):
        space.validate(bad, name="train")


def test_validate_one_dimensional_space_rejects_flat_batch():
    s = ParameterSpace(["a"], [0.0], [1.0])
    assert s.validate([0.5]).shape == (1, 1)
    with pytest.raises(ParameterError, match="shape"):
        s.validate([0.1, 0.2, 0.3])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_validate_non_finite(space, value):
    mus = np.array([[0.0, 3.0], [value, 3.0]])
    with pytest.raises(ParameterError, match="mu_test contains NaN or infinite"):
        space.validate(mus, name="mu_test")


@pytest.mark.parametrize("point", [[3.0001, 3.0], [-1.1, 3.0], [0.0, 1.99], [0.0, 5.5]])
def test_validate_outside_box(space, point):
    mus = np.array([[0.0, 3.0], [1.0, 4.0], point])
    with pytest.raises(ParameterError, match=r"queries\[2\] = .* lies outside the parameter domain"):
        space.validate(mus, name="queries")


def test_validate_outside_log_box(log_space):
    with pytest.raises(ParameterError, match="outside"):
        log_space.validate([1e-4, 0.5])


def test_validate_non_numeric(space):
    with pytest.raises(ParameterError, match="mus must be a real array"):
        space.validate([["a", "b"]])


def test_validate_complex_list_rejected(space):
    with pytest.raises(ParameterError, match="real"):
        space.validate([0.5 + 1j, 3.0])


def test_validate_complex_array_rejected(space):
    # a complex ndarray must not be silently truncated to its real part
    with pytest.raises(ParameterError, match="real"):
        space.validate(np.array([0.5 + 1j, 3.0]))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 30),
    dim=st.integers(1, 4),
)
def test_validate_accepts_in_box_batches(seed, n, dim):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-10, 10, dim)
    hi = lo + rng.uniform(0, 10, dim)
    s = ParameterSpace([f"p{i}" for i in range(dim)], lo, hi)
    t = rng.random((n, dim))
    mus = np.clip(lo + t * (hi - lo), lo, hi)
    out = s.validate(mus)
    assert out.shape == (n, dim)
    np.testing.assert_array_equal(out, mus)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    dim=st.integers(1, 4),
    offset=st.floats(1e-6, 1e3),
    above=st.booleans(),
)
def test_validate_rejects_any_out_of_box_entry(seed, dim, offset, above):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-10, 10, dim)
    hi = lo + rng.uniform(0.1, 10, dim)
    s = ParameterSpace([f"p{i}" for i in range(dim)], lo, hi)
    mus = s.sample(5, rng=rng)
    i, j = rng.integers(5), rng.integers(dim)
    mus[i, j] = hi[j] + offset if above else lo[j] - offset
    with pytest.raises(ParameterError, match=rf"mus\[{i}\]"):
        s.validate(mus)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 50))
def test_log_samples_inside_and_reproducible(seed, n):
    s = ParameterSpace(["a", "b"], [1e-6, 0.1], [1e6, 0.2], scale="log")
    mus = s.sample(n, rng=seed)
    np.testing.assert_array_equal(s.validate(mus), mus)
    np.testing.assert_array_equal(mus, s.sample(n, rng=seed))


def test_unit_coordinates_round_trip_in_each_axis_scale():
    space = ParameterSpace(["a", "b", "c"], [0.1, -2.0, 3.0], [10.0, 2.0, 3.0], scale=["log", "linear", "linear"])
    mus = space.sample(50, rng=0)
    u = space.to_unit(mus)
    assert np.all((u >= 0) & (u <= 1))
    np.testing.assert_allclose(u[:, 0], np.log(mus[:, 0] / 0.1) / np.log(100.0), rtol=1e-13)
    assert np.all(u[:, 2] == 0)  # a fixed axis
    np.testing.assert_allclose(space.from_unit(u), mus, rtol=1e-13)

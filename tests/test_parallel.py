"""ParallelMap / solve_snapshots: identical results on every backend, shipping, failures, inputs.

Tests that start a dask cluster (or kill its workers) are marked ``dask``.
"""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import certrb
from certrb import ParallelMap, ParameterError, parallel, solve_snapshots
from certrb.problems import diffusion1d, thermal_block

UNPICKLED = 0  # worker-side count of Counted unpicklings


class Counted:
    """Wraps a problem and counts, per process, how often it is unpickled."""

    def __init__(self, problem):
        self.problem = problem

    def __getstate__(self):
        return {"problem": self.problem}

    def __setstate__(self, state):
        global UNPICKLED
        UNPICKLED += 1
        self.problem = state["problem"]


def count_and_solve(shared, chunk):
    return os.getpid(), UNPICKLED, shared.problem.solve(chunk)


def slow_solve(problem, chunk):
    time.sleep(0.2)
    return problem.solve(chunk)


def die_once_then_solve(shared, chunk):
    """Kill this worker process the first time the chunk starting at ``shared[2]`` runs."""
    problem, marker, first = shared
    if chunk[0, 0] == first and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return problem.solve(chunk)


def chunk_sum(shared, chunk):
    return shared * chunk.sum(axis=1)


def fail_on_negative(shared, chunk):
    if np.any(chunk < 0):
        raise ArithmeticError(f"negative parameter in chunk starting {chunk[0].tolist()}")
    return chunk.sum(axis=1)


@pytest.fixture(scope="module")
def tb():
    return thermal_block((2, 2), n=20)


@pytest.fixture(scope="module")
def d1():
    return diffusion1d(60)


@pytest.fixture(scope="module")
def pool():
    with ParallelMap(2, chunk_size=3) as pm:
        yield pm


def local_cluster():
    """Two single-threaded worker processes (dask is imported here: pool workers stay light)."""
    pytest.importorskip("distributed")
    return parallel.local_cluster(2)


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client

    with local_cluster() as cluster, Client(cluster, set_as_default=False) as client:
        yield client


@pytest.mark.dask
def test_local_cluster_workers_keep_glibc_malloc_defaults(dask_client):
    def environ():
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OPENBLAS_NUM_THREADS")

    seen = dask_client.run(environ)
    assert len(seen) == 2
    assert set(seen.values()) == {(None, "1")}  # no malloc trimming; still one BLAS thread per worker
    assert all(w.nthreads == 1 for w in dask_client.cluster.workers.values())


@pytest.mark.parametrize("name", ["tb", "d1"])
def test_serial_and_pool_snapshots_are_bit_identical(name, request, pool):
    problem = request.getfixturevalue(name)
    mus = problem.parameter_space.sample(10, rng=7)
    serial = solve_snapshots(problem, mus, parallel=ParallelMap(chunk_size=3))
    assert serial.shape == (10, problem.size)
    assert np.array_equal(serial, problem.solve(mus))
    assert np.array_equal(solve_snapshots(problem, mus), serial)
    assert np.array_equal(solve_snapshots(problem, mus, parallel=pool), serial)


@pytest.mark.dask
@pytest.mark.parametrize("name", ["tb", "d1"])
def test_dask_snapshots_are_bit_identical(name, request, dask_client):
    problem = request.getfixturevalue(name)
    mus = problem.parameter_space.sample(10, rng=7)
    with ParallelMap(client=dask_client, chunk_size=3) as pm:
        assert np.array_equal(solve_snapshots(problem, mus, parallel=pm), problem.solve(mus))


def greedy(problem, parallel_map=None, callback=None):
    train = problem.parameter_space.sample(60, rng=12)
    return certrb.weak_greedy(certrb.OfflineBuilder(problem, certify=False), train, tol=1e-9, max_basis=8,
                              parallel=parallel_map, callback=callback)


@pytest.fixture(scope="module")
def serial_greedy(tb):
    """The reference greedy: training sweeps in chunks of 7, in this process."""
    result = greedy(tb, ParallelMap(chunk_size=7))
    assert result.model.n_basis >= 4
    return result


def assert_same_greedy(other, serial):
    assert np.array_equal(np.array([s.mu for s in other.history]), np.array([s.mu for s in serial.history]))
    assert [s.max_bound for s in other.history] == [s.max_bound for s in serial.history]
    assert np.array_equal(other.model.basis, serial.model.basis)
    assert np.array_equal(other.model.A_N, serial.model.A_N)


def test_greedy_gives_the_same_model_in_a_process_pool(tb, serial_greedy):
    with ParallelMap(2, chunk_size=7) as pm:
        assert_same_greedy(greedy(tb, pm), serial_greedy)
    # and the in-process sweep (no map) picks the same snapshots
    plain = greedy(tb)
    assert np.array_equal(np.array([s.mu for s in plain.history]), np.array([s.mu for s in serial_greedy.history]))
    np.testing.assert_allclose([s.max_bound for s in plain.history], [s.max_bound for s in serial_greedy.history],
                               rtol=1e-10)


@pytest.mark.dask
def test_greedy_gives_the_same_model_on_dask(tb, serial_greedy, dask_client):
    with ParallelMap(client=dask_client, chunk_size=7) as pm:
        assert_same_greedy(greedy(tb, pm), serial_greedy)


@pytest.mark.dask
def test_greedy_survives_a_killed_dask_worker(tb):
    from distributed import Client

    serial = greedy(tb, ParallelMap(chunk_size=5))
    with local_cluster() as cluster, Client(cluster, set_as_default=False) as client:
        victims = list(client.run(os.getpid).values())
        killed = []

        def kill_one(step):
            if step.n == 2 and not killed:  # before the sweep of the 3-vector model
                os.kill(victims[0], signal.SIGKILL)
                killed.append(victims[0])

        with ParallelMap(client=client, chunk_size=5) as pm:
            result = greedy(tb, pm, callback=kill_one)
    assert killed == victims[:1]
    assert np.array_equal(result.model.basis, serial.model.basis)
    assert [s.max_bound for s in result.history] == [s.max_bound for s in serial.history]


@pytest.mark.dask
def test_a_broadcast_that_never_returns_is_retried(tb, dask_client, monkeypatch):
    """A broadcast that never returns (a killed worker, rarely) fails after a timeout and is sent again."""
    import asyncio

    import certrb.parallel

    calls = []
    real = dask_client.scatter

    def flaky(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            return asyncio.sleep(3600)  # awaited on the client's loop: never returns
        return real(*args, **kwargs)

    monkeypatch.setattr(dask_client, "scatter", flaky)
    monkeypatch.setattr(certrb.parallel, "_SCATTER_TIMEOUT", 1.0)
    mus = tb.parameter_space.sample(4, rng=9)
    t0 = time.monotonic()
    with ParallelMap(client=dask_client, chunk_size=2) as pm:
        assert np.array_equal(solve_snapshots(tb, mus, parallel=pm), tb.solve(mus))
    assert len(calls) == 2
    assert all(c["broadcast"] for c in calls)
    assert time.monotonic() - t0 < 60


def scheduler_clients(client) -> set[str]:
    """Ids of the clients connected to the scheduler of ``client``."""
    return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))


@pytest.mark.dask
def test_scheduler_address_backend(tb, dask_client):
    mus = tb.parameter_space.sample(4, rng=8)
    address = dask_client.scheduler.address
    before = scheduler_clients(dask_client)
    with ParallelMap(scheduler=address, chunk_size=2) as pm:
        assert pm.backend == "dask"
        assert np.array_equal(solve_snapshots(tb, mus, parallel=pm), tb.solve(mus))
        assert len(scheduler_clients(dask_client) - before) == 1  # the map connected a client of its own
    deadline = time.monotonic() + 10
    while scheduler_clients(dask_client) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scheduler_clients(dask_client) == before  # ... and closed it; the given client stays open
    assert dask_client.status == "running"


@pytest.mark.parametrize("backend", ["pool", pytest.param("dask", marks=pytest.mark.dask)])
def test_shared_is_unpickled_once_per_worker(backend, tb, request):
    if backend == "pool":
        pm = ParallelMap(2, chunk_size=1)
    else:
        pm = ParallelMap(client=request.getfixturevalue("dask_client"), chunk_size=1)
    shared = Counted(tb)
    mus = tb.parameter_space.sample(8, rng=9)
    with pm:
        first = pm.map(count_and_solve, shared, mus)
        second = pm.map(count_and_solve, shared, mus)  # same object: not shipped again
    counts = {}
    for pid, count, _ in first + second:
        counts.setdefault(pid, set()).add(count)
    assert os.getpid() not in counts
    assert all(c == {1} for c in counts.values()), counts
    assert np.array_equal(np.concatenate([u for *_, u in first]), tb.solve(mus))


def test_progress_and_chunking(pool):
    mus = np.arange(14.0).reshape(7, 2)
    calls = []
    serial = ParallelMap(chunk_size=3).map(chunk_sum, 2.0, mus, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert [r.shape for r in serial] == [(3,), (3,), (1,)]
    np.testing.assert_array_equal(np.concatenate(serial), 2 * mus.sum(axis=1))
    calls.clear()
    parts = pool.map(chunk_sum, 2.0, mus, progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == [1, 2, 3]
    assert {t for _, t in calls} == {3}
    assert all(np.array_equal(a, b) for a, b in zip(parts, serial, strict=True))
    assert pool.map(chunk_sum, 2.0, np.zeros((0, 2))) == []


def test_empty_batch(tb):
    U = solve_snapshots(tb, np.zeros((0, 4)))
    assert U.shape == (0, tb.size)
    assert U.dtype == np.float64


def test_pool_replaces_a_dead_process(tb, tmp_path):
    mus = tb.parameter_space.sample(6, rng=10)
    shared = (tb, str(tmp_path / "died"), mus[2, 0])
    with ParallelMap(2, chunk_size=1) as pm:
        parts = pm.map(die_once_then_solve, shared, mus)
    assert (tmp_path / "died").exists()
    assert np.array_equal(np.concatenate(parts), tb.solve(mus))


def test_pool_gives_up_after_retries(tb, tmp_path):
    mus = tb.parameter_space.sample(3, rng=10)
    shared = (tb, str(tmp_path / "died"), mus[0, 0])
    with ParallelMap(2, chunk_size=1, retries=0) as pm:
        with pytest.raises(Exception, match="terminated abruptly"):
            pm.map(die_once_then_solve, shared, mus)


@pytest.mark.dask
def test_dask_map_survives_a_killed_worker(tb):
    mus = tb.parameter_space.sample(16, rng=11)
    from distributed import Client

    with local_cluster() as cluster, Client(cluster, set_as_default=False) as client:
        victim = next(iter(client.run(os.getpid).values()))
        killed = []

        def kill_once(done, total):
            if done == 3 and not killed:
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        with ParallelMap(client=client, chunk_size=1) as pm:
            parts = pm.map(slow_solve, tb, mus, progress=kill_once)
    assert killed == [victim]
    assert np.array_equal(np.concatenate(parts), tb.solve(mus))


@pytest.mark.parametrize("backend", ["serial", "pool", pytest.param("dask", marks=pytest.mark.dask)])
def test_user_errors_propagate(backend, request):
    mus = np.ones((6, 2))
    mus[4] = -1.0
    if backend == "serial":
        pm = ParallelMap(chunk_size=2)
    elif backend == "pool":
        pm = request.getfixturevalue("pool")
    else:
        pm = ParallelMap(client=request.getfixturevalue("dask_client"), chunk_size=2, retries=0)
    with pytest.raises(ArithmeticError, match="negative parameter"):
        pm.map(fail_on_negative, None, mus)


def test_unpicklable_shared_is_reported():
    with ParallelMap(2) as pm, pytest.raises(TypeError, match="shared must be picklable"):
        pm.map(chunk_sum, threading.Lock(), np.ones((2, 1)))


def test_unpicklable_func_is_reported_and_the_pool_still_closes():
    def local(shared, chunk):
        return chunk.sum(axis=1)

    t0 = time.perf_counter()
    with ParallelMap(2) as pm:
        with pytest.raises(TypeError, match="func must be picklable"):
            pm.map(local, None, np.ones((2, 1)))
        assert pm.map(chunk_sum, 2.0, np.ones((2, 1))) == [pytest.approx([2.0, 2.0])]  # still usable
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"workers": 0}, ValueError, "workers must be >= 1"),
        ({"workers": -2}, ValueError, "workers must be >= 1"),
        ({"workers": 2.5}, TypeError, "workers must be an integer"),
        ({"workers": True}, TypeError, "workers must be an integer"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1"),
        ({"retries": -1}, ValueError, "retries must be >= 0"),
        ({"scheduler": "tcp://127.0.0.1:1", "client": object()}, ValueError, "not both"),
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, ValueError, "own workers"),
        ({"scheduler": 8786}, TypeError, "address string"),
        ({"client": object()}, TypeError, "distributed.Client"),
        ({"start_method": "teleport"}, ValueError, "start_method"),
    ],
)
def test_invalid_configuration(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ParallelMap(**kwargs)


def test_invalid_map_inputs(tb):
    pm = ParallelMap()
    with pytest.raises(ValueError, match=r"shape \(n_mu, P\); got shape \(4,\)"):
        pm.map(chunk_sum, 1.0, np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        pm.map(chunk_sum, 1.0, np.ones((2, 2, 2)))
    with pytest.raises(TypeError, match="real numeric"):
        pm.map(chunk_sum, 1.0, np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="callable"):
        pm.map(None, 1.0, np.ones((2, 2)))
    with pytest.raises(ParameterError, match=r"shape \(n_mu, 4\)"):
        solve_snapshots(tb, np.ones((3, 2)))
    with pytest.raises(TypeError, match="Problem"):
        solve_snapshots("problem", np.ones((3, 2)))


def test_missing_distributed_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "certrb\[dist\]"'):
        ParallelMap(scheduler="tcp://127.0.0.1:1")


def test_serial_and_repr():
    assert ParallelMap().backend == ParallelMap(1).backend == "serial"
    assert ParallelMap(3).backend == "processes"
    assert repr(ParallelMap(3, chunk_size=4)) == "ParallelMap(workers=3, chunk_size=4)"
    idle = ParallelMap(3)
    idle.close()  # nothing was started: a no-op, and closing twice too
    idle.close()
    assert idle.backend == "processes"
    assert idle.map(chunk_sum, 2.0, np.zeros((0, 1))) == []  # an empty batch starts no pool

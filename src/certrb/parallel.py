"""One map over parameter batches for offline work: serial, local processes, or dask.

:class:`ParallelMap` cuts a parameter batch ``mus`` of shape (n_mu, P) into
fixed-size chunks and calls ``func(shared, chunk)`` on each. The chunking does
not depend on the backend, so results are bit-identical whether the chunks run
in-process, in a :class:`concurrent.futures.ProcessPoolExecutor` or on a
``dask.distributed`` cluster. The (large) ``shared`` object, typically a
:class:`~certrb.Problem`, travels to each worker once per map, not once per
task: through a file that each pool process loads once, or through
``client.scatter(..., broadcast=True)`` on dask.

This module is a generic leaf: it knows nothing of certrb's objects (a
:class:`~certrb.Problem` pickles itself as its defining data).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import pickle
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ParallelMap", "local_cluster"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], object]

_DIST_HINT = 'dask.distributed is needed for a dask backend: pip install "certrb[dist]"'
_WORKER_CACHE: OrderedDict[str, Any] = OrderedDict()  # per-process cache of shipped objects
_WORKER_CACHE_SIZE = 2
_SCATTER_WAIT = 0.5  # seconds before a failed broadcast is retried (the scheduler drops the dead worker)
_SCATTER_TIMEOUT = 60.0  # seconds a broadcast may take before it counts as failed (and is retried)


def _dumps(obj: object) -> bytes:
    """Pickle ``obj`` (a Problem pickles as its defining data, without factorizations)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"shared must be picklable to run on worker processes: {exc}") from exc


@dataclass(frozen=True)
class _FileRef:
    """A shared object pickled to ``path``; loaded once per process and cached under ``token``."""

    token: str
    path: str

    def load(self) -> Any:
        if self.token in _WORKER_CACHE:
            _WORKER_CACHE.move_to_end(self.token)
            return _WORKER_CACHE[self.token]
        with open(self.path, "rb") as fh:
            obj = pickle.load(fh)
        _WORKER_CACHE[self.token] = obj
        while len(_WORKER_CACHE) > _WORKER_CACHE_SIZE:
            _WORKER_CACHE.popitem(last=False)
        return obj


class _Portable:
    """A shared object as pickled bytes, unpickled at most once per instance (dask data)."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self._obj: Any = None
        self._loaded = False

    def __getstate__(self) -> dict:
        return {"blob": self.blob}

    def __setstate__(self, state: dict) -> None:
        self.blob = state["blob"]
        self._obj = None
        self._loaded = False

    def load(self) -> Any:
        if not self._loaded:
            self._obj = pickle.loads(self.blob)
            self._loaded = True
        return self._obj


def _call_shipped(func: Callable, ref: _FileRef | _Portable, chunk: NDArray) -> Any:
    return func(ref.load(), chunk)


# --- the map --------------------------------------------------------------------------------


def _check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_DIST_HINT) from exc
    return distributed


def _chunks(mus: ArrayLike, size: int) -> list[NDArray]:
    arr = np.asarray(mus)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"mus must be a real numeric array of shape (n_mu, P); got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"mus must have shape (n_mu, P); got shape {arr.shape}")
    arr = arr.astype(float)
    return [arr[i:i + size] for i in range(0, arr.shape[0], size)]


def local_cluster(n_workers: int, **kwargs: Any) -> Any:
    """A dask ``LocalCluster`` of single-threaded worker processes suited to sparse direct solves.

    dask starts its worker processes with ``MALLOC_TRIM_THRESHOLD_`` set (to hand memory back
    to the system early). Any such setting switches off glibc's adaptive mmap threshold, so
    every large temporary of a sparse factorization is mapped and faulted in afresh: snapshot
    solves of the 2x2 thermal block (n_h = 19,801) ran 15-20% slower on such workers than in
    a plain process. The workers started here keep glibc's defaults; the rest of dask's
    pre-spawn environment (one BLAS / OpenMP thread) is kept.

    Parameters
    ----------
    n_workers : int
        Worker processes, one thread each.
    **kwargs
        Further ``distributed.LocalCluster`` arguments (``dashboard_address=":0"`` by default).

    Returns
    -------
    distributed.LocalCluster
        Started; close it (or use it as a context manager) when done.

    """
    distributed = _import_distributed()
    import dask

    n_workers = _check_positive_int(n_workers, "n_workers")
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    kwargs.setdefault("dashboard_address", ":0")
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):  # read by each nanny at creation
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, **kwargs)


class ParallelMap:
    """Where offline work over parameter batches runs.

    Parameters
    ----------
    workers : int, optional
        ``None`` or 1: serial, in this process. ``k > 1``: a
        :class:`~concurrent.futures.ProcessPoolExecutor` with ``k`` processes,
        created at the first map and shut down by :meth:`close`.
    scheduler : str, optional
        Address of a dask scheduler (``"tcp://host:port"``); a client is
        connected at the first map and closed by :meth:`close`.
    client : distributed.Client, optional
        An existing dask client (left open by :meth:`close`).
    chunk_size : int
        Parameters per task. Results depend on it, never on the backend.
    retries : int
        Dask: ``retries`` of each task (tasks lost with a killed worker are
        rescheduled by dask as well). Process pool: how often a pool broken by a
        dead process is replaced and the unfinished chunks resubmitted.
    start_method : str
        ``multiprocessing`` start method of the pool processes.

    Raises
    ------
    ValueError
        If ``workers`` or ``chunk_size`` is below 1, or more than one backend is named.
    TypeError
        If an argument has the wrong type.

    Notes
    -----
    ``func`` and ``shared`` must be picklable for the pool and dask backends
    (module-level functions). A ``shared`` object is shipped once and reused
    while the same object (by identity) is passed again; do not mutate it between maps.
    Use the map as a context manager, or call :meth:`close`, to release pools and clients.
    Pool processes are started with ``spawn`` by default (safe in processes that
    run threads, such as a dask client), so scripts need the usual
    ``if __name__ == "__main__":`` guard.

    Examples
    --------
    >>> with ParallelMap(chunk_size=2) as pm:
    ...     pm.map(lambda shared, chunk: float(chunk.sum()) * shared, 10.0, np.ones((5, 1)))
    [20.0, 20.0, 10.0]

    """

    def __init__(self, workers: int | None = None, *, scheduler: str | None = None, client: Any = None,
                 chunk_size: int = 32, retries: int = 2, start_method: str = "spawn") -> None:
        if scheduler is not None and client is not None:
            raise ValueError("give either scheduler (an address) or client (a distributed.Client), not both")
        if workers is not None and (scheduler is not None or client is not None):
            raise ValueError("workers is for a local process pool; a dask cluster decides its own workers")
        self._workers = None if workers is None else _check_positive_int(workers, "workers")
        self._chunk_size = _check_positive_int(chunk_size, "chunk_size")
        self._retries = _check_positive_int(retries, "retries", minimum=0)
        if scheduler is not None and not isinstance(scheduler, str):
            raise TypeError(f"scheduler must be an address string such as 'tcp://host:8786'; got {scheduler!r}")
        if scheduler is not None:
            _import_distributed()
        if client is not None and not isinstance(client, _import_distributed().Client):
            raise TypeError(f"client must be a distributed.Client; got {type(client).__name__}")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"start_method must be one of {multiprocessing.get_all_start_methods()}; "
                             f"got {start_method!r}")
        self._scheduler, self._client, self._owns_client = scheduler, client, False
        self._start_method = start_method
        self._pool: ProcessPoolExecutor | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._shipped: tuple[object, Any] | None = None

    @property
    def backend(self) -> str:
        """``"serial"``, ``"processes"`` or ``"dask"``."""
        if self._scheduler is not None or self._client is not None:
            return "dask"
        return "processes" if self._workers is not None and self._workers > 1 else "serial"

    @property
    def workers(self) -> int | None:
        """Number of pool processes (None unless a local pool is used)."""
        return self._workers

    @property
    def chunk_size(self) -> int:
        """Parameters per task."""
        return self._chunk_size

    def __repr__(self) -> str:
        where = {"serial": "serial", "processes": f"workers={self._workers}",
                 "dask": f"scheduler={self._scheduler!r}" if self._scheduler else "client"}[self.backend]
        return f"ParallelMap({where}, chunk_size={self._chunk_size})"

    def __enter__(self) -> ParallelMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut down the pool or client this object created and drop shipped data (idempotent)."""
        self._release_shipped()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client, self._owns_client = None, False

    def map(self, func: Callable[[Any, NDArray[np.float64]], Any], shared: Any, mus: ArrayLike, *,
            progress: Progress | None = None) -> list:
        """Call ``func(shared, chunk)`` for consecutive chunks of ``mus``.

        Parameters
        ----------
        func : callable
            ``func(shared, chunk)`` with ``chunk`` of shape (k, P), ``k <= chunk_size``.
        shared : object
            Data every call needs (e.g. a Problem); shipped once per worker.
        mus : array_like, shape (n_mu, P)
            Parameter batch; chunk ``j`` is ``mus[j * chunk_size:(j + 1) * chunk_size]``.
        progress : callable, optional
            Called as ``progress(done_chunks, total_chunks)`` in this process
            after each chunk completes.

        Returns
        -------
        results : list, length ceil(n_mu / chunk_size)
            ``func``'s results in chunk order.

        Raises
        ------
        ValueError, TypeError
            If ``mus`` is not a real array of shape (n_mu, P) or ``func`` is not callable.

        """
        if not callable(func):
            raise TypeError(f"func must be callable as func(shared, chunk); got {type(func).__name__}")
        chunks = _chunks(mus, self._chunk_size)
        if not chunks:
            return []
        if self.backend == "serial":
            results = []
            for chunk in chunks:
                results.append(func(shared, chunk))
                if progress is not None:
                    progress(len(results), len(chunks))
            return results
        try:  # checked here: a pool whose task fails to pickle cannot be shut down cleanly
            pickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(f"func must be picklable (a module-level function) to run on worker processes: {exc}"
                            ) from exc
        if self.backend == "processes":
            return self._map_processes(func, shared, chunks, progress)
        return self._map_dask(func, shared, chunks, progress)

    # --- shipping -------------------------------------------------------------------------

    def _release_shipped(self) -> None:
        if self._shipped is None:
            return
        handle = self._shipped[1]
        if isinstance(handle, _FileRef):
            os.remove(handle.path)
        else:
            handle.release()
        self._shipped = None

    def _ship(self, shared: Any) -> Any:
        """A handle to ``shared`` on the workers: a _FileRef (pool) or a dask Future of a _Portable."""
        if self._shipped is not None and self._shipped[0] is shared:
            return self._shipped[1]
        blob = _dumps(shared)
        self._release_shipped()
        if self.backend == "processes":
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="certrb-")
            handle: Any = _FileRef(uuid.uuid4().hex, os.path.join(self._tmpdir.name, "shared.pkl"))
            with open(handle.path, "wb") as fh:
                fh.write(blob)
        else:
            handle = self._scatter(_Portable(blob))
        self._shipped = (shared, handle)
        return handle

    def _scatter(self, portable: _Portable) -> Any:
        """Broadcast to every dask worker; retried when a worker died since the last map.

        A broadcast that meets a worker killed since the last map either fails (distributed's
        CommClosedError) or, rarely, never returns (the scheduler's replication keeps waiting for
        the dead worker; ``scatter``'s own ``timeout`` covers only the wait for workers). Both
        count as a failure, the second after ``_SCATTER_TIMEOUT`` seconds (TimeoutError), and
        the broadcast is retried.
        """
        client = self._dask_client()
        send = functools.partial(client.scatter, portable, broadcast=True, hash=False, asynchronous=True)
        for attempt in range(self._retries + 1):
            try:
                return client.sync(send, callback_timeout=_SCATTER_TIMEOUT)
            except OSError:  # CommClosedError and TimeoutError: the scheduler still listed a dead worker
                if attempt == self._retries:
                    raise
                log.warning("scatter to a lost worker failed; retrying")
                time.sleep(_SCATTER_WAIT)
        raise AssertionError("unreachable")

    # --- process pool ---------------------------------------------------------------------

    def _map_processes(self, func: Callable, shared: Any, chunks: list[NDArray], progress: Progress | None) -> list:
        ref = self._ship(shared)
        results: dict[int, Any] = {}
        for attempt in range(self._retries + 1):
            if self._pool is None:
                context = multiprocessing.get_context(self._start_method)
                self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
            futures = {self._pool.submit(_call_shipped, func, ref, chunks[k]): k
                       for k in range(len(chunks)) if k not in results}
            try:
                _collect(futures, results, len(chunks), progress)
                break
            except BrokenProcessPool:
                _harvest(futures, results, len(chunks), progress)
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
                if attempt == self._retries:
                    raise
                log.warning("a pool process died; resubmitting %d chunks", len(chunks) - len(results))
        return [results[k] for k in range(len(chunks))]

    # --- dask -----------------------------------------------------------------------------

    def _dask_client(self) -> Any:
        if self._client is None:
            distributed = _import_distributed()
            self._client = distributed.Client(self._scheduler, set_as_default=False)
            self._owns_client = True
        return self._client

    def _map_dask(self, func: Callable, shared: Any, chunks: list[NDArray], progress: Progress | None) -> list:
        distributed = _import_distributed()
        client = self._dask_client()
        portable = self._ship(shared)
        futures = [client.submit(_call_shipped, func, portable, chunk, retries=self._retries, pure=False,
                                 **placement)
                   for chunk, placement in zip(chunks, _placements(client, len(chunks)), strict=True)]
        index = {f.key: k for k, f in enumerate(futures)}
        results: dict[int, Any] = {}
        try:
            for future in distributed.as_completed(futures, loop=client.loop):
                results[index[future.key]] = future.result()
                if progress is not None:
                    progress(len(results), len(chunks))
        finally:
            unfinished = [f for f in futures if not f.done()]
            if unfinished:
                client.cancel(unfinished)
        return [results[k] for k in range(len(chunks))]


def _placements(client: Any, n_chunks: int) -> list[dict]:
    """Round-robin worker hints for dask tasks, one slot per worker thread.

    Left alone, dask may queue a few long tasks on one worker. The hints are
    loose: a lost or busy worker's tasks still run elsewhere.
    """
    slots = [w for w, n in sorted(client.nthreads().items()) for _ in range(n)]
    if not slots:
        return [{} for _ in range(n_chunks)]
    return [{"workers": [slots[k % len(slots)]], "allow_other_workers": True} for k in range(n_chunks)]


def _collect(futures: dict[Future, int], results: dict[int, Any], total: int, progress: Progress | None) -> None:
    """Store finished chunk results until all are done; re-raise the first failure."""
    try:
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(len(results), total)
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _harvest(futures: dict[Future, int], results: dict[int, Any], total: int, progress: Progress | None) -> None:
    """Keep the chunks that finished successfully before a pool broke."""
    wait(futures, return_when=FIRST_EXCEPTION)
    for future, k in futures.items():
        if k not in results and future.done() and not future.cancelled() and future.exception() is None:
            results[k] = future.result()
            if progress is not None:
                progress(len(results), total)

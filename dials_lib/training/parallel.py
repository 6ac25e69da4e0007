"""Map a function over a list of arguments on the active joblib backend, measuring each call.

This module knows nothing of DIALS: it runs `function(argument)` for every argument of a list and yields
`(index, TaskReport)` pairs as the calls finish. Each call runs torch single-threaded and is measured: wall
and CPU seconds (their ratio shows how much of a core it got), the process it ran in, and that process's
peak memory during the call (sampled in a background thread).

Where calls run:
- joblib's default backend (loky) with `n_workers >= 2`: this process is one of the workers. One thread of it
  runs calls here while loky's reusable executor runs others in `n_workers - 1` processes, each taking the
  next call when it is free. One process fewer than a pool of `n_workers`; a call's result never depends on
  where it runs.
- A single call, or `n_workers == 1` under loky, or anywhere inside `calls_here()`: here, in this thread, one
  after another (`calls_here` is for a process that is itself one of several running side by side, e.g. a whole
  run of an experiment on one core: its calls must not start processes of their own).
- joblib's Dask backend: its dask.distributed Client directly (see `run_on_dask` for why not joblib's Parallel).
- Any other joblib backend (Ray, threading, ...): joblib's `Parallel`.

A worker process that dies (killed, out of memory) raises `WorkerLostError` naming the calls that had not
returned; its `__cause__` is the backend's own error (loky's `TerminatedWorkerError`, Dask's `KilledWorker`...).
A loky worker that dies between two calls raises it as the next call starts. Every worker process ends with the
process that started it, however that one ends (`process_tree.end_with_parent`).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from joblib import Parallel, delayed
from joblib.parallel import get_active_backend

from dials_lib.training.memory import MemoryProbe, TreeMemorySampler, release_free_memory
from dials_lib.training.process_tree import end_with_local_parent, end_with_parent

LOKY_MEMORY_GROWTH_LIMIT = 2**36
"""Memory growth (bytes) after which a loky worker counts as leaking; loky's own limit is 300 MB."""
_WORKER_DEATHS = {"TerminatedWorkerError", "BrokenProcessPool", "KilledWorker", "WorkerLostError"}


class WorkerLostError(RuntimeError):
    """A worker process died while running some calls; `pending` holds the indices of the calls not returned. `idle`:
    it died between two parallel calls (found as the next one starts, none of whose calls ran)."""

    def __init__(self, message: str, pending: list[int], idle: bool = False) -> None:
        super().__init__(message)
        self.pending, self.idle = pending, idle


@dataclass
class TaskReport:
    """A call's result with its measurements."""

    value: Any
    """What the function returned."""
    seconds: float
    """Wall-clock seconds of the call."""
    cpu_seconds: float
    """CPU seconds of the thread that ran the call (torch runs single-threaded in it)."""
    pid: int
    """Process the call ran in."""
    peak_rss_mb: float
    """Peak resident set size of that process during the call, MiB."""
    peak_pss_mb: float
    """Peak proportional set size of that process during the call, MiB."""


class single_threaded:  # noqa: N801 - used as a context manager, like a function
    """Run torch single-threaded inside the block, restoring the previous setting.

    Also raises loky's leak threshold in its worker processes: loky replaces a worker whose memory has grown by
    300 MB since its first task, and a call that holds a group's networks and training data grows that much
    legitimately; the replacement would re-import torch for every call.
    """

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        loky = sys.modules.get("joblib.externals.loky.process_executor")
        if loky is not None and loky._MAX_MEMORY_LEAK_SIZE < LOKY_MEMORY_GROWTH_LIMIT:  # noqa: SLF001
            loky._MAX_MEMORY_LEAK_SIZE = LOKY_MEMORY_GROWTH_LIMIT  # noqa: SLF001

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads)


def run_measured(index: int, function: Callable[[Any], Any], argument: Any) -> tuple[int, TaskReport]:
    """`function(argument)`, single-threaded, with its time and this process's peak memory; tagged with `index`."""
    with single_threaded():
        probe = MemoryProbe()
        # CPU time of this thread only: the memory sampler's thread must not count as the task's work
        start, cpu_start = time.perf_counter(), time.thread_time()
        with TreeMemorySampler(interval=0.1, own=probe, children=False):
            value = function(argument)
        seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - cpu_start
    del argument
    release_free_memory()  # the call's transient tensors are gone: hand their pages back
    return index, TaskReport(value, seconds, cpu_seconds, os.getpid(), probe.peak_mb, probe.peak_pss_mb)


def map_tasks(function: Callable[[Any], Any], arguments: list[Any], n_workers: int
              ) -> Iterator[tuple[int, TaskReport]]:
    """`function(a)` for every a of `arguments` on `n_workers` processes; yields (index, report) as calls finish.

    The list's entries are released (set to None) as the calls are handed out, so that a large argument is not
    held here after its call has it."""
    done: set[int] = set()
    try:
        for index, report in _dispatch(function, arguments, n_workers):
            done.add(index)
            yield index, report
    except WorkerLostError:
        raise
    except Exception as err:
        if not {cls.__name__ for cls in type(err).__mro__} & _WORKER_DEATHS:
            raise
        _loky_pool_broken()  # reported here: the next call starts a new pool
        pending = [i for i in range(len(arguments)) if i not in done]
        raise WorkerLostError(f"a worker process died ({type(err).__name__}); calls {pending} had not returned",
                              pending) from err


_CALLS_HERE = [0]  # depth of nested calls_here() blocks in this process


@contextmanager
def calls_here() -> Iterator[None]:
    """Inside the block every `map_tasks` runs its calls in this thread, one after another, whatever `n_workers`
    and the joblib backend say (results do not depend on where calls run)."""
    _CALLS_HERE[0] += 1
    try:
        yield
    finally:
        _CALLS_HERE[0] -= 1


def _dispatch(function: Callable[[Any], Any], arguments: list[Any], n_workers: int
              ) -> Iterator[tuple[int, TaskReport]]:
    if _CALLS_HERE[0]:
        for i in range(len(arguments)):
            yield run_measured(i, function, _take(arguments, i))
        return
    client = dask_client()
    if client is not None:
        yield from run_on_dask(client, function, arguments)
        return
    backend, _ = get_active_backend()
    on_loky = type(backend).__name__ == "LokyBackend"
    if on_loky and (n_workers < 2 or len(arguments) < 2):
        for i in range(len(arguments)):
            yield run_measured(i, function, _take(arguments, i))
        return
    if not on_loky:
        parallel = Parallel(n_jobs=n_workers, return_as="generator_unordered")
        yield from parallel(delayed(run_measured)(i, function, _take(arguments, i)) for i in range(len(arguments)))
        return
    yield from _run_here_and_on_loky(function, arguments, n_workers - 1)


def _take(arguments: list[Any], i: int) -> Any:
    argument, arguments[i] = arguments[i], None
    return argument


def loky_executor(n_processes: int) -> Any:
    """loky's reusable pool of `n_processes` worker processes (the pool joblib's default backend uses).

    Workers stay up for 5 minutes between calls, as under joblib, run BLAS single-threaded, and end with this
    process however it ends (`process_tree.end_with_parent`)."""
    from joblib.externals.loky import get_reusable_executor

    single = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return get_reusable_executor(max_workers=n_processes, timeout=300, reuse=True, env=single,
                                 initializer=end_with_parent, initargs=(os.getpid(),))


_REPORTED_POOLS: weakref.WeakSet = weakref.WeakSet()  # loky pools whose broken state was reported once


def _loky_pool_broken() -> bool:
    """Whether loky's reusable pool has lost a worker that no error has reported yet (then it is reported now).

    loky replaces a broken pool by a new one without a word when the next call asks for it; a worker that died
    between two calls (killed while the run evaluates, out of memory while idle) would go unnoticed."""
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is None or executor._flags.broken is None or executor in _REPORTED_POOLS:  # noqa: SLF001
        return False
    _REPORTED_POOLS.add(executor)
    return True


def _run_here_and_on_loky(function: Callable[[Any], Any], arguments: list[Any], n_processes: int
                          ) -> Iterator[tuple[int, TaskReport]]:
    if _loky_pool_broken():
        raise WorkerLostError("a worker process died between two parallel calls", list(range(len(arguments))),
                              idle=True)
    pending = deque(range(len(arguments)))
    lock, results, stop = threading.Lock(), queue.SimpleQueue(), threading.Event()

    def take() -> int | None:
        with lock:
            return None if stop.is_set() or not pending else pending.popleft()

    def run_here() -> None:
        while (i := take()) is not None:
            try:
                results.put(("result", run_measured(i, function, _take(arguments, i))))
            except BaseException as err:  # noqa: BLE001 - handed to the consuming thread, which raises it
                results.put(("error", err))
                return

    def run_on_loky() -> None:
        try:
            executor, in_flight = loky_executor(n_processes), set()
            while True:
                while len(in_flight) < n_processes and (i := take()) is not None:
                    in_flight.add(executor.submit(run_measured, i, function, _take(arguments, i)))
                if not in_flight:
                    return
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    results.put(("result", future.result()))
        except BaseException as err:  # noqa: BLE001 - handed to the consuming thread, which raises it
            results.put(("error", err))

    threads = [threading.Thread(target=target, daemon=True, name=f"dials-{target.__name__}")
               for target in (run_here, run_on_loky)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(len(arguments)):
            while True:  # short waits: Ctrl-C reaches this thread between them
                try:
                    kind, item = results.get(timeout=0.5)
                    break
                except queue.Empty:
                    continue
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()  # on an error or an abandoned generator: start no new call


def dask_client() -> Any | None:
    """The dask.distributed Client of the active joblib backend, or None when that backend is not Dask."""
    backend, _ = get_active_backend()
    joblib_dask = sys.modules.get("joblib._dask")  # joblib imports it (and dask) only once Dask is selected
    if joblib_dask is not None and isinstance(backend, joblib_dask.DaskDistributedBackend):
        return backend.client
    return None


def run_on_dask(client: Any, function: Callable[[Any], Any], arguments: list[Any]
                ) -> Iterator[tuple[int, TaskReport]]:
    """Run `function(a)` for every a of `arguments` on `client`'s cluster; yields (index, report) as they finish.

    This bypasses joblib's Parallel, whose Dask backend never returns when a worker process dies in the middle of
    a call (joblib 1.6, distributed 2026.8), even after the scheduler has given up on it. A future of the Client
    itself raises `distributed.KilledWorker` then: the scheduler reruns a call whose worker died on other (or
    restarted) workers and gives up once `distributed.scheduler.allowed-failures` + 1 workers died running it
    (4 by default): the error comes after that many attempts, each as long as the call ran before its worker
    died. The calls carry their arguments rather than scattering them: data scattered to a worker would be lost
    with that worker. The calls left are cancelled on an error.
    """
    from distributed import as_completed  # installed: the Dask backend is active

    # pure=False: no hashing of the (large) arguments into task keys; every call is new work
    futures = [client.submit(_run_measured_on_dask, os.getpid(), i, function, _take(arguments, i), pure=False)
               for i in range(len(arguments))]
    try:
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        client.cancel(futures)
        raise


def _run_measured_on_dask(submitter: int, index: int, function: Callable[[Any], Any], argument: Any
                          ) -> tuple[int, TaskReport]:
    """`run_measured` in a Dask worker, which ends with the process that submitted the call if that process
    started it (a LocalCluster's worker; Dask's nanny ends it too, this is the same promise as loky's workers')."""
    end_with_local_parent(submitter)
    return run_measured(index, function, argument)


__all__ = ["TaskReport", "WorkerLostError", "calls_here", "dask_client", "loky_executor", "map_tasks", "run_measured",
           "run_on_dask", "single_threaded"]

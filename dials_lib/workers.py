"""Worker tasks of a DIALS run: plain data in, plain data out, so any joblib backend can run them.

A task owns one group of agents for one call. `train_agents_task` rebuilds the group's PPO learners and IALS from
state dicts, runs one chunk of PPO on the IALS and returns the new state dict; `train_aips_task` warm-starts the
group's AIPs from their state dict and trains them on the group's slice of a GS data set. Both return the time
spent (wall clock and CPU time of the process: their ratio shows how much of a core the task got), the worker's
process id and its peak memory sampled with psutil during the task.

Torch runs single-threaded inside a task (loky limits BLAS threads in its workers, Ray and Dask do not); the
previous thread count is restored afterwards, because the main process runs tasks too (`run_tasks`).

A task builds its group's networks afresh and loads the state dict into them (tens of milliseconds for 10 agents,
against seconds for a chunk): nothing stays in a process between tasks, so each process holds one group's networks
at a time, whichever groups it runs.

`run_tasks` runs a call's tasks on the active joblib backend; under loky the main process is one of the workers.
`run_steps` is the training loop shared with GS training in the main process. `dask_client` and `run_on_dask`
run tasks with a dask.distributed Client directly when joblib's Dask backend is active (see `run_on_dask` for why).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed
from joblib.parallel import get_active_backend

from dials_lib.config import EnvHyperparameters
from dials_lib.envs import get_spec
from dials_lib.ials import IALS
from dials_lib.influence import InfluenceData, make_predictor, train_predictor
from dials_lib.memory import MemoryProbe, release_free_memory
from dials_lib.ppo import PPOGroup


def run_steps(group: PPOGroup, sim: Any, n_steps: int, on_update: Callable[[], None] | None = None
              ) -> dict[str, float]:
    """PPO on `sim` for `n_steps` steps from a fresh episode (a multiple of buffer_size: ends on an update).

    Returns the mean undiscounted return of the episodes completed on `sim` (NaN if none) and the mean PPO losses.
    """
    if n_steps % group.config.buffer_size:
        raise ValueError(f"n_steps={n_steps} must be a multiple of buffer_size={group.config.buffer_size}")
    obs = sim.reset()
    group.reset_episodes()
    running = np.zeros(group.n_agents)
    returns: list[float] = []
    losses: dict[str, float] = {}
    n_updates = 0
    for _ in range(n_steps):
        actions = group.act(obs)
        obs, rewards, done = sim.step(actions)
        running += rewards
        if done:
            returns.append(float(running.mean()))
            running[:] = 0.0
            obs = sim.reset()
        group.observe(rewards, done)
        if group.ready():
            metrics = group.update(obs)
            n_updates += 1
            for name in ("policy_loss", "value_loss", "entropy"):
                losses[name] = losses.get(name, 0.0) + float(np.mean(metrics[name]))
            if on_update is not None:
                on_update()
    out = {name: total / max(n_updates, 1) for name, total in losses.items()}
    out["train_return"] = float(np.mean(returns)) if returns else float("nan")
    return out


LOKY_MEMORY_GROWTH_LIMIT = 2**36
"""Memory growth (bytes) after which a loky worker counts as leaking; loky's own limit is 300 MB."""


class _SingleThread:
    """Run torch single-threaded inside the block, restoring the previous setting.

    Also raises loky's leak threshold in its worker processes: loky replaces a worker whose memory has grown by
    300 MB since its first task, and a task that holds a group's networks and AIP data grows that much
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


def _build(kind: str, hp: EnvHyperparameters, agent_ids: list[int], seed: int, total_timesteps: int) -> Any:
    """A new 'ppo' group or 'aip' predictor for these agents (its values are then overwritten from a state dict)."""
    spec = get_spec(hp.env)
    if kind == "ppo":
        return PPOGroup(len(agent_ids), spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, total_timesteps, seed,
                        agent_ids=agent_ids)
    return make_predictor(hp.aip, spec.dset_dim, spec.source_sizes, seed, agent_ids)


def _maybe_die(agent_ids: Sequence[int], fault: dict[str, Any] | None, where: str) -> None:
    # Fault injection for tests: the worker holding `fault["agent"]` exits abruptly, like a killed process.
    if fault and fault.get("where") == where and fault.get("agent") in agent_ids:
        os._exit(17)


def train_agents_task(
    env: str,
    hp: EnvHyperparameters,
    agent_ids: list[int],
    seed: int,
    total_timesteps: int,
    ppo_state: dict[str, Any],
    aip_state: dict[str, Any],
    n_steps: int,
    ials_seed: int,
    fault: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One chunk of PPO for a group of agents on their IALS; returns the new PPO state and measurements."""
    with _SingleThread():
        probe = MemoryProbe()
        start, cpu_start = time.perf_counter(), time.process_time()
        _maybe_die(agent_ids, fault, "agents")
        group = _build("ppo", hp, agent_ids, seed, total_timesteps)
        predictor = _build("aip", hp, agent_ids, seed, total_timesteps)
        group.load_state_dict(ppo_state)
        predictor.load_state_dict(aip_state)
        ials = IALS(env, predictor, ials_seed, agent_ids)
        probe.sample(full=True)
        metrics = run_steps(group, ials, n_steps, on_update=probe.sample)
        state = group.state_dict()
        probe.sample(full=True)
        del ials
        release_free_memory()
        return {"ppo_state": state, "metrics": metrics, "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu_start, "pid": os.getpid(), "peak_rss_mb": probe.peak_mb,
                "peak_pss_mb": probe.peak_pss_mb}


def train_aips_task(
    hp: EnvHyperparameters,
    agent_ids: list[int],
    seed: int,
    total_timesteps: int,
    aip_state: dict[str, Any],
    data: InfluenceData,
    round_index: int,
    fault: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Retrain a group's AIPs on its slice of a GS data set (warm-started if the config says so)."""
    with _SingleThread():
        probe = MemoryProbe()
        start, cpu_start = time.perf_counter(), time.process_time()
        _maybe_die(agent_ids, fault, "aips")
        predictor = _build("aip", hp, agent_ids, seed, total_timesteps)  # initial weights: no warm start
        if hp.aip.warm_start:
            predictor.load_state_dict(aip_state)
        # the data arrive compact (uint8 d-sets, int8 sources) and stay so: train_predictor widens each minibatch
        probe.sample(full=True)
        losses = train_predictor(predictor, data, hp.aip, seed, agent_ids, round_index=round_index,
                                 on_batch=probe.sample)
        probe.sample(full=True)
        del data
        release_free_memory()
        return {"aip_state": predictor.state_dict(), "train_loss": float(losses["train_loss"][-1].mean()),
                "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
                "pid": os.getpid(), "peak_rss_mb": probe.peak_mb, "peak_pss_mb": probe.peak_pss_mb}


def run_indexed(index: int, function: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[int, Any]:
    """Run a task and tag its result with its index (results may arrive in completion order)."""
    return index, function(**kwargs)


def dask_client() -> Any | None:
    """The dask.distributed Client of the active joblib backend, or None when that backend is not Dask."""
    backend, _ = get_active_backend()
    joblib_dask = sys.modules.get("joblib._dask")  # joblib imports it (and dask) only once Dask is selected
    if joblib_dask is not None and isinstance(backend, joblib_dask.DaskDistributedBackend):
        return backend.client
    return None


def loky_executor(n_processes: int) -> Any:
    """loky's reusable pool of `n_processes` worker processes (the pool joblib's default backend uses).

    Workers stay up for 5 minutes between calls, as under joblib, and run BLAS single-threaded."""
    from joblib.externals.loky import get_reusable_executor

    single = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return get_reusable_executor(max_workers=n_processes, timeout=300, reuse=True, env=single)


def run_tasks(function: Callable[..., Any], kwargs: list[dict[str, Any]], n_workers: int
              ) -> Iterator[tuple[int, Any]]:
    """Run `function(**kw)` for every kw of `kwargs` on `n_workers` processes; yields (index, result) as they finish.

    - joblib's default backend (loky), `n_workers` >= 2: this process is one of the workers. One thread of it runs
      tasks here while loky runs others in `n_workers - 1` worker processes, each taking the next task when it is
      free. One process fewer than a pool of `n_workers` (at 100 agents, ~270 MiB less); the results are the
      same, since a task's result never depends on where it runs.
    - Dask: the Client directly (`run_on_dask`); any other joblib backend (Ray, threading, ...): joblib's Parallel.

    A worker process that dies raises loky's, joblib's or Dask's error here at once. A task running in this
    process then completes in the background and its result is dropped (threads cannot be stopped).
    """
    client = dask_client()
    if client is not None:
        yield from run_on_dask(client, function, kwargs)
        return
    backend, _ = get_active_backend()
    if n_workers < 2 or type(backend).__name__ != "LokyBackend":
        parallel = Parallel(n_jobs=n_workers, return_as="generator_unordered")
        yield from parallel(delayed(run_indexed)(i, function, kw) for i, kw in enumerate(kwargs))
        return
    yield from _run_here_and_on_loky(function, kwargs, n_workers - 1)


def _run_here_and_on_loky(function: Callable[..., Any], kwargs: list[dict[str, Any]], n_processes: int
                          ) -> Iterator[tuple[int, Any]]:
    # A task that carries an injected fault (tests) always goes to a worker process: here it would end this one.
    pending = deque(i for i, kw in enumerate(kwargs) if not kw.get("fault"))
    faulty = deque(i for i, kw in enumerate(kwargs) if kw.get("fault"))
    lock, results, stop = threading.Lock(), queue.SimpleQueue(), threading.Event()

    def take(here: bool) -> int | None:
        with lock:
            if stop.is_set():
                return None
            if pending:
                return pending.popleft()
            return faulty.popleft() if faulty and not here else None

    def run_here() -> None:
        while (i := take(here=True)) is not None:
            try:
                results.put(("result", run_indexed(i, function, kwargs[i])))
            except BaseException as err:  # noqa: BLE001 - handed to the consuming thread, which raises it
                results.put(("error", err))
                return

    def run_on_loky() -> None:
        try:
            executor, in_flight = loky_executor(n_processes), set()
            while True:
                while len(in_flight) < n_processes and (i := take(here=False)) is not None:
                    in_flight.add(executor.submit(run_indexed, i, function, kwargs[i]))
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
        for _ in range(len(kwargs)):
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
        stop.set()  # on an error or an abandoned generator: start no new task


def run_on_dask(client: Any, function: Callable[..., Any], kwargs: list[dict[str, Any]]
                ) -> Iterator[tuple[int, Any]]:
    """Run `function(**kw)` for every kw of `kwargs` on `client`'s cluster; yields (index, result) as they finish.

    This bypasses joblib's Parallel, whose Dask backend never returns when a worker process dies in the middle of
    a task (joblib 1.6, distributed 2026.8), even after the scheduler has given up on the task. A future of the
    Client itself raises `distributed.KilledWorker` then: the scheduler reruns a task whose worker died on
    other (or restarted) workers and gives up once `distributed.scheduler.allowed-failures` + 1 workers died
    running it (4 by default): the error comes after that many attempts, each as long as the task ran before its
    worker died (seconds for a task that dies as it starts). The tasks carry their arguments rather than
    scattering them: data scattered to a worker would be lost with that worker. The tasks left are cancelled on an
    error.
    """
    from distributed import as_completed  # installed: the Dask backend is active

    # pure=False: no hashing of the (large) arguments into task keys; every call is new work
    futures = [client.submit(run_indexed, i, function, kw, pure=False) for i, kw in enumerate(kwargs)]
    try:
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        client.cancel(futures)
        raise


__all__ = ["dask_client", "loky_executor", "run_indexed", "run_on_dask", "run_steps", "run_tasks", "train_agents_task",
           "train_aips_task"]

"""Worker tasks of a DIALS run: plain data in, plain data out, so any joblib backend can run them.

A task owns one group of agents for one call. `train_agents_task` rebuilds the group's PPO learners and IALS from
state dicts, runs one chunk of PPO on the IALS and returns the new state dict; `train_aips_task` warm-starts the
group's AIPs from their state dict and trains them on the group's slice of a GS data set. Both return the time
spent (wall clock and CPU time of the process: their ratio shows how much of a core the task got), the worker's
process id and its peak memory sampled with psutil during the task.

Torch runs single-threaded inside a task (loky limits BLAS threads in its workers, Ray and Dask do not); the
previous thread count is restored afterwards, because with one worker joblib runs tasks in the calling process.

Building a group's networks draws orthogonal initial weights for every agent, which costs more than a short
chunk; each worker process therefore keeps the last few groups it built (`_cached`) and reuses them, overwriting
every parameter, optimiser moment and counter from the state dict it is given (the same as building afresh).

`run_steps` is the training loop shared with GS training in the main process. `dask_client` and `run_on_dask`
run tasks with a dask.distributed Client directly when joblib's Dask backend is active (see `run_on_dask` for why).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from joblib.parallel import get_active_backend

from dials_lib.config import EnvHyperparameters
from dials_lib.envs import get_spec
from dials_lib.ials import IALS
from dials_lib.influence import InfluenceData, make_predictor, train_predictor
from dials_lib.memory import MemoryProbe, release_free_memory
from dials_lib.ppo import PPOGroup

CACHE_SIZE = 4
"""Networks (PPO groups and AIPs) a worker process keeps between calls."""
_CACHE: dict[tuple[Any, ...], Any] = {}


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
    legitimately; the replacement would re-import torch and rebuild the cached networks on every call.
    """

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        loky = sys.modules.get("joblib.externals.loky.process_executor")
        if loky is not None and loky._MAX_MEMORY_LEAK_SIZE < LOKY_MEMORY_GROWTH_LIMIT:  # noqa: SLF001
            loky._MAX_MEMORY_LEAK_SIZE = LOKY_MEMORY_GROWTH_LIMIT  # noqa: SLF001

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads)


def _cached(kind: str, hp: EnvHyperparameters, agent_ids: list[int], seed: int, total_timesteps: int) -> Any:
    """A 'ppo' group or 'aip' predictor for these agents, built once per worker process (values get overwritten)."""
    key = (kind, hp, tuple(agent_ids), seed, total_timesteps)
    if key not in _CACHE:
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        spec = get_spec(hp.env)
        if kind == "ppo":
            _CACHE[key] = PPOGroup(len(agent_ids), spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, total_timesteps,
                                   seed, agent_ids=agent_ids)
        else:
            _CACHE[key] = make_predictor(hp.aip, spec.dset_dim, spec.source_sizes, seed, agent_ids)
    return _CACHE[key]


def _copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # a state dict shares storage with the live (cached) module: hand out a snapshot
    return {name: tensor.detach().clone() for name, tensor in state.items()}


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
        group = _cached("ppo", hp, agent_ids, seed, total_timesteps)
        predictor = _cached("aip", hp, agent_ids, seed, total_timesteps)
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
        if hp.aip.warm_start:
            predictor = _cached("aip", hp, agent_ids, seed, total_timesteps)
            predictor.load_state_dict(aip_state)
        else:
            spec = get_spec(hp.env)
            predictor = make_predictor(hp.aip, spec.dset_dim, spec.source_sizes, seed, agent_ids)
        # the data arrive compact (uint8 d-sets, int8 sources) and stay so: train_predictor widens each minibatch
        probe.sample(full=True)
        losses = train_predictor(predictor, data, hp.aip, seed, agent_ids, round_index=round_index,
                                 on_batch=probe.sample)
        probe.sample(full=True)
        del data
        release_free_memory()
        return {"aip_state": _copy(predictor.state_dict()), "train_loss": float(losses["train_loss"][-1].mean()),
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


__all__ = ["dask_client", "run_indexed", "run_on_dask", "run_steps", "train_agents_task", "train_aips_task"]

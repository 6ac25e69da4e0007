"""Training runs: `train_gs`, `train_dials` (and untrained-DIALS), with run records, checkpoints and resume.

    from dials_lib.run_config import RunConfig
    from dials_lib.runner import train
    result = train(RunConfig("traffic", n_agents=4, simulator="dials", total_timesteps=200_000, seed=0))
    result.metrics            # pandas DataFrame, one row per evaluation

A run walks through the chunk boundaries of its `Schedule` (see `dials_lib.run_config`). At boundary c:
1. DIALS only, at retraining points: run the current joint policy on the GS for `aip.dataset_steps` steps
   (Algorithm 2), then retrain every agent's AIP on its slice, warm-started, one joblib task per worker group.
   Timed as "data collection + AIP training" (the paper's Tables 1 and 2).
2. At evaluation points: `dials_lib.metrics.evaluate` on the GS (average return, domain metrics, AIP
   cross-entropy on those fresh GS trajectories); a row is appended to metrics.csv.
3. A checkpoint of the whole run state is written (atomically).
4. Chunk c runs: DIALS sends one `train_agents_task` per worker group (PPO on the group's IALS for one chunk,
   in parallel); GS training runs in this process, one PPOGroup of all agents on the GS (the GS cannot be
   split). Timed as "agents training".
Untrained-DIALS is DIALS without step 1: its AIPs keep their initial weights (`make_predictor`).

Randomness: every random draw is spawned from the run seed: per agent (policy initialisation, action sampling,
minibatch order, AIP initialisation and minibatch order, IALS influence and noise) through
`numpy.random.SeedSequence(seed, spawn_key=(agent id, stream))`, and per purpose and boundary for the GS
episodes (training, data collection, evaluation: `derived_seed`). Results do not depend on the number of worker
processes; they depend on the grouping of agents only through floating-point rounding of stacked arithmetic.

Run directory (`RunConfig.directory()`): config.json (the config with its resolved worker groups),
metrics.csv (one row per evaluation: timestep = steps per agent so far, wall_time_s since the run started over
all sessions, mean_return, sem_return, aip_ce, the domain metrics of `dials_lib.metrics`, and train_return = the
mean return of the training episodes completed in the chunk before, on the IALS for DIALS), runtime.json
(seconds of agents training, data collection, AIP training, evaluation, total; worker_busy_s and worker_cpu_s:
wall and CPU seconds summed over worker tasks, whose ratio shows how much of a core the workers got),
memory.json (peak RSS and PSS in MiB of the main process, of each worker and in total: see `dials_lib.memory`)
and checkpoint.pt.
Restarting a killed run with the same config resumes from its last checkpoint (work after it is redone, with
the same results); a finished run returns its records without training; a directory holding another config
(anything but n_workers and run_dir differing) is refused with an error naming the differences.

A worker process that dies (killed, out of memory) makes the run raise `WorkerDiedError`, naming the agents of
the tasks that had not returned and the last checkpoint; rerun the same command to resume. Under joblib's Dask
backend the tasks go to its dask.distributed Client directly (`dials_lib.workers.run_on_dask` says why), and the
error comes once the scheduler stops rerunning the task (`distributed.scheduler.allowed-failures`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm  # the text bar: tqdm.auto warns in kernels without ipywidgets

from dials_lib.controllers import PolicyController
from dials_lib.envs import get_spec, make_global
from dials_lib.influence import InfluenceData, collect_dataset, make_predictor
from dials_lib.io import atomic_write, atomic_write_json, atomic_write_text, read_json
from dials_lib.memory import RunMemory, TreeMemorySampler, release_free_memory
from dials_lib.metrics import DOMAIN_METRICS, evaluate
from dials_lib.ppo import PPOGroup
from dials_lib.run_config import RunConfig, config_differences, derived_seed
from dials_lib.workers import run_steps, run_tasks, train_agents_task, train_aips_task

GS_TRAIN_TAG, DATA_TAG, EVAL_TAG, IALS_TAG = 1, 2, 3, 4
"""Purposes of `derived_seed`: GS training episodes, AIP data collection, evaluation, IALS chunks."""
CHECKPOINT = "checkpoint.pt"
_FAULT: dict[str, Any] | None = None  # tests only: {"agent": id, "where": "agents" | "aips", "boundary": c}
_WORKER_DEATHS = {"TerminatedWorkerError", "BrokenProcessPool", "KilledWorker", "WorkerLostError"}


class WorkerDiedError(RuntimeError):
    """A worker process died (killed, out of memory) while holding some agents; the run can be resumed."""


@dataclass
class RunResult:
    """What a run leaves behind: its config, directory and records."""

    config: RunConfig
    """The run's configuration."""
    run_dir: Path
    """The run directory."""
    metrics: pd.DataFrame
    """One row per evaluation (metrics.csv)."""
    runtime: dict[str, float]
    """Seconds per activity (runtime.json)."""
    memory: dict[str, Any]
    """Peak resident memory in MiB (memory.json)."""


def metric_columns(env: str) -> list[str]:
    """Columns of metrics.csv for `env`."""
    return ["timestep", "wall_time_s", "mean_return", "sem_return", "aip_ce", *DOMAIN_METRICS[env], "train_return"]


def train(config: RunConfig, progress: bool | None = None) -> RunResult:
    """Run (or resume, or read back) the training run `config`; progress bar on a terminal unless told."""
    return _Run(config).run(progress)


def train_gs(config: RunConfig, progress: bool | None = None) -> RunResult:
    """All agents learn together on the GS (independent PPO, one stacked group, no shared parameters)."""
    if config.simulator != "gs":
        raise ValueError(f"train_gs needs simulator='gs'; got {config.simulator!r} (use train_dials or train)")
    return train(config, progress)


def train_dials(config: RunConfig, progress: bool | None = None) -> RunResult:
    """DIALS ('dials') or untrained-DIALS ('untrained-dials'): agents learn on their IALS in parallel workers."""
    if config.simulator not in ("dials", "untrained-dials"):
        raise ValueError(f"train_dials needs simulator 'dials' or 'untrained-dials'; got {config.simulator!r}")
    return train(config, progress)


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """The records of a run directory: config (dict), metrics (DataFrame), runtime and memory (dicts)."""
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"config": read_json(run_dir / "config.json")}
    out["metrics"] = pd.read_csv(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else None
    for name in ("runtime", "memory"):
        path = run_dir / f"{name}.json"
        out[name] = read_json(path) if path.exists() else {}
    return out


def _concat(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.cat([s[name] for s in states]) for name in states[0]}


def _agents_slice(data: InfluenceData, ids: list[int]) -> InfluenceData:
    # groups hold consecutive agent ids: a view, pickled alone when sent to a worker
    lo, hi = ids[0], ids[-1] + 1
    return InfluenceData(data.dsets[lo:hi], data.sources[lo:hi], data.actions[lo:hi], data.rewards[lo:hi])


def _slice(state: dict[str, torch.Tensor], lo: int, hi: int) -> dict[str, torch.Tensor]:
    return {name: tensor[lo:hi].clone() for name, tensor in state.items()}


class _Run:
    """One run's state in the main process: groups' PPO and AIP states, records, timing and memory."""

    def __init__(self, config: RunConfig) -> None:
        self.config, self.hp, self.spec = config, config.hp, get_spec(config.env)
        self.schedule = config.schedule()
        self.dir = config.directory()
        self.groups = config.groups() if config.simulator != "gs" else [list(range(config.n_agents))]
        self.dials = config.simulator != "gs"
        self._open_directory()
        path = self.dir / CHECKPOINT
        self.state = torch.load(path, weights_only=False) if path.exists() else None
        self.finished = self.state is not None and self.state["boundary"] == self.schedule.n_chunks
        if not self.finished:  # building N agents' networks takes seconds: not for reading back a finished run
            n, total = config.n_agents, self.schedule.steps_per_agent
            # The joint group: the learner itself for GS training, the evaluation/data policy for DIALS.
            self.joint = PPOGroup(n, self.spec.obs_dim, self.spec.n_actions, self.hp.policy, self.hp.ppo, total,
                                  config.seed)
            self.joint_aip = (make_predictor(self.hp.aip, self.spec.dset_dim, self.spec.source_sizes, config.seed,
                                             list(range(n))) if self.dials else None)
            if self.state is None:
                self.state = self._initial_state()
            if not self.dials:
                self.joint.load_state_dict(self.state["groups"][0]["ppo"])
        self.memory = RunMemory()

    # ---- records --------------------------------------------------------------------------------------------
    def _open_directory(self) -> None:
        record, path = self.config.record(), self.dir / "config.json"
        if path.exists():
            diffs = config_differences(read_json(path), record)
            if diffs:
                raise ValueError(
                    f"run directory {self.dir} holds a run with a different config ({'; '.join(diffs)}); it is "
                    "left untouched: choose another run_dir, or delete that directory to start over")
        elif self.dir.exists() and any(self.dir.iterdir()):
            raise ValueError(f"{self.dir} exists, is not empty and has no config.json: not a run directory; "
                             "choose another run_dir")
        else:
            atomic_write_json(path, record)

    def _initial_state(self) -> dict[str, Any]:
        joint_state = self.joint.state_dict()
        groups = []
        for ids in self.groups:
            lo, hi = ids[0], ids[-1] + 1
            ppo = {**joint_state, "agent_ids": ids, "policy": _slice(joint_state["policy"], lo, hi),
                   "act_count": joint_state["act_count"][lo:hi].copy(),
                   "eval_count": joint_state["eval_count"][lo:hi].copy()}
            aip = _slice(self.joint_aip.state_dict(), lo, hi) if self.joint_aip is not None else None
            groups.append({"ppo": ppo, "aip": aip})
        runtime = dict.fromkeys(("agents_training_s", "data_collection_s", "aip_training_s", "evaluation_s",
                                 "total_s", "worker_busy_s", "worker_cpu_s"), 0.0)
        return {"boundary": 0, "prepared": False, "groups": groups, "rows": [], "runtime": runtime,
                "memory": {}, "sessions": 0,
                "train_return": math.nan}

    def _result(self) -> RunResult:
        records = load_run(self.dir)
        return RunResult(self.config, self.dir, records["metrics"], records["runtime"], records["memory"])

    def _write_records(self) -> None:
        rt = dict(self.state["runtime"])
        rt["data_collection_plus_aip_training_s"] = rt["data_collection_s"] + rt["aip_training_s"]
        rt["sessions"] = self.state["sessions"]
        atomic_write_json(self.dir / "runtime.json", rt)
        atomic_write_json(self.dir / "memory.json", self.state["memory"])
        frame = pd.DataFrame(self.state["rows"], columns=metric_columns(self.config.env))
        atomic_write_text(self.dir / "metrics.csv", frame.to_csv(index=False))

    def _checkpoint(self) -> None:
        if not self.dials:
            self.state["groups"] = [{"ppo": self.joint.state_dict(), "aip": None}]
        atomic_write(self.dir / CHECKPOINT, lambda tmp: torch.save(self.state, tmp))

    # ---- the joint policy and AIPs --------------------------------------------------------------------------
    def _joint_policy(self) -> PPOGroup:
        if self.dials:
            states = [g["ppo"] for g in self.state["groups"]]
            with torch.no_grad():
                for name, param in self.joint.policy.named_parameters():
                    for ids, state in zip(self.groups, states, strict=True):
                        param[ids[0] : ids[-1] + 1].copy_(state["policy"][name])
            self.joint._rollout_weights = None  # noqa: SLF001 - parameters changed in place
            self.joint.eval_count = np.concatenate([s["eval_count"] for s in states])
        return self.joint

    def _store_eval_counts(self) -> None:
        if self.dials:
            for ids, group in zip(self.groups, self.state["groups"], strict=True):
                group["ppo"]["eval_count"] = self.joint.eval_count[ids[0] : ids[-1] + 1].copy()
            self.joint._rollout_weights = None  # noqa: SLF001 - the inference copy is not needed until next time

    def _joint_predictor(self) -> Any:
        if self.joint_aip is not None:
            self.joint_aip.load_state_dict(_concat([g["aip"] for g in self.state["groups"]]))
        return self.joint_aip

    # ---- parallel tasks -------------------------------------------------------------------------------------
    def _parallel(self, function: Any, kwargs: list[dict[str, Any]], what: str, c: int,
                  store: Callable[[int, dict[str, Any]], None]) -> list[dict[str, Any]]:
        """Run one task per group; `store(i, result)` takes each result's new state as soon as it arrives.

        Storing as results arrive, and dropping the task's arguments then, keeps one group's old and new states
        in this process at a time instead of every group's (hundreds of MB at 100 agents).
        """
        done: dict[int, dict[str, Any]] = {}
        try:
            for i, result in run_tasks(function, kwargs, self.config.n_workers):
                self.memory.main.sample()  # the new state has arrived and the old one is still held: a peak
                store(i, result)
                kwargs[i].clear()  # joblib or Dask may still hold this dict: let go of the old state it references
                done[i] = result
        except Exception as err:
            if not {cls.__name__ for cls in type(err).__mro__} & _WORKER_DEATHS:
                raise
            lost = [ids for i, ids in enumerate(self.groups) if i not in done]
            raise WorkerDiedError(
                f"a worker process died while {what} at step {self.schedule.starts[c]} per agent (boundary {c}); "
                f"tasks that had not returned held agents {lost}. Last checkpoint: {self.dir / CHECKPOINT} "
                f"(step {self.schedule.starts[self.state['boundary']]} per agent). Run the same command again to "
                f"resume from it.") from err
        self.memory.add_call(list(done.values()))
        runtime = self.state["runtime"]
        for result in done.values():
            runtime["worker_busy_s"] += result["seconds"]
            runtime["worker_cpu_s"] = runtime.get("worker_cpu_s", 0.0) + result["cpu_seconds"]
        return [done[i] for i in range(len(kwargs))]

    def _fault(self, c: int) -> dict[str, Any] | None:
        return _FAULT if _FAULT is not None and _FAULT.get("boundary", c) == c else None

    # ---- the steps of a boundary and of a chunk -------------------------------------------------------------
    def _retrain(self, c: int) -> None:
        cfg, rt = self.config, self.state["runtime"]
        start = time.perf_counter()
        data = self._collect(c)
        self._store_eval_counts()
        self.memory.main.sample(full=True)
        rt["data_collection_s"] += time.perf_counter() - start
        start = time.perf_counter()
        round_index = sum(self.schedule.retrain[:c])
        kwargs = [dict(hp=self.hp, agent_ids=ids, seed=cfg.seed, total_timesteps=self.schedule.steps_per_agent,
                       aip_state=g["aip"], data=_agents_slice(data, ids), round_index=round_index,
                       fault=self._fault(c)) for ids, g in zip(self.groups, self.state["groups"], strict=True)]
        del data

        def store(i: int, result: dict[str, Any]) -> None:
            self.state["groups"][i]["aip"] = result.pop("aip_state")

        spill = self._spill_ppo_states()
        try:
            self._parallel(train_aips_task, kwargs, "training AIPs", c, store)
        finally:
            self._restore_ppo_states(spill)
        rt["aip_training_s"] += time.perf_counter() - start

    def _spill_ppo_states(self) -> Path:
        """Move the groups' PPO states (weights and Adam moments) to disk: training AIPs does not need them.

        At 100 warehouse agents they are ~190 MiB, held in this process while it and the workers train AIPs, the
        run's memory peak otherwise. Writing and reading them back takes a fraction of a second."""
        path = self.dir / "ppo_states.spill.pt"
        atomic_write(path, lambda tmp: torch.save([g["ppo"] for g in self.state["groups"]], tmp))
        for group in self.state["groups"]:
            group["ppo"] = None
        release_free_memory()
        return path

    def _restore_ppo_states(self, path: Path) -> None:
        states = torch.load(path, weights_only=False)
        for group, ppo in zip(self.state["groups"], states, strict=True):
            group["ppo"] = ppo
        path.unlink()

    def _collect(self, c: int) -> InfluenceData:
        """Algorithm 2 with the joint policy, one episode at a time into compact arrays (binary d-sets as uint8)."""
        cfg, spec = self.config, self.spec
        sim = make_global(cfg.env, n_agents=cfg.n_agents, seed=derived_seed(cfg.seed, DATA_TAG, c))
        controller = PolicyController(self._joint_policy())
        n, n_episodes, horizon = cfg.n_agents, math.ceil(self.hp.aip.dataset_steps / spec.horizon), spec.horizon
        data = InfluenceData(np.empty((n, n_episodes, horizon, spec.dset_dim), np.uint8),
                             np.empty((n, n_episodes, horizon, spec.n_sources), np.int8),
                             np.empty((n, n_episodes, horizon), np.int64),
                             np.empty((n, n_episodes, horizon), np.float32))
        for e in range(n_episodes):
            part = collect_dataset(sim, controller, horizon)  # one episode; the same draws as one call for all
            if data.dsets.dtype == np.uint8 and not np.all((part.dsets == 0) | (part.dsets == 1)):
                data.dsets = data.dsets.astype(np.float32)  # d-sets that are not binary keep their precision
            for name in ("dsets", "sources", "actions", "rewards"):
                getattr(data, name)[:, e] = getattr(part, name)[:, 0]
        return data

    def _evaluate(self, c: int) -> None:
        cfg = self.config
        start = time.perf_counter()
        row = evaluate(cfg.env, self._joint_policy(), cfg.eval_episodes, derived_seed(cfg.seed, EVAL_TAG, c),
                       self._joint_predictor())
        self._store_eval_counts()
        self.memory.main.sample(full=True)
        self.state["runtime"]["evaluation_s"] += time.perf_counter() - start
        row.update(timestep=self.schedule.starts[c], wall_time_s=self._elapsed(),
                   train_return=self.state["train_return"])
        self.state["rows"].append(row)

    def _train_chunk(self, c: int) -> None:
        cfg, n_steps = self.config, self.schedule.chunk_length(c)
        start = time.perf_counter()
        if not self.dials:
            sim = make_global(cfg.env, n_agents=cfg.n_agents, seed=derived_seed(cfg.seed, GS_TRAIN_TAG, c))
            self.state["train_return"] = run_steps(self.joint, sim, n_steps, self.memory.main.sample)["train_return"]
        else:
            kwargs = [dict(env=cfg.env, hp=self.hp, agent_ids=ids, seed=cfg.seed,
                           total_timesteps=self.schedule.steps_per_agent, ppo_state=g["ppo"], aip_state=g["aip"],
                           n_steps=n_steps, ials_seed=derived_seed(cfg.seed, IALS_TAG, c), fault=self._fault(c))
                      for ids, g in zip(self.groups, self.state["groups"], strict=True)]

            def store(i: int, result: dict[str, Any]) -> None:
                self.state["groups"][i]["ppo"] = result.pop("ppo_state")

            results = self._parallel(train_agents_task, kwargs, "training agents", c, store)
            sizes = [len(ids) for ids in self.groups]
            self.state["train_return"] = float(np.average([r["metrics"]["train_return"] for r in results],
                                                          weights=sizes))
        self.state["runtime"]["agents_training_s"] += time.perf_counter() - start

    def _boundary(self, c: int) -> None:
        if self.schedule.retrain[c]:
            self._retrain(c)
        if self.schedule.evaluate[c]:
            self._evaluate(c)
        self.state["boundary"], self.state["prepared"] = c, True
        self.state["runtime"]["total_s"] = self._elapsed()
        self.state["memory"] = self.memory.records(self.state["memory"])
        self._checkpoint()
        self._write_records()
        release_free_memory()  # the boundary's GS data and evaluation buffers are gone: return their pages

    def _elapsed(self) -> float:
        return self._base_total + time.perf_counter() - self._session_start

    def run(self, progress: bool | None) -> RunResult:
        """Train from the last checkpoint (or the start) to the end; write all records."""
        n, schedule = self.config.n_agents, self.schedule
        if self.finished:
            return self._result()
        self.state["sessions"] += 1
        self._base_total, self._session_start = self.state["runtime"]["total_s"], time.perf_counter()
        c = self.state["boundary"]
        bar = tqdm(total=n * schedule.steps_per_agent, initial=n * schedule.starts[c], unit="agent-step",
                   unit_scale=True, disable=None if progress is None else not progress, desc=self.config.name())
        try:
            with TreeMemorySampler() as self.memory.tree:
                if not self.state["prepared"]:
                    self._boundary(0)
                while c < schedule.n_chunks:
                    start = time.perf_counter()
                    self._train_chunk(c)
                    steps = n * schedule.chunk_length(c)
                    bar.set_postfix_str(f"{steps / (time.perf_counter() - start):,.0f} agent-steps/s")
                    bar.update(steps)
                    c += 1
                    self._boundary(c)
        finally:
            bar.close()
        return self._result()


__all__ = ["RunResult", "WorkerDiedError", "load_run", "metric_columns", "train", "train_dials", "train_gs"]

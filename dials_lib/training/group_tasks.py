"""What a worker does for one group of agents: plain data in, plain data out, so any joblib backend can run it.

Each task is one typed argument (a small dataclass) and a function of it:
- `TrainAgents` -> `train_agents`: rebuild the group's PPO learners from their state dict, build the simulator the
  task names (`OnGlobal`: the GS, for GS training; `OnIALS`: the group's IALS with its AIPs, for DIALS), run one
  chunk of PPO (`ppo_loop.run_ppo`) and return the new state dict with the chunk's training metrics.
  A task may stack the same group of several runs that differ only in seed (`runs`, a `RunStack`, which owns that
  layout): one PPO group of runs x agents, one GS batched over one copy per run (or one IALS batch over the regions
  of every run), and the metrics of each run.
- `TrainAIPs` -> `train_aips`: warm-start the group's AIPs from their state dict (if the config says so) and train
  them on the group's slice of a GS data set (Algorithm 2's output). At 100 warehouse agents that takes an hour
  or more, so the task snapshots its training every `SNAPSHOT_SECONDS` to a file (`AIPSnapshot`) and, run again
  after a stop, carries on from the snapshot with the same numbers; it reports the seconds that earlier sessions
  spent on it, so that a run's worker time counts each epoch once.

A task builds its group's networks afresh and loads the state dict into them (tens of milliseconds for 10 agents,
against seconds for a chunk): nothing stays in a process between tasks. Timing, memory and single-threading are the
runner's business (`dials_lib.training.parallel.run_measured`), not the task's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dials_lib.envs import close_simulator, get_spec, make_global
from dials_lib.hyperparameters import EnvHyperparameters
from dials_lib.learning.ials import IALS
from dials_lib.learning.influence import InfluenceData, StackedPredictor, make_predictor, train_predictor
from dials_lib.learning.ppo import PPOGroup
from dials_lib.learning.ppo_loop import run_ppo
from dials_lib.training.checkpoints import verified_state_or_none, write_checkpoint
from dials_lib.training.progress import task_sinks
from dials_lib.training.run_stack import RunStack


def new_learners(hp: EnvHyperparameters, agent_ids: list[int], runs: RunStack, anneal_timesteps: int) -> PPOGroup:
    """A PPO group for these agents of every run of `runs`, stacked, its learning rate and clip decaying over
    `anneal_timesteps` steps per agent."""
    spec = get_spec(hp.env)
    ids, seeds = runs.agents(agent_ids)
    return PPOGroup(len(ids), spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, anneal_timesteps, seeds, agent_ids=ids)


def new_predictors(hp: EnvHyperparameters, agent_ids: list[int], runs: RunStack) -> StackedPredictor:
    """These agents' AIPs of every run of `runs`, stacked, with their initial weights (untrained-DIALS keeps them)."""
    spec = get_spec(hp.env)
    ids, seeds = runs.agents(agent_ids)
    return make_predictor(hp.aip, spec.dset_dim, spec.source_sizes, seeds, ids)


@dataclass(frozen=True)
class OnGlobal:
    """Train on the global simulator (the group holds all agents), one independent copy per run."""

    chunk_seeds: RunStack
    """Seed of the GS episodes of this chunk, per run."""

    def build(self, hp: EnvHyperparameters, agent_ids: list[int], runs: RunStack) -> Any:
        """The GS with every agent of the group, batched over the runs."""
        return make_global(hp.env, n_agents=len(agent_ids), seed=self.chunk_seeds.seed_argument())


@dataclass(frozen=True)
class OnIALS:
    """Train on the group's influence-augmented local simulators (Algorithm 3), the regions of all runs in one
    batch."""

    aip_state: dict[str, torch.Tensor]
    """The group's AIPs (state dict; the runs' states stacked), which sample the influence sources."""
    chunk_seeds: RunStack
    """Seed of the IALS's influence and noise streams for this chunk, per run."""

    def build(self, hp: EnvHyperparameters, agent_ids: list[int], runs: RunStack) -> IALS:
        """One local region per agent of the group and run, driven by its AIP."""
        predictor = new_predictors(hp, agent_ids, runs)
        predictor.load_state_dict(self.aip_state)
        ids, seeds = self.chunk_seeds.agents(agent_ids)
        return IALS(hp.env, predictor, seeds, ids)


@dataclass(frozen=True)
class TrainAgents:
    """One chunk of PPO for one group of agents (of one run, or stacked over runs) on the simulator `on`."""

    hp: EnvHyperparameters
    """The runs' hyperparameters."""
    agent_ids: list[int]
    """The group's agents (in each run)."""
    runs: RunStack
    """The runs (every agent's streams come from its run's seed and the agent id)."""
    anneal_timesteps: int
    """Steps per agent over which the learning rate and clip decay (`RunConfig.anneal_timesteps`)."""
    ppo_state: dict[str, Any]
    """The group's PPO state at the chunk's start (the runs' states stacked)."""
    on: OnGlobal | OnIALS
    """The simulator to train on."""
    n_steps: int
    """Steps per agent of the chunk."""


def train_agents(task: TrainAgents) -> dict[str, Any]:
    """Run the chunk; returns the group's new PPO state (`ppo_state`) and each run's chunk `metrics` (a list)."""
    group = new_learners(task.hp, task.agent_ids, task.runs, task.anneal_timesteps)
    group.load_state_dict(task.ppo_state)
    sim = task.on.build(task.hp, task.agent_ids, task.runs)
    sink, ids = task_sinks().steps, tuple(task.agent_ids)
    on_update = None if sink is None else (lambda steps: sink(ids, steps))
    try:
        trace = run_ppo(group, sim, task.n_steps, on_update)
    finally:
        close_simulator(sim)  # a SUMO simulation hands libsumo back for the next chunk's
    return {"ppo_state": group.state_dict(), "metrics": task.runs.summaries(trace, len(task.agent_ids))}


SNAPSHOT_SECONDS = 300.0
"""Wall seconds between snapshots of an AIP training in progress: a stop loses at most about this much of it."""


@dataclass(frozen=True)
class AIPSnapshot:
    """Where one AIP training task keeps its state between epochs, and whose state that must be."""

    path: Path
    """The snapshot file (a verified checkpoint file, `dials_lib.training.checkpoints`)."""
    identity: str
    """The task's identity (run, boundary, agents, seeds): a file of any other task is not resumed from."""
    boundary: int
    """The chunk boundary whose retraining this is (recorded in the file's header)."""
    epochs: int
    """The training's epochs in all (recorded in the file's header with the epochs done)."""

    def read(self) -> dict[str, Any] | None:
        """The saved state of this task, or None (no file, another task's, or damaged: then with a warning line)."""
        return verified_state_or_none(self.path, self.identity, "that AIP training starts over")

    def write(self, state: dict[str, Any], epochs: int) -> bool:
        """Save `state` after `epochs` epochs of `self.epochs` (atomically; the epochs go into the file's header as
        well, for `make status`); False when the file cannot be written (e.g. a worker on another machine)."""
        try:
            write_checkpoint(self.path, {**state, "boundary": self.boundary}, self.identity, keep_previous=False,
                             progress={"epochs done": epochs, "epochs": self.epochs})
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class TrainAIPs:
    """Retrain one group's AIPs on its slice of a GS data set."""

    hp: EnvHyperparameters
    """The runs' hyperparameters (`hp.aip`: epochs, learning rate, warm start)."""
    agent_ids: list[int]
    """The group's agents (in each run)."""
    runs: RunStack
    """The runs (initial weights and minibatch order per agent)."""
    aip_state: dict[str, torch.Tensor]
    """The group's current AIPs (the warm start; the runs' states stacked)."""
    data: InfluenceData
    """The group's agents' d-sets, influence sources, actions and rewards (compact dtypes), the runs' stacked."""
    round_index: int
    """Which retraining of the run this is (a fresh minibatch order every round)."""
    snapshot: AIPSnapshot | None = None
    """Where to keep the training's state every `SNAPSHOT_SECONDS` and to resume it from (None: nowhere)."""


def train_aips(task: TrainAIPs) -> dict[str, Any]:
    """Train the AIPs (from the task's snapshot, if there is one); returns their new state (`aip_state`), each
    run's last-epoch mean loss (`train_loss`), and the wall and CPU seconds of the whole training (`task_s`,
    `task_cpu_s`) and of the part done in earlier sessions (`earlier_s`, `earlier_cpu_s`)."""
    start, cpu_start = time.perf_counter(), time.thread_time()
    predictor = new_predictors(task.hp, task.agent_ids, task.runs)
    if task.hp.aip.warm_start:
        predictor.load_state_dict(task.aip_state)
    ids, seeds = task.runs.agents(task.agent_ids)
    saved = task.snapshot.read() if task.snapshot is not None else None
    earlier_s, earlier_cpu_s = (saved["seconds"], saved["cpu_seconds"]) if saved is not None else (0.0, 0.0)

    def spent() -> tuple[float, float]:
        return earlier_s + time.perf_counter() - start, earlier_cpu_s + time.thread_time() - cpu_start

    last_save, snapshot = time.perf_counter(), task.snapshot

    def keep(epochs: int, state: Any) -> None:
        nonlocal last_save, snapshot
        if snapshot is None or epochs == task.hp.aip.epochs or time.perf_counter() - last_save < SNAPSHOT_SECONDS:
            return
        seconds, cpu_seconds = spent()
        if not snapshot.write({"training": state(), "seconds": seconds, "cpu_seconds": cpu_seconds}, epochs):
            snapshot = None  # not writable from here: train on without snapshots
        last_save = time.perf_counter()

    # the data arrive compact (uint8 d-sets, int8 sources) and stay so: train_predictor widens each minibatch
    sink, group = task_sinks().epochs, tuple(task.agent_ids)
    on_epoch = None if sink is None else (lambda epochs: sink(group, epochs))
    losses = train_predictor(predictor, task.data, task.hp.aip, seeds, ids, round_index=task.round_index,
                             on_epoch=on_epoch, resume=saved["training"] if saved is not None else None,
                             snapshot=keep)
    task_s, task_cpu_s = spent()
    return {"aip_state": predictor.state_dict(), "train_loss": task.runs.last_losses(losses["train_loss"][-1]),
            "task_s": task_s, "task_cpu_s": task_cpu_s, "earlier_s": earlier_s, "earlier_cpu_s": earlier_cpu_s}


__all__ = ["SNAPSHOT_SECONDS", "AIPSnapshot", "OnGlobal", "OnIALS", "TrainAIPs", "TrainAgents", "new_learners",
           "new_predictors", "train_agents", "train_aips"]

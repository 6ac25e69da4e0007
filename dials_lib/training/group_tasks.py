"""What a worker does for one group of agents: plain data in, plain data out, so any joblib backend can run it.

Each task is one typed argument (a small dataclass) and a function of it:
- `TrainAgents` -> `train_agents`: rebuild the group's PPO learners from their state dict, build the simulator the
  task names (`OnGlobal`: the GS, for GS training; `OnIALS`: the group's IALS with its AIPs, for DIALS), run one
  chunk of PPO (`ppo.train_steps_by_run`) and return the new state dict with the chunk's training metrics.
  A task may stack the same group of several runs that differ only in seed (`seeds`): one PPO group of
  runs x agents, one GS batched over one copy per run (or one IALS batch over the regions of every run), and the
  metrics of each run.
- `TrainAIPs` -> `train_aips`: warm-start the group's AIPs from their state dict (if the config says so) and train
  them on the group's slice of a GS data set (Algorithm 2's output).

A task builds its group's networks afresh and loads the state dict into them (tens of milliseconds for 10 agents,
against seconds for a chunk): nothing stays in a process between tasks. Timing, memory and single-threading are the
runner's business (`dials_lib.training.parallel.run_measured`), not the task's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from dials_lib.envs import get_spec, make_global
from dials_lib.hyperparameters import EnvHyperparameters
from dials_lib.learning.ials import IALS
from dials_lib.learning.influence import InfluenceData, StackedPredictor, make_predictor, train_predictor
from dials_lib.learning.ppo import PPOGroup, train_steps_by_run


def stacked(agent_ids: list[int], seeds: int | Sequence[int]) -> tuple[list[int], int | list[int]]:
    """The agent ids and per-agent seeds of the group `agent_ids` of each run of `seeds` (run-major); one int seed
    is one run, as it always was."""
    if isinstance(seeds, int):
        return list(agent_ids), seeds
    return [a for _ in seeds for a in agent_ids], [s for s in seeds for _ in agent_ids]


def _one_or_many(seeds: Sequence[int]) -> int | list[int]:
    """A single run's seed as the int it is when that run trains alone (so a batch of one is that run, exactly)."""
    return int(seeds[0]) if len(seeds) == 1 else [int(s) for s in seeds]


def new_learners(hp: EnvHyperparameters, agent_ids: list[int], seed: int | Sequence[int], anneal_timesteps: int
                 ) -> PPOGroup:
    """A PPO group for these agents of the run(s) with `seed` (an int, or the seeds of stacked runs), its learning
    rate and clip decaying over `anneal_timesteps` steps per agent."""
    spec = get_spec(hp.env)
    ids, seeds = stacked(agent_ids, seed)
    return PPOGroup(len(ids), spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, anneal_timesteps, seeds, agent_ids=ids)


def new_predictors(hp: EnvHyperparameters, agent_ids: list[int], seed: int | Sequence[int]) -> StackedPredictor:
    """These agents' AIPs with their initial weights (untrained-DIALS keeps them so); `seed` as in `new_learners`."""
    spec = get_spec(hp.env)
    ids, seeds = stacked(agent_ids, seed)
    return make_predictor(hp.aip, spec.dset_dim, spec.source_sizes, seeds, ids)


@dataclass(frozen=True)
class OnGlobal:
    """Train on the global simulator (the group holds all agents), one independent copy per run."""

    seeds: tuple[int, ...]
    """Seed of the GS episodes of this chunk, per run."""

    def build(self, hp: EnvHyperparameters, agent_ids: list[int], run_seeds: tuple[int, ...]) -> Any:
        """The GS with every agent of the group, batched over the runs."""
        return make_global(hp.env, n_agents=len(agent_ids), seed=_one_or_many(self.seeds))


@dataclass(frozen=True)
class OnIALS:
    """Train on the group's influence-augmented local simulators (Algorithm 3), the regions of all runs in one
    batch."""

    aip_state: dict[str, torch.Tensor]
    """The group's AIPs (state dict; the runs' states concatenated), which sample the influence sources."""
    seeds: tuple[int, ...]
    """Seed of the IALS's influence and noise streams for this chunk, per run."""

    def build(self, hp: EnvHyperparameters, agent_ids: list[int], run_seeds: tuple[int, ...]) -> IALS:
        """One local region per agent of the group and run, driven by its AIP."""
        predictor = new_predictors(hp, agent_ids, _one_or_many(run_seeds))
        predictor.load_state_dict(self.aip_state)
        ids, seeds = stacked(agent_ids, _one_or_many(self.seeds))
        return IALS(hp.env, predictor, seeds, ids)


@dataclass(frozen=True)
class TrainAgents:
    """One chunk of PPO for one group of agents (of one run, or stacked over runs) on the simulator `on`."""

    hp: EnvHyperparameters
    """The runs' hyperparameters."""
    agent_ids: list[int]
    """The group's agents (in each run)."""
    seeds: tuple[int, ...]
    """The run seeds (every agent's streams come from its run's seed and the agent id)."""
    anneal_timesteps: int
    """Steps per agent over which the learning rate and clip decay (`RunConfig.anneal_timesteps`)."""
    ppo_state: dict[str, Any]
    """The group's PPO state at the chunk's start (the runs' states concatenated, run-major)."""
    on: OnGlobal | OnIALS
    """The simulator to train on."""
    n_steps: int
    """Steps per agent of the chunk."""


class _Progress:
    """Where `train_agents` and `train_aips` calls in this process report their progress (a class, so that a call
    pickled by value for another process, e.g. a wrapped function in a test, takes the class by reference and not
    the sinks)."""

    sink: Callable[[tuple[int, ...], int], None] | None = None
    aip_sink: Callable[[tuple[int, ...], int], None] | None = None


@contextmanager
def progress_reports(sink: Callable[[tuple[int, ...], int], None],
                     aip_sink: Callable[[tuple[int, ...], int], None] | None = None) -> Iterator[None]:
    """Inside the block, a `train_agents` call running in this process tells `sink(agent_ids, steps)` the steps per
    agent it has done after every PPO update, and a `train_aips` call tells `aip_sink(agent_ids, epochs)` the epochs
    it has done after each one (calls in other processes report only when they return)."""
    previous = _Progress.sink, _Progress.aip_sink
    _Progress.sink, _Progress.aip_sink = sink, aip_sink
    try:
        yield
    finally:
        _Progress.sink, _Progress.aip_sink = previous


def train_agents(task: TrainAgents) -> dict[str, Any]:
    """Run the chunk; returns the group's new PPO state (`ppo_state`) and each run's chunk `metrics` (a list)."""
    group = new_learners(task.hp, task.agent_ids, _one_or_many(task.seeds), task.anneal_timesteps)
    group.load_state_dict(task.ppo_state)
    sim = task.on.build(task.hp, task.agent_ids, task.seeds)
    sink, ids = _Progress.sink, tuple(task.agent_ids)
    on_update = None if sink is None else (lambda steps: sink(ids, steps))
    metrics = train_steps_by_run(group, sim, task.n_steps, len(task.seeds), on_update)
    return {"ppo_state": group.state_dict(), "metrics": metrics}


@dataclass(frozen=True)
class TrainAIPs:
    """Retrain one group's AIPs on its slice of a GS data set."""

    hp: EnvHyperparameters
    """The runs' hyperparameters (`hp.aip`: epochs, learning rate, warm start)."""
    agent_ids: list[int]
    """The group's agents (in each run)."""
    seeds: tuple[int, ...]
    """The run seeds (initial weights and minibatch order per agent)."""
    aip_state: dict[str, torch.Tensor]
    """The group's current AIPs (the warm start; the runs' states concatenated, run-major)."""
    data: InfluenceData
    """The group's agents' d-sets, influence sources, actions and rewards (compact dtypes), run-major."""
    round_index: int
    """Which retraining of the run this is (a fresh minibatch order every round)."""


def train_aips(task: TrainAIPs) -> dict[str, Any]:
    """Train the AIPs; returns their new state (`aip_state`) and each run's last-epoch mean loss (`train_loss`)."""
    seed = _one_or_many(task.seeds)
    predictor = new_predictors(task.hp, task.agent_ids, seed)
    if task.hp.aip.warm_start:
        predictor.load_state_dict(task.aip_state)
    ids, seeds = stacked(task.agent_ids, seed)
    # the data arrive compact (uint8 d-sets, int8 sources) and stay so: train_predictor widens each minibatch
    sink, group = _Progress.aip_sink, tuple(task.agent_ids)
    on_epoch = None if sink is None else (lambda epochs: sink(group, epochs))
    losses = train_predictor(predictor, task.data, task.hp.aip, seeds, ids, round_index=task.round_index,
                             on_epoch=on_epoch)
    last = losses["train_loss"][-1].reshape(len(task.seeds), -1)
    return {"aip_state": predictor.state_dict(), "train_loss": [float(run.mean()) for run in last]}


__all__ = ["OnGlobal", "OnIALS", "TrainAIPs", "TrainAgents", "new_learners", "new_predictors", "progress_reports",
           "stacked", "train_agents", "train_aips"]

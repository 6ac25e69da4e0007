"""What a worker does for one group of agents: plain data in, plain data out, so any joblib backend can run it.

Each task is one typed argument (a small dataclass) and a function of it:
- `TrainAgents` -> `train_agents`: rebuild the group's PPO learners from their state dict, build the simulator the
  task names (`OnGlobal`: the GS, for GS training; `OnIALS`: the group's IALS with its AIPs, for DIALS), run one
  chunk of PPO (`ppo.train_steps`) and return the new state dict with the chunk's training metrics.
- `TrainAIPs` -> `train_aips`: warm-start the group's AIPs from their state dict (if the config says so) and train
  them on the group's slice of a GS data set (Algorithm 2's output).

A task builds its group's networks afresh and loads the state dict into them (tens of milliseconds for 10 agents,
against seconds for a chunk): nothing stays in a process between tasks. Timing, memory and single-threading are the
runner's business (`dials_lib.training.parallel.run_measured`), not the task's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dials_lib.envs import get_spec, make_global
from dials_lib.hyperparameters import EnvHyperparameters
from dials_lib.learning.ials import IALS
from dials_lib.learning.influence import InfluenceData, StackedPredictor, make_predictor, train_predictor
from dials_lib.learning.ppo import PPOGroup, train_steps


def new_learners(hp: EnvHyperparameters, agent_ids: list[int], seed: int, total_timesteps: int) -> PPOGroup:
    """A PPO group for these agents of a run with `seed` and `total_timesteps` steps per agent."""
    spec = get_spec(hp.env)
    return PPOGroup(len(agent_ids), spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, total_timesteps, seed,
                    agent_ids=agent_ids)


def new_predictors(hp: EnvHyperparameters, agent_ids: list[int], seed: int) -> StackedPredictor:
    """These agents' AIPs with their initial weights (untrained-DIALS keeps them so)."""
    spec = get_spec(hp.env)
    return make_predictor(hp.aip, spec.dset_dim, spec.source_sizes, seed, agent_ids)


@dataclass(frozen=True)
class OnGlobal:
    """Train on the global simulator (the group holds all agents)."""

    seed: int
    """Seed of the GS episodes of this chunk."""

    def build(self, hp: EnvHyperparameters, agent_ids: list[int], run_seed: int) -> Any:
        """The GS with every agent of the group."""
        return make_global(hp.env, n_agents=len(agent_ids), seed=self.seed)


@dataclass(frozen=True)
class OnIALS:
    """Train on the group's influence-augmented local simulators (Algorithm 3)."""

    aip_state: dict[str, torch.Tensor]
    """The group's AIPs (state dict), which sample the influence sources."""
    seed: int
    """Seed of the IALS's influence and noise streams for this chunk."""

    def build(self, hp: EnvHyperparameters, agent_ids: list[int], run_seed: int) -> IALS:
        """One local region per agent of the group, driven by its AIP."""
        predictor = new_predictors(hp, agent_ids, run_seed)
        predictor.load_state_dict(self.aip_state)
        return IALS(hp.env, predictor, self.seed, agent_ids)


@dataclass(frozen=True)
class TrainAgents:
    """One chunk of PPO for one group of agents on the simulator `on`."""

    hp: EnvHyperparameters
    """The run's hyperparameters."""
    agent_ids: list[int]
    """The group's agents."""
    seed: int
    """The run seed (every agent's streams come from it and the agent id)."""
    total_timesteps: int
    """Steps per agent of the whole run (the learning-rate and clip schedules)."""
    ppo_state: dict[str, Any]
    """The group's PPO state at the chunk's start."""
    on: OnGlobal | OnIALS
    """The simulator to train on."""
    n_steps: int
    """Steps per agent of the chunk."""


def train_agents(task: TrainAgents) -> dict[str, Any]:
    """Run the chunk; returns the group's new PPO state (`ppo_state`) and the chunk's `metrics`."""
    group = new_learners(task.hp, task.agent_ids, task.seed, task.total_timesteps)
    group.load_state_dict(task.ppo_state)
    metrics = train_steps(group, task.on.build(task.hp, task.agent_ids, task.seed), task.n_steps)
    return {"ppo_state": group.state_dict(), "metrics": metrics}


@dataclass(frozen=True)
class TrainAIPs:
    """Retrain one group's AIPs on its slice of a GS data set."""

    hp: EnvHyperparameters
    """The run's hyperparameters (`hp.aip`: epochs, learning rate, warm start)."""
    agent_ids: list[int]
    """The group's agents."""
    seed: int
    """The run seed (initial weights and minibatch order per agent)."""
    aip_state: dict[str, torch.Tensor]
    """The group's current AIPs (the warm start)."""
    data: InfluenceData
    """The group's agents' d-sets, influence sources, actions and rewards (compact dtypes)."""
    round_index: int
    """Which retraining of the run this is (a fresh minibatch order every round)."""


def train_aips(task: TrainAIPs) -> dict[str, Any]:
    """Train the AIPs; returns their new state (`aip_state`) and the last epoch's mean loss (`train_loss`)."""
    predictor = new_predictors(task.hp, task.agent_ids, task.seed)
    if task.hp.aip.warm_start:
        predictor.load_state_dict(task.aip_state)
    # the data arrive compact (uint8 d-sets, int8 sources) and stay so: train_predictor widens each minibatch
    losses = train_predictor(predictor, task.data, task.hp.aip, task.seed, task.agent_ids,
                             round_index=task.round_index)
    return {"aip_state": predictor.state_dict(), "train_loss": float(losses["train_loss"][-1].mean())}


__all__ = ["OnGlobal", "OnIALS", "TrainAIPs", "TrainAgents", "new_learners", "new_predictors", "train_agents",
           "train_aips"]

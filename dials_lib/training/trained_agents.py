"""A run's trained agents, read back from its checkpoint: to act with them on any simulator, or to look at the AIPs
they trained on.

    from dials_lib.learning.controllers import PolicyController
    from dials_lib.training.trained_agents import trained_agents
    agents = trained_agents(config)                 # the RunConfig the run was trained with
    controller = PolicyController(agents.actor)     # every agent's policy, sampled (greedy=True: most likely)
    agents.predictor                                # DIALS: the AIPs of the last retraining; untrained-DIALS: their
                                                    # initial weights; GS: None

The checkpoint is verified and must belong to `config` (`dials_lib.training.checkpoints`): the newest checkpoint
that passes its checks is read, as a resumed run would. Reading never changes the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dials_lib.envs import get_spec
from dials_lib.hyperparameters import EnvHyperparameters
from dials_lib.learning.influence import StackedPredictor, concat_predictor_states
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo import concat_states
from dials_lib.training.checkpoints import read_checkpoint, run_identity
from dials_lib.training.group_tasks import new_predictors
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import CHECKPOINT


@dataclass
class TrainedAgents:
    """Every agent of one run as its last checkpoint holds them."""

    config: RunConfig
    """The run's configuration."""
    timestep: int
    """Training steps per agent behind these agents (the checkpoint's boundary, evaluated there or not)."""
    actor: PolicyActor
    """Every agent's policy, agents in id order, acting from the checkpoint's evaluation streams."""
    predictor: StackedPredictor | None
    """The AIPs the agents trained on last (untrained-DIALS: initial weights); None for a GS run."""


def joint_policies(hp: EnvHyperparameters, groups: list[dict[str, Any]]) -> PolicyActor:
    """Every agent's policy of one run from its worker groups' states (`{"ppo": ..., "aip": ...}` each, in order)."""
    spec = get_spec(hp.env)
    return PolicyActor.from_state(concat_states([g["ppo"] for g in groups]), hp.policy, spec.obs_dim, spec.n_actions)


def joint_predictors(hp: EnvHyperparameters, seed: int, groups: list[dict[str, Any]]) -> StackedPredictor | None:
    """Every agent's AIP of the run with `seed` from its worker groups' states; None when the run has none (GS)."""
    if groups[0]["aip"] is None:
        return None
    n_agents = sum(len(g["ppo"]["agent_ids"]) for g in groups)
    predictor = new_predictors(hp, list(range(n_agents)), seed)
    predictor.load_state_dict(concat_predictor_states([g["aip"] for g in groups]))
    return predictor


def trained_agents(config: RunConfig) -> TrainedAgents:
    """The agents of the run `config` from its newest valid checkpoint; a one-line error when it has none."""
    path = config.directory() / CHECKPOINT
    state, _ = read_checkpoint(path, run_identity(config))
    if state is None:
        raise ValueError(f"run {config.name()} has no checkpoint in {path.parent}: train it first")
    groups = state["groups"]
    return TrainedAgents(config, config.schedule().starts[state["boundary"]], joint_policies(config.hp, groups),
                         joint_predictors(config.hp, config.seed, groups))


__all__ = ["TrainedAgents", "joint_policies", "joint_predictors", "trained_agents"]

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

from dials_lib.envs import get_spec
from dials_lib.hyperparameters import EnvHyperparameters
from dials_lib.learning.influence import StackedPredictor
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.training.agent_axis import join
from dials_lib.training.checkpoints import read_checkpoint, run_identity
from dials_lib.training.group_tasks import new_predictors
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import CHECKPOINT
from dials_lib.training.run_stack import RunStack
from dials_lib.training.run_state import GroupState, RunState, joined_groups


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


def joint_policies(hp: EnvHyperparameters, groups: list[GroupState]) -> PolicyActor:
    """Every agent's policy of one run from its groups' states (in order)."""
    spec = get_spec(hp.env)
    return PolicyActor.from_state(joined_groups(groups)[0], hp.policy, spec.obs_dim, spec.n_actions)


def joint_predictors(hp: EnvHyperparameters, seed: int, groups: list[GroupState]) -> StackedPredictor | None:
    """Every agent's AIP of the run with `seed` from its groups' states; None when the run has none (GS)."""
    if groups[0].aip is None:
        return None
    n_agents = sum(len(group.agent_ids) for group in groups)
    predictor = new_predictors(hp, list(range(n_agents)), RunStack((seed,)))
    predictor.load_state_dict(join("aip", [group.aip for group in groups]))
    return predictor


def trained_agents(config: RunConfig) -> TrainedAgents:
    """The agents of the run `config` from its newest valid checkpoint; a one-line error when it has none."""
    path = config.directory() / CHECKPOINT
    saved, _ = read_checkpoint(path, run_identity(config))
    if saved is None:
        raise ValueError(f"run {config.name()} has no checkpoint in {path.parent}: train it first")
    state = RunState.from_checkpoint(saved)
    return TrainedAgents(config, config.schedule().starts[state.boundary], joint_policies(config.hp, state.groups),
                         joint_predictors(config.hp, config.seed, state.groups))


__all__ = ["TrainedAgents", "joint_policies", "joint_predictors", "trained_agents"]

"""Joint controllers: what chooses every agent's action when a simulator is run for data or evaluation.

A controller is called once per step with the observations [n, obs_dim] and the simulator (for controllers
that read local states, like the hand-coded ones) and returns int64 actions [n]; `reset()` marks an episode
start (recurrent policies clear their state). Random draws are counter-based per agent, so an agent's
actions do not depend on which other agents share its controller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from dials_lib.envs import get_env, get_spec
from dials_lib.envs.contract import AgentSimulator
from dials_lib.hyperparameters import TRAINABLE_ENVS
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo import PPOGroup
from dials_lib.seeding import Stream, agent_keys, counter_uniforms
from dials_lib.validation import check_choice


class Controller(Protocol):
    """Chooses the actions of a group of agents, step by step."""

    def reset(self) -> None:
        """Mark the start of an episode."""

    def __call__(self, obs: np.ndarray, sim: AgentSimulator) -> np.ndarray:
        """Actions int64 [n] for observations [n, obs_dim] of simulator `sim`."""


class RandomController:
    """Uniformly random actions, one independent stream per agent."""

    def __init__(self, n_actions: int, agent_ids: Sequence[int], seed: int = 0) -> None:
        self.n_actions = n_actions
        self._keys = agent_keys(seed, agent_ids, Stream.RANDOM_ACTIONS)
        self._count = np.zeros(len(self._keys), dtype=np.uint64)

    def reset(self) -> None:
        """Random actions need no episode state."""

    def __call__(self, obs: np.ndarray, sim: AgentSimulator) -> np.ndarray:
        """Uniform actions in 0..n_actions-1."""
        uniforms = counter_uniforms(self._keys, self._count)
        self._count += np.uint64(1)
        return np.minimum((uniforms * self.n_actions).astype(np.int64), self.n_actions - 1)


class HandCodedController:
    """The environment's hand-coded rule (traffic: longer-queue lights; warehouse: oldest item first)."""

    def __init__(self, env: str) -> None:
        check_choice("env", env, TRAINABLE_ENVS)
        record = get_env(env)
        if record.hand_coded is None:  # the baseline is a mode of the simulator, not a rule acting on it
            raise ValueError(f"{env}'s hand-coded baseline runs inside its global simulator: build it with "
                             f"make_global({env!r}, ..., **{record.baseline_options!r}), which ignores the actions")
        self._rule = record.hand_coded

    def reset(self) -> None:
        """The hand-coded rules read only the current local state."""

    def __call__(self, obs: np.ndarray, sim: AgentSimulator) -> np.ndarray:
        """Actions from the simulator's local states."""
        return self._rule(sim.local_states())


class ConstantController:
    """The same action for every agent at every step: what drives a simulator that ignores the actions it gets (a
    GS running its own baseline, `hand_coded_setup`)."""

    def __init__(self, action: int = 0) -> None:
        self.action = int(action)

    def reset(self) -> None:
        """A constant needs no episode state."""

    def __call__(self, obs: np.ndarray, sim: AgentSimulator) -> np.ndarray:
        """`action` for each of the len(obs) agents."""
        return np.full(len(obs), self.action, dtype=np.int64)


def hand_coded_setup(env: str) -> tuple[Controller, dict[str, Any]]:
    """The hand-coded baseline of `env` as a controller and the keyword arguments of `make_global` for the GS it
    runs on. Usually the record's rule acting on a plain GS (`HandCodedController`, no options); for an environment
    whose baseline is a mode of its GS (the record's `baseline_options`, e.g. sumo-traffic's actuated lights) that
    GS's options and a constant controller, whose actions the GS ignores."""
    check_choice("env", env, TRAINABLE_ENVS)
    record = get_env(env)
    if record.hand_coded is None:
        return ConstantController(), dict(record.baseline_options or {})
    return HandCodedController(env), {}


class PolicyController:
    """Policies acting through `act_eval` (a `PolicyActor`, or a `PPOGroup` without touching its training buffer),
    sampled from their evaluation streams or greedy."""

    def __init__(self, group: PolicyActor | PPOGroup, greedy: bool = False) -> None:
        self.group = group
        self.greedy = greedy
        self._hidden = None

    def reset(self) -> None:
        """Clear the recurrent state at an episode start."""
        self._hidden = None

    def __call__(self, obs: np.ndarray, sim: AgentSimulator) -> np.ndarray:
        """The policies' actions for `obs`."""
        actions, self._hidden = self.group.act_eval(obs, self._hidden, greedy=self.greedy)
        return actions


def rollout(sim: AgentSimulator, controller: Controller, episodes: int) -> dict[str, np.ndarray]:
    """Run whole episodes of `sim` (a GS or an IALS) under `controller`: per-step rewards float32 [E, H, n] and
    influence sources int64 [E, H, n, n_sources]."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    obs = sim.reset()
    n, horizon = len(obs), sim.spec.horizon
    rewards = np.zeros((episodes, horizon, n), dtype=np.float32)
    sources = np.zeros((episodes, horizon, n, sim.spec.n_sources), dtype=np.int64)
    for episode in range(episodes):
        if episode:
            obs = sim.reset()
        controller.reset()
        for t in range(horizon):
            obs, rewards[episode, t], done = sim.step(controller(obs, sim))
            sources[episode, t] = sim.influence_sources()
        if not done:
            raise RuntimeError(f"{sim.spec.name} did not end at its horizon {horizon}")
    return {"rewards": rewards, "influence_sources": sources}


def make_controller(kind: str, env: str, n_agents: int, seed: int = 0) -> Controller:
    """A 'random' or 'hand-coded' controller for `n_agents` agents of `env`."""
    check_choice("controller", kind, ("random", "hand-coded"))
    if kind == "hand-coded":
        return HandCodedController(env)
    spec = get_spec(env)
    return RandomController(spec.n_actions, range(n_agents), seed)

"""The PPO training loop: a `PPOGroup` learning on a simulator, and what the stretch of training saw.

`run_ppo(group, sim, n_steps)` is the one loop every training run goes through (on the GS, or on an IALS inside a
worker task; `dials_lib.training.group_tasks`). Written out, `train_steps(group, sim, n_steps)` is:

    group = PPOGroup(n_agents, obs_dim, n_actions, hp.policy, hp.ppo, total_timesteps, seed)
    obs = sim.reset()
    for _ in range(n_steps):
        actions = group.act(obs)                 # numpy int64 [K]; stores obs, action, log-prob, value
        obs, reward, done = sim.step(actions)
        if done: obs = sim.reset()               # episode ends: the recurrent state is reset in `observe`
        group.observe(reward, done)
        if group.ready():
            metrics = group.update(obs)          # bootstraps from the value of the current observation

`run_ppo` returns a `PPOTrace`: every agent's return per completed episode and its losses per update, which a
seed batch cuts back into runs (`PPOTrace.summary` over a run's agents) exactly as a group holding the run alone
would report them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dials_lib.envs.contract import AgentSimulator
from dials_lib.learning.ppo import PPOGroup

LOGGED_LOSSES: tuple[str, ...] = ("policy_loss", "value_loss", "entropy")
"""The losses `run_ppo` keeps per update and agent (`PPOTrace.update_losses`)."""


@dataclass
class PPOTrace:
    """What a stretch of PPO training saw, per agent: each agent's return per completed episode and its losses per
    update, to be summarised over any set of agents (`summary`)."""

    episode_returns: np.ndarray
    """Every agent's undiscounted return per completed episode, float64 [episodes, K]."""
    update_losses: dict[str, np.ndarray]
    """Per loss (policy_loss, value_loss, entropy): every agent's mean over the update's minibatches, [updates, K]."""

    def summary(self, agents: slice = slice(None)) -> dict[str, Any]:
        """The losses averaged over the updates of the mean over `agents` (none without updates), those agents'
        `episode_returns` and `train_return` (`mean_episode_return`: NaN without episodes)."""
        n_updates = len(next(iter(self.update_losses.values()), ()))
        out: dict[str, Any] = {}
        for name, per_update in self.update_losses.items():
            total = 0.0
            for losses in per_update:  # in update order, each update's mean over the agents
                total += float(np.mean(losses[agents]))
            out[name] = total / max(n_updates, 1)
        out["episode_returns"] = self.episode_returns[:, agents]
        out["train_return"] = mean_episode_return(out["episode_returns"])
        return out


def run_ppo(group: PPOGroup, sim: AgentSimulator, n_steps: int, on_update: Callable[[int], None] | None = None
            ) -> PPOTrace:
    """The training loop: PPO on `sim` for `n_steps` steps from a fresh episode (a multiple of buffer_size, so it
    ends right after an update); `on_update(steps)`, if given, is told the steps done so far after every update."""
    if n_steps % group.config.buffer_size:
        raise ValueError(f"n_steps={n_steps} must be a multiple of buffer_size={group.config.buffer_size}")
    obs = sim.reset()
    group.reset_episodes()
    running = np.zeros(group.n_agents)
    returns: list[np.ndarray] = []  # per episode, every agent's return
    losses: dict[str, list[np.ndarray]] = {}
    for step in range(1, n_steps + 1):
        actions = group.act(obs)
        obs, rewards, done = sim.step(actions)
        running += rewards
        if done:
            returns.append(running.copy())
            running[:] = 0.0
            obs = sim.reset()
        group.observe(rewards, done)
        if group.ready():
            metrics = group.update(obs)
            if on_update is not None:
                on_update(step)
            for name in LOGGED_LOSSES:
                losses.setdefault(name, []).append(metrics[name])
    return PPOTrace(np.array(returns).reshape(len(returns), group.n_agents),
                    {name: np.stack(per_update) for name, per_update in losses.items()})


def train_steps(group: PPOGroup, sim: AgentSimulator, n_steps: int) -> dict[str, Any]:
    """`run_ppo`, summarised over all agents: the mean undiscounted return per agent of the episodes completed on
    `sim` (`train_return`, NaN if none; `episode_returns`: each agent's return per episode) and the PPO losses
    averaged over the updates."""
    return run_ppo(group, sim, n_steps).summary()


def mean_episode_return(episode_returns: np.ndarray) -> float:
    """The mean over episodes of the agents' mean return, from each agent's return per episode [episodes, agents]
    (NaN without episodes). The agents of a run trained in several groups give the same number as one group."""
    if not len(episode_returns):
        return float("nan")
    return float(np.mean([float(episode.mean()) for episode in episode_returns]))


__all__ = ["LOGGED_LOSSES", "PPOTrace", "mean_episode_return", "run_ppo", "train_steps"]

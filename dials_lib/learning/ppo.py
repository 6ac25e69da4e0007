"""Independent PPO for a group of K agents, as the paper ran it (Table 6 and the authors' code).

`PPOGroup` trains K agents at once, each with its own parameters, optimiser state and random streams; agents
never share parameters (see `dials_lib.learning.networks`: weights are stacked [K, ...] for speed only). Its acting part
is a `PolicyActor` (`dials_lib.learning.policy_actor`). A group learns through `act`, `observe` and `update`;
the loop that drives it on a simulator is `dials_lib.learning.ppo_loop` (`run_ppo`, `train_steps`).

A group's state (`state_dict`) has the agents on the first axis of every tensor and counter: `concat_states`
joins the states of several groups of one run (e.g. to evaluate all agents at once) and `slice_state` cuts one
into groups, exactly.

How rollout_steps T and buffer_size N interact: every agent collects N = 128 consecutive transitions, then PPO
updates. The buffer is cut into N / T segments of T steps (16 traffic, 8 warehouse); GAE runs backwards inside each
segment only, bootstrapping at the segment's end from the value of the observation that follows it (the first
value of the next segment, or of the current observation for the last one). So T is the value-bootstrap horizon
of the paper ("rollout steps") and N the memory size. Episode ends (`done`) are terminal: no bootstrap across them.

The update: `epochs` passes over the buffer, each in minibatches of `minibatch_size` transitions per agent (the FNN
draws transitions, the GRU draws sequences of `sequence_length` steps: 32 = 4 sequences of 8, trained with
truncated BPTT from the recurrent state stored at each sequence start). Per agent and minibatch: advantages are
normalised, the policy loss is the clipped surrogate, the value loss 0.5 * max((v - R)^2, (v_clip - R)^2) with
v_clip = v_old + clip(v - v_old, -eps, eps), and loss = policy - entropy_coef * entropy + value_coef * value.
The group's loss is the SUM of the agents' losses, so agent k's gradient is exactly its gradient when training
alone, and one Adam over the stacked tensors (elementwise, each agent's slice stepped as a tensor of its own)
equals K separate Adams. Learning rate and clip epsilon decay linearly from their initial values towards 0 over
`total_timesteps // buffer_size` updates (a training run passes the paper's 4M steps whatever its length:
`RunConfig.anneal_timesteps`).

Randomness is per agent (counter-based streams, see `dials_lib.seeding`): action sampling, minibatch shuffling
and initial weights depend only on (seed, agent id), so results do not depend on how agents are grouped into
workers. The stateless PPO math (GAE, losses, schedules, action sampling) lives in `dials_lib.learning.ppo_core`.

Choices where neither the paper nor its hyperparameter table says (common PPO practice, e.g. OpenAI baselines'
ppo2): actor and critic share the body; the 0.5 factor in the value loss; advantages normalised with the
population standard deviation + 1e-8; Adam epsilon 1e-5; an episode end at the horizon is treated as terminal
(no bootstrap from the value of the last state, as those implementations do for time limits); orthogonal
initialisation (see `networks`). Acting uses a transposed copy of the weights (rebuilt after every change
of the parameters) because batched matrix-vector products are faster in that layout.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dials_lib.hyperparameters import PolicyConfig, PPOConfig
from dials_lib.learning.adam import Adam
from dials_lib.learning.networks import StackedPolicy, make_policy
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo_core import (
    clip_grad_norm_per_agent,
    linear_decay,
    ppo_losses,
    sample_actions,
    segment_gae,
)
from dials_lib.seeding import CounterStream, Stream, agent_keys, agent_seeds, counter_uniforms

ADAM_EPS = 1e-5
"""Adam epsilon of the policy optimiser (the value common PPO implementations use)."""


class PPOGroup:
    """K independent PPO learners with stacked weights: one batched forward/backward for all of them."""

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_actions: int,
        policy_config: PolicyConfig,
        ppo_config: PPOConfig,
        total_timesteps: int,
        seed: int | Sequence[int] = 0,
        agent_ids: Sequence[int] | None = None,
    ) -> None:
        """K = `n_agents` learners; `seed` is the run seed of all of them, or one per agent for a group that stacks
        the agents of several runs (consecutive agents with one seed are one run). `total_timesteps` is the length
        of the learning-rate and clip decay."""
        if n_agents < 1:
            raise ValueError(f"n_agents must be a positive integer; got {n_agents}")
        if total_timesteps < ppo_config.buffer_size:
            raise ValueError(
                f"total_timesteps ({total_timesteps}) must be at least buffer_size ({ppo_config.buffer_size})"
            )
        self.n_agents, self.obs_dim, self.n_actions = n_agents, obs_dim, n_actions
        self.policy_config, self.config = policy_config, ppo_config
        self.seed: int | list[int] = int(seed) if isinstance(seed, int | np.integer) else agent_seeds(seed, n_agents)
        self.total_timesteps = total_timesteps
        self.total_updates = total_timesteps // ppo_config.buffer_size
        self.agent_ids = list(range(n_agents)) if agent_ids is None else [int(a) for a in agent_ids]
        self.policy: StackedPolicy = make_policy(policy_config, n_agents, obs_dim, n_actions, seed, self.agent_ids)
        self.chunk_length = policy_config.sequence_length if self.policy.recurrent else 1
        self._check_sizes()
        self.optimizer = Adam(self.policy.parameters(), lr=ppo_config.learning_rate, eps=ADAM_EPS, fused=True,
                              per_agent=True)
        self.n_updates = 0
        self._action_keys = agent_keys(seed, self.agent_ids, Stream.ACTIONS)
        self._action_stream = CounterStream(self._action_keys, width=1)
        self._shuffle_keys = agent_keys(seed, self.agent_ids, Stream.MINIBATCH_ORDER)
        self.act_count = np.zeros(n_agents, dtype=np.uint64)
        self.actor = PolicyActor(self.policy, obs_dim, seed, self.agent_ids)
        self._allocate_buffer()
        self.reset_episodes()

    def _check_sizes(self) -> None:
        cfg, chunk = self.config, self.chunk_length
        if cfg.buffer_size % cfg.rollout_steps:
            raise ValueError(
                f"buffer_size ({cfg.buffer_size}) must be a multiple of rollout_steps ({cfg.rollout_steps})"
            )
        if cfg.buffer_size % cfg.minibatch_size or cfg.minibatch_size % chunk:
            raise ValueError(
                f"minibatch_size ({cfg.minibatch_size}) must divide buffer_size ({cfg.buffer_size}) and be a "
                f"multiple of the policy's sequence_length ({chunk})"
            )

    def _allocate_buffer(self) -> None:
        # numpy arrays, written a step at a time (cheap), read by the update as torch views of the same memory
        k, n = self.n_agents, self.config.buffer_size
        self._obs = np.zeros((k, n, self.obs_dim), dtype=np.float32)
        self._actions = np.zeros((k, n), dtype=np.int64)
        self._logp, self._values = np.zeros((k, n), dtype=np.float32), np.zeros((k, n), dtype=np.float32)
        self._rewards, self._dones, self._starts = (np.zeros((k, n), dtype=np.float32) for _ in range(3))
        self._hiddens = np.zeros((k, n, self.policy.hidden_size), dtype=np.float32)
        self._pos = 0

    # ---- acting -------------------------------------------------------------------------------------------
    @property
    def eval_count(self) -> np.ndarray:
        """Per-agent counters of the evaluation stream (held by the actor)."""
        return self.actor.eval_count

    def _weights(self) -> list[Any]:
        return self.actor.weights()

    def reset_episodes(self) -> None:
        """Mark the next step as every agent's episode start (recurrent state back to 0)."""
        self._hidden = torch.zeros(self.n_agents, self.policy.hidden_size)
        self._episode_start = np.ones(self.n_agents, dtype=np.float32)

    def initial_hidden(self) -> torch.Tensor:
        """A zero recurrent state [K, H] (H = 0 for the FNN policy), for `act_eval` at an episode start."""
        return self.actor.initial_hidden()

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Sample every agent's action for obs [K, obs_dim] and record the step in the buffer; int64 [K]."""
        if self._pos == self.config.buffer_size:
            raise RuntimeError("the rollout buffer is full: call update(next_obs) before acting again")
        obs = self.actor.obs_array(obs)
        logits, value, hidden = self.policy.step(torch.from_numpy(obs), self._hidden, self._weights())
        actions, logp = sample_actions(logits.numpy(), self._action_uniforms())
        t = self._pos
        self._obs[:, t], self._actions[:, t], self._logp[:, t], self._values[:, t] = obs, actions, logp, value.numpy()
        self._hiddens[:, t], self._starts[:, t] = self._hidden.numpy(), self._episode_start
        self._hidden = hidden
        return actions

    def _action_uniforms(self) -> np.ndarray:
        """This step's uniform per agent of the action streams, as float32 [K]; the counters advance."""
        uniforms = self._action_stream.of_counters(self.act_count)[:, 0]
        self.act_count += np.uint64(1)
        return uniforms.astype(np.float32)

    def observe(self, reward: np.ndarray | torch.Tensor, done: np.ndarray | torch.Tensor) -> None:
        """Record the reward [K] and episode end [K] of the step just taken with `act`."""
        if self._pos == self.config.buffer_size:
            raise RuntimeError("observe() called twice for one act(): the rollout buffer is already full")
        done = np.broadcast_to(np.asarray(done, dtype=np.float32), (self.n_agents,))
        self._rewards[:, self._pos] = np.asarray(reward)
        self._dones[:, self._pos] = done
        self._pos += 1
        self._episode_start = done.copy()
        if done.any():  # the recurrent state restarts at 0 where an episode ended (times 1 elsewhere: exact)
            self._hidden = self._hidden * torch.from_numpy(1.0 - done)[:, None]

    def ready(self) -> bool:
        """True when the buffer holds buffer_size transitions per agent (time to call `update`)."""
        return self._pos == self.config.buffer_size

    def act_eval(
        self, obs: np.ndarray | torch.Tensor, hidden: torch.Tensor | None = None, greedy: bool = False
    ) -> tuple[np.ndarray, torch.Tensor]:
        """Evaluation actions without touching the training buffer or streams (see `PolicyActor.act_eval`)."""
        return self.actor.act_eval(obs, hidden, greedy)

    # ---- learning -----------------------------------------------------------------------------------------
    def schedule(self, update_index: int | None = None) -> tuple[float, float]:
        """(learning rate, clip epsilon) used by update number `update_index` (default: the next update)."""
        i = self.n_updates if update_index is None else update_index
        if not self.config.anneal:
            return self.config.learning_rate, self.config.clip_eps
        return (
            linear_decay(self.config.learning_rate, i, self.total_updates),
            linear_decay(self.config.clip_eps, i, self.total_updates),
        )

    def _permutations(self, epoch: int, n_chunks: int) -> torch.Tensor:
        """Each agent's own random order of the buffer's chunks for this epoch: int64 [K, n_chunks]."""
        base = (self.n_updates * self.config.epochs + epoch) * n_chunks
        counters = np.broadcast_to(np.arange(base, base + n_chunks, dtype=np.uint64), (self.n_agents, n_chunks))
        return torch.from_numpy(np.argsort(counter_uniforms(self._shuffle_keys, counters), axis=1))

    def update(self, next_obs: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """One PPO update on the full buffer; returns per-agent metrics (arrays [K]) and the lr and clip used."""
        if not self.ready():
            raise RuntimeError(f"update() needs a full buffer: {self._pos} of {self.config.buffer_size} steps")
        cfg, k = self.config, self.n_agents
        with torch.no_grad():
            _, last_value, _ = self.policy.step(torch.from_numpy(self.actor.obs_array(next_obs)), self._hidden,
                                                self._weights())
        obs, actions, logp, values, rewards, dones, starts, hiddens = (torch.from_numpy(x) for x in (
            self._obs, self._actions, self._logp, self._values, self._rewards, self._dones, self._starts,
            self._hiddens))
        advantages, returns = segment_gae(rewards, values, dones, last_value, cfg.gamma, cfg.gae_lambda,
                                          cfg.rollout_steps)
        lr, clip = self.schedule()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        length = self.chunk_length
        n_chunks, per_minibatch = cfg.buffer_size // length, cfg.minibatch_size // length

        def chunks(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(k, n_chunks, length, *x.shape[2:])

        data = [chunks(x) for x in (obs, actions, logp, values, advantages, returns)]
        starts, hidden0 = chunks(starts), chunks(hiddens)[:, :, 0]
        rows = torch.arange(k)[:, None]
        totals: dict[str, torch.Tensor] = {}
        for epoch in range(cfg.epochs):
            order = self._permutations(epoch, n_chunks)
            for first in range(0, n_chunks, per_minibatch):
                idx = order[:, first : first + per_minibatch]
                obs, actions, old_logp, old_values, adv, ret = (x[rows, idx] for x in data)
                logits, values = self.policy.sequences(obs, hidden0[rows, idx], starts[rows, idx])
                losses = ppo_losses(logits, values, actions, old_logp, old_values, adv, ret, clip, cfg)
                self.optimizer.zero_grad(set_to_none=True)
                losses["loss"].sum().backward()
                if cfg.max_grad_norm is not None:
                    clip_grad_norm_per_agent(self.policy, cfg.max_grad_norm)
                self.optimizer.step()
                self.actor.invalidate()
                for name, value in losses.items():
                    totals[name] = totals.get(name, 0.0) + value.detach()
        self.n_updates += 1
        self._pos = 0
        n_minibatches = cfg.epochs * n_chunks // per_minibatch
        metrics = {name: (total / n_minibatches).numpy() for name, total in totals.items()}
        metrics["learning_rate"], metrics["clip_eps"] = np.full(k, lr), np.full(k, clip)
        return metrics

    # ---- saving -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after an update: weights, Adam state, counters (not the rollout buffer).

        A snapshot: deep copies, never views of the live tensors (torch's own state dicts share storage). Every
        tensor and counter array has the agents on its first axis: see `concat_states` and `slice_state`.
        """
        return copy.deepcopy(
            {
                "agent_ids": list(self.agent_ids),
                "seed": self.seed,
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "n_updates": self.n_updates,
                "act_count": self.act_count.copy(),
                "eval_count": self.eval_count.copy(),
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` of a group with the same agents; the buffer and episodes start afresh."""
        if list(state["agent_ids"]) != self.agent_ids or state["seed"] != self.seed:
            raise ValueError(
                f"state is for agents {state['agent_ids']} with seed {state['seed']}; this group holds agents "
                f"{self.agent_ids} with seed {self.seed}"
            )
        state = copy.deepcopy(state)  # the optimiser would otherwise keep the given tensors as its own
        self.policy.load_state_dict(state["policy"])
        self.actor.invalidate()
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_updates = int(state["n_updates"])
        self.act_count = np.array(state["act_count"], dtype=np.uint64)
        self.actor.eval_count = np.array(state["eval_count"], dtype=np.uint64)
        self._pos = 0
        self.reset_episodes()


def _agent_seeds_of(state: dict[str, Any]) -> list[int]:
    return agent_seeds(state["seed"], len(state["agent_ids"]))


def _one_seed_if_possible(seeds: list[int]) -> int | list[int]:
    """The seed of a state: one int when its agents belong to one run, else one per agent."""
    return seeds[0] if len(set(seeds)) == 1 else seeds


def concat_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The PPO state of the agents of several groups together, in order: groups of one run, or of runs that differ
    only in seed (then the joined state has one seed per agent). All must be at the same update.

    Weights, Adam moments and counters are concatenated along the agent axis; Adam's step count and the
    learning settings are shared by the groups and taken once."""
    first = states[0]
    for other in states[1:]:
        if other["n_updates"] != first["n_updates"]:
            raise ValueError(f"cannot concatenate states after {other['n_updates']} and {first['n_updates']} "
                             "updates: not groups of runs that train in step")
    moments = {
        index: {**entry, "exp_avg": torch.cat([s["optimizer"]["state"][index]["exp_avg"] for s in states]),
                "exp_avg_sq": torch.cat([s["optimizer"]["state"][index]["exp_avg_sq"] for s in states])}
        for index, entry in first["optimizer"]["state"].items()
    }
    return {
        "agent_ids": [a for s in states for a in s["agent_ids"]],
        "seed": _one_seed_if_possible([seed for s in states for seed in _agent_seeds_of(s)]),
        "policy": {name: torch.cat([s["policy"][name] for s in states]) for name in first["policy"]},
        "optimizer": {"state": moments, "param_groups": copy.deepcopy(first["optimizer"]["param_groups"])},
        "n_updates": first["n_updates"],
        "act_count": np.concatenate([s["act_count"] for s in states]),
        "eval_count": np.concatenate([s["eval_count"] for s in states]),
    }


def slice_state(state: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
    """The PPO state of agents lo..hi-1 (positions in the state, not ids) of `state`, as copies."""
    moments = {index: {**entry, "step": entry["step"].clone(), "exp_avg": entry["exp_avg"][lo:hi].clone(),
                       "exp_avg_sq": entry["exp_avg_sq"][lo:hi].clone()}
               for index, entry in state["optimizer"]["state"].items()}
    return {
        "agent_ids": list(state["agent_ids"][lo:hi]),
        "seed": _one_seed_if_possible(_agent_seeds_of(state)[lo:hi]),
        "policy": {name: tensor[lo:hi].clone() for name, tensor in state["policy"].items()},
        "optimizer": {"state": moments, "param_groups": copy.deepcopy(state["optimizer"]["param_groups"])},
        "n_updates": state["n_updates"],
        "act_count": state["act_count"][lo:hi].copy(),
        "eval_count": state["eval_count"][lo:hi].copy(),
    }


__all__ = ["ADAM_EPS", "PPOGroup", "concat_states", "slice_state"]

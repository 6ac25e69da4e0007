"""The acting part of K agents' policies: weights and evaluation streams, no rollout buffer, no optimiser.

`PPOGroup` (the learner, `dials_lib.learning.ppo`) owns one `PolicyActor` over its live parameters and samples its
training actions through it. Evaluation and GS data collection need only the acting part: they build a
`PolicyActor.from_state` over the concatenated PPO states of all worker groups (`ppo.concat_states`), taking the
weights as they are (no initialisation, no copy per parameter), and hand the advanced evaluation counters back
to the groups with `eval_counts_of`.

Acting uses a transposed copy of the weights (`StackedPolicy.rollout_weights`), rebuilt after any change of the
parameters (`invalidate`), because batched matrix-vector products are faster in that layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dials_lib.hyperparameters import PolicyConfig
from dials_lib.learning.networks import StackedPolicy, empty_policy
from dials_lib.learning.ppo_core import sample_actions
from dials_lib.seeding import CounterStream, Stream, agent_keys


class PolicyActor:
    """K agents' policies for acting: `act_eval` samples (or takes the greedy action) from a separate stream."""

    def __init__(self, policy: StackedPolicy, obs_dim: int, seed: int | Sequence[int], agent_ids: Sequence[int],
                 eval_count: np.ndarray | None = None) -> None:
        self.policy, self.obs_dim, self.seed = policy, obs_dim, seed
        self.agent_ids = [int(a) for a in agent_ids]
        self.n_agents = len(self.agent_ids)
        self.eval_keys = agent_keys(seed, self.agent_ids, Stream.EVAL_ACTIONS)
        self._eval_stream = CounterStream(self.eval_keys, width=1)
        self.eval_count = (np.zeros(self.n_agents, dtype=np.uint64) if eval_count is None
                           else np.array(eval_count, dtype=np.uint64))
        self._weights: list[Any] | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any], config: PolicyConfig, obs_dim: int, n_actions: int) -> PolicyActor:
        """An actor over the policy weights of a PPO state dict (`PPOGroup.state_dict` or `concat_states`)."""
        agent_ids = list(state["agent_ids"])
        policy = empty_policy(config, len(agent_ids), obs_dim, n_actions)
        policy.load_state_dict(state["policy"], assign=True)  # the state's tensors become the parameters
        return cls(policy, obs_dim, state["seed"], agent_ids, state["eval_count"])

    @property
    def hidden_size(self) -> int:
        """Width H of the recurrent state (0 for the FNN policy)."""
        return self.policy.hidden_size

    def weights(self) -> list[Any]:
        """The policy's transposed inference weights, rebuilt after `invalidate`."""
        if self._weights is None:
            self._weights = self.policy.rollout_weights()
        return self._weights

    def invalidate(self) -> None:
        """The parameters changed: rebuild the inference weights before the next step."""
        self._weights = None

    def initial_hidden(self) -> torch.Tensor:
        """A zero recurrent state [K, H] (H = 0 for the FNN policy), for an episode start."""
        return torch.zeros(self.n_agents, self.policy.hidden_size)

    def obs_array(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """obs as a float32 array [K, obs_dim], or a clear error naming the expected shape."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != (self.n_agents, self.obs_dim):
            raise ValueError(f"obs must have shape ({self.n_agents}, {self.obs_dim}); got {tuple(obs.shape)}")
        return obs

    @torch.no_grad()
    def act_eval(
        self, obs: np.ndarray | torch.Tensor, hidden: torch.Tensor | None = None, greedy: bool = False
    ) -> tuple[np.ndarray, torch.Tensor]:
        """Actions [K] and next recurrent state for `obs` [K, obs_dim]; pass hidden=None at an episode start.

        Stochastic by default (the evaluation stream, whose counters advance); greedy=True takes the most likely
        action and draws nothing."""
        hidden = self.initial_hidden() if hidden is None else hidden
        logits, _, next_hidden = self.policy.step(torch.from_numpy(self.obs_array(obs)), hidden, self.weights())
        if greedy:
            return logits.argmax(dim=-1).numpy(), next_hidden
        uniforms = self._eval_stream.of_counters(self.eval_count)[:, 0]
        self.eval_count += np.uint64(1)
        actions, _ = sample_actions(logits.numpy(), uniforms.astype(np.float32))
        return actions, next_hidden


__all__ = ["PolicyActor"]

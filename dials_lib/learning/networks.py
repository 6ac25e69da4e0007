"""Actor-critic networks for a group of K agents, with stacked per-agent weights.

Every agent has its own parameters: agents never share weights (many MARL libraries share one network across
agents; DIALS trains fully independent learners, so we do not). For speed, the K agents' copies of a layer are
stored as one tensor with a leading agent axis, e.g. a linear layer's weight is [K, in, out], and applied to a
batch [K, B, in] with one `torch.baddbmm`. Agent k's slice gives exactly the numbers a standard `torch.nn`
network with the same weights would give (tests/test_ppo.py checks values and gradients against `nn.Linear`,
`nn.GRUCell` and `nn.GRU`).

Two policies, as in the paper (Table 5), each with an actor head (action logits) and a critic head (state value)
on a shared body:
- `StackedFNNPolicy`: obs -> 256 -> 128 (ReLU) -> heads (traffic).
- `StackedGRUPolicy`: obs -> 256 (ReLU) -> GRU with 128 units -> heads (warehouse). The GRU cell is written out
  with PyTorch's gate order and equations (reset r, update z, new n), so it equals `nn.GRUCell` with the same
  weights. Training runs it over sequences through `GRUSequence`, whose backward pass is written by hand.

Two paths through each policy: `sequences(...)` for training (autograd, weights [K, in, out], batches of
transitions or sequences per agent) and `step(...)` for acting (no gradients, one observation per agent, using
`rollout_weights()`: numpy copies of the weights transposed to [K, out, in] and of the biases). Acting multiplies
with numpy's stacked `matmul`, one BLAS matrix-vector product per agent: at K = 4-32 agents and the paper's layer
sizes that is 4-10x faster than `torch.baddbmm` (benchmarks/results/ppo.md), and the [K, out, in] layout streams
each row of a weight matrix. Its float32 results differ from the training path's by rounding only (tests compare
them to 1e-6); they do not depend on K (one product per agent), so stacked agents act exactly as alone. The
caller rebuilds the copies whenever the parameters change (`PPOGroup` does so after every optimiser step and
load).

Initialisation (as in common PPO implementations): orthogonal weights with gain sqrt(2) for hidden layers, 0.01
for the actor head and 1 for the critic head, zero biases; GRU input and recurrent matrices orthogonal per gate
block with gain 1. Agent k's initial weights depend only on (seed, agent id), through the torch generator of its
`Stream.POLICY_INIT` stream (`dials_lib.seeding.agent_generator`), so a group of K agents starts exactly like K
groups of one agent each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from dials_lib.hyperparameters import PolicyConfig
from dials_lib.seeding import Stream, agent_generator, agent_seeds
from dials_lib.validation import check_choice

POLICY_ARCHITECTURES: tuple[str, ...] = ("fnn", "gru")


class StackedLinear(nn.Module):
    """K independent linear layers: weight [K, in, out], bias [K, 1, out]; input [K, B, in] -> [K, B, out]."""

    def __init__(self, n_agents: int, in_features: int, out_features: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.gain = gain
        self.weight = nn.Parameter(torch.zeros(n_agents, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(n_agents, 1, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Agent k's output is x[k] @ weight[k] + bias[k], for x [K, B, in]."""
        return torch.baddbmm(self.bias, x, self.weight)

    def rollout_weight(self) -> tuple[np.ndarray, np.ndarray]:
        """Numpy copies for `step`: the weight as [K, out, in] (read row by row by a matrix-vector product) and the
        bias as [K, out]."""
        return (self.weight.detach().transpose(1, 2).contiguous().numpy(),
                self.bias.detach()[:, 0].numpy().copy())

    def step(self, x: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Inference on one input per agent: x float32 [K, in] -> [K, out], with `weights` from `rollout_weight()`."""
        return stacked_matvec(weights[0], x) + weights[1]

    @torch.no_grad()
    def init_agent(self, k: int, generator: torch.Generator) -> None:
        """Orthogonal weights (drawn in nn.Linear's [out, in] layout) and zero bias for agent k."""
        weight = torch.empty(self.weight.shape[2], self.weight.shape[1])
        nn.init.orthogonal_(weight, gain=self.gain, generator=generator)
        self.weight[k] = weight.T
        self.bias[k] = 0.0


class StackedGRUCell(nn.Module):
    """K independent GRU cells with PyTorch's equations; weights [K, in, 3H] and [K, H, 3H], gates (r, z, n)."""

    def __init__(self, n_agents: int, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.zeros(n_agents, input_size, 3 * hidden_size))
        self.weight_hh = nn.Parameter(torch.zeros(n_agents, hidden_size, 3 * hidden_size))
        self.bias_ih = nn.Parameter(torch.zeros(n_agents, 1, 3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(n_agents, 1, 3 * hidden_size))

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The input part of all three gates, W_i x + b_i: [K, B, in] -> [K, B, 3H] (batched over time)."""
        return torch.baddbmm(self.bias_ih, x, self.weight_ih)

    def cell(self, gates_x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step from precomputed input gates [K, B, 3H] and hidden state [K, B, H] to the next hidden state."""
        return gru_gates(gates_x, torch.baddbmm(self.bias_hh, h, self.weight_hh), h)

    def rollout_weights(self) -> tuple[np.ndarray, ...]:
        """Numpy copies for `step`: weights as [K, 3H, in] and [K, 3H, H], biases as [K, 3H]."""
        return (
            self.weight_ih.detach().transpose(1, 2).contiguous().numpy(),
            self.weight_hh.detach().transpose(1, 2).contiguous().numpy(),
            self.bias_ih.detach()[:, 0].numpy().copy(),
            self.bias_hh.detach()[:, 0].numpy().copy(),
        )

    def step(self, x: np.ndarray, h: torch.Tensor, weights: tuple[np.ndarray, ...]) -> torch.Tensor:
        """Inference on one input per agent: x float32 [K, in], h [K, H] -> next h [K, H]."""
        weight_ih, weight_hh, bias_ih, bias_hh = weights
        gates_x = torch.from_numpy(stacked_matvec(weight_ih, x) + bias_ih)
        gates_h = torch.from_numpy(stacked_matvec(weight_hh, h.numpy()) + bias_hh)
        return gru_gates(gates_x, gates_h, h)

    @torch.no_grad()
    def init_agent(self, k: int, generator: torch.Generator) -> None:
        """Orthogonal [H, in] and [H, H] blocks per gate (gain 1), zero biases, for agent k."""
        hidden = self.hidden_size
        for weight in (self.weight_ih, self.weight_hh):
            for gate in range(3):
                block = torch.empty(hidden, weight.shape[1])
                nn.init.orthogonal_(block, gain=1.0, generator=generator)
                weight[k, :, gate * hidden : (gate + 1) * hidden] = block.T
        self.bias_ih[k] = 0.0
        self.bias_hh[k] = 0.0


def stacked_matvec(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One matrix-vector product per agent: weights [K, out, in] and x [K, in] -> [K, out] (float32)."""
    return np.matmul(weights, x[:, :, None])[:, :, 0]


def gru_gates(gates_x: torch.Tensor, gates_h: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """PyTorch's GRU update from the input part (W_i x + b_i) and hidden part (W_h h + b_h) of the gates (r, z, n)."""
    x_r, x_z, x_n = gates_x.chunk(3, dim=-1)
    h_r, h_z, h_n = gates_h.chunk(3, dim=-1)
    reset = torch.sigmoid(x_r + h_r)
    update = torch.sigmoid(x_z + h_z)
    new = torch.tanh(x_n + reset * h_n)
    return new + update * (h - new)  # = (1 - z) * n + z * h


class GRUSequence(torch.autograd.Function):
    """The stacked GRU over S sequences of L steps, with a hand-written backward pass (truncated BPTT).

    Same numbers as stepping `StackedGRUCell.cell` L times under autograd (tests compare the gradients with
    nn.GRU), but faster: backwards through time only the hidden-state gradient goes through the recurrent
    matrix at each step, and the recurrent weight gradient is one batched product over all S * L steps instead
    of L small ones accumulated one by one.
    Inputs: gates_x [K, S, L, 3H] (W_i x + b_i), h0 [K, S, H], keep [K, S, L, 1] (0 where the state is reset
    before the step), weight_hh [K, H, 3H], bias_hh [K, 1, 3H]. Output: hidden states [K, S, L, H].
    """

    @staticmethod
    def forward(
        ctx: Any,
        gates_x: torch.Tensor,
        h0: torch.Tensor,
        keep: torch.Tensor,
        weight_hh: torch.Tensor,
        bias_hh: torch.Tensor,
    ) -> torch.Tensor:
        """Run the recurrence, saving each step's gates for the backward pass."""
        h = h0
        # written in place step by step: stacking a list of steps at the end would hold them twice (for the AIPs
        # of a 10-agent group, 32 whole episodes per minibatch, that is 50 MB more at the peak)
        steps = torch.empty(6, *gates_x.shape[:3], h0.shape[-1], dtype=gates_x.dtype)  # [6, K, S, L, H]
        for t in range(gates_x.shape[2]):
            h_in = h * keep[:, :, t]
            h_r, h_z, h_n = torch.baddbmm(bias_hh, h_in, weight_hh).chunk(3, dim=-1)
            x_r, x_z, x_n = gates_x[:, :, t].chunk(3, dim=-1)
            reset = torch.sigmoid(x_r + h_r)
            update = torch.sigmoid(x_z + h_z)
            new = torch.tanh(x_n + reset * h_n)
            h = new + update * (h_in - new)
            torch.stack((h_in, reset, update, new, h_n, h), out=steps[:, :, :, t])
        ctx.save_for_backward(steps, keep, weight_hh)
        return steps[5]

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Backpropagate through time; returns gradients for gates_x, h0, keep (none), weight_hh and bias_hh."""
        steps, keep, weight_hh = ctx.saved_tensors
        h_ins, resets, updates, news, h_ns = steps[:5]
        weight_t = weight_hh.mT
        grad_gates_x = torch.empty(*grad_out.shape[:3], 3 * grad_out.shape[3], dtype=grad_out.dtype)
        grad_gates_h = torch.empty_like(grad_gates_x)
        grad_h = torch.zeros_like(grad_out[:, :, 0])
        for t in range(grad_out.shape[2] - 1, -1, -1):
            grad_h = grad_h + grad_out[:, :, t]
            reset, update, new = resets[:, :, t], updates[:, :, t], news[:, :, t]
            grad_new = grad_h * (1.0 - update) * (1.0 - new * new)
            grad_update = grad_h * (h_ins[:, :, t] - new) * update * (1.0 - update)
            grad_reset = grad_new * h_ns[:, :, t] * reset * (1.0 - reset)
            grad_gates_x[:, :, t] = torch.cat((grad_reset, grad_update, grad_new), dim=-1)
            grad_gates_h[:, :, t] = torch.cat((grad_reset, grad_update, grad_new * reset), dim=-1)
            grad_h_in = grad_h * update + torch.bmm(grad_gates_h[:, :, t], weight_t)
            grad_h = grad_h_in * keep[:, :, t]
        n_agents, hidden = grad_out.shape[0], grad_out.shape[3]
        flat_gates_h = grad_gates_h.reshape(n_agents, -1, 3 * hidden)
        grad_weight = torch.bmm(h_ins.reshape(n_agents, -1, hidden).mT, flat_gates_h)
        grad_bias = flat_gates_h.sum(dim=1, keepdim=True)
        return grad_gates_x, grad_h, None, grad_weight, grad_bias


class StackedFNNPolicy(nn.Module):
    """Feed-forward actor-critic for K agents: ReLU layers (256, 128 in the paper), actor and critic heads."""

    recurrent = False

    def __init__(self, n_agents: int, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        sizes = [obs_dim, *hidden_sizes]
        self.body = nn.ModuleList(StackedLinear(n_agents, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.actor = StackedLinear(n_agents, sizes[-1], n_actions, gain=0.01)
        self.critic = StackedLinear(n_agents, sizes[-1], 1, gain=1.0)
        self.hidden_size = 0

    def rollout_weights(self) -> list[Any]:
        """Numpy copies of all weights and biases, for `step` (refresh them after every weight change)."""
        return [layer.rollout_weight() for layer in self.layers_in_init_order()]

    @torch.no_grad()
    def step(
        self, obs: torch.Tensor, hidden: torch.Tensor, weights: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inference, one observation per agent: logits [K, A], values [K] and the (empty) next hidden state."""
        x = obs.numpy()
        for layer, layer_weights in zip(self.body, weights, strict=False):
            x = np.maximum(layer.step(x, layer_weights), 0.0)
        logits = torch.from_numpy(self.actor.step(x, weights[-2]))
        return logits, torch.from_numpy(self.critic.step(x, weights[-1])[:, 0]), hidden

    def sequences(
        self, obs: torch.Tensor, hidden0: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [K, S, L, A] and values [K, S, L] for obs [K, S, L, obs_dim] (no memory: L is just a batch axis)."""
        n_agents, n_seq, length, obs_dim = obs.shape
        x = obs.reshape(n_agents, n_seq * length, obs_dim)
        for layer in self.body:
            x = torch.relu(layer(x))
        logits = self.actor(x).reshape(n_agents, n_seq, length, -1)
        return logits, self.critic(x).reshape(n_agents, n_seq, length)

    def layers_in_init_order(self) -> list[nn.Module]:
        """The layers, in the order their per-agent initial weights are drawn."""
        return [*self.body, self.actor, self.critic]


class StackedGRUPolicy(nn.Module):
    """Recurrent actor-critic for K agents: a ReLU layer (256), a GRU (128), actor and critic heads."""

    recurrent = True

    def __init__(self, n_agents: int, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        if len(hidden_sizes) != 2:
            raise ValueError(f"hidden_sizes of the GRU policy must be (linear width, GRU width); got {hidden_sizes}")
        linear_size, self.hidden_size = hidden_sizes
        self.encoder = StackedLinear(n_agents, obs_dim, linear_size)
        self.gru = StackedGRUCell(n_agents, linear_size, self.hidden_size)
        self.actor = StackedLinear(n_agents, self.hidden_size, n_actions, gain=0.01)
        self.critic = StackedLinear(n_agents, self.hidden_size, 1, gain=1.0)

    def rollout_weights(self) -> list[Any]:
        """Numpy copies of all weights and biases, for `step` (refresh them after every weight change)."""
        return [
            self.encoder.rollout_weight(),
            self.gru.rollout_weights(),
            self.actor.rollout_weight(),
            self.critic.rollout_weight(),
        ]

    @torch.no_grad()
    def step(
        self, obs: torch.Tensor, hidden: torch.Tensor, weights: list[Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inference, one observation per agent: obs [K, obs_dim], hidden [K, H] -> logits [K, A], values [K],
        next hidden [K, H]."""
        h = self.gru.step(np.maximum(self.encoder.step(obs.numpy(), weights[0]), 0.0), hidden, weights[1])
        h_np = h.numpy()
        logits = torch.from_numpy(self.actor.step(h_np, weights[2]))
        return logits, torch.from_numpy(self.critic.step(h_np, weights[3])[:, 0]), h

    def sequences(
        self, obs: torch.Tensor, hidden0: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Truncated BPTT over S sequences of L steps per agent: obs [K, S, L, obs_dim], hidden0 [K, S, H] (the
        stored state at each sequence start), starts [K, S, L] (1 where an episode starts: the state is reset
        to 0 before that step) -> logits [K, S, L, A], values [K, S, L]."""
        n_agents, n_seq, length, obs_dim = obs.shape
        flat = obs.reshape(n_agents, n_seq * length, obs_dim)
        gates_x = self.gru.input_gates(torch.relu(self.encoder(flat))).reshape(n_agents, n_seq, length, -1)
        keep = (1.0 - starts.to(obs.dtype)).unsqueeze(-1)
        out = GRUSequence.apply(gates_x, hidden0, keep, self.gru.weight_hh, self.gru.bias_hh)
        out = out.reshape(n_agents, n_seq * length, self.hidden_size)
        logits = self.actor(out).reshape(n_agents, n_seq, length, -1)
        return logits, self.critic(out).reshape(n_agents, n_seq, length)

    def layers_in_init_order(self) -> list[nn.Module]:
        """The layers, in the order their per-agent initial weights are drawn."""
        return [self.encoder, self.gru, self.actor, self.critic]


StackedPolicy = StackedFNNPolicy | StackedGRUPolicy


def empty_policy(config: PolicyConfig, n_agents: int, obs_dim: int, n_actions: int) -> StackedPolicy:
    """A stacked policy of the configured architecture with zero weights, to load a state dict into."""
    check_choice("policy architecture", config.architecture, POLICY_ARCHITECTURES)
    cls = StackedFNNPolicy if config.architecture == "fnn" else StackedGRUPolicy
    return cls(n_agents, obs_dim, n_actions, config.hidden_sizes)


def make_policy(
    config: PolicyConfig,
    n_agents: int,
    obs_dim: int,
    n_actions: int,
    seed: int | Sequence[int],
    agent_ids: Sequence[int],
) -> StackedPolicy:
    """A stacked policy for `n_agents` agents, agent k initialised from (seed, agent_ids[k]) only (`seed`: the run
    seed, or one per agent)."""
    if len(agent_ids) != n_agents:
        raise ValueError(f"agent_ids must have n_agents={n_agents} entries; got {len(agent_ids)}")
    policy = empty_policy(config, n_agents, obs_dim, n_actions)
    for k, (agent_seed, agent_id) in enumerate(zip(agent_seeds(seed, n_agents), agent_ids, strict=True)):
        generator = agent_generator(agent_seed, int(agent_id), Stream.POLICY_INIT)
        for layer in policy.layers_in_init_order():
            layer.init_agent(k, generator)
    return policy

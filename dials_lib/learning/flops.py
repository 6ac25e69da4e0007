"""Floating-point operations per agent-step of the networks, counted from the hyperparameters alone.

One agent-step of training costs, per agent:
- acting: one forward pass of the policy on the current observation (`PPOGroup.act`);
- the PPO update, amortised over the `buffer_size` steps it follows: `epochs` passes over the buffer, every
  transition once per pass through a forward and a backward pass (`PPOGroup.update`), plus the one forward pass
  that gives the bootstrap value of the observation after the buffer;
- on an influence-augmented local simulator only: one forward pass of the agent's AIP, which predicts the
  influence sources of that step (`dials_lib.learning.ials.IALS.step`).

What is counted: the matrix products of the layers, 2 FLOPs per multiply-add (a product of [B, in] by [in, out]
is 2 * B * in * out FLOPs), which is how `torch.utils.flop_counter.FlopCounterMode` counts them. Bias additions,
activations, the GRU's gate arithmetic, the losses and Adam are elementwise, O(width) per sample against the
products' O(width^2), and are left out: the count is the work a matrix-multiply unit could do, the number to
hold against the machine's matrix-multiply peak.

A backward pass costs two products per layer of the size of its forward one (the gradient of the input and of
the weight), except for the first layer of a network, whose input is data: no gradient of it is computed (autograd
skips it; tests/test_flops.py checks these counts against torch's own counter on the real networks). The GRU's
hand-written backward (`networks.GRUSequence`) also makes two recurrent products per step. For the paper's
networks (`paper_hyperparameters`), per agent-step: traffic 0.81 MFLOP on the GS (acting 0.087, update 0.72) and
0.85 on the IALS (AIP 0.045); warehouse 3.10 on the GS (acting 0.32, update 2.78) and 3.15 on the IALS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dials_lib.envs import EnvSpec
from dials_lib.hyperparameters import AIPConfig, EnvHyperparameters, PolicyConfig, PPOConfig
from dials_lib.learning.influence import n_logits
from dials_lib.validation import check_choice, check_int

Matmul = tuple[int, int]
"""One layer's matrix product per sample: (inputs, outputs) of its weight matrix."""


@dataclass(frozen=True)
class AgentStepFlops:
    """FLOPs (2 per multiply-add) of one agent for one training step, by where they are spent."""

    acting: float
    """The policy's forward pass that picks the step's action."""
    update: float
    """The PPO update's forward and backward passes, divided by the steps collected per update."""
    influence: float
    """The AIP's forward pass of an IALS step (0 on the global simulator)."""

    @property
    def total(self) -> float:
        """Acting + update + influence."""
        return self.acting + self.update + self.influence


def policy_matmuls(config: PolicyConfig, obs_dim: int, n_actions: int) -> list[Matmul]:
    """The matrix products of one forward step of a policy (`networks.StackedFNNPolicy` / `StackedGRUPolicy`),
    first layer first: the body, the GRU's input and recurrent products (3 gates each), the actor and critic
    heads."""
    check_choice("policy architecture", config.architecture, ("fnn", "gru"))
    check_int("obs_dim", obs_dim, 1)
    check_int("n_actions", n_actions, 1)
    if config.architecture == "fnn":
        widths = [obs_dim, *config.hidden_sizes]
        body = list(zip(widths[:-1], widths[1:], strict=True))
    else:
        linear, hidden = config.hidden_sizes
        body = [(obs_dim, linear), (linear, 3 * hidden), (hidden, 3 * hidden)]
    last = config.hidden_sizes[-1]
    return [*body, (last, n_actions), (last, 1)]


def predictor_matmuls(config: AIPConfig, dset_dim: int, source_sizes: Sequence[int]) -> list[Matmul]:
    """The matrix products of one forward step of an AIP (`influence.StackedPredictor`), first layer first:
    `hidden_layers` ReLU layers (FNN) or `hidden_layers - 1` of them and a GRU (input and recurrent products),
    then the head of all sources' logits."""
    check_choice("AIP architecture", config.architecture, ("fnn", "gru"))
    check_int("dset_dim", dset_dim, 1)
    recurrent = config.architecture == "gru"
    widths = [dset_dim] + [config.hidden_size] * (config.hidden_layers - 1 if recurrent else config.hidden_layers)
    layers = list(zip(widths[:-1], widths[1:], strict=True))
    if recurrent:
        layers += [(widths[-1], 3 * config.hidden_size), (config.hidden_size, 3 * config.hidden_size)]
    return [*layers, (config.hidden_size, n_logits(source_sizes))]


def forward_flops(matmuls: Sequence[Matmul]) -> int:
    """FLOPs of a forward pass on one sample: 2 * inputs * outputs per product."""
    return sum(2 * inputs * outputs for inputs, outputs in matmuls)


def backward_flops(matmuls: Sequence[Matmul]) -> int:
    """FLOPs of a backward pass on one sample: the gradients of every product's input and weight (each the size
    of the forward product), but no input gradient for the first product (its input is data)."""
    first_inputs, first_outputs = matmuls[0]
    return 2 * forward_flops(matmuls) - 2 * first_inputs * first_outputs


def update_flops_per_step(policy: PolicyConfig, ppo: PPOConfig, obs_dim: int, n_actions: int) -> float:
    """FLOPs of one PPO update of one agent divided by the `buffer_size` steps it learns from: `epochs` forward
    and backward passes per transition, and one forward pass for the bootstrap value per update."""
    matmuls = policy_matmuls(policy, obs_dim, n_actions)
    per_transition = ppo.epochs * (forward_flops(matmuls) + backward_flops(matmuls))
    return per_transition + forward_flops(matmuls) / ppo.buffer_size


def agent_step_flops(hp: EnvHyperparameters, spec: EnvSpec, on_ials: bool) -> AgentStepFlops:
    """FLOPs of one agent-step of training with hyperparameters `hp` on an environment of sizes `spec`, on the
    global simulator (`on_ials=False`) or on an IALS (an AIP forward pass per step as well)."""
    policy = policy_matmuls(hp.policy, spec.obs_dim, spec.n_actions)
    aip = predictor_matmuls(hp.aip, spec.dset_dim, spec.source_sizes)
    return AgentStepFlops(
        acting=float(forward_flops(policy)),
        update=update_flops_per_step(hp.policy, hp.ppo, spec.obs_dim, spec.n_actions),
        influence=float(forward_flops(aip)) if on_ials else 0.0,
    )

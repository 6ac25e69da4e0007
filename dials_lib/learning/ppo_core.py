"""The stateless parts of PPO for a group of K agents (arrays with a leading agent axis).

- Action sampling from the policy's logits with one uniform per agent (the uniforms and the inverse-CDF rule
  come from `dials_lib.seeding`).
- Linear decay of the learning rate and clip epsilon.
- GAE over consecutive segments of T steps (the paper's "rollout steps", the value-bootstrap horizon).
- The clipped PPO losses, one per agent, and a per-agent gradient-norm clip.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from dials_lib.hyperparameters import PPOConfig
from dials_lib.seeding import inverse_cdf

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def linear_decay(initial: float, update_index: int, total_updates: int) -> float:
    """`initial` scaled by 1 - update_index / total_updates (never below 0): update 0 uses the full value."""
    return initial * max(0.0, 1.0 - update_index / total_updates)


def segment_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    segment_length: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns [K, N] over consecutive segments of `segment_length` steps.

    rewards, values, dones: [K, N] (dones[t] = 1 if the episode ended with step t); last_value: [K], the value of
    the observation after step N-1. Inside a segment this is standard GAE; at a segment's end the recursion stops
    and the value of the next observation is the bootstrap.
    """
    n_agents, n_steps = rewards.shape
    if n_steps % segment_length:
        raise ValueError(f"buffer length {n_steps} must be a multiple of segment_length={segment_length}")
    not_done = 1.0 - dones
    next_values = torch.cat([values[:, 1:], last_value[:, None]], dim=1)
    deltas = (rewards + gamma * next_values * not_done - values).view(n_agents, -1, segment_length)
    decay = (gamma * lam * not_done).view(n_agents, -1, segment_length)
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[:, :, 0])
    for t in range(segment_length - 1, -1, -1):
        running = deltas[:, :, t] + decay[:, :, t] * running
        advantages[:, :, t] = running
    advantages = advantages.view(n_agents, n_steps)
    return advantages, advantages + values


def sample_actions(logits: Array, uniforms: Array) -> tuple[Array, Array]:
    """Inverse-CDF sampling, one uniform per row: logits [K, A], uniforms [K] -> actions [K] and log-probs [K].

    Torch tensors or numpy arrays (then numpy out). Either way the log-probabilities and the cdf are torch's
    `log_softmax`, `exp` and `cumsum` (on a view of the array), so both give the same numbers; the comparisons and
    the pick of each row's log-probability are exact in either library."""
    if isinstance(logits, np.ndarray):
        log_probs_t = torch.log_softmax(torch.from_numpy(logits), dim=-1)
        cdf, log_probs = log_probs_t.exp().cumsum(dim=-1).numpy(), log_probs_t.numpy()
        actions = inverse_cdf(cdf[:, :-1], uniforms)
        return actions, log_probs[np.arange(len(actions)), actions]
    log_probs = torch.log_softmax(logits, dim=-1)
    cdf = log_probs.exp().cumsum(dim=-1)
    actions = inverse_cdf(cdf[:, :-1], uniforms)
    return actions, log_probs.gather(-1, actions[:, None]).squeeze(-1)


def ppo_losses(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip: float,
    config: PPOConfig,
) -> dict[str, torch.Tensor]:
    """Per-agent PPO losses [K] for a minibatch of shape [K, ...] (each agent's mean over its own minibatch)."""
    dims = tuple(range(1, advantages.ndim))
    adv = (advantages - advantages.mean(dim=dims, keepdim=True)) / (
        advantages.std(dim=dims, keepdim=True, correction=0) + 1e-8
    )
    log_probs = torch.log_softmax(logits, dim=-1)
    logp = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1).mean(dim=dims)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - clip, 1.0 + clip)).mean(dim=dims)
    value_error = (values - returns) ** 2
    if config.clip_value:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        value_error = torch.max(value_error, (clipped - returns) ** 2)
    value_loss = 0.5 * value_error.mean(dim=dims)
    loss = policy_loss - config.entropy_coef * entropy + config.value_coef * value_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean(dim=dims)
        clipfrac = ((ratio - 1.0).abs() > clip).float().mean(dim=dims)
    return {
        "loss": loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }


def clip_grad_norm_per_agent(policy: torch.nn.Module, max_norm: float) -> None:
    """Scale each agent's gradient so that its own norm (over all its parameters) is at most `max_norm`."""
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    squared = sum(g.pow(2).flatten(1).sum(dim=1) for g in grads)
    scale = (max_norm / (squared.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))

"""FLOPs per agent-step (dials_lib.learning.flops): hand counts on tiny networks, torch's counter on the real ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dials_lib.envs import EnvSpec, get_spec
from dials_lib.hyperparameters import AIPConfig, EnvHyperparameters, PolicyConfig, PPOConfig, paper_hyperparameters
from dials_lib.learning.flops import (
    agent_step_flops,
    backward_flops,
    forward_flops,
    policy_matmuls,
    predictor_matmuls,
    update_flops_per_step,
)
from dials_lib.learning.influence import make_predictor
from dials_lib.learning.networks import make_policy
from dials_lib.learning.ppo import PPOGroup
from dials_lib.learning.ppo_core import ppo_losses

TINY_FNN = PolicyConfig(architecture="fnn", hidden_sizes=(3, 2))
TINY_GRU = PolicyConfig(architecture="gru", hidden_sizes=(3, 2), sequence_length=2)
TINY_PPO = PPOConfig(rollout_steps=2, buffer_size=4, minibatch_size=2, epochs=2)


def counted(fn: object) -> int:
    """FLOPs torch's counter sees while `fn()` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()  # type: ignore[operator]
    return counter.get_total_flops()


def test_tiny_fnn_policy_by_hand() -> None:
    # obs 4 -> 3 -> 2, heads 2 -> 2 actions and 2 -> 1 value: 12 + 6 + 4 + 2 multiply-adds per sample
    matmuls = policy_matmuls(TINY_FNN, obs_dim=4, n_actions=2)
    assert matmuls == [(4, 3), (3, 2), (2, 2), (2, 1)]
    assert forward_flops(matmuls) == 48
    assert backward_flops(matmuls) == 2 * 48 - 2 * 12  # no gradient of the observations
    # 2 epochs of (forward 48 + backward 72) per transition, and a bootstrap forward per 4-step buffer
    assert update_flops_per_step(TINY_FNN, TINY_PPO, 4, 2) == 2 * (48 + 72) + 48 / 4


def test_tiny_gru_policy_by_hand() -> None:
    # obs 4 -> 3 (ReLU), GRU of 2 units: input 3 -> 3 * 2 gates and recurrent 2 -> 6, heads 2 -> 3 and 2 -> 1
    matmuls = policy_matmuls(TINY_GRU, obs_dim=4, n_actions=3)
    assert matmuls == [(4, 3), (3, 6), (2, 6), (2, 3), (2, 1)]
    assert forward_flops(matmuls) == 2 * (12 + 18 + 12 + 6 + 2)


def test_tiny_predictors_by_hand() -> None:
    fnn = AIPConfig(architecture="fnn", hidden_layers=2, hidden_size=5)
    # sources: two binary (1 logit each) and one of 3 classes (3 logits)
    assert predictor_matmuls(fnn, 4, (2, 2, 3)) == [(4, 5), (5, 5), (5, 5)]
    gru = AIPConfig(architecture="gru", hidden_layers=2, hidden_size=3)
    assert predictor_matmuls(gru, 4, (4, 4)) == [(4, 3), (3, 9), (3, 9), (3, 8)]
    assert forward_flops(predictor_matmuls(gru, 4, (4, 4))) == 2 * (12 + 27 + 27 + 24)


def test_agent_step_adds_the_predictor_only_on_the_ials() -> None:
    hp = EnvHyperparameters(env="traffic", aip=AIPConfig(architecture="fnn", hidden_layers=1, hidden_size=5),
                            policy=TINY_FNN, ppo=TINY_PPO)
    spec = EnvSpec(name="tiny", obs_dim=4, n_actions=2, source_sizes=(2, 2), dset_dim=6, horizon=10)
    on_gs, on_ials = agent_step_flops(hp, spec, on_ials=False), agent_step_flops(hp, spec, on_ials=True)
    assert (on_gs.acting, on_gs.update, on_gs.influence) == (48, 252, 0)
    assert on_ials.influence == 2 * (6 * 5 + 5 * 2)
    assert on_ials.total == on_gs.total + on_ials.influence


def test_paper_networks_per_agent_step() -> None:
    """The numbers the module docstring and the benchmarks quote, from the paper's layer sizes."""
    traffic = agent_step_flops(paper_hyperparameters("traffic"), get_spec("traffic"), on_ials=True)
    assert traffic.acting == 2 * (40 * 256 + 256 * 128 + 128 * 2 + 128)
    assert traffic.influence == 2 * (40 * 128 + 128 * 128 + 128 * 8)
    assert round(traffic.total - traffic.influence) == 807_078
    warehouse = agent_step_flops(paper_hyperparameters("warehouse"), get_spec("warehouse"), on_ials=True)
    assert warehouse.acting == 2 * (37 * 256 + 256 * 384 + 128 * 384 + 128 * 4 + 128)
    assert round(warehouse.total) == 3_152_926


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_forward_and_backward_match_torch_counter(env: str) -> None:
    """One PPO minibatch of the real stacked policy (3 agents): torch counts what the module counts."""
    hp, spec = paper_hyperparameters(env), get_spec(env)
    n_agents, length = 3, hp.policy.sequence_length
    n_seq = hp.ppo.minibatch_size // length
    policy = make_policy(hp.policy, n_agents, spec.obs_dim, spec.n_actions, 0, list(range(n_agents)))
    gen = torch.Generator().manual_seed(0)
    obs = torch.rand(n_agents, n_seq, length, spec.obs_dim, generator=gen)
    hidden0 = torch.zeros(n_agents, n_seq, policy.hidden_size)
    starts = torch.zeros(n_agents, n_seq, length)
    matmuls = policy_matmuls(hp.policy, spec.obs_dim, spec.n_actions)
    samples = n_agents * n_seq * length

    assert counted(lambda: policy.sequences(obs, hidden0, starts)) == samples * forward_flops(matmuls)

    def forward_backward() -> None:
        logits, values = policy.sequences(obs, hidden0, starts)
        actions = torch.randint(spec.n_actions, values.shape, generator=gen)
        zeros = torch.zeros_like(values)
        ppo_losses(logits, values, actions, zeros, zeros, torch.randn(values.shape, generator=gen), zeros, 0.1,
                   hp.ppo)["loss"].sum().backward()

    assert counted(forward_backward) == samples * (forward_flops(matmuls) + backward_flops(matmuls))


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_update_matches_torch_counter(env: str) -> None:
    """A whole `PPOGroup.update` of 2 agents on the paper's settings: epochs x minibatches of forward + backward.

    The bootstrap value's forward pass runs in numpy (`policy.step`), out of torch's sight: the counter sees the
    update's FLOPs less that one forward pass per agent."""
    hp, spec = paper_hyperparameters(env), get_spec(env)
    n_agents = 2
    group = PPOGroup(n_agents, spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, 4_000_000, 0)
    rng = np.random.default_rng(0)
    for t in range(hp.ppo.buffer_size):
        group.act(rng.random((n_agents, spec.obs_dim), dtype=np.float32))
        group.observe(rng.random(n_agents, dtype=np.float32), np.full(n_agents, (t + 1) % 50 == 0))
    next_obs = rng.random((n_agents, spec.obs_dim), dtype=np.float32)
    bootstrap = forward_flops(policy_matmuls(hp.policy, spec.obs_dim, spec.n_actions))
    per_step = update_flops_per_step(hp.policy, hp.ppo, spec.obs_dim, spec.n_actions)
    expected = n_agents * (hp.ppo.buffer_size * per_step - bootstrap)
    assert counted(lambda: group.update(next_obs)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_predictor_step_matches_torch_counter(env: str) -> None:
    hp, spec = paper_hyperparameters(env), get_spec(env)
    n_agents, batch = 3, 5
    model = make_predictor(hp.aip, spec.dset_dim, spec.source_sizes, 0, list(range(n_agents)))
    dsets = torch.rand(n_agents, batch, spec.dset_dim, generator=torch.Generator().manual_seed(1))
    hidden = model.initial_hidden(batch)
    flops = forward_flops(predictor_matmuls(hp.aip, spec.dset_dim, spec.source_sizes))
    with torch.no_grad():
        assert counted(lambda: model.step(dsets, hidden)) == n_agents * batch * flops


def test_unknown_architecture_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="policy architecture 'lstm'.*'fnn', 'gru'"):
        policy_matmuls(PolicyConfig(architecture="lstm"), 4, 2)
    with pytest.raises(ValueError, match="obs_dim must be an integer >= 1"):
        policy_matmuls(TINY_FNN, 0, 2)

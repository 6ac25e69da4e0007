"""Independent PPO for groups of agents: stacked networks equal separate torch.nn networks, GAE, schedules,
per-agent isolation, saving/regrouping, and learning on small tasks with a known optimum."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from dials_lib.envs.traffic import HORIZON, LocalSimulator, hand_coded_actions
from dials_lib.hyperparameters import PolicyConfig, paper_hyperparameters
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo import PPOGroup, concat_states, slice_state
from dials_lib.learning.ppo_core import clip_grad_norm_per_agent, linear_decay, ppo_losses, segment_gae
from dials_lib.learning.ppo_loop import train_steps
from dials_lib.seeding import counter_uniforms
from dials_lib.validation import with_fields

FNN = PolicyConfig(architecture="fnn", hidden_sizes=(256, 128), sequence_length=1)
GRU = PolicyConfig(architecture="gru", hidden_sizes=(256, 128), sequence_length=8)
PPO_FNN = paper_hyperparameters("traffic").ppo
PPO_GRU = paper_hyperparameters("warehouse").ppo
torch.set_num_threads(1)  # the machine is shared: one thread per test process


# ---- reference networks: one standard torch.nn network per agent, with the group's weights ------------------
class ReferenceFNN(nn.Module):
    """A standard single-agent actor-critic MLP."""

    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.actor, self.critic = nn.Linear(128, n_actions), nn.Linear(128, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(obs)
        return self.actor(x), self.critic(x).squeeze(-1)


class ReferenceGRU(nn.Module):
    """A standard single-agent recurrent actor-critic: Linear-ReLU, nn.GRU, heads."""

    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.encoder, self.gru = nn.Linear(obs_dim, 256), nn.GRU(256, 128, batch_first=True)
        self.actor, self.critic = nn.Linear(128, n_actions), nn.Linear(128, 1)

    def forward(self, obs: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.gru(torch.relu(self.encoder(obs)), h0[None])
        return self.actor(out), self.critic(out).squeeze(-1)


def agent_params(group: PPOGroup, k: int) -> dict[str, torch.Tensor]:
    """Agent k's parameters in `group` (copies)."""
    return {name: p.detach()[k].clone() for name, p in group.policy.named_parameters()}


def reference_fnn(params: dict[str, torch.Tensor], obs_dim: int, n_actions: int) -> ReferenceFNN:
    """A standard MLP holding one agent's stacked parameters (from `agent_params`)."""
    net = ReferenceFNN(obs_dim, n_actions)
    with torch.no_grad():
        for i, layer in enumerate((net.body[0], net.body[2])):
            layer.weight.copy_(params[f"body.{i}.weight"].T)
            layer.bias.copy_(params[f"body.{i}.bias"][0])
        for name in ("actor", "critic"):
            getattr(net, name).weight.copy_(params[f"{name}.weight"].T)
            getattr(net, name).bias.copy_(params[f"{name}.bias"][0])
    return net


def reference_gru(params: dict[str, torch.Tensor], obs_dim: int, n_actions: int) -> ReferenceGRU:
    """A standard recurrent actor-critic holding one agent's stacked parameters."""
    net = ReferenceGRU(obs_dim, n_actions)
    with torch.no_grad():
        for name in ("encoder", "actor", "critic"):
            getattr(net, name).weight.copy_(params[f"{name}.weight"].T)
            getattr(net, name).bias.copy_(params[f"{name}.bias"][0])
        net.gru.weight_ih_l0.copy_(params["gru.weight_ih"].T)
        net.gru.weight_hh_l0.copy_(params["gru.weight_hh"].T)
        net.gru.bias_ih_l0.copy_(params["gru.bias_ih"][0])
        net.gru.bias_hh_l0.copy_(params["gru.bias_hh"][0])
    return net


def grads_of(net: nn.Module) -> list[torch.Tensor]:
    """Copies of a module's parameter gradients, in parameter order."""
    return [p.grad.clone() for p in net.parameters()]


def test_stacked_fnn_equals_separate_networks() -> None:
    """Log-probs, values and gradients of each agent equal those of its own nn.Linear network (to 1e-6)."""
    k, obs_dim, n_actions, batch = 3, 40, 2, 32
    group = PPOGroup(k, obs_dim, n_actions, FNN, PPO_FNN, 10_000, seed=1)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(k, batch, obs_dim, generator=gen)
    actions = torch.randint(0, n_actions, (k, batch), generator=gen)
    weights = torch.randn(k, batch, generator=gen)

    logits, values = group.policy.sequences(obs[:, :, None], torch.zeros(k, batch, 0), torch.zeros(k, batch, 1))
    logp = torch.log_softmax(logits[:, :, 0], -1).gather(-1, actions[..., None])[..., 0]
    (logp * weights + values[:, :, 0] ** 2).mean(dim=1).sum().backward()
    step_logits, step_values, _ = group.policy.step(obs[:, 0], torch.zeros(k, 0), group.policy.rollout_weights())
    for i in range(k):
        net = reference_fnn(agent_params(group, i), obs_dim, n_actions)
        ref_logits, ref_values = net(obs[i])
        ref_logp = torch.log_softmax(ref_logits, -1).gather(-1, actions[i, :, None])[:, 0]
        (ref_logp * weights[i] + ref_values**2).mean().backward()
        torch.testing.assert_close(logp[i], ref_logp, atol=1e-6, rtol=0)
        torch.testing.assert_close(values[i, :, 0], ref_values, atol=1e-6, rtol=0)
        torch.testing.assert_close(step_logits[i], ref_logits[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(step_values[i], ref_values[0], atol=1e-6, rtol=0)
        ref_grads = dict(zip(["w0", "b0", "w1", "b1"], grads_of(net.body), strict=True))
        stacked = dict(group.policy.named_parameters())
        torch.testing.assert_close(stacked["body.0.weight"].grad[i], ref_grads["w0"].T, atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["body.0.bias"].grad[i, 0], ref_grads["b0"], atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["body.1.weight"].grad[i], ref_grads["w1"].T, atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["actor.weight"].grad[i], net.actor.weight.grad.T, atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["critic.bias"].grad[i, 0], net.critic.bias.grad, atol=1e-6, rtol=0)


def test_stacked_gru_equals_torch_gru_and_gru_cell() -> None:
    """Sequences through the stacked GRU equal nn.GRU (no resets) and an nn.GRUCell loop (with resets)."""
    k, obs_dim, n_actions, n_seq, length = 2, 37, 4, 3, 8
    group = PPOGroup(k, obs_dim, n_actions, GRU, PPO_GRU, 10_000, seed=2)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(k, n_seq, length, obs_dim, generator=gen)
    h0 = 0.5 * torch.randn(k, n_seq, 128, generator=gen)
    starts = torch.zeros(k, n_seq, length)
    starts[:, 1, 5] = 1.0  # an episode starts inside the second sequence
    logits, values = group.policy.sequences(obs, h0, starts)
    (logits.square().sum(-1) + values).mean(dim=(1, 2)).sum().backward()
    for i in range(k):
        net = reference_gru(agent_params(group, i), obs_dim, n_actions)
        ref_logits, ref_values = net(obs[i, [0, 2]], h0[i, [0, 2]])  # sequences without a reset
        torch.testing.assert_close(logits[i, [0, 2]], ref_logits, atol=1e-6, rtol=0)
        torch.testing.assert_close(values[i, [0, 2]], ref_values, atol=1e-6, rtol=0)
        cell = nn.GRUCell(256, 128)
        cell.load_state_dict({n.replace("_l0", ""): p for n, p in net.gru.state_dict().items()})
        h, outs = h0[i, 1], []
        for t in range(length):
            h = cell(torch.relu(net.encoder(obs[i, 1, t])), h * (1.0 - starts[i, 1, t]))
            outs.append(h)
        out = torch.stack(outs)
        torch.testing.assert_close(logits[i, 1], net.actor(out), atol=1e-6, rtol=0)
        torch.testing.assert_close(values[i, 1], net.critic(out)[:, 0], atol=1e-6, rtol=0)
        # gradients: the same loss on the reference (all three sequences, the reset one through the cell loop)
        ref_all_logits = torch.cat([ref_logits[:1], net.actor(out)[None], ref_logits[1:]])
        ref_all_values = torch.cat([ref_values[:1], net.critic(out)[None, :, 0], ref_values[1:]])
        (ref_all_logits.square().sum(-1) + ref_all_values).mean().backward()
        stacked = dict(group.policy.named_parameters())
        grad_ih = net.gru.weight_ih_l0.grad + cell.weight_ih.grad
        grad_hh = net.gru.weight_hh_l0.grad + cell.weight_hh.grad
        torch.testing.assert_close(stacked["gru.weight_ih"].grad[i], grad_ih.T, atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["gru.weight_hh"].grad[i], grad_hh.T, atol=1e-6, rtol=0)
        grad_bias_hh = net.gru.bias_hh_l0.grad + cell.bias_hh.grad
        grad_bias_ih = net.gru.bias_ih_l0.grad + cell.bias_ih.grad
        torch.testing.assert_close(stacked["gru.bias_hh"].grad[i, 0], grad_bias_hh, atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["gru.bias_ih"].grad[i, 0], grad_bias_ih, atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["encoder.weight"].grad[i], net.encoder.weight.grad.T, atol=1e-6, rtol=0)
        torch.testing.assert_close(stacked["critic.weight"].grad[i], net.critic.weight.grad.T, atol=1e-6, rtol=0)


def test_gru_inference_step_equals_training_sequences() -> None:
    """Acting step by step (hidden carried, reset at an episode start) gives the training path's numbers."""
    k, obs_dim, length = 3, 37, 8
    group = PPOGroup(k, obs_dim, 4, GRU, PPO_GRU, 10_000, seed=3)
    obs = torch.randn(k, 1, length, obs_dim, generator=torch.Generator().manual_seed(1))
    starts = torch.zeros(k, 1, length)
    starts[:, 0, 3] = 1.0
    logits, values = group.policy.sequences(obs, torch.zeros(k, 1, 128), starts)
    h, weights = group.initial_hidden(), group.policy.rollout_weights()
    for t in range(length):
        step_logits, step_values, h = group.policy.step(obs[:, 0, t], h * (1 - starts[:, 0, t, None]), weights)
        torch.testing.assert_close(step_logits, logits[:, 0, t], atol=1e-6, rtol=0)
        torch.testing.assert_close(step_values, values[:, 0, t], atol=1e-6, rtol=0)


# ---- GAE and schedules -----------------------------------------------------------------------------------
def gae_loop(
    rewards: list[list[float]],
    values: list[list[float]],
    dones: list[list[float]],
    last_value: list[float],
    gamma: float,
    lam: float,
    segment: int,
) -> list[list[float]]:
    """GAE written as explicit discounted sums of TD errors, one agent and one step at a time."""
    n_agents, n_steps = len(rewards), len(rewards[0])
    advantages = [[0.0] * n_steps for _ in range(n_agents)]
    for a in range(n_agents):
        for t in range(n_steps):
            segment_end = (t // segment + 1) * segment
            total, weight = 0.0, 1.0
            for s in range(t, segment_end):
                next_value = values[a][s + 1] if s + 1 < n_steps else last_value[a]
                delta = rewards[a][s] + gamma * next_value * (1 - dones[a][s]) - values[a][s]
                total += weight * delta
                if dones[a][s]:
                    break
                weight *= gamma * lam
            advantages[a][t] = total
    return advantages


@pytest.mark.parametrize("segment", [4, 16, 32])
def test_segment_gae_matches_python_loop(segment: int) -> None:
    rng = np.random.default_rng(segment)
    rewards, values = rng.normal(size=(3, 32)), rng.normal(size=(3, 32))
    dones, last_value = (rng.random((3, 32)) < 0.1).astype(float), rng.normal(size=3)
    adv, ret = segment_gae(*(torch.tensor(x) for x in (rewards, values, dones, last_value)), 0.99, 0.95, segment)
    expected = np.array(
        gae_loop(rewards.tolist(), values.tolist(), dones.tolist(), last_value.tolist(), 0.99, 0.95, segment)
    )
    np.testing.assert_allclose(adv.numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(ret.numpy(), expected + values, atol=1e-10)


def test_learning_rate_and_clip_decay_linearly_to_zero() -> None:
    group = PPOGroup(2, 3, 2, with_fields(FNN, hidden_sizes=(8, 8)), PPO_FNN, total_timesteps=4 * 128, seed=0)
    assert group.total_updates == 4
    obs = np.zeros((2, 3), np.float32)
    used = []
    for _ in range(4):
        for _ in range(128):
            group.act(obs)
            group.observe(np.ones(2), np.zeros(2))
        metrics = group.update(obs)
        used.append((metrics["learning_rate"][0], metrics["clip_eps"][0], group.optimizer.param_groups[0]["lr"]))
    np.testing.assert_allclose(used, [[2.5e-4 * f, 0.1 * f, 2.5e-4 * f] for f in (1, 0.75, 0.5, 0.25)])
    assert group.schedule() == (0.0, 0.0)
    assert linear_decay(1.0, 10, 4) == 0.0
    constant = PPOGroup(1, 3, 2, FNN, with_fields(PPO_FNN, anneal=False), total_timesteps=4 * 128)
    assert constant.schedule(3) == (2.5e-4, 0.1)


# ---- per-agent isolation, grouping, saving ---------------------------------------------------------------
SMALL_FNN = with_fields(FNN, hidden_sizes=(32, 16))
SMALL_GRU = with_fields(GRU, hidden_sizes=(32, 16))


def toy_rollout(group: PPOGroup, seed: int, n_steps: int, obs_dim: int, episode: int = 5) -> dict[str, np.ndarray]:
    """Drive a group with per-agent observation/reward streams that depend only on (seed, agent id)."""
    ids = np.array(group.agent_ids)
    metrics = {}
    for t in range(n_steps):
        obs = np.sin(0.1 * (t + 1) * (ids[:, None] + 1) + np.arange(obs_dim) + seed).astype(np.float32)
        actions = group.act(obs)
        reward = np.cos(actions + ids + t).astype(np.float32)
        group.observe(reward, np.full(len(ids), (t + 1) % episode == 0))
        if group.ready():
            metrics = group.update(obs)
    return metrics


@pytest.mark.parametrize("policy", [SMALL_FNN, SMALL_GRU], ids=["fnn", "gru"])
def test_group_of_k_trains_like_k_single_agent_groups(policy: PolicyConfig) -> None:
    """Same seed and agent ids: the same initial weights, actions and (to float tolerance) updates."""
    ppo = PPO_FNN if policy.architecture == "fnn" else PPO_GRU
    group = PPOGroup(3, 6, 3, policy, ppo, 10_000, seed=5)
    singles = [PPOGroup(1, 6, 3, policy, ppo, 10_000, seed=5, agent_ids=[k]) for k in range(3)]
    for k, single in enumerate(singles):
        for name, value in agent_params(single, 0).items():
            assert torch.equal(value, agent_params(group, k)[name])
    toy_rollout(group, seed=0, n_steps=256, obs_dim=6)
    for single in singles:
        toy_rollout(single, seed=0, n_steps=256, obs_dim=6)
    assert group.n_updates == 2
    for k, single in enumerate(singles):
        np.testing.assert_array_equal(group._actions[k], single._actions[0])  # same samples: per-agent randomness
        for name, value in agent_params(single, 0).items():
            torch.testing.assert_close(agent_params(group, k)[name], value, atol=1e-5, rtol=1e-4)


def test_one_agents_loss_and_data_leave_other_agents_untouched() -> None:
    """Agent 0's loss has zero gradient on the others' slices; changing agent 0's data changes only agent 0."""
    group = PPOGroup(3, 6, 3, SMALL_FNN, PPO_FNN, 10_000, seed=1)
    obs = torch.randn(3, 8, 1, 6)
    logits, values = group.policy.sequences(obs, torch.zeros(3, 8, 0), torch.zeros(3, 8, 1))
    actions = torch.randint(0, 3, (3, 8, 1))
    losses = ppo_losses(
        logits,
        values,
        actions,
        torch.full((3, 8, 1), -1.1),
        torch.zeros(3, 8, 1),
        torch.randn(3, 8, 1),
        torch.randn(3, 8, 1),
        0.1,
        PPO_FNN,
    )
    losses["loss"][0].backward()
    for param in group.policy.parameters():
        assert param.grad[0].abs().sum() > 0
        assert torch.count_nonzero(param.grad[1:]) == 0

    before = [agent_params(group, k) for k in range(3)]
    twin = PPOGroup(3, 6, 3, SMALL_FNN, PPO_FNN, 10_000, seed=1)
    for g, boost in ((group, 0.0), (twin, 5.0)):
        for t in range(128):
            obs_t = np.full((3, 6), np.sin(t), np.float32)
            obs_t[0] += boost  # only agent 0's experience differs between the two groups
            actions = g.act(obs_t)
            g.observe(actions.astype(np.float32) * np.array([1.0 + boost, 1.0, 1.0]), np.zeros(3))
        g.update(obs_t)
    for k in range(3):
        for name in before[k]:
            mine, theirs = agent_params(group, k)[name], agent_params(twin, k)[name]
            assert not torch.equal(mine, before[k][name]) or name.endswith("bias")  # everyone learned
            assert torch.equal(mine, theirs) == (k > 0), (k, name)


def test_gradient_clipping_is_per_agent() -> None:
    """Each agent's gradient is scaled to its own norm limit; an agent already below it is left as it was."""
    group = PPOGroup(2, 6, 3, SMALL_FNN, with_fields(PPO_FNN, max_grad_norm=0.5), 10_000, seed=0)
    for param in group.policy.parameters():
        param.grad = torch.ones_like(param)
        param.grad[1] *= 1e-4  # agent 1's whole gradient has a norm far below 0.5
    before = [p.grad[1].clone() for p in group.policy.parameters()]
    clip_grad_norm_per_agent(group.policy, 0.5)
    norms = torch.stack([p.grad.flatten(1).pow(2).sum(1) for p in group.policy.parameters()]).sum(0).sqrt()
    assert norms[0] == pytest.approx(0.5, rel=1e-4)
    assert all(torch.equal(p.grad[1], b) for p, b in zip(group.policy.parameters(), before, strict=True))


def test_state_dict_round_trip_resumes_identically() -> None:
    group = PPOGroup(2, 6, 3, SMALL_GRU, PPO_GRU, 10_000, seed=3)
    toy_rollout(group, seed=0, n_steps=128, obs_dim=6)
    state = group.state_dict()
    restored = PPOGroup(2, 6, 3, SMALL_GRU, PPO_GRU, 10_000, seed=3)
    restored.load_state_dict(state)
    group.reset_episodes()
    for g in (group, restored):
        toy_rollout(g, seed=1, n_steps=128, obs_dim=6)
    assert restored.n_updates == group.n_updates == 2
    for (name, a), b in zip(group.policy.state_dict().items(), restored.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="agents"):
        PPOGroup(2, 6, 3, SMALL_GRU, PPO_GRU, 10_000, seed=3, agent_ids=[7, 8]).load_state_dict(state)


def test_sliced_and_concatenated_states_keep_each_agents_learner() -> None:
    """A 4-agent learner's state sliced into two groups of 2, trained, and concatenated back trains each agent as
    the whole group does; slicing then concatenating gives back the state bit for bit."""
    whole = PPOGroup(4, 6, 3, SMALL_FNN, PPO_FNN, 10_000, seed=7)
    toy_rollout(whole, seed=0, n_steps=128, obs_dim=6)  # one update, so Adam moments exist
    state = whole.state_dict()
    parts = [slice_state(state, 0, 2), slice_state(state, 2, 4)]
    assert [p["agent_ids"] for p in parts] == [[0, 1], [2, 3]]
    assert_states_equal(concat_states(parts), state)
    workers = [PPOGroup(2, 6, 3, SMALL_FNN, PPO_FNN, 10_000, seed=7, agent_ids=p["agent_ids"]) for p in parts]
    for worker, part in zip(workers, parts, strict=True):
        worker.load_state_dict(part)
    for g in (whole, *workers):
        toy_rollout(g, seed=1, n_steps=128, obs_dim=6)
    regrouped = PPOGroup(4, 6, 3, SMALL_FNN, PPO_FNN, 10_000, seed=7)
    regrouped.load_state_dict(concat_states([w.state_dict() for w in workers]))
    assert regrouped.n_updates == 2
    mine, theirs = whole.state_dict(), regrouped.state_dict()
    for name, tensor in mine["policy"].items():
        torch.testing.assert_close(theirs["policy"][name], tensor, atol=1e-5, rtol=1e-4)
    for index, entry in mine["optimizer"]["state"].items():
        torch.testing.assert_close(theirs["optimizer"]["state"][index]["exp_avg_sq"], entry["exp_avg_sq"])
    np.testing.assert_array_equal(theirs["act_count"], mine["act_count"])
    with pytest.raises(ValueError, match="updates"):
        concat_states([parts[0], workers[1].state_dict()])
    # groups of runs with other seeds join into a state with one seed per agent (a seed batch), and split back
    other_group = PPOGroup(2, 6, 3, SMALL_FNN, PPO_FNN, 10_000, seed=8)
    toy_rollout(other_group, seed=0, n_steps=128, obs_dim=6)
    other_run = other_group.state_dict()
    batch = concat_states([parts[0], other_run])
    assert batch["seed"] == [7, 7, 8, 8]
    assert_states_equal(slice_state(batch, 2, 4), other_run)
    with pytest.raises(ValueError, match="seed"):
        PPOGroup(4, 6, 3, SMALL_FNN, PPO_FNN, 10_000, seed=7).load_state_dict(batch)


def assert_states_equal(a: dict, b: dict) -> None:
    """Two PPO state dicts hold the same ids, counters, weights and Adam state, bit for bit."""
    assert a["agent_ids"] == b["agent_ids"] and a["seed"] == b["seed"] and a["n_updates"] == b["n_updates"]
    for name in ("act_count", "eval_count"):
        np.testing.assert_array_equal(a[name], b[name])
    assert a["policy"].keys() == b["policy"].keys()
    assert all(torch.equal(a["policy"][n], b["policy"][n]) for n in a["policy"])
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    for index, entry in a["optimizer"]["state"].items():
        assert all(torch.equal(t, b["optimizer"]["state"][index][k]) for k, t in entry.items())


@pytest.mark.parametrize("policy", [SMALL_FNN, SMALL_GRU], ids=["fnn", "gru"])
def test_an_actor_from_concatenated_states_acts_like_the_groups(policy: PolicyConfig) -> None:
    """Evaluation acts with every group's policy at once: the same actions and counters as each group alone."""
    ppo = PPO_FNN if policy.architecture == "fnn" else PPO_GRU
    groups = [PPOGroup(2, 6, 3, policy, ppo, 10_000, seed=4, agent_ids=ids) for ids in ([0, 1], [2, 3])]
    for g in groups:
        toy_rollout(g, seed=2, n_steps=128, obs_dim=6)
    actor = PolicyActor.from_state(concat_states([g.state_dict() for g in groups]), policy, 6, 3)
    hidden, group_hidden = None, [None, None]
    for t in range(20):
        obs = np.cos(np.arange(24, dtype=np.float32).reshape(4, 6) * (t + 1))
        actions, hidden = actor.act_eval(obs, hidden)
        for i, g in enumerate(groups):
            mine, group_hidden[i] = g.act_eval(obs[2 * i : 2 * i + 2], group_hidden[i])
            np.testing.assert_array_equal(actions[2 * i : 2 * i + 2], mine)
    np.testing.assert_array_equal(actor.eval_count, np.concatenate([g.eval_count for g in groups]))
    assert actor.eval_count.min() == 20
    with pytest.raises(ValueError, match=r"obs must have shape \(4, 6\)"):
        actor.act_eval(np.zeros((3, 6)))

def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(ValueError, match="policy architecture"):
        PPOGroup(2, 6, 3, with_fields(FNN, architecture="lstm"), PPO_FNN, 10_000)
    with pytest.raises(ValueError, match="rollout_steps"):
        PPOGroup(2, 6, 3, FNN, with_fields(PPO_FNN, rollout_steps=100), 10_000)
    with pytest.raises(ValueError, match="sequence_length"):
        PPOGroup(2, 6, 3, GRU, with_fields(PPO_GRU, minibatch_size=4), 10_000)
    group = PPOGroup(2, 6, 3, SMALL_FNN, PPO_FNN, 10_000)
    with pytest.raises(ValueError, match=r"obs must have shape \(2, 6\)"):
        group.act(np.zeros((3, 6)))
    with pytest.raises(RuntimeError, match="full buffer"):
        group.update(np.zeros((2, 6)))
    for _ in range(128):
        group.act(np.zeros((2, 6)))
        group.observe(np.zeros(2), np.zeros(2))
    with pytest.raises(RuntimeError, match="buffer is full"):
        group.act(np.zeros((2, 6)))


def test_counter_uniforms_are_uniform_and_per_agent() -> None:
    keys = np.array([1, 2], dtype=np.uint64)
    u = counter_uniforms(keys, np.broadcast_to(np.arange(20_000, dtype=np.uint64), (2, 20_000)))
    assert u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_allclose(np.histogram(u[0], bins=10, range=(0, 1))[0] / 20_000, 0.1, atol=0.01)
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) < 0.03
    np.testing.assert_array_equal(counter_uniforms(keys[1:], np.arange(5, dtype=np.uint64)[None]), u[1:, :5])


# ---- PPO learns (fixed seeds, fixed budgets, optimum known) ------------------------------------------------
def train(group: PPOGroup, env_step: Callable, obs: np.ndarray) -> None:
    """Run the group on a vectorised env until its learning-rate schedule reaches 0."""
    while group.n_updates < group.total_updates:
        obs_next, reward, done = env_step(group.act(obs))
        group.observe(reward, done)
        obs = obs_next
        if group.ready():
            group.update(obs)


def action_probs(group: PPOGroup, obs: np.ndarray) -> np.ndarray:
    """Each agent's action probabilities at obs [K, obs_dim] (a fresh recurrent state)."""
    logits, _, _ = group.policy.step(torch.as_tensor(obs), group.initial_hidden(), group.policy.rollout_weights())
    return torch.softmax(logits, dim=-1).numpy()


def test_ppo_learns_a_bandit_with_a_different_best_arm_per_agent() -> None:
    """3 arms, noisy reward 1 for the agent's own best arm: after 2,560 steps each agent prefers its arm."""
    k, n_arms = 4, 3
    best = np.arange(k) % n_arms
    rng = np.random.default_rng(0)
    obs = np.ones((k, 4), np.float32)

    def step(actions):
        reward = (actions == best) + 0.5 * rng.normal(size=k)
        return obs, reward, np.ones(k)

    group = PPOGroup(k, 4, n_arms, FNN, PPO_FNN, total_timesteps=2_560, seed=0)
    assert np.allclose(action_probs(group, obs), 1 / 3, atol=0.02)
    train(group, step, obs)
    assert action_probs(group, obs)[np.arange(k), best].min() > 0.75  # random: 1/3


def test_ppo_learns_a_chain_with_a_delayed_reward() -> None:
    """Chain of 6 states, reward only at the right end (episode of at most 10 steps): PPO learns to go right."""
    k, length, horizon = 4, 6, 10
    eye = np.eye(length, dtype=np.float32)
    state = {"pos": np.zeros(k, np.int64), "t": np.zeros(k, np.int64)}

    def step(actions):
        state["pos"] = np.clip(state["pos"] + 2 * actions - 1, 0, length - 1)
        state["t"] += 1
        reward = (state["pos"] == length - 1).astype(np.float32)
        done = (state["pos"] == length - 1) | (state["t"] >= horizon)
        state["pos"][done], state["t"][done] = 0, 0
        return eye[state["pos"]], reward, done

    group = PPOGroup(k, length, 2, FNN, PPO_FNN, total_timesteps=3_840, seed=0)
    train(group, step, eye[state["pos"]])
    p_right = np.stack([action_probs(group, np.repeat(eye[s : s + 1], k, 0))[:, 1] for s in range(length - 1)])
    assert p_right.min() > 0.75, p_right  # random: 0.5 everywhere; optimum: 1
    assert p_right.mean() > 0.8, p_right


def test_gru_ppo_learns_to_remember_a_cue() -> None:
    """The cue is shown at the first of 3 steps and must be answered at the last: only memory beats 50%.

    Episodes of 3 steps cross the 8-step training sequences, so resets inside sequences are exercised."""
    k, episode = 4, 3
    rng = np.random.default_rng(0)
    state = {"cue": rng.integers(0, 2, k), "t": np.zeros(k, np.int64)}

    def observe():
        obs = np.zeros((k, 3), np.float32)
        first = state["t"] == 0
        obs[first, state["cue"][first]] = 1.0
        obs[~first, 2] = state["t"][~first] / episode
        return obs

    def step(actions):
        reward = ((state["t"] == episode - 1) & (actions == state["cue"])).astype(np.float32)
        state["t"] += 1
        done = state["t"] >= episode
        state["cue"] = np.where(done, rng.integers(0, 2, k), state["cue"])
        state["t"][done] = 0
        return observe(), reward, done

    group = PPOGroup(k, 3, 2, GRU, PPO_GRU, total_timesteps=5_120, seed=0)
    train(group, step, observe())
    correct = []
    for _ in range(50):
        state["cue"], state["t"], hidden = rng.integers(0, 2, k), np.zeros(k, np.int64), None
        for _ in range(episode):
            actions, hidden = group.act_eval(observe(), hidden, greedy=True)
            state["t"] += 1
        correct.append(actions == state["cue"])
    assert np.mean(correct, axis=0).min() > 0.9  # without memory at most 0.5


def test_ppo_learns_to_control_one_traffic_region_with_fixed_inflows() -> None:
    """One intersection (4 copies, one agent each): cars arrive on each incoming lane with probability 0.2, the
    downstream roads are never blocked. After 24,000 steps per agent the paper's 256-128 PPO clearly beats
    random switching (and trails the hand-coded controller, which knows the queue lengths and the timer)."""
    k, arrival = 4, 0.2

    def influence(rng):
        return np.concatenate([rng.random((k, 4)) < arrival, np.zeros((k, 4), bool)], axis=1).astype(np.int64)

    local, rng = LocalSimulator(k, seed=0), np.random.default_rng(0)

    def step(actions):
        obs, reward, done = local.step(actions, influence(rng))
        if done:
            obs = local.reset()
        return obs, reward, np.full(k, done)

    group = PPOGroup(k, 40, 2, FNN, PPO_FNN, total_timesteps=24_000, seed=0)
    train(group, step, local.reset())

    def mean_reward(controller: str) -> np.ndarray:
        sim, eval_rng, action_rng = LocalSimulator(k, seed=1), np.random.default_rng(1), np.random.default_rng(2)
        obs, total = sim.reset(), np.zeros(k)
        for _ in range(2 * HORIZON):
            if controller == "ppo":
                actions, _ = group.act_eval(obs)
            elif controller == "random":
                actions = action_rng.integers(0, 2, k)
            else:
                actions = hand_coded_actions(sim.local_states())
            obs, reward, done = sim.step(actions, influence(eval_rng))
            total += reward
            if done:
                obs = sim.reset()
        return total / (2 * HORIZON)

    ppo, random, hand = mean_reward("ppo"), mean_reward("random"), mean_reward("hand")
    assert ppo.mean() > random.mean() + 0.06, (ppo, random)
    assert (ppo > random).all(), (ppo, random)
    assert hand.mean() > random.mean() + 0.1, (hand, random)


def test_train_steps_is_the_documented_loop_and_reports_the_episodes_return() -> None:
    """`train_steps` on a GS gives the state of the loop in `ppo_loop`'s docstring, written out, bit for bit."""
    from dials_lib.envs import make_global

    hp = paper_hyperparameters("traffic")
    n_steps = 2 * HORIZON + hp.ppo.buffer_size  # not a whole number of episodes: the last one is cut
    n_steps -= n_steps % hp.ppo.buffer_size
    spec = make_global("traffic", n_agents=4).spec
    looped, trained = (PPOGroup(4, spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, 10_000, seed=2) for _ in range(2))
    sim = make_global("traffic", n_agents=4, seed=9)
    obs, returns, running = sim.reset(), [], np.zeros(4)
    looped.reset_episodes()
    for _ in range(n_steps):
        actions = looped.act(obs)
        obs, reward, done = sim.step(actions)
        running += reward
        if done:
            returns.append(running.mean())
            running[:] = 0.0
            obs = sim.reset()
        looped.observe(reward, done)
        if looped.ready():
            looped.update(obs)
    out = train_steps(trained, make_global("traffic", n_agents=4, seed=9), n_steps)
    assert out["train_return"] == pytest.approx(np.mean(returns), abs=0) and len(returns) == n_steps // HORIZON
    assert {"policy_loss", "value_loss", "entropy"} <= out.keys()
    a, b = looped.state_dict(), trained.state_dict()
    assert all(torch.equal(a["policy"][n], b["policy"][n]) for n in a["policy"])
    with pytest.raises(ValueError, match="multiple of buffer_size"):
        train_steps(trained, sim, hp.ppo.buffer_size + 1)

"""Approximate influence predictors (AIPs): data sets from the GS (Algorithm 2), stacked networks, training.

An AIP predicts agent i's influence sources u_t from its d-separating set: for traffic the 40 lane cells at t
(one step of history suffices, so a feed-forward network), for the warehouse the agent's whole observation
history (a GRU). Every agent has its own AIP (different regions receive different influence); like the
policies, the K agents' AIPs of a group are stored with stacked weights [K, ...] and trained together with the
sum of their losses, so each agent's gradient is the one it would get alone.

Output heads, one per influence source: a binary source gets one logit (Bernoulli, binary cross-entropy), a
source with c > 2 classes gets c logits (softmax, cross-entropy). The reported cross-entropy is the mean over
sources and samples (in nats), the quantity of the paper's Figures 7 and 8 (ln 2 = 0.69 for an uninformed
Bernoulli, ln 4 = 1.39 for an uninformed 4-way source).

Architectures (`AIPConfig`): 'fnn' = `hidden_layers` ReLU layers of `hidden_size`; 'gru' = `hidden_layers - 1`
ReLU layers then one GRU layer of `hidden_size` (so the paper's "2 x 64" is a 64-unit encoder and a 64-unit GRU;
the authors' code used the GRU alone). Inputs (binary d-sets) are scaled from [0, 1] to [-1, 1].

Timing (docs/design.md): the data set pairs the d-set at t (recorded before the GS step) with the u_t realised by
that step (read after it), so the AIP predicts u_t from the history up to and including x_t.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dials_lib.envs.contract import AgentSimulator, MetricTracker
from dials_lib.hyperparameters import AIPConfig
from dials_lib.learning.adam import Adam
from dials_lib.learning.controllers import Controller
from dials_lib.learning.networks import GRUSequence, StackedGRUCell, StackedLinear
from dials_lib.seeding import Stream, agent_generator, agent_rng, agent_seeds, inverse_cdf
from dials_lib.validation import check_choice

AIP_ARCHITECTURES: tuple[str, ...] = ("fnn", "gru")


@dataclass
class InfluenceData:
    """Per-agent GS episodes: d-sets and the influence sources realised at the same step.

    Arrays have a leading agent axis, then episode and time: dsets float32 [K, E, H, dset_dim], sources int64
    [K, E, H, n_sources], actions int64 [K, E, H], rewards float32 [K, E, H]; noise float64 [K, E, H, ...] (the
    LS's own random draws, for exact replay) or None.
    """

    dsets: np.ndarray
    sources: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    noise: np.ndarray | None = None

    @property
    def n_agents(self) -> int:
        """Number of agents (leading axis)."""
        return self.dsets.shape[0]

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return self.dsets.shape[1]

    def select_episodes(self, episodes: np.ndarray | slice) -> InfluenceData:
        """The same agents, only the given episodes."""
        noise = None if self.noise is None else self.noise[:, episodes]
        return InfluenceData(self.dsets[:, episodes], self.sources[:, episodes], self.actions[:, episodes],
                             self.rewards[:, episodes], noise)

    def select_agents(self, agents: Sequence[int] | np.ndarray) -> InfluenceData:
        """The same episodes, only the given agents (in that order)."""
        idx = np.asarray(agents)
        noise = None if self.noise is None else self.noise[idx]
        return InfluenceData(self.dsets[idx], self.sources[idx], self.actions[idx], self.rewards[idx], noise)

    @staticmethod
    def concat(parts: Sequence[InfluenceData]) -> InfluenceData:
        """The agents of several data sets of equal episodes side by side, in order (copies)."""
        noise = None if parts[0].noise is None else np.concatenate([p.noise for p in parts])
        return InfluenceData(*(np.concatenate([getattr(p, name) for p in parts])
                               for name in ("dsets", "sources", "actions", "rewards")), noise)

    def agent_range(self, lo: int, hi: int) -> InfluenceData:
        """Agents lo..hi-1, as views of these arrays (a worker group's slice: pickled alone when sent)."""
        noise = None if self.noise is None else self.noise[lo:hi]
        return InfluenceData(self.dsets[lo:hi], self.sources[lo:hi], self.actions[lo:hi], self.rewards[lo:hi], noise)

    def split(self, heldout_fraction: float) -> tuple[InfluenceData, InfluenceData]:
        """(training, held-out) by whole episodes; the last `heldout_fraction` of the episodes are held out."""
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1); got {heldout_fraction}")
        if self.n_episodes < 2:
            raise ValueError(f"need at least 2 episodes to hold some out; got {self.n_episodes}")
        n_held = min(self.n_episodes - 1, max(1, round(heldout_fraction * self.n_episodes)))
        cut = self.n_episodes - n_held
        return self.select_episodes(slice(0, cut)), self.select_episodes(slice(cut, None))


def n_logits(source_sizes: Sequence[int]) -> int:
    """Output width: 1 logit per binary source, c logits per source with c > 2 classes."""
    return sum(1 if size == 2 else size for size in source_sizes)


class StackedPredictor(nn.Module):
    """The AIPs of K agents: an FNN or GRU body with stacked weights and one head per influence source."""

    def __init__(self, n_agents: int, input_dim: int, source_sizes: Sequence[int], config: AIPConfig) -> None:
        super().__init__()
        check_choice("AIP architecture", config.architecture, AIP_ARCHITECTURES)
        if config.hidden_layers < 1 or config.hidden_size < 1:
            raise ValueError(f"AIP needs hidden_layers >= 1 and hidden_size >= 1; got {config}")
        self.n_agents, self.input_dim, self.config = n_agents, input_dim, config
        self.source_sizes = tuple(int(s) for s in source_sizes)
        self.recurrent = config.architecture == "gru"
        self.hidden_size = config.hidden_size
        n_linear = config.hidden_layers - 1 if self.recurrent else config.hidden_layers
        sizes = [input_dim] + [config.hidden_size] * n_linear
        self.body = nn.ModuleList(StackedLinear(n_agents, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.gru = StackedGRUCell(n_agents, sizes[-1], config.hidden_size) if self.recurrent else None
        self.head = StackedLinear(n_agents, config.hidden_size, n_logits(self.source_sizes), gain=1.0)

    def layers_in_init_order(self) -> list[nn.Module]:
        """The layers, in the order their per-agent initial weights are drawn."""
        return [*self.body, *([self.gru] if self.gru is not None else []), self.head]

    def initial_hidden(self, batch: int) -> torch.Tensor:
        """Zero recurrent state [K, batch, H] (empty for the FNN)."""
        return torch.zeros(self.n_agents, batch, self.hidden_size if self.recurrent else 0)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        x = 2.0 * x - 1.0  # binary d-sets to [-1, 1]
        for layer in self.body:
            x = torch.relu(layer(x))
        return x

    def step(self, dsets: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [K, B, n_logits] and next hidden state for one step's d-sets [K, B, dset_dim]."""
        x = self._encode(dsets)
        if self.gru is not None:
            x = hidden = self.gru.cell(self.gru.input_gates(x), hidden)
        return self.head(x), hidden

    def sequences(self, dsets: torch.Tensor) -> torch.Tensor:
        """Logits [K, B, L, n_logits] for whole episodes [K, B, L, dset_dim], starting from a zero state."""
        n_agents, batch, length, dim = dsets.shape
        x = self._encode(dsets.reshape(n_agents, batch * length, dim))
        if self.gru is not None:  # whole episodes from a zero state: never reset inside a sequence
            gates = self.gru.input_gates(x).reshape(n_agents, batch, length, -1)
            keep = torch.ones(n_agents, batch, length, 1)
            hidden = GRUSequence.apply(gates, self.initial_hidden(batch), keep, self.gru.weight_hh, self.gru.bias_hh)
            x = hidden.reshape(n_agents, batch * length, -1)
        return self.head(x).reshape(n_agents, batch, length, -1)


def make_predictor(
    config: AIPConfig,
    input_dim: int,
    source_sizes: Sequence[int],
    seed: int | Sequence[int],
    agent_ids: Sequence[int],
) -> StackedPredictor:
    """AIPs for the agents `agent_ids`, agent k's initial weights depending only on (seed, agent_ids[k]) (`seed`:
    the run seed, or one per agent)."""
    model = StackedPredictor(len(agent_ids), input_dim, source_sizes, config)
    for k, (agent_seed, agent_id) in enumerate(zip(agent_seeds(seed, len(agent_ids)), agent_ids, strict=True)):
        generator = agent_generator(agent_seed, int(agent_id), Stream.AIP_INIT)
        for layer in model.layers_in_init_order():
            layer.init_agent(k, generator)
    return model


def _source_slices(source_sizes: Sequence[int]) -> list[slice]:
    slices, start = [], 0
    for size in source_sizes:
        width = 1 if size == 2 else size
        slices.append(slice(start, start + width))
        start += width
    return slices


def log_likelihoods(logits: torch.Tensor, sources: torch.Tensor, source_sizes: Sequence[int]) -> torch.Tensor:
    """log p(u_j) per source: logits [..., n_logits], sources int [..., n_sources] -> [..., n_sources]."""
    sizes = set(source_sizes)
    if sizes == {2}:  # all binary (traffic): one vectorized Bernoulli log-likelihood
        return -nn.functional.softplus(torch.where(sources == 1, -logits, logits))
    if len(sizes) == 1:  # all with the same number of classes (warehouse): one vectorized softmax
        log_p = torch.log_softmax(logits.unflatten(-1, (len(source_sizes), -1)), dim=-1)
        return log_p.gather(-1, sources.unsqueeze(-1)).squeeze(-1)
    columns = []
    for j, (size, part) in enumerate(zip(source_sizes, _source_slices(source_sizes), strict=True)):
        u = sources[..., j]
        if size == 2:
            z = logits[..., part.start]
            columns.append(torch.where(u == 1, nn.functional.logsigmoid(z), nn.functional.logsigmoid(-z)))
        else:
            log_p = torch.log_softmax(logits[..., part], dim=-1)
            columns.append(log_p.gather(-1, u.unsqueeze(-1)).squeeze(-1))
    return torch.stack(columns, dim=-1)


def source_probabilities(logits: torch.Tensor, source_sizes: Sequence[int]) -> list[torch.Tensor]:
    """Predicted distribution of each source: a list of [..., size] tensors (size 2: [p(0), p(1)])."""
    out = []
    for size, part in zip(source_sizes, _source_slices(source_sizes), strict=True):
        if size == 2:
            p1 = torch.sigmoid(logits[..., part.start])
            out.append(torch.stack([1.0 - p1, p1], dim=-1))
        else:
            out.append(torch.softmax(logits[..., part], dim=-1))
    return out


def sample_sources(logits: torch.Tensor, uniforms: torch.Tensor, source_sizes: Sequence[int]) -> torch.Tensor:
    """Inverse-CDF samples of every source: logits [K, n_logits], uniforms [K, n_sources] -> int64 [K, n_sources]."""
    samples = []
    for j, probs in enumerate(source_probabilities(logits, source_sizes)):
        cdf = probs.cumsum(dim=-1)
        samples.append(inverse_cdf(cdf[..., :-1], uniforms[..., j]))
    return torch.stack(samples, dim=-1)


def as_tensors(data: InfluenceData, recurrent: bool, compact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Training inputs: whole episodes [K, E, H, d] for the GRU, single steps [K, E*H, 1, d] for the FNN.

    float32 d-sets and int64 sources, or with `compact` the data's own dtypes (e.g. uint8 / int8 from a DIALS run;
    the caller widens each minibatch, which is exact for these integer values and holds a quarter of the memory).
    """
    if compact:  # a read-only array (e.g. a joblib memmap) is copied: torch needs writable memory
        x = torch.from_numpy(np.require(data.dsets, requirements=["C", "W"]))
        u = torch.from_numpy(np.require(data.sources, requirements=["C", "W"]))
    else:
        x = torch.from_numpy(np.ascontiguousarray(data.dsets, dtype=np.float32))
        u = torch.from_numpy(np.ascontiguousarray(data.sources, dtype=np.int64))
    if not recurrent:
        k, e, h = x.shape[:3]
        x, u = x.reshape(k, e * h, 1, -1), u.reshape(k, e * h, 1, -1)
    return x, u


def cross_entropy(model: StackedPredictor, data: InfluenceData) -> np.ndarray:
    """Each agent's mean cross-entropy (nats per source and step) on `data`: float64 [K]."""
    x, u = as_tensors(data, model.recurrent)
    with torch.no_grad():
        ll = log_likelihoods(model.sequences(x), u, model.source_sizes)
    return (-ll.double().mean(dim=(1, 2, 3))).numpy()


def marginal_cross_entropy(train: InfluenceData, test: InfluenceData, source_sizes: Sequence[int]) -> np.ndarray:
    """Cross-entropy on `test` of each agent's per-source marginal frequencies on `train` (a baseline): [K]."""
    total = np.zeros(train.n_agents)
    for j, size in enumerate(source_sizes):
        counts = np.stack([(train.sources[..., j] == c).sum(axis=(1, 2)) for c in range(size)], axis=1) + 0.5
        log_p = np.log(counts / counts.sum(axis=1, keepdims=True))  # [K, size], add-one-half smoothing
        picked = np.take_along_axis(log_p, test.sources[..., j].reshape(test.n_agents, -1), axis=1)
        total -= picked.mean(axis=1)
    return total / len(source_sizes)


def train_predictor(
    model: StackedPredictor,
    data: InfluenceData,
    config: AIPConfig,
    seed: int | Sequence[int],
    agent_ids: Sequence[int],
    round_index: int = 0,
    heldout: InfluenceData | None = None,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    resume: dict[str, Any] | None = None,
    snapshot: Callable[[int, Callable[[], dict[str, Any]]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Train the K AIPs in place on `data` (Adam, `config.epochs` passes); returns per-epoch losses.

    `on_batch` (optional) is called after every minibatch's forward pass and after its backward pass, where
    activations and gradients peak (workers sample their memory there). `on_epoch` (optional) is told the number
    of epochs done after each one (a progress bar).

    Minibatch order is per agent and depends only on (seed, agent id, round_index), so an agent trains the same
    way whichever group it is in. `seed` may give one seed per agent: the model then stacks the AIPs of several
    runs. Adam steps each agent's parameters as tensors of their own, so that an agent's AIP trains exactly as it
    does in any other group. Returns 'train_loss' [epochs, K] (mean over the epoch's minibatches) and, if
    `heldout` is given, 'heldout_loss' [epochs + 1, K] (before training and after every epoch).

    A long training can be stopped between epochs and resumed with the same numbers: `snapshot` (optional) is told,
    after each epoch, the number of epochs done and a function that returns the training's state at that point
    (weights, Adam moments, minibatch generators, losses so far; built only if called); the same call with that
    state as `resume` carries on from there and ends as the uninterrupted training does, bit for bit.
    """
    x, u = as_tensors(data, model.recurrent, compact=True)
    n_agents, n_samples = x.shape[:2]
    batch = min(config.batch_size, n_samples)
    n_batches = math.ceil(n_samples / batch)
    seeds = agent_seeds(seed, len(agent_ids))
    rngs = [agent_rng(s, a, Stream.AIP_MINIBATCH_ORDER, round_index) for s, a in zip(seeds, agent_ids, strict=True)]
    optimiser = Adam(model.parameters(), lr=config.learning_rate, per_agent=True)
    rows = torch.arange(n_agents)[:, None]
    train_loss = np.zeros((config.epochs, n_agents))
    if resume is None:
        first_epoch, heldout_loss = 0, [cross_entropy(model, heldout)] if heldout is not None else []
    else:
        first_epoch, heldout_loss = int(resume["epoch"]), list(resume["heldout_loss"])
        model.load_state_dict(resume["model"])
        optimiser.load_state_dict(resume["optimiser"])
        for rng, rng_state in zip(rngs, resume["rngs"], strict=True):
            rng.bit_generator.state = rng_state
        train_loss[:first_epoch] = resume["train_loss"][:first_epoch]

    def state_after(epochs: int) -> dict[str, Any]:  # a copy: training goes on in place
        return copy.deepcopy({"epoch": epochs, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                              "rngs": [rng.bit_generator.state for rng in rngs], "train_loss": train_loss,
                              "heldout_loss": heldout_loss})

    for epoch in range(first_epoch, config.epochs):
        order = torch.from_numpy(np.stack([rng.permutation(n_samples) for rng in rngs]))
        for b in range(n_batches):
            idx = order[:, b * batch : (b + 1) * batch]
            batch_x, batch_u = x[rows, idx].to(torch.float32), u[rows, idx].to(torch.int64)
            ll = log_likelihoods(model.sequences(batch_x), batch_u, model.source_sizes)
            per_agent = -ll.mean(dim=(1, 2, 3))
            optimiser.zero_grad(set_to_none=True)
            if on_batch is not None:
                on_batch()
            per_agent.sum().backward()  # sum over agents: each agent's gradient is its own
            if on_batch is not None:
                on_batch()
            optimiser.step()
            train_loss[epoch] += per_agent.detach().numpy() / n_batches
        if heldout is not None:
            heldout_loss.append(cross_entropy(model, heldout))
        if on_epoch is not None:
            on_epoch(epoch + 1)
        if snapshot is not None:
            snapshot(epoch + 1, lambda epochs=epoch + 1: state_after(epochs))
    out = {"train_loss": train_loss}
    if heldout is not None:
        out["heldout_loss"] = np.stack(heldout_loss)
    return out


def collect_dataset(
    sim: AgentSimulator, controller: Controller, n_steps: int, keep_noise: bool = False,
    tracker: MetricTracker | None = None
) -> InfluenceData:
    """Algorithm 2: run `controller` on the global simulator `sim` for whole episodes totalling >= n_steps.

    At every step t the d-set is recorded before the step and the influence sources u_t after it, so each
    pair is (d-set at t, u_t). `keep_noise` also stores the GS's local random draws (exact replay in tests).
    `tracker` (optional, e.g. a `dials_lib.training.evaluation` tracker) is told every step, as
    `tracker.step(local states before the step, rewards, sim)`, and every episode end, as
    `tracker.end_episode(sim)`.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be a positive number of GS steps; got {n_steps}")
    spec, n = sim.spec, sim.n_agents
    horizon = spec.horizon
    n_episodes = math.ceil(n_steps / horizon)
    dsets = np.empty((n, n_episodes, horizon, spec.dset_dim), dtype=np.float32)
    sources = np.empty((n, n_episodes, horizon, spec.n_sources), dtype=np.int64)
    actions = np.empty((n, n_episodes, horizon), dtype=np.int64)
    rewards = np.empty((n, n_episodes, horizon), dtype=np.float32)
    noise_rows: list[np.ndarray] = []
    for episode in range(n_episodes):
        obs = sim.reset()
        controller.reset()
        for t in range(horizon):
            dsets[:, episode, t] = sim.dsets()
            before = sim.local_states() if tracker is not None else None
            actions[:, episode, t] = controller(obs, sim)
            obs, rewards[:, episode, t], _ = sim.step(actions[:, episode, t])
            sources[:, episode, t] = sim.influence_sources()
            if keep_noise and sim.last_noise() is not None:
                noise_rows.append(sim.last_noise())
            if tracker is not None:
                tracker.step(before, rewards[:, episode, t], sim)
        if tracker is not None:
            tracker.end_episode(sim)
    noise = None
    if noise_rows:
        noise = np.stack(noise_rows, axis=1).reshape(n, n_episodes, horizon, *noise_rows[0].shape[1:])
    return InfluenceData(dsets, sources, actions, rewards, noise)



def collect_compact_dataset(sim: AgentSimulator, controller: Controller, n_steps: int,
                            on_episode: Callable[[int], None] | None = None) -> InfluenceData:
    """`collect_dataset` one episode at a time into compact arrays: binary d-sets as uint8, sources as int8;
    `on_episode` (optional) is told the steps collected so far after every episode (a progress bar).

    The same draws and values as one `collect_dataset` call (each episode starts with a reset either way), in
    a quarter of the memory, which is what a DIALS run holds while its AIPs retrain. D-sets that turn out not to
    be binary are kept as float32."""
    spec, n = sim.spec, sim.n_agents
    n_episodes, horizon = math.ceil(n_steps / spec.horizon), spec.horizon
    data = InfluenceData(np.empty((n, n_episodes, horizon, spec.dset_dim), np.uint8),
                         np.empty((n, n_episodes, horizon, spec.n_sources), np.int8),
                         np.empty((n, n_episodes, horizon), np.int64),
                         np.empty((n, n_episodes, horizon), np.float32))
    for e in range(n_episodes):
        part = collect_dataset(sim, controller, horizon)
        if data.dsets.dtype == np.uint8 and not np.all((part.dsets == 0) | (part.dsets == 1)):
            data.dsets = data.dsets.astype(np.float32)
        for name in ("dsets", "sources", "actions", "rewards"):
            getattr(data, name)[:, e] = getattr(part, name)[:, 0]
        if on_episode is not None:
            on_episode(min(n_steps, (e + 1) * horizon))
    return data

def concat_predictor_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The AIP state of the agents of several groups together, in order (every tensor has agents first)."""
    return {name: torch.cat([state[name] for state in states]) for name in states[0]}


def slice_predictor_state(state: dict[str, torch.Tensor], lo: int, hi: int) -> dict[str, torch.Tensor]:
    """The AIP state of agents lo..hi-1 (positions in the state), as copies."""
    return {name: tensor[lo:hi].clone() for name, tensor in state.items()}

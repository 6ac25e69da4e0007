"""Influence-augmented local simulators (IALS, Algorithm 3): local regions driven by their AIPs.

An `IALS` holds a batch of K local regions (one per agent of a group) and those agents' AIPs. At every step
it reads each region's d-set, asks the agent's AIP for the distribution of the influence sources u_t,
samples u_t and steps the local simulator with it: x_{t+1} = T(x_t, a_t, u_t). It has the same interface as
the global simulator (`reset`, `step`, `spec`, `dsets`, `local_states`, `influence_sources`), so PPO trains on
it exactly as on the GS. The GRU's state is carried from step to step and reset with the episode.

Between two retrainings the AIPs do not change, so the IALS keeps a numpy copy of their weights: a few small
batched matmuls per step in numpy cost far less than the same calls through torch.

Randomness is counter-based and per agent (keys from the run seed and agent id): the sampled influence and,
for the warehouse, the region's own item spawns. An agent's IALS trajectory therefore does not depend on how
agents are grouped into workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dials_lib.envs import close_simulator, get_spec, make_local
from dials_lib.hyperparameters import AIPConfig
from dials_lib.learning.influence import StackedPredictor, make_predictor, sample_sources
from dials_lib.seeding import CounterStream, Stream, agent_keys, agent_seeds, inverse_cdf


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


class FrozenPredictor:
    """A numpy snapshot of a `StackedPredictor` for fast step-by-step sampling (weights do not change).

    Weights are stored transposed ([K, out, in], float32) and applied as batched matrix-vector products to column
    vectors [K, in, 1]. At K = 100 these products read every weight once per step (about 90 KB per traffic
    agent), which bounds the step's cost from below: see benchmarks/sim_ials.py.
    """

    def __init__(self, model: StackedPredictor) -> None:
        def weight(t: Any) -> np.ndarray:  # [K, in, out] -> [K, out, in]
            return np.ascontiguousarray(t.detach().numpy().transpose(0, 2, 1), dtype=np.float32)

        def bias(t: Any) -> np.ndarray:  # [K, 1, out] -> [K, out, 1]
            return np.ascontiguousarray(t.detach().numpy().transpose(0, 2, 1), dtype=np.float32)

        self.source_sizes = model.source_sizes
        self.recurrent = model.recurrent
        self.hidden_size = model.hidden_size if model.recurrent else 0
        self.n_agents = model.n_agents
        self.body = [(weight(layer.weight), bias(layer.bias)) for layer in model.body]
        self.head = (weight(model.head.weight), bias(model.head.bias))
        if model.gru is not None:
            g = model.gru
            self.gru = (weight(g.weight_ih), bias(g.bias_ih), weight(g.weight_hh), bias(g.bias_hh))
        sizes = set(self.source_sizes)
        self._uniform_size = sizes.pop() if len(sizes) == 1 else None

    def initial_hidden(self) -> np.ndarray:
        """Zero recurrent state [K, H, 1]."""
        return np.zeros((self.n_agents, self.hidden_size, 1), dtype=np.float32)

    def logits(self, dsets: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output logits [K, n_logits] and next hidden state for d-sets [K, dset_dim]."""
        x = (2.0 * dsets - 1.0).astype(np.float32)[:, :, None]
        for weight, bias in self.body:
            x = np.maximum(weight @ x + bias, 0.0)
        if self.recurrent:
            w_ih, b_ih, w_hh, b_hh = self.gru
            gx, gh = w_ih @ x + b_ih, w_hh @ hidden + b_hh
            h = self.hidden_size
            reset_update = _sigmoid(gx[:, : 2 * h] + gh[:, : 2 * h])
            new = np.tanh(gx[:, 2 * h :] + reset_update[:, :h] * gh[:, 2 * h :])
            x = hidden = new + reset_update[:, h:] * (hidden - new)
        return (self.head[0] @ x + self.head[1])[:, :, 0], hidden

    def sample(self, dsets: np.ndarray, hidden: np.ndarray, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sampled sources int64 [K, n_sources] (one uniform each) and the next hidden state."""
        logits, hidden = self.logits(dsets, hidden)
        if self._uniform_size == 2:  # all binary: the one bound is p(0); u = 1 when the uniform reaches it
            return inverse_cdf(_sigmoid(-logits)[:, :, None], uniforms, side="right"), hidden
        if self._uniform_size is not None:  # all with c classes: unnormalised cdf [K, n_sources, c], scaled uniforms
            z = logits.reshape(self.n_agents, len(self.source_sizes), self._uniform_size)
            e = np.exp(z - z.max(axis=2, keepdims=True))
            cdf = e.cumsum(axis=2)
            return inverse_cdf(cdf[:, :, :-1], uniforms * cdf[:, :, -1]), hidden
        u = sample_sources(torch.from_numpy(logits), torch.from_numpy(uniforms), self.source_sizes)
        return u.numpy(), hidden


class AIPSampler:
    """One agent's trained AIP as the influence sampler of a single region (`envs.adapters.InfluenceAugmentedEnv`):
    u_t drawn from the AIP's distribution given the region's d-set, the GRU state carried through the episode."""

    def __init__(self, predictor: StackedPredictor, agent: int = 0) -> None:
        """The AIP of agent position `agent` in `predictor` (e.g. a group's AIPs after `train_predictor`)."""
        if not 0 <= agent < predictor.n_agents:
            raise ValueError(f"agent must be a position in the predictor, 0..{predictor.n_agents - 1}; got {agent}")
        state = {name: tensor[agent : agent + 1].clone() for name, tensor in predictor.state_dict().items()}
        single = make_predictor(predictor.config, predictor.input_dim, predictor.source_sizes, 0, [0])
        single.load_state_dict(state)
        self.predictor = FrozenPredictor(single)
        self.reset()

    def reset(self) -> None:
        """Zero recurrent state at an episode start."""
        self._hidden = self.predictor.initial_hidden()

    def __call__(self, dset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One u: int64 [n_sources], sampled with uniforms from `rng`."""
        uniforms = rng.random((1, len(self.predictor.source_sizes)))
        u, self._hidden = self.predictor.sample(np.asarray(dset, dtype=np.float32)[None], self._hidden, uniforms)
        return u[0]


class IALS:
    """K influence-augmented local simulators: local regions whose influence sources come from AIPs."""

    def __init__(self, env: str, predictor: StackedPredictor, seed: int | Sequence[int], agent_ids: Sequence[int]
                 ) -> None:
        if len(agent_ids) != predictor.n_agents:
            raise ValueError(f"agent_ids has {len(agent_ids)} entries but the predictor holds {predictor.n_agents}")
        self.env = env
        self.n_agents = predictor.n_agents
        self.agent_ids = [int(a) for a in agent_ids]
        # the LS's own generator is never drawn from here (its noise comes from the IALS_NOISE stream)
        self.ls = make_local(env, n_regions=self.n_agents, seed=agent_seeds(seed, self.n_agents)[0])
        self.spec = self.ls.spec
        self._n_steps = 0  # steps taken since construction: the counter of the random streams
        n_sources = len(self.spec.source_sizes)
        self._sample_stream = CounterStream(agent_keys(seed, self.agent_ids, Stream.IALS_SOURCES), n_sources)
        probe = self.ls.last_noise()
        self._noise_shape = None if probe is None else probe.shape
        self._noise_stream = None if probe is None else CounterStream(
            agent_keys(seed, self.agent_ids, Stream.IALS_NOISE), int(np.prod(probe.shape[1:])))
        self._u = np.zeros((self.n_agents, self.spec.n_sources), dtype=np.int64)
        self.set_predictor(predictor)

    def close(self) -> None:
        """Close the local simulator if it holds an outside resource (a SUMO simulation)."""
        close_simulator(self.ls)

    def set_predictor(self, predictor: StackedPredictor) -> None:
        """Use (a snapshot of) these AIPs from now on, e.g. after a retraining."""
        self.predictor = FrozenPredictor(predictor)
        self._hidden = self.predictor.initial_hidden()

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode in every region; returns observations [K, obs_dim]."""
        self._hidden = self.predictor.initial_hidden()
        self._u = np.zeros((self.n_agents, self.spec.n_sources), dtype=np.int64)
        return self.ls.reset(seed)

    def sample_influence(self) -> np.ndarray:
        """Sample u_t [K, n_sources] from the AIPs given the current d-sets (advances the GRU state)."""
        uniforms = self._sample_stream.at(self._n_steps)
        u, self._hidden = self.predictor.sample(self.ls.dsets(), self._hidden, uniforms)
        return u

    def step(self, actions: np.ndarray, u: np.ndarray | None = None, noise: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, bool]:
        """One step of every region with actions [K]; returns (obs, rewards, done).

        The influence sources are sampled from the AIPs unless `u` is given (e.g. the GS's realised ones, to
        check alignment); likewise the local draws come from the IALS's own stream unless `noise` is given.
        """
        sampled = self.sample_influence()  # always advance the AIP state, so a given u keeps it in step
        u = sampled if u is None else np.asarray(u, dtype=np.int64)
        if noise is None and self._noise_stream is not None:
            noise = self._noise_stream.at(self._n_steps).reshape(self._noise_shape)
        self._n_steps += 1
        self._u = u
        return self.ls.step(actions, u, noise)

    def dsets(self) -> np.ndarray:
        """The regions' d-sets at the current t."""
        return self.ls.dsets()

    def local_states(self) -> dict[str, np.ndarray]:
        """The regions' local states."""
        return self.ls.local_states()

    def influence_sources(self) -> np.ndarray:
        """u_t sampled from the AIPs for the step just taken, int64 [K, n_sources]."""
        return self._u.copy()

    def last_noise(self) -> np.ndarray | None:
        """The local random draws of the step just taken (None for traffic)."""
        return self.ls.last_noise()


def untrained_ials(env: str, config: AIPConfig, seed: int, agent_ids: Sequence[int]) -> IALS:
    """The paper's untrained-DIALS simulator: IALS with freshly initialised, never trained AIPs."""
    spec = get_spec(env)
    predictor = make_predictor(config, spec.dset_dim, spec.source_sizes, seed, agent_ids)
    return IALS(env, predictor, seed, agent_ids)

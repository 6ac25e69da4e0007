"""Ecosystem adapters over the core API: a GS as a PettingZoo `ParallelEnv`, one IALS as a Gymnasium `Env`.

Both are generic: they only use `spec`, `reset`, `step`, `dsets` and `influence_sources` of a simulator
built by `make_global` / `make_local`, so every environment of the registry gets them for free.

An influence sampler stands in for the rest of the world in the Gymnasium adapter. It is a callable
`sampler(dset, rng) -> u`, with `dset` the region's d-set at the current t (float32 [dset_dim]) and `u` an
integer array [n_sources] of class indices, i.e. u_t drawn before the step that it enters (docs/design.md,
"Timing convention"). A sampler with memory (e.g. a GRU AIP) may define `reset()`, called at every episode start.
`FixedRateSampler` is the simplest one: every source draws its class independently at fixed rates; an AIP trained
on GS data (`dials_lib.learning.ials.AIPSampler`) makes the region an influence-augmented local simulator:

    env = InfluenceAugmentedEnv(make_local("traffic", n_regions=1), AIPSampler(predictor, agent=0))

Both adapters refuse `step` before `reset` and after the episode ended, and the PettingZoo one refuses actions of
unknown agents, each with an error saying what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from dials_lib.seeding import inverse_cdf

InfluenceSampler = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _observation_box(obs_dim: int, low: float, high: float) -> gymnasium.spaces.Box:
    return gymnasium.spaces.Box(low=low, high=high, shape=(obs_dim,), dtype=np.float32)


class FixedRateSampler:
    """Draws every influence source independently from fixed class probabilities, ignoring the d-set."""

    def __init__(self, source_sizes: Sequence[int], probabilities: float | Sequence[Sequence[float]]) -> None:
        """`probabilities`: a rate p (each source is non-zero with probability p, spread evenly over its
        non-zero classes; for a binary source, P(u = 1) = p) or one probability vector per source."""
        self.source_sizes = tuple(int(s) for s in source_sizes)
        if not self.source_sizes or min(self.source_sizes) < 2:
            raise ValueError(f"source_sizes must list at least one source of >= 2 classes; got {source_sizes!r}")
        width = max(self.source_sizes)
        table = np.zeros((len(self.source_sizes), width))
        if np.isscalar(probabilities):
            rate = float(probabilities)  # type: ignore[arg-type]
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"probabilities as a rate must be in [0, 1]; got {rate}")
            for i, size in enumerate(self.source_sizes):
                table[i, 0] = 1.0 - rate
                table[i, 1:size] = rate / (size - 1)
        else:
            if len(probabilities) != len(self.source_sizes):  # type: ignore[arg-type]
                raise ValueError(f"probabilities needs one vector per source ({len(self.source_sizes)})")
            for i, (size, row) in enumerate(zip(self.source_sizes, probabilities, strict=True)):  # type: ignore[arg-type]
                row = np.asarray(row, dtype=float)
                if row.shape != (size,) or np.any(row < 0) or not np.isclose(row.sum(), 1.0):
                    raise ValueError(f"probabilities[{i}] must be {size} non-negative numbers summing to 1")
                table[i, :size] = row
        self.probabilities = table
        # Class bounds: each source's cdf up to its second to last class, then +inf (never passed) as padding.
        bounds = np.cumsum(table[:, :-1], axis=1)
        bounds[np.arange(width - 1)[None, :] >= np.array(self.source_sizes)[:, None] - 1] = np.inf
        self._bounds = bounds

    def __call__(self, dset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One u: int64 [n_sources]."""
        return inverse_cdf(self._bounds, rng.random(len(self.source_sizes)), side="right")


class GlobalParallelEnv(ParallelEnv):
    """A global simulator as a PettingZoo ParallelEnv: agents 'agent_0' ..; truncation at the horizon."""

    metadata = {"render_modes": [], "name": "dials_global_v0", "is_parallelizable": True}

    def __init__(self, simulator: Any, obs_low: float = 0.0, obs_high: float = 1.0) -> None:
        """Wrap `simulator` (from `make_global`); observations are Box(obs_low, obs_high, float32)."""
        self.simulator = simulator
        self.spec = simulator.spec
        self.n_agents = len(simulator.reset())
        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self.agents: list[str] = []
        self._obs_space = _observation_box(self.spec.obs_dim, obs_low, obs_high)
        self._action_space = gymnasium.spaces.Discrete(self.spec.n_actions)
        self.render_mode = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        """Observation space of `agent` (the same object every call)."""
        return self._obs_space

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        """Action space of `agent` (the same object every call)."""
        return self._action_space

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode; `seed` reseeds the simulator."""
        obs = self.simulator.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._per_agent(obs), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        """Step all agents; every agent must act while the episode runs."""
        if not self.agents:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        unknown = set(actions) - set(self.possible_agents)
        if unknown:
            raise ValueError(f"actions holds unknown agents {sorted(unknown)}; the agents are "
                             f"{self.possible_agents[0]} .. {self.possible_agents[-1]}")
        missing = set(self.agents) - set(actions)
        if missing:
            raise ValueError(f"actions is missing agents {sorted(missing)}")
        joint = np.array([int(actions[a]) for a in self.possible_agents], dtype=np.int64)
        obs, rew, done = self.simulator.step(joint)
        u = self.simulator.influence_sources()
        agents = self.agents
        observations = self._per_agent(obs)
        rewards = {a: float(rew[i]) for i, a in enumerate(agents)}
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, bool(done))
        infos = {a: {"influence_sources": u[i]} for i, a in enumerate(agents)}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _per_agent(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {a: obs[i].astype(np.float32) for i, a in enumerate(self.possible_agents)}


class InfluenceAugmentedEnv(gymnasium.Env):
    """One local region plus an influence sampler (an IALS) as a Gymnasium Env; truncation at the horizon."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        local: Any,
        sampler: InfluenceSampler,
        obs_low: float = 0.0,
        obs_high: float = 1.0,
        noise_sampler: Callable[[np.random.Generator], Any] | None = None,
    ) -> None:
        """Wrap a 1-region `local` simulator (from `make_local`) and `sampler(dset, rng) -> u [n_sources]`.

        `noise_sampler(rng)`, if given, supplies the region's local random draws of each step (e.g. a GS's
        `last_noise()[i]` for an exact replay); by default the local simulator draws its own."""
        if len(local.reset()) != 1:
            raise ValueError("local must be a local simulator with n_regions=1")
        if not callable(sampler):
            raise ValueError("sampler must be callable as sampler(dset, rng) -> u")
        if noise_sampler is not None and not callable(noise_sampler):
            raise ValueError("noise_sampler must be None or callable as noise_sampler(rng) -> noise")
        self.local = local
        self.sampler = sampler
        self.noise_sampler = noise_sampler
        self.spec_env = local.spec
        self.observation_space = _observation_box(local.spec.obs_dim, obs_low, obs_high)
        self.action_space = gymnasium.spaces.Discrete(local.spec.n_actions)
        self._running = False

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode; `seed` seeds the sampler's generator (and the local simulator)."""
        super().reset(seed=seed)
        obs = self.local.reset(seed=seed)
        if hasattr(self.sampler, "reset"):
            self.sampler.reset()
        self._running = True
        return obs[0].astype(np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Draw u_t from the sampler given the d-set at t, then step the region with (a_t, u_t)."""
        if not self._running:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in 0..{self.action_space.n - 1}; got {action!r}")
        u = np.asarray(self.sampler(self.local.dsets()[0], self.np_random), dtype=np.int64)
        if u.shape != (self.spec_env.n_sources,):
            raise ValueError(f"the sampler must return u of shape ({self.spec_env.n_sources},); got {u.shape}")
        noise = None if self.noise_sampler is None else np.asarray(self.noise_sampler(self.np_random))[None]
        obs, rew, done = self.local.step(np.array([action], dtype=np.int64), u[None, :], noise=noise)
        self._running = not done
        info = {"influence_sources": self.local.influence_sources()[0]}
        return obs[0].astype(np.float32), float(rew[0]), False, bool(done), info

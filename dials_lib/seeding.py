"""Every source of randomness of a run: named streams, counter-based uniforms, one inverse-CDF sampler.

A run has one integer seed. Everything random is derived from it in one of two ways.

Per-agent streams (`Stream`). Agent i's draws for a purpose (its initial weights, its actions, its minibatch
order, the influence sampled in its IALS, ...) come from `numpy.random.SeedSequence(seed, spawn_key=(i, stream))`
and nothing else. Where the draws are made step by step, the sequence yields one 64-bit key per agent and the
n-th uniform of the stream is a SplitMix64 hash of (key, n) (`counter_uniforms`): a counter-based generator. It
has no state besides the counter, so a group of K agents is hashed in one vectorised call, and an agent's numbers
are the same whether it shares a worker with 0 or 99 other agents, or moves to another worker between chunks.
That is what makes results independent of how agents are grouped into workers. Where a library call wants a
generator object (torch initialisers, numpy permutations), `agent_generator` and `agent_rng` build one from the
same spawn key.

Run-level purposes (`Purpose`). Simulators that are not per agent (the GS of training episodes, of AIP data
collection, of evaluation; the seed of an IALS chunk) get `derived_seed(seed, purpose, index)`.

The numbers of both enums are part of every result: changing one changes every number a run produces. New
streams and purposes take new numbers.

Sampling a class from probabilities with one of these uniforms is `inverse_cdf`, the single inverse-CDF rule
used by PPO's actions, the AIPs' sources, the IALS, the Gymnasium adapter's fixed-rate sampler and the tiny
models of the theory checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TypeVar

import numpy as np
import torch


class Stream(IntEnum):
    """Per-agent random streams: `SeedSequence(seed, spawn_key=(agent_id, stream, ...))`."""

    POLICY_INIT = 0
    """A policy's initial weights (`networks.make_policy`)."""
    ACTIONS = 1
    """PPO's actions while training."""
    MINIBATCH_ORDER = 2
    """PPO's order of the buffer's chunks in every epoch."""
    EVAL_ACTIONS = 3
    """PPO's stochastic actions during evaluation."""
    AIP_INIT = 10
    """An AIP's initial weights (`influence.make_predictor`)."""
    AIP_MINIBATCH_ORDER = 11
    """An AIP's minibatch order in training round r (spawn key (agent id, 11, r))."""
    IALS_SOURCES = 12
    """The influence sources sampled in the IALS."""
    IALS_NOISE = 13
    """The local simulator's own draws in the IALS (warehouse item spawns)."""
    RANDOM_ACTIONS = 20
    """The random controller's actions."""


class Purpose(IntEnum):
    """Run-level purposes of `derived_seed(seed, purpose, index)`."""

    GS_TRAINING = 1
    """The GS that PPO trains on (GS runs), per chunk."""
    DATA_COLLECTION = 2
    """The GS that AIP data sets are collected from, per retraining."""
    EVALUATION = 3
    """The GS episodes of an evaluation, per evaluation."""
    IALS = 4
    """The IALS of a DIALS chunk, per chunk."""


def boundary_counter(purpose: Purpose, boundary: int) -> int:
    """The first counter of the per-agent evaluation stream for `purpose` at chunk boundary `boundary`: its own
    range of 2**40 steps, so that what the policy samples at a boundary does not depend on what was sampled at
    earlier boundaries (how often or how long a run evaluated) or on the boundary's other purposes."""
    return (int(boundary) * len(Purpose) + int(purpose) - 1) << 40


def derived_seed(seed: int, *tags: int) -> int:
    """A 63-bit seed for one purpose of a run (e.g. the GS of evaluation 3), spawned from the run seed and `tags`."""
    words = np.random.SeedSequence([seed, *(int(t) for t in tags)]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 | int(words[1]) >> 1


def agent_seed_sequence(seed: int, agent_id: int, stream: Stream, *more: int) -> np.random.SeedSequence:
    """The seed sequence of one agent's stream (and of `more`, e.g. a training round): (seed, agent, stream) only."""
    return np.random.SeedSequence(seed, spawn_key=(int(agent_id), int(stream), *(int(m) for m in more)))


def agent_seeds(seed: int | Sequence[int], n_agents: int) -> list[int]:
    """The run seed of each of `n_agents` agents: one int for all of them, or one per agent (a stacked group that
    holds the agents of several runs of different seeds, `dials_lib.training.seed_batch`)."""
    if isinstance(seed, int | np.integer):
        return [int(seed)] * n_agents
    seeds = [int(s) for s in seed]
    if len(seeds) != n_agents:
        raise ValueError(f"seed must be one int or one per agent ({n_agents}); got {len(seeds)} seeds")
    return seeds


def agent_keys(seed: int | Sequence[int], agent_ids: Sequence[int], stream: Stream) -> np.ndarray:
    """One uint64 key per agent for `counter_uniforms`, each depending only on (seed, agent id, stream); `seed` is
    the run seed of every agent or one per agent (`agent_seeds`)."""
    seeds = agent_seeds(seed, len(agent_ids))
    return np.array(
        [agent_seed_sequence(s, a, stream).generate_state(1, np.uint64)[0]
         for s, a in zip(seeds, agent_ids, strict=True)],
        dtype=np.uint64,
    )


def agent_generator(seed: int, agent_id: int, stream: Stream) -> torch.Generator:
    """A torch generator that depends only on (seed, agent_id, stream), e.g. for an agent's initial weights."""
    state = agent_seed_sequence(seed, agent_id, stream).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def agent_rng(seed: int, agent_id: int, stream: Stream, *more: int) -> np.random.Generator:
    """A numpy generator that depends only on (seed, agent_id, stream, *more)."""
    return np.random.default_rng(agent_seed_sequence(seed, agent_id, stream, *more))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def counter_uniforms(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) from a SplitMix64 hash of (key, counter); keys [K], counters [K, ...] -> float64 [K, ...].

    The top 53 bits of the hash, times 2**-53: every value is a multiple of 2**-53, 0 included, 1 excluded.
    """
    with np.errstate(over="ignore"):
        z = keys.reshape((-1,) + (1,) * (counters.ndim - 1)) + counters.astype(np.uint64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


class CounterStream:
    """The per-agent counter-based uniforms of one stream, `width` per step, computed many steps at a time.

    Step n's uniforms have counters n * width + 0..width-1, so a block of steps holds exactly the numbers that
    step-by-step calls would give; hashing a block at once spreads the fixed cost of the hash over its steps.
    """

    def __init__(self, keys: np.ndarray, width: int, block_steps: int = 128) -> None:
        """Uniforms of the agents with `keys` (from `agent_keys`), `width` per step, `block_steps` per hash."""
        self.keys, self.width, self.block_steps = keys, width, block_steps
        self._first = self._end = 0
        self._block = np.empty((0, len(keys), width))

    def at(self, step: int) -> np.ndarray:
        """Uniforms [K, width] of step `step` (any step, in any order)."""
        if not self._first <= step < self._end:
            counters = (np.arange(step * self.width, (step + self.block_steps) * self.width, dtype=np.uint64)
                        .reshape(self.block_steps, self.width))
            self._block = counter_uniforms(self.keys, np.broadcast_to(counters, (len(self.keys), *counters.shape)))
            self._block = np.ascontiguousarray(self._block.transpose(1, 0, 2))  # [steps, K, width]
            self._first, self._end = step, step + self.block_steps
        return self._block[step - self._first]

    def of_counters(self, counters: np.ndarray) -> np.ndarray:
        """Uniforms [K, width] for each agent's own step count `counters` [K]: from the hashed blocks when the agents
        are in step (always, unless states were joined by hand), else hashed one by one."""
        if counters.min() == counters.max():
            return self.at(int(counters[0]))
        steps = counters.astype(np.uint64)[:, None] * np.uint64(self.width) + np.arange(self.width, dtype=np.uint64)
        return counter_uniforms(self.keys, steps)


Array = TypeVar("Array", np.ndarray, torch.Tensor)


def inverse_cdf(bounds: Array, uniforms: Array, side: str = "left") -> Array:
    """Class indices by inverse CDF: bounds [..., C-1], uniforms [...] -> int64 [...] in 0..C-1 (numpy or torch).

    `bounds` are the first C-1 values of each cumulative distribution (the cdf without its last value), in the
    same units as the uniforms (a cdf scaled by its total works with uniforms scaled by the same total). The index
    is the number of bounds below the uniform, as in `searchsorted`: with side='left' a uniform equal to a bound
    stays in that bound's class (`bound < u`), with side='right' it goes to the next (`bound <= u`).

    The cdf's last value is never compared: every uniform above the last bound is the last class. For a float
    cdf whose last value falls a rounding short of 1 this is the usual clamp, and for a non-decreasing cdf
    (cumulative sums of non-negative probabilities) the result is exactly that of counting over the whole cdf
    and then clamping to C-1. Comparisons follow the operands' dtypes (a float32 cdf against float64 uniforms
    is compared in float64, in numpy and torch alike).
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right'; got {side!r}")
    threshold = uniforms[..., None]
    below = bounds <= threshold if side == "right" else bounds < threshold
    if bounds.shape[-1] == 1:  # two classes: the one comparison is the index (a sum over one value costs more)
        return below[..., 0].long() if isinstance(below, torch.Tensor) else below[..., 0].astype(np.int64)
    return below.sum(-1)


__all__ = [
    "CounterStream",
    "Purpose",
    "Stream",
    "agent_generator",
    "agent_keys",
    "agent_rng",
    "agent_seed_sequence",
    "agent_seeds",
    "boundary_counter",
    "counter_uniforms",
    "derived_seed",
    "inverse_cdf",
]

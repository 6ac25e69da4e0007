"""The run's randomness: fixed stream and purpose numbers, counter-based uniforms, keys, the inverse-CDF sampler."""

import numpy as np
import pytest
import torch

from dials_lib.envs.adapters import FixedRateSampler
from dials_lib.learning.ppo_core import sample_actions
from dials_lib.seeding import (
    Purpose,
    Stream,
    agent_generator,
    agent_keys,
    agent_rng,
    counter_uniforms,
    derived_seed,
    inverse_cdf,
)

MASK = (1 << 64) - 1


def splitmix64_uniform(key: int, counter: int) -> float:
    """Reference: SplitMix64's output for state key + counter * golden ratio, top 53 bits as a float in [0, 1)."""
    z = (key + counter * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z >> 11) / 2.0**53


def reference_inverse_cdf(cdf: np.ndarray, u: float, side: str) -> int:
    """Reference for one row: count the whole cdf's values below u, then clamp to the last class."""
    below = sum(1 for c in cdf if (c <= u if side == "right" else c < u))
    return min(below, len(cdf) - 1)


# ---- the numbers that every result depends on ------------------------------------------------------------------
def test_stream_numbers_are_distinct_and_fixed() -> None:
    """A changed number would silently change every result: the table is pinned here."""
    assert {s.name: int(s) for s in Stream} == {
        "POLICY_INIT": 0,
        "ACTIONS": 1,
        "MINIBATCH_ORDER": 2,
        "EVAL_ACTIONS": 3,
        "AIP_INIT": 10,
        "AIP_MINIBATCH_ORDER": 11,
        "IALS_SOURCES": 12,
        "IALS_NOISE": 13,
        "RANDOM_ACTIONS": 20,
    }
    assert len({int(s) for s in Stream}) == len(Stream)


def test_purpose_numbers_are_distinct_and_fixed() -> None:
    assert {p.name: int(p) for p in Purpose} == {"GS_TRAINING": 1, "DATA_COLLECTION": 2, "EVALUATION": 3, "IALS": 4}
    assert len({int(p) for p in Purpose}) == len(Purpose)


def test_keys_and_derived_seeds_keep_their_values() -> None:
    """Pinned values: a change of the derivation (not only of a stream number) would move every result."""
    np.testing.assert_array_equal(
        agent_keys(7, [0, 5], Stream.ACTIONS), np.array([15529291740490724314, 5218117170413077397], dtype=np.uint64)
    )
    assert [derived_seed(7, p, 3) for p in Purpose] == [
        4116630836861287870, 9092388782545542825, 8169191916684918050, 6311911001736843043,
    ]


# ---- counter-based uniforms --------------------------------------------------------------------------------------
def test_counter_uniforms_match_a_per_agent_reference_and_lie_in_the_unit_interval() -> None:
    keys = np.array([0, 1, 2**63 + 12345, MASK], dtype=np.uint64)
    counters = np.array([[0, 1, 2], [5, 2**40, 3], [7, 7, 0], [MASK, 1, 2**63]], dtype=np.uint64)
    u = counter_uniforms(keys, counters)
    assert u.dtype == np.float64 and u.shape == (4, 3)
    expected = [[splitmix64_uniform(int(k), int(c)) for c in row] for k, row in zip(keys, counters, strict=True)]
    np.testing.assert_array_equal(u, np.array(expected))
    many = counter_uniforms(keys, np.broadcast_to(np.arange(50_000, dtype=np.uint64), (4, 50_000)))
    assert many.min() >= 0.0 and many.max() < 1.0
    assert np.all(many * 2.0**53 == np.floor(many * 2.0**53))  # multiples of 2**-53
    np.testing.assert_allclose(many.mean(axis=1), 0.5, atol=0.01)


def test_an_agents_uniforms_do_not_depend_on_its_group() -> None:
    keys = agent_keys(3, [4, 9, 1], Stream.IALS_SOURCES)
    counters = np.broadcast_to(np.arange(6, dtype=np.uint64), (3, 6))
    together = counter_uniforms(keys, counters)
    for k, agent in enumerate([4, 9, 1]):
        alone = counter_uniforms(agent_keys(3, [agent], Stream.IALS_SOURCES), counters[:1])
        np.testing.assert_array_equal(alone[0], together[k])


# ---- keys and generators -----------------------------------------------------------------------------------------
def test_agent_keys_depend_only_on_seed_agent_and_stream() -> None:
    group = agent_keys(5, [2, 0, 7], Stream.ACTIONS)
    assert group.dtype == np.uint64
    for k, agent in enumerate([2, 0, 7]):
        assert agent_keys(5, [agent], Stream.ACTIONS)[0] == group[k]
        assert agent_keys(5, [agent, 11, 12], Stream.ACTIONS)[0] == group[k]
        assert group[k] == np.random.SeedSequence(5, spawn_key=(agent, 1)).generate_state(1, np.uint64)[0]
    by_stream = {int(agent_keys(5, [2], s)[0]) for s in Stream}
    assert len(by_stream) == len(Stream)
    assert agent_keys(6, [2], Stream.ACTIONS)[0] != group[0]
    assert len(set(group.tolist())) == 3


def test_agent_generators_depend_only_on_seed_agent_and_stream() -> None:
    def draws(seed: int, agent: int, stream: Stream) -> torch.Tensor:
        return torch.rand(5, generator=agent_generator(seed, agent, stream))

    assert torch.equal(draws(1, 3, Stream.POLICY_INIT), draws(1, 3, Stream.POLICY_INIT))
    assert not torch.equal(draws(1, 3, Stream.POLICY_INIT), draws(1, 3, Stream.AIP_INIT))
    assert not torch.equal(draws(1, 3, Stream.POLICY_INIT), draws(1, 4, Stream.POLICY_INIT))
    assert not torch.equal(draws(1, 3, Stream.POLICY_INIT), draws(2, 3, Stream.POLICY_INIT))


def test_agent_rng_adds_further_spawn_key_entries() -> None:
    first = agent_rng(1, 3, Stream.AIP_MINIBATCH_ORDER, 0).permutation(50)
    np.testing.assert_array_equal(first, agent_rng(1, 3, Stream.AIP_MINIBATCH_ORDER, 0).permutation(50))
    reference = np.random.default_rng(np.random.SeedSequence(1, spawn_key=(3, 11, 0))).permutation(50)
    np.testing.assert_array_equal(first, reference)
    assert not np.array_equal(first, agent_rng(1, 3, Stream.AIP_MINIBATCH_ORDER, 1).permutation(50))


def test_derived_seed_differs_per_purpose_and_index() -> None:
    seeds = {derived_seed(0, p, i) for p in Purpose for i in range(5)}
    assert len(seeds) == 4 * 5
    assert all(0 <= s < 2**63 for s in seeds)
    assert derived_seed(0, Purpose.EVALUATION, 2) == derived_seed(0, 3, 2)  # the enum is its number
    assert derived_seed(0, Purpose.EVALUATION, 2) != derived_seed(1, Purpose.EVALUATION, 2)


def test_derived_seed_is_still_importable_from_run_config() -> None:
    from dials_lib.training.run_config import derived_seed as from_run_config

    assert from_run_config is derived_seed


# ---- the inverse-CDF sampler -------------------------------------------------------------------------------------
def _probabilities(rng: np.random.Generator, rows: int, classes: int) -> np.ndarray:
    p = rng.gamma(0.5, size=(rows, classes))
    p[rng.random((rows, classes)) < 0.2] = 0.0  # some classes of probability 0
    p[:, 0] += 1e-3
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 5])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_cdf_equals_the_reference_in_numpy_and_torch(side: str, dtype: type, classes: int) -> None:
    rng = np.random.default_rng(0)
    rows = 400
    cdf = np.cumsum(_probabilities(rng, rows, classes).astype(dtype), axis=1)
    u = rng.random(rows)
    u[:100] = cdf[:100, rng.integers(0, classes - 1, 100)].diagonal()  # ties with a bound
    u[100:120] = 0.0
    u[120:140] = np.nextafter(1.0, 0.0)  # above a float cdf whose last value is short of 1
    expected = np.array([reference_inverse_cdf(c, x, side) for c, x in zip(cdf, u, strict=True)])
    got = inverse_cdf(cdf[:, :-1], u, side=side)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    got_torch = inverse_cdf(torch.from_numpy(cdf)[:, :-1], torch.from_numpy(u), side=side)
    assert got_torch.dtype == torch.int64
    np.testing.assert_array_equal(got_torch.numpy(), expected)


def test_inverse_cdf_clamps_to_the_last_class_when_the_uniform_passes_the_float_cdf() -> None:
    short = np.array([0.2, 0.3, 0.49999994], dtype=np.float32).cumsum()  # last value a rounding short of 1
    assert short[-1] < 1.0
    u = np.array([0.99999999, float(short[-1])])
    np.testing.assert_array_equal(inverse_cdf(np.stack([short[:-1]] * 2), u), [2, 2])
    np.testing.assert_array_equal(inverse_cdf(np.stack([short[:-1]] * 2), u, side="right"), [2, 2])


def test_inverse_cdf_ties_follow_side() -> None:
    bounds = np.array([[0.25, 0.5], [0.0, 0.5]])
    np.testing.assert_array_equal(inverse_cdf(bounds, np.array([0.25, 0.0])), [0, 0])
    np.testing.assert_array_equal(inverse_cdf(bounds, np.array([0.25, 0.0]), side="right"), [1, 1])
    with pytest.raises(ValueError, match="side"):
        inverse_cdf(bounds, np.array([0.1, 0.1]), side="middle")


def test_inverse_cdf_with_scaled_uniforms_on_an_unnormalised_cdf() -> None:
    """The IALS compares uniforms times the total with the cdf of unnormalised weights."""
    rng = np.random.default_rng(3)
    weights = rng.random((50, 4)).astype(np.float32)
    cdf = weights.cumsum(axis=1)
    u = rng.random(50)
    expected = [reference_inverse_cdf(c, x * c[-1], "left") for c, x in zip(cdf, u, strict=True)]
    np.testing.assert_array_equal(inverse_cdf(cdf[:, :-1], u * cdf[:, -1]), expected)


def test_sample_actions_samples_by_inverse_cdf_and_returns_the_log_probability() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 5, generator=gen)
    uniforms = torch.rand(200, generator=gen)
    uniforms[:10] = 1.0 - 2.0**-24
    actions, logp = sample_actions(logits, uniforms)
    cdf = torch.log_softmax(logits, dim=-1).exp().cumsum(dim=-1).numpy()
    expected = [reference_inverse_cdf(c, float(x), "left") for c, x in zip(cdf, uniforms, strict=True)]
    np.testing.assert_array_equal(actions.numpy(), expected)
    torch.testing.assert_close(logp, torch.log_softmax(logits, dim=-1)[torch.arange(200), actions])


def test_fixed_rate_sampler_is_the_inverse_cdf_of_its_probabilities() -> None:
    sampler = FixedRateSampler((2, 4, 3), [[0.3, 0.7], [0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.5]])
    rng, replay = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(300):
        u = sampler(np.zeros(3, dtype=np.float32), rng)
        draws = replay.random(3)
        expected = [reference_inverse_cdf(np.cumsum(p[:size]), x, "right")
                    for p, size, x in zip(sampler.probabilities, (2, 4, 3), draws, strict=True)]
        np.testing.assert_array_equal(u, expected)
        assert u[2] != 1  # a class of probability 0 is never drawn


def test_a_counter_stream_gives_each_agent_the_uniforms_of_its_own_count() -> None:
    from dials_lib.seeding import CounterStream

    keys = agent_keys(7, [0, 1, 2], Stream.ACTIONS)
    stream = CounterStream(keys, width=2, block_steps=4)
    for counts in ([5, 5, 5], [0, 9, 3], [11, 11, 11]):  # in step (from the blocks) and not (hashed one by one)
        counts = np.array(counts, dtype=np.uint64)
        expected = counter_uniforms(keys, counts[:, None] * np.uint64(2) + np.arange(2, dtype=np.uint64))
        np.testing.assert_array_equal(stream.of_counters(counts), expected)

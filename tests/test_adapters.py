"""PettingZoo / Gymnasium adapters: API conformance and agreement with the core simulators.

Parametrized by environment name over every environment of the registry.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from dials_lib.envs import get_spec, make_global, make_local
from dials_lib.envs.adapters import FixedRateSampler, GlobalParallelEnv, InfluenceAugmentedEnv
from dials_lib.hyperparameters import ENV_NAMES

ENVS = ENV_NAMES


def _fixed_sampler(env_name: str) -> FixedRateSampler:
    """A plausible fixed-rate stand-in for the rest of the world: rare arrivals / rare neighbour visits."""
    spec = get_spec(env_name)
    if env_name == "warehouse":  # class 3 = the neighbour is not on one of our shared cells
        return FixedRateSampler(spec.source_sizes, [[0.03, 0.03, 0.03, 0.91]] * spec.n_sources)
    return FixedRateSampler(spec.source_sizes, 0.1)


@pytest.mark.parametrize("env_name", ENVS)
def test_global_parallel_env_passes_pettingzoo_api_test(env_name: str) -> None:
    """The GS adapter passes PettingZoo's parallel API test over whole episodes, without warnings."""
    env = GlobalParallelEnv(make_global(env_name, n_agents=4, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_api_test(env, num_cycles=get_spec(env_name).horizon + 5)
    assert env.agents == []  # the episode ended at the horizon


@pytest.mark.parametrize("env_name", ENVS)
def test_global_parallel_env_matches_core_simulator(env_name: str) -> None:
    """Same seed and actions: the adapter returns the core simulator's observations and rewards."""
    core = make_global(env_name, n_agents=4, seed=2)
    env = GlobalParallelEnv(make_global(env_name, n_agents=4, seed=2))
    obs, _ = env.reset()
    np.testing.assert_array_equal(np.stack([obs[a] for a in env.possible_agents]), core.reset())
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, core.spec.n_actions, size=4)
        core_obs, core_rew, _ = core.step(actions)
        obs, rew, term, trunc, info = env.step({a: int(x) for a, x in zip(env.possible_agents, actions, strict=True)})
        np.testing.assert_array_equal(np.stack([obs[a] for a in env.possible_agents]), core_obs)
        np.testing.assert_allclose([rew[a] for a in env.possible_agents], core_rew)
        np.testing.assert_array_equal(info["agent_0"]["influence_sources"], core.influence_sources()[0])
    with pytest.raises(ValueError, match="missing"):
        env.step({"agent_0": 0})


@pytest.mark.parametrize("env_name", ENVS)
def test_influence_augmented_env_passes_gymnasium_check(env_name: str) -> None:
    """One LS region plus a fixed-rate sampler passes Gymnasium's env checker and runs to the horizon."""
    spec = get_spec(env_name)
    env = InfluenceAugmentedEnv(make_local(env_name, n_regions=1, seed=0), _fixed_sampler(env_name))
    check_env(env, skip_render_check=True)
    env.reset(seed=1)
    steps, truncated, total = 0, False, 0.0
    while not truncated:
        obs, rew, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and not terminated
        total += rew
        steps += 1
    assert steps == spec.horizon and total > 0


@pytest.mark.parametrize("env_name", ENVS)
def test_influence_augmented_env_replays_the_gs_given_its_influence(env_name: str) -> None:
    """Fed the GS's realised u (and its local noise, where the env has any), the Gymnasium IALS reproduces
    agent 0 of the GS."""
    gs = make_global(env_name, n_agents=4, seed=3)
    has_noise = gs.last_noise() is not None  # traffic: None (all its inputs are u); warehouse: item spawns
    recorded_u: list[np.ndarray] = []
    recorded_noise: list[np.ndarray] = []

    def replay_sampler(dset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return recorded_u[-1][0]

    def replay_noise(rng: np.random.Generator) -> np.ndarray:
        return recorded_noise[-1][0]

    env = InfluenceAugmentedEnv(make_local(env_name, n_regions=1), replay_sampler,
                                noise_sampler=replay_noise if has_noise else None)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    rewarded = 0
    for _ in range(100):
        actions = rng.integers(0, gs.spec.n_actions, size=4)
        gs_obs, gs_rew, _ = gs.step(actions)
        recorded_u.append(gs.influence_sources())
        recorded_noise.append(gs.last_noise())
        assert (gs.last_noise() is not None) == has_noise
        obs, rew, _, _, info = env.step(int(actions[0]))
        np.testing.assert_array_equal(obs, gs_obs[0])
        assert rew == float(gs_rew[0])
        np.testing.assert_array_equal(info["influence_sources"], recorded_u[-1][0])
        rewarded += rew > 0
    assert rewarded > 0


def test_fixed_rate_sampler_rates_and_errors() -> None:
    """Binary and categorical sources come out at the requested rates; bad arguments are refused."""
    rng = np.random.default_rng(0)
    binary = FixedRateSampler((2, 2, 2), 0.3)
    draws = np.stack([binary(np.zeros(1), rng) for _ in range(20_000)])
    assert draws.shape == (20_000, 3) and draws.dtype == np.int64
    np.testing.assert_allclose(draws.mean(axis=0), 0.3, atol=0.015)
    categorical = FixedRateSampler((4, 2), [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5]])
    draws = np.stack([categorical(np.zeros(1), rng) for _ in range(20_000)])
    np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=4) / 20_000, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    assert draws[:, 1].max() == 1
    with pytest.raises(ValueError, match="rate"):
        FixedRateSampler((2,), 1.5)
    with pytest.raises(ValueError, match="probabilities"):
        FixedRateSampler((2, 2), [[0.5, 0.5]])
    with pytest.raises(ValueError, match="source_sizes"):
        FixedRateSampler((), 0.1)


def test_adapter_argument_errors() -> None:
    """A multi-region LS, a non-callable sampler, a bad action or a badly shaped u raise clear errors."""
    spec = get_spec("traffic")
    with pytest.raises(ValueError, match="n_regions=1"):
        InfluenceAugmentedEnv(make_local("traffic", n_regions=2), FixedRateSampler(spec.source_sizes, 0.1))
    with pytest.raises(ValueError, match="sampler"):
        InfluenceAugmentedEnv(make_local("traffic"), sampler=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise_sampler"):
        InfluenceAugmentedEnv(make_local("warehouse"), _fixed_sampler("warehouse"), noise_sampler=0.5)
    env = InfluenceAugmentedEnv(make_local("traffic"), lambda dset, rng: np.zeros(3, dtype=np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(5)
    with pytest.raises(ValueError, match="sampler must return"):
        env.step(0)


@pytest.mark.parametrize("env_name", ["traffic", "warehouse"])
def test_an_aip_sampler_makes_a_region_an_ials_as_a_gymnasium_env(env_name: str) -> None:
    """A trained AIP as the sampler: the env passes Gymnasium's checker, and its influence follows the AIP (a source
    the AIP predicts as almost never active stays inactive; the same seed replays the same episode)."""
    import torch

    from dials_lib.hyperparameters import paper_hyperparameters
    from dials_lib.learning.ials import AIPSampler
    from dials_lib.learning.influence import make_predictor

    spec = get_spec(env_name)
    predictor = make_predictor(paper_hyperparameters(env_name).aip, spec.dset_dim, spec.source_sizes, 0, [0, 1])
    with torch.no_grad():  # agent 1's head: every source's class 0 far more likely than the others
        predictor.head.bias[1] = 0.0
        start = 0
        for size in spec.source_sizes:
            width = 1 if size == 2 else size
            if size == 2:
                predictor.head.bias[1, 0, start] = -30.0  # binary sources: one logit, of class 1
            else:
                predictor.head.bias[1, 0, start] = 30.0
            start += width
        predictor.head.weight[1] = 0.0
    env = InfluenceAugmentedEnv(make_local(env_name, n_regions=1), AIPSampler(predictor, agent=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    env.reset(seed=3)
    sources = [env.step(0)[4]["influence_sources"] for _ in range(20)]
    assert all(np.all(u == 0) for u in sources)
    replay = [InfluenceAugmentedEnv(make_local(env_name, n_regions=1), AIPSampler(predictor, agent=0))
              for _ in range(2)]
    runs = []
    for env in replay:
        env.reset(seed=5)
        runs.append([env.step(i % spec.n_actions)[0] for i in range(15)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    with pytest.raises(ValueError, match="agent must be a position"):
        AIPSampler(predictor, agent=2)


def test_the_adapters_refuse_steps_out_of_an_episode_and_unknown_agents() -> None:
    gs = GlobalParallelEnv(make_global("traffic", n_agents=4, seed=0))
    with pytest.raises(RuntimeError, match="call reset"):
        gs.step({a: 0 for a in gs.possible_agents})
    gs.reset(seed=0)
    with pytest.raises(ValueError, match="unknown agents \\['agent_9'\\]"):
        gs.step({**{a: 0 for a in gs.possible_agents}, "agent_9": 0})
    done = False
    while not done:
        *_, truncations, _ = gs.step({a: 0 for a in gs.agents})
        done = all(truncations.values())
    with pytest.raises(RuntimeError, match="episode is over"):
        gs.step({a: 0 for a in gs.possible_agents})
    spec = get_spec("traffic")
    local = InfluenceAugmentedEnv(make_local("traffic", n_regions=1), FixedRateSampler(spec.source_sizes, 0.1))
    with pytest.raises(RuntimeError, match="call reset"):
        local.step(0)
    local.reset(seed=0)
    truncated = False
    while not truncated:
        truncated = local.step(0)[3]
    with pytest.raises(RuntimeError, match="episode is over"):
        local.step(0)

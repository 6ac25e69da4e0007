"""The environment contract, for every environment of the registry: Protocols, registry records, local form.

`check_local_form` is the executable local-form property (docs/design.md, "The local-form contract"); the
counter-tests below feed it deliberately broken local simulators and show that it catches each of them, and
says where.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dials_lib.envs import (
    ENVS,
    GlobalSimulator,
    LocalFormError,
    LocalSimulator,
    check_local_form,
    get_env,
    get_spec,
    make_global,
    make_local,
    registry,
)
from dials_lib.envs.local_form import STEP_QUANTITIES
from dials_lib.hyperparameters import ENV_NAMES, ENV_VARIANTS

ENV_LIST = list(ENVS)


def test_registry_holds_every_environment_name() -> None:
    """One record per name of `ENV_NAMES`, keyed by its spec's name, and one per variant of `ENV_VARIANTS`; other
    names are refused naming `env`."""
    assert tuple(ENVS) == ENV_NAMES
    assert tuple(registry.EXTRA_ENVS) == tuple(ENV_VARIANTS)
    assert all(record.name == name for name, record in registry.EXTRA_ENVS.items())
    for name, record in ENVS.items():
        assert record.name == name and get_env(name) is record and get_spec(name) is record.spec
    with pytest.raises(ValueError, match="env"):
        get_env("trafic")


def test_the_registry_refuses_names_and_records_that_differ() -> None:
    """`ENVS` takes its names from `ENV_NAMES`: a name without a record, or a record no name lists, is an error
    naming both; matching ones are keyed in the order of the names."""
    traffic_record, _ = registry.PAPER_RECORDS
    assert list(registry.records_by_name(("warehouse", "traffic"), registry.PAPER_RECORDS)) == ["warehouse", "traffic"]
    with pytest.raises(ValueError, match=r"no record for \['parking'\], not listed \[\]"):
        registry.records_by_name(("traffic", "warehouse", "parking"), registry.PAPER_RECORDS)
    with pytest.raises(ValueError, match=r"no record for \[\], not listed \['warehouse'\]"):
        registry.records_by_name(("traffic",), registry.PAPER_RECORDS)
    with pytest.raises(ValueError, match="one record per name"):
        registry.records_by_name(("traffic",), (traffic_record, traffic_record))


@pytest.mark.parametrize("env", ENV_LIST)
def test_simulators_follow_the_protocols(env: str) -> None:
    """`make_global` / `make_local` build the record's classes, which satisfy the Protocols and share the spec."""
    record = get_env(env)
    gs, ls = make_global(env, n_agents=4, seed=0), make_local(env, n_regions=3, seed=0)
    assert type(gs) is record.global_simulator and type(ls) is record.local_simulator
    assert isinstance(gs, GlobalSimulator) and isinstance(ls, LocalSimulator)
    assert not isinstance(ls, GlobalSimulator)  # an LS has no n_agents: the Protocols tell them apart
    assert gs.spec == ls.spec == record.spec
    assert (gs.n_agents, ls.n_regions, gs.t, ls.t) == (4, 3, 0, 0)


@pytest.mark.parametrize("env", ENV_LIST)
def test_record_parts_fit_the_spec(env: str) -> None:
    """Hand-coded actions, source names, metrics and tracker agree with the spec and with one another."""
    from dials_lib.learning.controllers import HandCodedController
    from dials_lib.training.evaluation import DOMAIN_METRICS, evaluate_controller

    record = get_env(env)
    gs = make_global(env, n_agents=9, seed=1)
    actions = record.hand_coded(gs.local_states())
    assert actions.shape == (9,) and actions.dtype == np.int64
    assert ((actions >= 0) & (actions < record.spec.n_actions)).all()
    assert len(record.source_names) == record.spec.n_sources == len(set(record.source_names))
    assert 0 <= record.idle_source_class < min(record.spec.source_sizes)
    assert DOMAIN_METRICS[env] == record.metric_names == tuple(m.name for m in record.metrics)
    assert all(m.label and m.unit and m.axis_label == f"{m.label} ({m.unit})" for m in record.metrics)
    result = evaluate_controller(env, HandCodedController(env), 4, episodes=1, seed=0)
    assert list(result)[3:] == list(record.metric_names)  # the tracker reports exactly the declared metrics
    assert all(np.isfinite(result[m]) for m in record.metric_names)


# ---------------------------------------------------------------- the local-form property


@pytest.mark.parametrize("env", ENV_LIST)
@pytest.mark.parametrize("n_agents", [4, 25, 100])
@pytest.mark.parametrize("controller", ["random", "hand-coded"])
@pytest.mark.parametrize("copies", [1, 3])
def test_local_form_holds(env: str, n_agents: int, controller: str, copies: int) -> None:
    """An LS batch loaded once per episode from the GS and fed its u and noise follows it bit for bit; also
    when the GS holds several copies of the world and the LS a region per agent of every copy."""
    summary = check_local_form(env, n_agents, episodes=2, controller=controller, seed=3, copies=copies)
    horizon = get_spec(env).horizon
    assert (summary.env, summary.n_agents, summary.episodes, summary.steps) == (env, n_agents, 2, 2 * horizon)
    assert summary.copies == copies
    # the replay exercised every influence source and the rewards, so there was something to get wrong
    assert len(summary.source_activity) == get_spec(env).n_sources
    assert min(summary.source_activity) > 0
    assert summary.rewarded > 0
    assert str(summary).startswith(f"{env}: local form holds for {n_agents} agents")


def _broken(env: str, step: Any) -> type:
    """A subclass of `env`'s local simulator whose `step` is replaced by `step(self, actions, u, noise)`."""
    return type(f"Broken{env.title()}LocalSimulator", (get_env(env).local_simulator,), {"step": step})


@pytest.mark.parametrize("env", ENV_LIST)
def test_checker_catches_a_local_simulator_that_ignores_influence(env: str) -> None:
    """An LS that is always told "nothing comes in" drifts from the GS, and the checker notices."""
    idle = get_env(env).idle_source_class

    def step(self: Any, actions: Any, u: Any, noise: Any = None) -> Any:
        return get_env(env).local_simulator.step(self, actions, np.full_like(u, idle), noise)

    with pytest.raises(LocalFormError) as caught:
        check_local_form(env, 25, episodes=2, controller="hand-coded", local_simulator=_broken(env, step))
    error = caught.value
    assert error.quantity.split("[")[0] in STEP_QUANTITIES and error.step >= 1
    assert f"after step {error.step} (episode {error.episode})" in str(error)


@pytest.mark.parametrize("env", ENV_LIST)
def test_checker_names_the_agent_the_step_and_the_quantity(env: str) -> None:
    """A reward of agent 2 changed at step 7 only: the error points at exactly that."""

    def step(self: Any, actions: Any, u: Any, noise: Any = None) -> Any:
        obs, rewards, done = get_env(env).local_simulator.step(self, actions, u, noise)
        if self.t == 7:
            rewards = rewards.copy()
            rewards[2] += np.float32(0.5)
        return obs, rewards, done

    with pytest.raises(LocalFormError, match=r"rewards of agent 2, after step 7 \(episode 0\)") as caught:
        check_local_form(env, 4, episodes=1, local_simulator=_broken(env, step))
    assert (caught.value.quantity, caught.value.agent, caught.value.step, caught.value.episode) == ("rewards", 2, 7, 0)
    # with copies, the row is also named as an agent of its copy
    with pytest.raises(LocalFormError, match=r"rewards of agent 2 \(agent 2 of copy 0\), after step 7"):
        check_local_form(env, 4, episodes=1, local_simulator=_broken(env, step), copies=3)


@pytest.mark.parametrize("env", ENV_LIST)
def test_checker_catches_a_changed_dtype(env: str) -> None:
    """Equal values are not enough: float64 rewards from the LS break the contract."""

    def step(self: Any, actions: Any, u: Any, noise: Any = None) -> Any:
        obs, rewards, done = get_env(env).local_simulator.step(self, actions, u, noise)
        return obs, rewards.astype(np.float64), done

    with pytest.raises(LocalFormError, match="dtype GS float32, LS float64") as caught:
        check_local_form(env, 4, local_simulator=_broken(env, step))
    assert caught.value.quantity == "rewards" and caught.value.step == 1


def test_checker_catches_a_local_simulator_drawing_its_own_noise() -> None:
    """A warehouse LS that ignores the GS's item-spawn draws and draws its own spawns other items."""

    def step(self: Any, actions: Any, u: Any, noise: Any = None) -> Any:
        return get_env("warehouse").local_simulator.step(self, actions, u, None)

    with pytest.raises(LocalFormError) as caught:
        check_local_form("warehouse", 4, episodes=2, local_simulator=_broken("warehouse", step))
    assert caught.value.quantity in ("observations", "local_states['items']", "last_noise")


def test_checker_catches_a_local_rule_that_differs() -> None:
    """A traffic LS whose light ignores the switch action (a wrong local rule, right u) is caught."""

    def step(self: Any, actions: Any, u: Any, noise: Any = None) -> Any:
        return get_env("traffic").local_simulator.step(self, np.zeros_like(actions), u, noise)

    with pytest.raises(LocalFormError) as caught:
        check_local_form("traffic", 4, controller="hand-coded", local_simulator=_broken("traffic", step))
    assert caught.value.agent is not None and caught.value.quantity in STEP_QUANTITIES + (
        "local_states['phase']", "local_states['timer']", "local_states['cells']")


def test_check_local_form_refuses_bad_arguments() -> None:
    """Unknown environments and controllers, bad sizes and episode counts are refused by name."""
    with pytest.raises(ValueError, match="env"):
        check_local_form("warehous", 4)
    with pytest.raises(ValueError, match="controller"):
        check_local_form("traffic", 4, controller="greedy")
    with pytest.raises(ValueError, match="n_agents"):
        check_local_form("traffic", 5)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="episodes"):
            check_local_form("warehouse", 4, episodes=bad)
        with pytest.raises(ValueError, match="copies"):
            check_local_form("traffic", 4, copies=bad)


# ---------------------------------------------------------------- independent copies (batched GS)


def _outputs(gs: Any) -> list[np.ndarray]:
    """Everything a GS reports after a step (besides obs, rewards, done): sources, d-sets, noise, local states."""
    noise = gs.last_noise()
    return [gs.influence_sources(), gs.dsets(), *([] if noise is None else [noise]), *gs.local_states().values()]


def _assert_rows_are_copies(batched: list[np.ndarray], singles: list[list[np.ndarray]], where: str) -> None:
    """Each batched array is the single simulators' arrays stacked copy after copy, dtypes included."""
    for index, value in enumerate(batched):
        parts = [single[index] for single in singles]
        assert value.dtype == parts[0].dtype, where
        np.testing.assert_array_equal(value, np.concatenate(parts), err_msg=f"{where}, output {index}")


@pytest.mark.parametrize("env", ENV_LIST)
@pytest.mark.parametrize("n_agents", [4, 25])
def test_batched_copies_equal_single_simulators(env: str, n_agents: int) -> None:
    """Copy b of a GS seeded [5, 11, 7] is the GS seeded with that seed alone, bit for bit, over 4 episodes:
    a whole one, one cut short by `reset()`, one after that reset (the streams go on mid-block) and one after
    `reset(seed=[...])` (new streams)."""
    seeds, new_seeds = [5, 11, 7], [2, 40, 41]
    horizon = get_spec(env).horizon
    gs = make_global(env, n_agents=n_agents, seed=seeds)
    singles = [make_global(env, n_agents=n_agents, seed=s) for s in seeds]
    assert (gs.n_copies, gs.n_agents) == (3, n_agents) and all(single.n_copies == 1 for single in singles)
    rng = np.random.default_rng(0)
    for episode, (reseed, length) in enumerate([(None, horizon), (None, horizon // 2 + 3), (None, horizon),
                                                (new_seeds, horizon)]):
        obs = gs.reset(seed=reseed)
        single_obs = [s.reset(seed=None if reseed is None else reseed[b]) for b, s in enumerate(singles)]
        _assert_rows_are_copies([obs, *_outputs(gs)],
                                [[o, *_outputs(s)] for o, s in zip(single_obs, singles, strict=True)],
                                f"episode {episode} start")
        for _ in range(length):
            actions = rng.integers(0, gs.spec.n_actions, size=3 * n_agents)
            obs, rewards, done = gs.step(actions)
            steps = [s.step(actions[b * n_agents:(b + 1) * n_agents]) for b, s in enumerate(singles)]
            assert isinstance(done, bool) and all(step[2] is done for step in steps)
            _assert_rows_are_copies([obs, rewards, *_outputs(gs)],
                                    [[step[0], step[1], *_outputs(s)] for step, s in zip(steps, singles, strict=True)],
                                    f"episode {episode} t {gs.t}")
        assert done == (length == horizon)


@pytest.mark.parametrize("env", ENV_LIST)
def test_one_seed_in_a_sequence_is_the_int_seed(env: str) -> None:
    """seed=[5], (5,) or np.array([5]) is one copy, identical to seed=5."""
    def run(seed: Any) -> list[np.ndarray]:
        gs = make_global(env, n_agents=4, seed=seed)
        rng = np.random.default_rng(1)
        out = [gs.reset(seed=seed)]
        for _ in range(get_spec(env).horizon + 20):
            if gs.t == get_spec(env).horizon:
                out.append(gs.reset())
            obs, rewards, _ = gs.step(rng.integers(0, gs.spec.n_actions, size=4))
            out += [obs, rewards, *_outputs(gs)]
        assert gs.n_copies == 1
        return out

    expected = run(5)
    for seed in ([5], (5,), np.array([5]), [np.int64(5)]):
        for x, y in zip(expected, run(seed), strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("env", ENV_LIST)
def test_bad_seeds_are_refused(env: str) -> None:
    """An empty seed list, a non-integer seed and a reset with the wrong number of seeds: one ValueError each."""
    with pytest.raises(ValueError, match="seed must hold at least one seed"):
        make_global(env, n_agents=4, seed=[])
    for bad in ([1, 2.5], [1, None], (3, "4"), [True, 2], [1, -2], np.array([1.0, 2.0])):
        with pytest.raises(ValueError, match="seed must be a sequence of non-negative integers"):
            make_global(env, n_agents=4, seed=bad)
    with pytest.raises(ValueError, match="seed must be an int, None or a 1-d sequence"):
        make_global(env, n_agents=4, seed=np.zeros((2, 2), dtype=np.int64))
    gs = make_global(env, n_agents=4, seed=[1, 2, 3])
    for bad in ([1, 2], [1, 2, 3, 4], 7):
        with pytest.raises(ValueError, match=r"seed must give one seed per copy .*\(3\)"):
            gs.reset(seed=bad)
    with pytest.raises(ValueError, match="seed must give one seed per copy"):
        make_global(env, n_agents=4, seed=3).reset(seed=[3, 4])
    with pytest.raises(ValueError, match="seed must hold at least one seed"):
        gs.reset(seed=[])
    with pytest.raises(ValueError, match="actions"):  # one action per agent of every copy
        gs.step(np.zeros(4, dtype=np.int64))

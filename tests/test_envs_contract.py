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
)
from dials_lib.envs.local_form import STEP_QUANTITIES
from dials_lib.hyperparameters import ENV_NAMES

ENV_LIST = list(ENVS)


def test_registry_holds_every_environment_name() -> None:
    """One record per name of `ENV_NAMES`, keyed by its spec's name; other names are refused naming `env`."""
    assert tuple(ENVS) == ENV_NAMES
    for name, record in ENVS.items():
        assert record.name == name and get_env(name) is record and get_spec(name) is record.spec
    with pytest.raises(ValueError, match="env"):
        get_env("trafic")


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
def test_local_form_holds(env: str, n_agents: int, controller: str) -> None:
    """An LS batch loaded once per episode from the GS and fed its u and noise follows it bit for bit."""
    summary = check_local_form(env, n_agents, episodes=2, controller=controller, seed=3)
    horizon = get_spec(env).horizon
    assert (summary.env, summary.n_agents, summary.episodes, summary.steps) == (env, n_agents, 2, 2 * horizon)
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

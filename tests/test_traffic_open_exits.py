"""traffic-open-exits: traffic with the paper's 4 influence sources only. Its GS is traffic's (its sources the first
4 of traffic's, bit for bit), its LS never blocks an exit, its local form is measured rather than asserted, and the
runner trains GS, DIALS and untrained-DIALS on it with traffic's hyperparameters, resuming exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib.envs import (
    GlobalSimulator,
    LocalSimulator,
    check_local_form,
    get_env,
    get_spec,
    make_global,
    make_local,
    traffic,
)
from dials_lib.envs.traffic_open_exits import local_gap
from dials_lib.hyperparameters import ENV_NAMES, paper_hyperparameters
from dials_lib.presets import get_preset
from dials_lib.training.checkpoints import verified_state
from dials_lib.training.run_config import config_from_preset
from dials_lib.training.runner import train
from dials_lib.validation import with_fields
from tests.conftest import tiny_config
from tests.faults import train_until_ctrl_c_at_evaluation
from tests.test_startup import learned, states_equal

torch.set_num_threads(1)
ENV = "traffic-open-exits"


# ---------------------------------------------------------------- the registry record


def test_the_record_is_traffic_with_four_sources_and_an_approximate_local_form() -> None:
    """Same sizes as traffic except the 4 sources, named as traffic's first 4; not one of the paper's two envs."""
    record, spec = get_env(ENV), get_spec(ENV)
    assert ENV not in ENV_NAMES and record.exact_local_form is False
    assert spec.source_sizes == (2,) * 4 and record.source_names == traffic.SOURCE_NAMES[:4]
    assert (spec.obs_dim, spec.n_actions, spec.dset_dim, spec.horizon) == (40, 2, 40, 300)
    assert record.hand_coded is traffic.hand_coded_actions
    gs, ls = make_global(ENV, n_agents=4, seed=0), make_local(ENV, n_regions=3, seed=0)
    assert isinstance(gs, GlobalSimulator) and isinstance(ls, LocalSimulator)
    assert gs.spec == ls.spec == spec


def test_the_exact_local_form_check_refuses_it_in_one_line_pointing_to_its_gap() -> None:
    with pytest.raises(ValueError, match=r"traffic_open_exits\.local_gap") as caught:
        check_local_form(ENV, 4)
    assert "\n" not in str(caught.value)


def test_runs_take_traffics_hyperparameters_and_budgets() -> None:
    """The variant shares traffic's paper hyperparameters and every preset's traffic budget, under its own name."""
    hp, base = paper_hyperparameters(ENV), paper_hyperparameters("traffic")
    assert hp.env == ENV and with_fields(hp, env="traffic") == base
    for preset in ("smoke", "quick"):
        assert get_preset(preset).budget(ENV) == get_preset(preset).budget("traffic")
        ours, theirs = config_from_preset(preset, ENV, "dials"), config_from_preset(preset, "traffic", "dials")
        assert ours.record() | {"env": None, "hyperparameters": None} == theirs.record() | {"env": None,
                                                                                       "hyperparameters": None}
    assert config_from_preset("quick", ENV, "dials").retrain_every == 1_000_000


# ---------------------------------------------------------------- the global simulator


@pytest.mark.parametrize(("n_agents", "seed"), [(4, 0), (25, 1), (4, [5, 6])])
def test_its_sources_are_the_first_four_of_traffics_on_the_same_trajectory(n_agents: int, seed: Any) -> None:
    """Same seed and actions: everything equal bit for bit, and the 4 sources are traffic's first 4."""
    ours, theirs = make_global(ENV, n_agents, seed=seed), make_global("traffic", n_agents, seed=seed)
    rows = n_agents * (len(seed) if isinstance(seed, list) else 1)
    rng = np.random.default_rng(7)
    arrivals = 0
    for _ in range(2):
        np.testing.assert_array_equal(ours.reset(), theirs.reset())
        for _ in range(traffic.HORIZON):
            actions = rng.integers(0, 2, size=rows)
            for a, b in zip(ours.step(actions), theirs.step(actions), strict=True):
                np.testing.assert_array_equal(a, b)
            u, u_traffic = ours.influence_sources(), theirs.influence_sources()
            assert u.dtype == np.int64 and u.shape == (rows, 4)
            np.testing.assert_array_equal(u, u_traffic[:, :4])
            np.testing.assert_array_equal(ours.dsets(), theirs.dsets())
            for key, value in theirs.local_states().items():
                np.testing.assert_array_equal(ours.local_states()[key], value)
            arrivals += int(u.sum())
    assert arrivals > 0


# ---------------------------------------------------------------- the local simulator


def test_the_local_simulator_never_blocks_an_exit() -> None:
    """Full lanes, green NS: the cars at the NS stop lines cross whatever comes in, where traffic's LS told that
    the exits are blocked holds them."""
    full = {"cells": np.ones((2, 4, 10), dtype=bool), "phase": np.zeros(2, dtype=np.int64),
            "timer": np.full(2, 10, dtype=np.int64), "t": np.full(2, 5, dtype=np.int64)}
    ours, theirs = make_local(ENV, n_regions=2), make_local("traffic", n_regions=2)
    ours.load_states(full)
    theirs.load_states(full)
    _, rewards, _ = ours.step(np.zeros(2, dtype=np.int64), np.array([[0, 0, 0, 0], [1, 1, 1, 1]]))
    _, blocked_rewards, _ = theirs.step(np.zeros(2, dtype=np.int64), np.array([[0] * 4 + [1] * 4] * 2))
    np.testing.assert_array_equal(rewards, np.float32([2 / 40, 2 / 40]))  # one car per NS lane crossed
    np.testing.assert_array_equal(blocked_rewards, np.float32([0, 0]))
    cells = ours.local_states()["cells"]
    assert not cells[:, :2, 0].any() and cells[:, 2:, 0].all()  # NS stop lines emptied, EW ones still held at red
    # a full entry cell takes no arriving car: the u the step placed is 0 there
    np.testing.assert_array_equal(ours.influence_sources(), np.zeros((2, 4), dtype=np.int64))


def test_the_local_simulator_is_traffics_with_the_exits_open_from_any_state() -> None:
    """From random states, actions and arrivals: exactly traffic's LS fed the same arrivals and no blocked exit."""
    rng = np.random.default_rng(3)
    n = 64
    ours, theirs = make_local(ENV, n_regions=n), make_local("traffic", n_regions=n)
    for _ in range(20):
        phase = rng.integers(0, 4, size=n)
        states = {"cells": rng.random((n, 4, 10)) < 0.4, "phase": phase,
                  "timer": np.where(phase % 2 == 1, rng.integers(1, 4, size=n), rng.integers(1, 30, size=n)),
                  "t": np.full(n, int(rng.integers(0, 299)), dtype=np.int64)}
        ours.load_states(states)
        theirs.load_states(states)
        actions, u = rng.integers(0, 2, size=n), rng.integers(0, 2, size=(n, 4))
        for a, b in zip(ours.step(actions, u), theirs.step(actions, np.concatenate([u, 0 * u], axis=1)),
                        strict=True):
            np.testing.assert_array_equal(a, b)
        for key, value in theirs.local_states().items():
            np.testing.assert_array_equal(ours.local_states()[key], value)
        np.testing.assert_array_equal(ours.influence_sources(), theirs.influence_sources()[:, :4])


def test_bad_influence_sources_are_refused_in_one_line() -> None:
    ls = make_local(ENV, n_regions=2)
    for bad in (np.zeros((2, 8), dtype=np.int64), np.zeros((2, 4)), np.zeros((3, 4), dtype=np.int64)):
        with pytest.raises(ValueError, match=r"u must be an integer array of shape \(2, 4\)") as caught:
            ls.step(np.zeros(2, dtype=np.int64), bad)
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="binary"):
        ls.step(np.zeros(2, dtype=np.int64), np.full((2, 4), 2))
    with pytest.raises(ValueError, match="unknown controller 'greedy'"):
        local_gap(4, controller="greedy")


# ---------------------------------------------------------------- the local form, measured


def test_the_gap_is_exactly_the_steps_in_which_the_gs_held_a_car_behind_an_occupied_exit() -> None:
    """One LS step from the GS's state ends elsewhere exactly when the GS held a car at a green stop line, and then
    the LS's reward is higher; lights that leave half the lanes red for long make that happen."""
    gap = local_gap(4, episodes=2, controller="half-stuck", seed=0)
    steps = gap.one_step
    assert len(steps) == 2 * 300 * 4
    held = steps["held"] > 0
    assert held.any()
    np.testing.assert_array_equal(steps["state_differs"], held)
    assert (steps["reward_ls"][held] > steps["reward_gs"][held]).all()
    np.testing.assert_array_equal(steps["reward_ls"][~held], steps["reward_gs"][~held])
    assert gap.one_step_differs == pytest.approx(held.mean()) and gap.held_share == gap.one_step_differs
    assert 0 < gap.episode_differs <= 1 and 0 < gap.cell_error_rate < gap.episode_differs
    gs_return, ls_return = gap.mean_returns
    assert ls_return > gs_return
    assert str(gap).startswith("traffic-open-exits local form, 4 agents, 2 episode(s), half-stuck actions")


@pytest.mark.parametrize("controller", ["random", "hand-coded"])
def test_random_and_hand_coded_lights_never_fill_a_lane_back_to_the_intersection(controller: str) -> None:
    """Under these lights no 100 m lane fills up, so the LS replays the GS bit for bit after all: the gap is 0."""
    gap = local_gap(4, episodes=2, controller=controller, seed=1)
    assert gap.one_step_differs == 0 and gap.episode_differs == 0
    assert gap.one_step["reward_gs"].sum() > 0
    gs_return, ls_return = gap.mean_returns
    assert gs_return == ls_return


# ---------------------------------------------------------------- training on it


@pytest.mark.parametrize("simulator", ["dials", "untrained-dials"])
def test_a_tiny_run_trains_on_it_and_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     simulator: str) -> None:
    """Interrupted at its second evaluation and resumed, a run ends bit-equal to an uninterrupted one; its AIPs
    predict 4 sources."""
    whole = train(tiny_config(tmp_path / "whole", ENV, simulator), progress=False)
    assert len(whole.metrics) == 4 and np.isfinite(whole.metrics["mean_return"]).all()
    assert np.isfinite(whole.metrics["aip_ce"]).all()  # the AIPs' cross-entropy on the GS's 4 sources
    assert list(whole.metrics.columns[6:9]) == ["delay_per_car", "queue_length", "throughput"]

    config = tiny_config(tmp_path / "interrupted", ENV, simulator)
    train_until_ctrl_c_at_evaluation(config, 2, monkeypatch)  # Ctrl-C at the third boundary's evaluation
    resumed = train(config, progress=False)
    assert resumed.runtime["sessions"] == 2
    pd.testing.assert_frame_equal(resumed.metrics.drop(columns="wall_time_s"),
                                  whole.metrics.drop(columns="wall_time_s"))
    assert states_equal(learned(config.directory()), learned(whole.run_dir))
    heads = [value for group in verified_state(whole.run_dir / "checkpoint.pt")["groups"]
             for key, value in _tensors(group.get("aip", {})) if key.endswith("head.weight")]
    assert heads and all(head.shape[-1] == 4 for head in heads)  # stacked [agents, in, out]


def test_the_command_line_trains_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dials_lib.__main__ import main

    argv = ["train", "--env", ENV, "--simulator", "untrained-dials", "--steps", "256", "--eval-episodes", "1",
            "--workers", "1", "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 0
    assert "final average return per agent" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2


def _tensors(state: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor of a nested checkpoint state, with its dotted key."""
    if isinstance(state, torch.Tensor):
        return [(prefix, state)]
    if isinstance(state, dict):
        return [item for key, value in state.items() for item in _tensors(value, f"{prefix}.{key}" if prefix else key)]
    return []

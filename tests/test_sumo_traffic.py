"""sumo-traffic: the SUMO global and local simulators against the paper's spec, the baseline, the adapters, replay.

Every test that runs SUMO skips, with a one-line reason saying how to install it, when the `sumo` extra is
missing; the checks of bad input run without it.
"""

from __future__ import annotations

import gc
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dials_lib.envs import get_env, get_spec, make_global, make_local, sumo_network
from dials_lib.envs.sumo_network import INSTALL_HINT, PHASE_STATES, SumoMissingError, require_sumo, sumo_available
from dials_lib.envs.sumo_traffic import (
    CROWDED,
    HORIZON,
    INFLOW_PROBABILITY,
    INSERT_POSITION,
    INSERT_SPEED,
    INSERT_SPEED_CROWDED,
    GlobalSimulator,
    LocalSimulator,
)

needs_sumo = pytest.mark.skipif(not sumo_available(), reason=INSTALL_HINT)


@pytest.fixture(autouse=True)
def libsumo_free() -> None:
    """Every test starts with this process's libsumo free (several tests check which backend a simulator gets): a
    simulator that an earlier test of another module left to the garbage collector would still hold it."""
    gc.collect()  # a dropped simulator in a reference cycle closes its simulation when collected
    holder = sumo_network.libsumo_holder()
    if holder is not None:
        holder.close()


# ---------------------------------------------------------------- without SUMO


@pytest.mark.parametrize("n_agents", [1, 121, 8])
def test_an_unsupported_size_is_one_clear_line(n_agents: int) -> None:
    """Sizes outside 2x2 .. 10x10 (or not square) are refused in one line naming n_agents."""
    with pytest.raises(ValueError, match="n_agents") as caught:
        GlobalSimulator(n_agents)
    assert "\n" not in str(caught.value)


def test_a_missing_sumo_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SUMO's packages the simulators raise one line: the install command."""
    monkeypatch.setitem(sys.modules, "sumo", None)  # 'import sumo' now fails as if it were not installed
    with pytest.raises(SumoMissingError) as caught:
        require_sumo()
    assert str(caught.value) == INSTALL_HINT and "pip install" in INSTALL_HINT and "\n" not in INSTALL_HINT
    with pytest.raises(SumoMissingError):
        make_global("sumo-traffic", n_agents=4, seed=0)


def test_the_registry_states_what_sumo_traffic_can_do() -> None:
    """The record says the baseline runs inside the GS and that the local form is approximate."""
    record = get_env("sumo-traffic")
    assert record.hand_coded is None and record.baseline_options == {"lights": "actuated"}
    assert record.exact_local_form is False and get_env("traffic").exact_local_form is True
    from dials_lib.learning.controllers import HandCodedController

    with pytest.raises(ValueError, match="lights") as caught:
        HandCodedController("sumo-traffic")
    assert "\n" not in str(caught.value)
    spec = get_spec("sumo-traffic")
    assert (spec.obs_dim, spec.n_actions, spec.source_sizes, spec.dset_dim, spec.horizon) == (40, 2, (2,) * 4, 36,
                                                                                              300)


def test_the_hand_coded_setup_builds_the_baseline_into_the_gs() -> None:
    """Where the baseline is a mode of the GS, `hand_coded_setup` gives the GS's options (a copy of the record's) and
    a controller whose actions that GS ignores; elsewhere the record's rule on a plain GS."""
    from dials_lib.learning.controllers import ConstantController, HandCodedController, hand_coded_setup

    controller, options = hand_coded_setup("sumo-traffic")
    assert options == {"lights": "actuated"} and isinstance(controller, ConstantController)
    np.testing.assert_array_equal(controller(np.zeros((4, 40)), None), np.zeros(4, dtype=np.int64))
    options["lights"] = "rl"
    assert get_env("sumo-traffic").baseline_options == {"lights": "actuated"}
    rule, no_options = hand_coded_setup("traffic")
    assert isinstance(rule, HandCodedController) and no_options == {}
    with pytest.raises(ValueError, match="env"):
        hand_coded_setup("sumo")


def test_the_exact_local_form_check_refuses_sumo_traffic_in_one_line() -> None:
    """check_local_form has no bit-for-bit property to check on an approximate LS: it says where the gap is."""
    from dials_lib.envs import check_local_form

    with pytest.raises(ValueError, match="local_gap") as caught:
        check_local_form("sumo-traffic", 4)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- the global simulator


def _cells_from_getters(sim: GlobalSimulator) -> tuple[np.ndarray, np.ndarray]:
    """Observed cells [n, 36] and rewards [n] computed one getter at a time (not from the subscriptions)."""
    api, layout = sim.api, sim.layout
    cells = np.zeros((layout.n_regions, 4, 10), dtype=bool)
    rewards = np.zeros(layout.n_regions)
    for region in range(layout.n_regions):
        speeds = []
        for lane in range(4):
            for vehicle in api.edge.getLastStepVehicleIDs(layout.incoming(region, lane)):
                cell = int((100.0 - api.vehicle.getLanePosition(vehicle)) // 10.0)
                if 0 <= cell < 10:
                    cells[region, lane, cell] = True
                speeds.append(api.vehicle.getSpeed(vehicle))
        rewards[region] = np.mean(speeds) / 10.0 if speeds else 0.0
    return cells[:, :, :9].reshape(layout.n_regions, -1), rewards


@needs_sumo
def test_inflow_rate_is_within_its_binomial_interval() -> None:
    """Cars generated on the boundary entry lanes (entered plus still queued) over 3 episodes match p = 0.1."""
    with GlobalSimulator(4, seed=11) as gs:
        trials = generated = 0
        for _ in range(3):
            gs.reset()
            for t in range(HORIZON):
                gs.step(np.full(4, int(t % 15 == 0)))
                u = gs.influence_sources()
                generated += int(u[gs.entry_mask].sum())
                # an entering car sits in cell 9 of its lane
                assert gs.local_states()["cells"][..., 9][u == 1].all()
            generated += len(gs.api.simulation.getPendingVehicles())
            trials += HORIZON * int(gs.entry_mask.sum())
    mean = trials * INFLOW_PROBABILITY
    spread = 4 * np.sqrt(trials * INFLOW_PROBABILITY * (1 - INFLOW_PROBABILITY))
    assert trials == 3 * 300 * 8 and mean - spread < generated < mean + spread


@needs_sumo
def test_a_switch_is_yellow_for_3_steps_that_ignore_actions() -> None:
    """Switch agent 0: yellow (SUMO's 'yryr') for 3 steps whatever it asks, then green EW; the others stay."""
    with GlobalSimulator(4, seed=0) as gs:
        phases = []
        for actions in ([1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]):
            obs, _, _ = gs.step(np.array(actions))
            phases.append(gs.phase.copy())
            for region in range(4):
                assert gs.api.trafficlight.getRedYellowGreenState(f"J{region}") == PHASE_STATES[gs.phase[region]]
            np.testing.assert_array_equal(obs[:, 36:], np.eye(4, dtype=np.float32)[gs.phase])
        assert [int(p[0]) for p in phases] == [1, 1, 1, 2, 2]
        assert all((p[1:] == 0).all() for p in phases)
        assert gs.local_states()["timer"][0] == 2


@needs_sumo
def test_observations_and_rewards_match_sumo_read_car_by_car() -> None:
    """The subscription-based observation and reward equal those computed from SUMO's getters, car by car;
    rewards lie in [0, 1] and are 0 exactly where no car is on the 4 incoming lanes."""
    with GlobalSimulator(9, seed=4) as gs:
        rng = np.random.default_rng(0)
        empty_seen = busy_seen = 0
        for _ in range(120):
            obs, rewards, _ = gs.step(rng.integers(0, 2, size=9))
            cells, expected = _cells_from_getters(gs)
            np.testing.assert_array_equal(obs[:, :36], cells.astype(np.float32))
            np.testing.assert_allclose(rewards, expected, rtol=1e-6, atol=1e-7)
            assert rewards.dtype == np.float32 and ((rewards >= 0) & (rewards <= 1)).all()
            no_cars = np.isnan(gs.local_states()["position"]).all(axis=(1, 2))
            assert (rewards[no_cars] == 0).all()
            empty_seen += int(no_cars.sum())
            busy_seen += int((~no_cars).sum())
        assert busy_seen > 0 and empty_seen > 0


@needs_sumo
def test_replay_from_the_same_seed_is_identical_and_copies_are_the_single_worlds() -> None:
    """Same seed, same actions: identical trajectories, also after reset(seed) of a used simulator; a GS of
    seeds [7, 8] holds exactly the single GSs seeded 7 and 8."""
    actions = np.random.default_rng(1).integers(0, 2, size=(150, 4))

    def trajectory(gs: GlobalSimulator, seed: int | list[int]) -> list[np.ndarray]:
        out = [gs.reset(seed=seed)]
        for a in actions:
            obs, rewards, _ = gs.step(np.tile(a, gs.n_copies))
            out += [obs, rewards, gs.influence_sources()]
        return out

    with GlobalSimulator(4, seed=7) as gs:
        first = trajectory(gs, 7)
        other = trajectory(gs, 8)
        again = trajectory(gs, 7)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
    with GlobalSimulator(4, seed=[7, 8]) as both:
        batched = trajectory(both, [7, 8])
    for x, y, z in zip(first, other, batched, strict=True):
        np.testing.assert_array_equal(np.concatenate([x, y]), z)
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))


@needs_sumo
def test_libsumo_and_traci_give_the_same_numbers() -> None:
    """Where a simulation runs (in this process or in a sumo child) does not change a single number."""
    actions = np.random.default_rng(0).integers(0, 2, size=(120, 9))
    with GlobalSimulator(9, seed=1, backend="libsumo") as here, GlobalSimulator(9, seed=1, backend="traci") as child:
        assert (here.backend, child.backend) == ("libsumo", "traci")
        for a in actions:
            for x, y in zip(here.step(a), child.step(a), strict=True):
                np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(here.local_states()["speed"], child.local_states()["speed"])


@needs_sumo
def test_the_actuated_baseline_runs_sumos_programs_and_ignores_actions() -> None:
    """lights='actuated': SUMO's actuated programs (yellow 3-6 s, green at least 8 s) decide, not the actions."""
    def run(actions_seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(actions_seed)
        with make_global("sumo-traffic", n_agents=4, seed=5, **get_env("sumo-traffic").baseline_options) as gs:
            rewards, phases = [], []
            for _ in range(HORIZON):
                _, r, _ = gs.step(rng.integers(0, 2, size=4))
                rewards.append(r)
                phases.append(gs.phase.copy())
        return np.array(rewards), np.array(phases)

    rewards, phases = run(0)
    rewards_other, phases_other = run(1)
    np.testing.assert_array_equal(rewards, rewards_other)
    np.testing.assert_array_equal(phases, phases_other)
    for agent in range(4):
        column = phases[:, agent]
        starts = np.flatnonzero(np.diff(column)) + 1
        runs = np.diff(np.concatenate([[0], starts]))  # lengths of every phase except the last one
        run_phases = column[np.concatenate([[0], starts])[:-1]] if len(starts) else np.array([])
        assert set(column) == {0, 1, 2, 3}
        assert ((runs[run_phases % 2 == 1] >= 3) & (runs[run_phases % 2 == 1] <= 6)).all()
        assert (runs[1:][run_phases[1:] % 2 == 0] >= 8).all()
    assert 0.2 < rewards.sum(axis=0).mean() / HORIZON < 1.0


@needs_sumo
def test_the_analysis_layer_evaluates_the_actuated_baseline() -> None:
    """`report.hand_coded_baseline` and `env_stats.run_episodes` run sumo-traffic's hand-coded baseline as its GS
    built with the baseline options: a finite return at 4 agents, equal to a direct rollout of that GS (driven here
    by other actions, which it ignores)."""
    from dials_lib.analysis import env_stats
    from dials_lib.analysis.report import hand_coded_baseline

    episodes, seed = 2, 11
    rewards = np.zeros((episodes, HORIZON, 4), dtype=np.float32)
    with make_global("sumo-traffic", n_agents=4, seed=seed, **get_env("sumo-traffic").baseline_options) as gs:
        for episode in range(episodes):
            gs.reset()
            for t in range(HORIZON):
                _, rewards[episode, t], done = gs.step(np.ones(4, dtype=np.int64))
            assert done
    per_episode = rewards.sum(axis=1, dtype=np.float64).mean(axis=1)  # mean over agents of each episode's return

    table = hand_coded_baseline("sumo-traffic", [4], episodes=episodes, seed=seed)
    assert table["n_agents"].tolist() == [4] and table["episodes"].tolist() == [episodes]
    row = table.iloc[0]
    assert np.isfinite(row["mean_return"]) and 0 < row["mean_return"] < HORIZON
    assert row["mean_return"] == pytest.approx(per_episode.mean(), rel=1e-12)
    assert row["sem_return"] == pytest.approx(per_episode.std(ddof=1) / np.sqrt(episodes), rel=1e-9)
    assert np.isfinite(row[["mean_speed", "queue_length", "inflow"]].astype(float)).all()

    run = env_stats.run_episodes("sumo-traffic", 4, "hand-coded", episodes, seed=seed)
    np.testing.assert_array_equal(run["rewards"], rewards)


@needs_sumo
def test_the_domain_metrics_follow_the_cars() -> None:
    """The tracker's mean speed, queues and inflow agree with the simulator's own cars and entry events."""
    record = get_env("sumo-traffic")
    tracker = record.tracker(4)
    speeds, stopped, entered = [], 0, 0
    with GlobalSimulator(4, seed=3) as gs:
        rng = np.random.default_rng(2)
        for _ in range(HORIZON):
            before = gs.local_states()
            _, rewards, _ = gs.step(rng.integers(0, 2, size=4))
            tracker.step(before, rewards, gs)
            speed = gs.local_states()["speed"]
            speeds += list(speed[~np.isnan(speed)])
            stopped += int(np.count_nonzero(speed < 0.1))
            entered += int(gs.influence_sources()[gs.entry_mask].sum())
        tracker.end_episode(gs)
    summary = tracker.summary()
    assert list(summary) == list(record.metric_names)
    assert summary["mean_speed"] == pytest.approx(np.mean(speeds))
    assert summary["queue_length"] == pytest.approx(stopped / (16 * HORIZON))
    assert summary["inflow"] == pytest.approx(entered / HORIZON) and 0.5 < summary["inflow"] < 1.0
    assert 0 < summary["queue_length"] < 14


# ---------------------------------------------------------------- the local simulator


@needs_sumo
def test_the_local_simulator_inserts_cars_where_the_sources_fire() -> None:
    """A firing source puts a car 6 m into cell 9 of that lane at 9.5 m/s, nowhere else; at 3 m/s once the lane
    holds more than 8 cars."""
    with LocalSimulator(3) as ls:
        u = np.zeros((3, 4), dtype=np.int64)
        u[0, 2] = u[2, 0] = u[2, 3] = 1
        obs, _, _ = ls.step(np.zeros(3, dtype=np.int64), u)
        states = ls.local_states()
        np.testing.assert_array_equal(ls.influence_sources(), u)
        np.testing.assert_array_equal(states["cells"].any(axis=2), u == 1)
        assert (states["cells"][..., 9] == (u == 1)).all()
        np.testing.assert_allclose(states["position"][u == 1][:, 0], INSERT_POSITION)
        np.testing.assert_allclose(states["speed"][u == 1][:, 0], INSERT_SPEED)
        assert not obs[:, :36].any()  # cell 9 is not observed
        # keep lanes 2 and 3 red and feed lane 2 of region 1 until it is crowded
        slow_inserts = 0
        for _ in range(40):
            u = np.zeros((3, 4), dtype=np.int64)
            u[1, 2] = 1
            crowded = np.count_nonzero(~np.isnan(ls.local_states()["position"][1, 2])) > CROWDED
            before = ls.t
            ls.step(np.zeros(3, dtype=np.int64), u)
            lane = ls.local_states()
            newest = np.flatnonzero(lane["position"][1, 2] == INSERT_POSITION)
            if len(newest):  # inserted this step (a car that does not fit is dropped)
                assert lane["speed"][1, 2, newest[0]] == (INSERT_SPEED_CROWDED if crowded else INSERT_SPEED)
                slow_inserts += int(crowded)
            assert ls.t == before + 1
        assert slow_inserts > 0


@needs_sumo
def test_load_states_puts_the_global_state_into_the_local_regions() -> None:
    """Loading a GS's local states gives every LS region the same cars (cells, positions, speeds) and lights."""
    with GlobalSimulator(9, seed=2) as gs, LocalSimulator(9) as ls:
        rng = np.random.default_rng(0)
        for _ in range(80):
            gs.step(rng.integers(0, 2, size=9))
        states = gs.local_states()
        obs = ls.load_states(states)
        loaded = ls.local_states()
        assert gs.backend == "libsumo" and ls.backend == "traci"
    np.testing.assert_array_equal(obs, gs.observations())
    np.testing.assert_array_equal(loaded["cells"], states["cells"])
    np.testing.assert_allclose(loaded["position"], states["position"], atol=1e-5)
    np.testing.assert_allclose(loaded["speed"], states["speed"], atol=1e-9)
    for key in ("phase", "timer", "t"):
        np.testing.assert_array_equal(loaded[key], states[key])


@needs_sumo
def test_the_local_form_gap_is_measured_and_small() -> None:
    """Fed the GS's own entry events, the LS's observed cells and rewards stay close to the GS's."""
    from dials_lib.envs.sumo_local_gap import local_gap

    gap = local_gap(n_agents=4, episodes=1, controller="random", seed=0)
    assert len(gap.steps) == HORIZON * 4
    assert 0 < gap.bit_error_rate < 0.1 and gap.identical_occupancy > 0.2
    assert gap.reward_correlation > 0.9 and gap.mean_abs_reward_gap < 0.06
    gs_return, ls_return = gap.mean_returns
    assert abs(ls_return - gs_return) < 0.1 * gs_return
    assert gap.per_step().index.tolist() == list(range(1, HORIZON + 1))
    assert str(gap).startswith("sumo-traffic local form, 4 agents")


# ---------------------------------------------------------------- processes, adapters, pictures


@needs_sumo
def test_a_dropped_simulator_hands_libsumo_back() -> None:
    """A simulator dropped without close() frees libsumo once collected, so the next one runs in-process; the
    module kept its connection alive for good, and every later simulation of the process ran on traci."""
    first = GlobalSimulator(4, seed=0)
    first.reset()
    assert first.backend == "libsumo"
    del first
    gc.collect()
    assert sumo_network.libsumo_holder() is None
    with GlobalSimulator(4, seed=0) as second:
        assert second.backend == "libsumo"


@needs_sumo
def test_every_training_chunk_on_sumo_runs_on_libsumo(monkeypatch) -> None:
    """Each chunk's task closes its IALS when it ends (and a data collection its GS), so the next chunk's simulation
    gets libsumo again: three chunks in a row in one process all run in-process, not over traci's socket."""
    from dials_lib.hyperparameters import paper_hyperparameters
    from dials_lib.learning.ials import IALS
    from dials_lib.training import group_tasks as tasks
    from dials_lib.training.run_stack import RunStack

    backends = []
    close = IALS.close

    def recording_close(self: IALS) -> None:
        backends.append(self.ls.backend)
        close(self)

    monkeypatch.setattr(IALS, "close", recording_close)
    hp, runs, ids = paper_hyperparameters("sumo-traffic"), RunStack((0,)), [0, 1, 2, 3]
    aip, ppo = tasks.new_predictors(hp, ids, runs).state_dict(), tasks.new_learners(hp, ids, runs, 4_000_000)
    state = ppo.state_dict()
    for chunk in range(3):
        result = tasks.train_agents(tasks.TrainAgents(hp, ids, runs, 4_000_000, state,
                                                      tasks.OnIALS(aip, RunStack((chunk,))), 128))
        state = result["ppo_state"]
    assert backends == ["libsumo"] * 3
    assert sumo_network.libsumo_holder() is None


@needs_sumo
def test_one_libsumo_per_process_and_a_dead_sumo_is_one_clear_line() -> None:
    """The first simulation takes libsumo, the next ones traci; closing hands libsumo back; asking for a second
    libsumo, or a SUMO process that dies mid-episode, is one clear line, and reset() starts afresh."""
    first = GlobalSimulator(4, seed=0)
    second = GlobalSimulator(4, seed=0)
    assert (first.backend, second.backend) == ("libsumo", "traci")
    with pytest.raises(RuntimeError, match="one per process"):
        GlobalSimulator(4, seed=0, backend="libsumo")
    first.close()
    with GlobalSimulator(4, seed=0) as third:
        assert third.backend == "libsumo"
    second.step(np.zeros(4, dtype=np.int64))
    process = second.api._process  # the sumo child this test started
    process.kill()
    process.wait(timeout=60)
    with pytest.raises(RuntimeError, match="SUMO simulation failed at step 1") as caught:
        for _ in range(3):
            second.step(np.zeros(4, dtype=np.int64))
    assert "\n" not in str(caught.value)
    second.reset()
    second.step(np.zeros(4, dtype=np.int64))
    assert second.t == 1
    second.close()


@needs_sumo
def test_the_pettingzoo_and_gymnasium_checkers_pass() -> None:
    """The GS as a PettingZoo ParallelEnv and one LS region with a fixed-rate sampler as a Gymnasium Env."""
    from gymnasium.utils.env_checker import check_env
    from pettingzoo.test import parallel_api_test

    from dials_lib.envs.adapters import FixedRateSampler, GlobalParallelEnv, InfluenceAugmentedEnv

    with make_global("sumo-traffic", n_agents=4, seed=0) as gs:
        env = GlobalParallelEnv(gs)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parallel_api_test(env, num_cycles=HORIZON + 5)
        assert env.agents == []
    spec = get_spec("sumo-traffic")
    with make_local("sumo-traffic", n_regions=1, seed=0) as ls:
        env = InfluenceAugmentedEnv(ls, FixedRateSampler(spec.source_sizes, 0.1))
        check_env(env, skip_render_check=True)
        env.reset(seed=1)
        steps, truncated, total = 0, False, 0.0
        while not truncated:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs) and not terminated
            total += reward
            steps += 1
        assert steps == HORIZON and total > 0


@needs_sumo
def test_pictures_of_the_grid_and_of_a_region(tmp_path: object) -> None:
    """render draws the whole GS or one region; a batched GS's whole grid is refused in one line."""
    import matplotlib.pyplot as plt

    record = get_env("sumo-traffic")
    with GlobalSimulator(4, seed=0) as gs:
        for _ in range(30):
            gs.step(np.zeros(4, dtype=np.int64))
        assert "4 intersections" in record.render(gs).get_title()
        assert "region" in record.render(gs, region=2).get_title()
    with GlobalSimulator(4, seed=[0, 1]) as batched, pytest.raises(ValueError, match="region="):
        record.render(batched)
    plt.close("all")


# ---------------------------------------------------------------- training through the runner


@needs_sumo
def test_a_tiny_dials_run_trains_on_sumo_and_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 512-step DIALS run on sumo-traffic (traffic's hyperparameters, smaller AIP budget): interrupted at its
    second evaluation and resumed, it ends bit-equal to an uninterrupted run."""
    from dials_lib.hyperparameters import paper_hyperparameters
    from dials_lib.training.run_config import RunConfig
    from dials_lib.training.runner import train
    from dials_lib.validation import with_fields
    from tests.faults import train_until_ctrl_c_at_evaluation
    from tests.test_startup import learned, states_equal

    hp = paper_hyperparameters("sumo-traffic")
    hp = with_fields(hp, aip=with_fields(hp.aip, epochs=2, dataset_steps=300))

    def config(name: str) -> RunConfig:
        return RunConfig(env="sumo-traffic", n_agents=4, simulator="dials", total_timesteps=512, retrain_every=256,
                         eval_every=256, eval_episodes=1, chunk_steps=256, n_workers=1, agents_per_worker=2,
                         hyperparameters=hp, run_dir=str(tmp_path / name))

    whole = train(config("whole"), progress=False)
    assert len(whole.metrics) == 3 and np.isfinite(whole.metrics["mean_return"]).all()
    assert np.isfinite(whole.metrics["aip_ce"]).all()
    assert list(whole.metrics.columns[6:9]) == list(get_env("sumo-traffic").metric_names)

    interrupted = config("interrupted")
    train_until_ctrl_c_at_evaluation(interrupted, 1, monkeypatch)  # at the second evaluation
    resumed = train(interrupted, progress=False)
    assert resumed.runtime["sessions"] == 2
    pd.testing.assert_frame_equal(resumed.metrics.drop(columns="wall_time_s"),
                                  whole.metrics.drop(columns="wall_time_s"))
    assert states_equal(learned(interrupted.directory()), learned(whole.run_dir))

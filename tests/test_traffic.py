"""Traffic grid: replay with reloading, equality with the per-car reference, invariants, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from dials_lib.envs import get_spec, make_global, make_local
from dials_lib.envs import traffic as tr
from tests.reference_traffic import ReferenceTraffic


def _policy(kind: str, n: int, rng: np.random.Generator, states: dict[str, np.ndarray]) -> np.ndarray:
    if kind == "random":
        return rng.integers(0, 2, size=n)
    return tr.hand_coded_actions(states)


def _assert_states_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray], where: str) -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        assert a[key].dtype == b[key].dtype, f"{where}: dtype of {key}"
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{where}: {key}")


# ---------------------------------------------------------------- (a) local-form property

# The whole-episode replay (an LS batch loaded once per episode and fed the realised u) is the contract test
# `tests/test_envs_contract.py::test_local_form_holds`, run through `dials_lib.envs.check_local_form`.


def test_traffic_has_no_local_noise() -> None:
    """Traffic's local rules draw nothing: `last_noise()` is None in GS and LS, and the LS refuses noise."""
    gs = make_global("traffic", n_agents=4, seed=0)
    ls = make_local("traffic", n_regions=4)
    actions = np.ones(4, dtype=np.int64)
    gs.step(actions)
    ls.step(actions, gs.influence_sources(), noise=gs.last_noise())
    assert gs.last_noise() is None and ls.last_noise() is None


def test_replay_also_holds_when_reloading_every_step() -> None:
    """Loading the GS state before every step (as an IALS started mid-episode would) gives the same step."""
    gs = make_global("traffic", n_agents=9, seed=11)
    ls = make_local("traffic", n_regions=9)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        ls.load_states(gs.local_states())
        actions = rng.integers(0, 2, size=9)
        obs, rew, done = gs.step(actions)
        ls_obs, ls_rew, _ = ls.step(actions, gs.influence_sources())
        np.testing.assert_array_equal(ls_obs, obs)
        np.testing.assert_array_equal(ls_rew, rew)
        _assert_states_equal(ls.local_states(), gs.local_states(), f"t {gs.t}")


def test_replay_fails_with_wrong_influence() -> None:
    """The replay test can fail: flipping one blocked bit of a queued lane changes the LS's next state."""
    gs = make_global("traffic", n_agents=4, seed=0)
    ls = make_local("traffic", n_regions=4)
    zeros = np.zeros(4, dtype=np.int64)
    states = gs.local_states()
    while not (states["cells"][:, 0, 0] | states["cells"][:, 1, 0]).any():  # green NS: wait for a stop-line car
        gs.step(zeros)
        states = gs.local_states()
    ls.load_states(states)
    agent = int(np.flatnonzero(states["cells"][:, 0, 0] | states["cells"][:, 1, 0])[0])
    lane = 0 if states["cells"][agent, 0, 0] else 1
    gs.step(zeros)
    u = gs.influence_sources()
    u[agent, tr.N_LANES + lane] ^= 1
    ls.step(zeros, u)
    assert not np.array_equal(ls.local_states()["cells"], gs.local_states()["cells"])


# ---------------------------------------------------------------- (b) per-car reference

@pytest.mark.parametrize(("n_agents", "copies"), [(1, 1), (4, 1), (25, 1), (100, 1), (4, 3), (25, 3)])
@pytest.mark.parametrize("controller", ["random", "hand-coded"])
def test_vectorized_gs_equals_per_car_reference(n_agents: int, copies: int, controller: str) -> None:
    """Same seed, same actions: the vectorized GS and the per-car loops give identical trajectories.

    With several copies, copy b of one batched GS follows the reference seeded with copy b's seed (rows
    b * n_agents .. of every array), through a reset that keeps the streams and one that reseeds them.
    """
    seeds = [5, 11, 7][:copies]
    gs = make_global("traffic", n_agents=n_agents, seed=5 if copies == 1 else seeds)
    refs = [ReferenceTraffic(n_agents, seed=s) for s in seeds]
    rng = np.random.default_rng(1)

    def per_copy(batched: np.ndarray, b: int) -> np.ndarray:
        return batched[b * n_agents:(b + 1) * n_agents]

    for episode in range(2):
        # the batched GS reseeds in episode 1; a single one keeps its stream, as this test always did
        reseed = [s + 100 for s in seeds] if copies > 1 and episode == 1 else None
        obs = gs.reset(seed=reseed)
        for b, ref in enumerate(refs):
            np.testing.assert_array_equal(per_copy(obs, b), ref.reset(seed=None if reseed is None else reseed[b]))
        done = False
        while not done:
            actions = _policy(controller, n_agents * copies, rng, gs.local_states())
            obs, rew, done = gs.step(actions)
            sources, states = gs.influence_sources(), gs.local_states()
            for b, ref in enumerate(refs):
                ref_obs, ref_rew, ref_done = ref.step(per_copy(actions, b))
                where = f"copy {b} episode {episode} t {gs.t}"
                np.testing.assert_array_equal(per_copy(obs, b), ref_obs, err_msg=where)
                np.testing.assert_array_equal(per_copy(rew, b), ref_rew, err_msg=where)
                assert done == ref_done
                np.testing.assert_array_equal(per_copy(sources, b), ref.influence_sources(), err_msg=where)
                _assert_states_equal({k: per_copy(v, b) for k, v in states.items()}, ref.local_states(), where)
        assert all(ref.entered > 0 and (n_agents == 1 or ref.left > 0) for ref in refs)


def test_block_draws_are_the_per_step_stream_across_resets() -> None:
    """The GS draws a horizon of arrival draws at a time; the reference draws one step at a time. Episodes cut
    short by `reset()` (which keeps the streams) and a reseeding reset still see the very same numbers."""
    seeds = [5, 9]
    gs = make_global("traffic", n_agents=4, seed=seeds)
    refs = [ReferenceTraffic(4, seed=s) for s in seeds]
    rng = np.random.default_rng(3)
    for length, reseed in [(110, None), (300, None), (250, None), (40, [8, 1])]:
        gs.reset(seed=reseed)
        for b, ref in enumerate(refs):
            ref.reset(seed=None if reseed is None else reseed[b])
        for _ in range(length):
            actions = rng.integers(0, 2, 8)
            obs, _, _ = gs.step(actions)
            sources = gs.influence_sources()
            for b, ref in enumerate(refs):
                np.testing.assert_array_equal(obs[4 * b:4 * b + 4], ref.step(actions[4 * b:4 * b + 4])[0])
                np.testing.assert_array_equal(sources[4 * b:4 * b + 4], ref.influence_sources())


def test_batched_topology_is_the_single_one_offset_by_copy() -> None:
    """B grids are one disconnected grid: copy b's lanes are the single grid's shifted by 4 * n_agents * b."""
    side, copies = 3, 3
    n_flat = tr.N_LANES * side * side
    downstream, upstream, entry = tr.lane_topology(side)
    many_downstream, many_upstream, many_entry = tr.lane_topology(side, copies)

    def offset(table: np.ndarray) -> np.ndarray:  # the padding lane moves past the last copy
        return np.concatenate([np.where(table == n_flat, copies * n_flat, table + b * n_flat) for b in range(copies)])

    np.testing.assert_array_equal(many_downstream, offset(downstream))
    np.testing.assert_array_equal(many_upstream, offset(upstream))
    np.testing.assert_array_equal(many_entry, np.concatenate([entry + b * n_flat for b in range(copies)]))


def test_render_of_a_batched_grid_draws_one_region_only() -> None:
    """The whole-grid picture needs a single copy; one region of any copy can still be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = make_global("traffic", n_agents=4, seed=[0, 1])
    with pytest.raises(ValueError, match="region"):
        tr.render(gs)
    ax = tr.render(gs, region=5)
    assert "local region" in ax.get_title()
    plt.close(ax.figure)


# ---------------------------------------------------------------- (c) invariants

def _run_checked(n_agents: int, controller: str, seed: int) -> None:
    gs = make_global("traffic", n_agents=n_agents, seed=seed)
    rng = np.random.default_rng(seed)
    downstream, _, entry_lanes = tr.lane_topology(gs.side)
    exit_lanes = downstream == 4 * n_agents
    entered = left = 0
    done = False
    while not done:
        before = gs.local_states()
        actions = _policy(controller, n_agents, rng, before)
        obs, rew, done = gs.step(actions)
        after = gs.local_states()
        cells, phase, timer = after["cells"], after["phase"], after["timer"]
        # conservation: every car that entered is inside or has left (at a green exit stop line)
        u = gs.influence_sources()
        entered += int(u[:, : tr.N_LANES].ravel()[entry_lanes].sum())
        green = phase[:, None] == tr.LANE_GREEN_PHASE
        left += int((before["cells"][..., 0] & green).ravel()[exit_lanes].sum())
        assert entered == int(cells.sum()) + left
        # lights: a valid state machine
        yellow_before = (before["phase"] & 1) == 1
        changed = phase != before["phase"]
        assert np.all(phase[changed] == (before["phase"][changed] + 1) % 4)
        assert np.all(changed[yellow_before] == (before["timer"][yellow_before] >= tr.YELLOW_STEPS))
        assert np.all(changed[~yellow_before] == (actions[~yellow_before] == 1))
        assert np.all(timer == np.where(changed, 1, before["timer"] + 1))
        assert np.all(timer[(phase & 1) == 1] <= tr.YELLOW_STEPS)
        # nobody crosses on red or yellow: a stop-line car of a lane without green is still there
        stuck = before["cells"][..., 0] & ~green
        assert np.all(cells[..., 0][stuck])
        # arrivals only into free entry cells, and they are there afterwards
        arrivals = u[:, : tr.N_LANES].astype(bool)
        assert not np.any(arrivals & before["cells"][..., 9])
        assert np.all(cells[..., 9][arrivals])
        # rewards
        assert rew.dtype == np.float32 and np.all((rew >= 0) & (rew <= 1))
        assert obs.shape == (n_agents, 40) and np.all(obs[:, 36:].sum(axis=1) == 1)
        # edge lanes are never blocked
        side = gs.side
        rows, cols = np.divmod(np.arange(n_agents), side)
        blocked = u[:, tr.N_LANES:]
        assert not blocked[rows == side - 1, 0].any() and not blocked[rows == 0, 1].any()
        assert not blocked[cols == 0, 2].any() and not blocked[cols == side - 1, 3].any()
    assert left > 0  # the episode exercised the exits


@pytest.mark.parametrize("n_agents", [4, 49])
@pytest.mark.parametrize("controller", ["random", "hand-coded"])
def test_invariants(n_agents: int, controller: str) -> None:
    """Conservation, one car per cell (bool cells), no crossing without green, light machine, reward range."""
    _run_checked(n_agents, controller, seed=n_agents)


def test_cars_queue_on_red_and_the_light_takes_three_yellow_steps() -> None:
    """Never switching keeps EW red: EW lanes fill up and earn reward 0 for their stopped cars."""
    gs = make_global("traffic", n_agents=4, seed=0)
    keep = np.zeros(4, dtype=np.int64)
    for _ in range(200):
        gs.step(keep)
    states = gs.local_states()
    ew_entry = np.array([[False, True], [True, False], [False, True], [True, False]])  # from E at col 1, W at col 0
    assert states["cells"][:, 2:, 0][ew_entry].all()  # every boundary EW lane queues at its stop line
    assert not states["cells"][:, 2:][~ew_entry].any()  # and nothing ever crossed into the inner EW lanes
    switch = np.ones(4, dtype=np.int64)
    phases = []
    for _ in range(5):
        gs.step(switch)
        phases.append(int(gs.phase[0]))
    assert phases == [1, 1, 1, 2, 3]  # 3 yellow steps, green EW, then the held switch goes yellow again


def test_reward_counts_moving_cars() -> None:
    """A lone car on a free lane moves every step (reward 1); a car held at red earns 0."""
    ls = make_local("traffic", n_regions=2)
    states = ls.local_states()
    states["cells"][0, 0, 5] = True  # region 0: NS car, green
    states["cells"][1, 2, 0] = True  # region 1: EW car at the stop line, red
    ls.load_states(states)
    _, rew, _ = ls.step(np.zeros(2, dtype=np.int64), np.zeros((2, 8), dtype=np.int64))
    np.testing.assert_array_equal(rew, np.array([1.0, 0.0], dtype=np.float32))
    _, rew, _ = ls.step(np.zeros(2, dtype=np.int64), np.zeros((2, 8), dtype=np.int64))
    np.testing.assert_array_equal(rew, np.array([1.0, 0.0], dtype=np.float32))


def test_local_simulator_never_places_an_arrival_into_an_occupied_entry_cell() -> None:
    """An AIP may predict an arrival into a blocked entry cell; the LS drops it and reports no arrival."""
    ls = make_local("traffic", n_regions=1)
    states = ls.local_states()
    states["phase"][:] = 2  # green EW: the NS lane 0 queues
    states["timer"][:] = 1
    states["cells"][0, 0, 8:] = True  # cells 8 and 9 occupied: the car at 9 cannot move
    ls.load_states(states)
    u = np.zeros((1, 8), dtype=np.int64)
    u[0, 0] = 1
    ls.step(np.zeros(1, dtype=np.int64), u)
    assert int(ls.local_states()["cells"].sum()) == 2
    assert ls.influence_sources()[0, 0] == 0


def test_downstream_blocked_bit_holds_a_green_stop_line_car() -> None:
    """The blocked bit is exactly what decides whether a green stop-line car crosses."""
    ls = make_local("traffic", n_regions=2)
    states = ls.local_states()
    states["cells"][:, 0, 0] = True
    ls.load_states(states)
    u = np.zeros((2, 8), dtype=np.int64)
    u[1, 4] = 1
    ls.step(np.zeros(2, dtype=np.int64), u)
    np.testing.assert_array_equal(ls.local_states()["cells"][:, 0, 0], [False, True])


# ---------------------------------------------------------------- (d) determinism

def test_same_seed_same_trajectory_and_reset_seed() -> None:
    """Two GSs with one seed agree; reset(seed) restarts the draws; another seed differs."""
    def trajectory(gs: tr.GlobalSimulator, seed: int | None = None) -> list[np.ndarray]:
        gs.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(100):
            obs, rew, _ = gs.step(rng.integers(0, 2, size=gs.n_agents))
            out += [obs, rew, gs.influence_sources()]
        return out

    a, b = make_global("traffic", n_agents=25, seed=4), make_global("traffic", n_agents=25, seed=4)
    first = trajectory(a)
    for x, y in zip(first, trajectory(b), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(first, trajectory(a, seed=4), strict=True):
        np.testing.assert_array_equal(x, y)
    other = trajectory(make_global("traffic", n_agents=25, seed=5))
    assert any(not np.array_equal(x, y) for x, y in zip(first, other, strict=True))


# ---------------------------------------------------------------- (e) errors and spec

def test_spec_and_shapes() -> None:
    """The spec matches docs/design.md ("Traffic") and what the simulators return."""
    spec = get_spec("traffic")
    assert (spec.obs_dim, spec.n_actions, spec.dset_dim, spec.horizon) == (40, 2, 40, 300)
    assert spec.source_sizes == (2,) * 8
    gs = make_global("traffic", n_agents=49, seed=0)
    assert gs.spec == spec
    obs = gs.reset()
    assert obs.shape == (49, 40) and obs.dtype == np.float32
    gs.step(np.zeros(49, dtype=np.int64))
    assert gs.influence_sources().shape == (49, 8) and gs.influence_sources().dtype == np.int64
    assert gs.dsets().shape == (49, 40) and gs.dsets().dtype == np.float32
    ls = make_local("traffic", n_regions=3, seed=0)
    assert ls.reset().shape == (3, 40) and ls.spec == spec


@pytest.mark.parametrize("n_agents", [0, 3, 10, -4, 2.0, "4", True])
def test_bad_n_agents(n_agents: object) -> None:
    """A number of agents that is not a positive square raises a clear error."""
    with pytest.raises(ValueError, match="n_agents"):
        make_global("traffic", n_agents=n_agents)


def test_bad_arguments_raise_clear_errors() -> None:
    """Wrong env names, region counts, actions, u, noise and states are refused with the parameter named."""
    with pytest.raises(ValueError, match="env"):
        make_global("trafic", n_agents=4)
    with pytest.raises(ValueError, match="n_regions"):
        make_local("traffic", n_regions=0)
    with pytest.raises(ValueError, match="inflow_probability"):
        make_global("traffic", n_agents=4, inflow_probability=1.5)
    gs = make_global("traffic", n_agents=4, seed=0)
    with pytest.raises(ValueError, match="actions"):
        gs.step(np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="actions"):
        gs.step(np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="actions"):
        gs.step(np.zeros(4))
    ls = make_local("traffic", n_regions=2)
    acts = np.zeros(2, dtype=np.int64)
    with pytest.raises(ValueError, match="u must"):
        ls.step(acts, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="u must"):
        ls.step(acts, np.full((2, 8), 2, dtype=np.int64))
    with pytest.raises(ValueError, match="u must"):
        ls.step(acts, np.zeros((2, 8)))
    with pytest.raises(ValueError, match="noise"):
        ls.step(acts, np.zeros((2, 8), dtype=np.int64), noise=np.zeros(2))
    with pytest.raises(ValueError, match="states"):
        ls.load_states({"cells": np.zeros((2, 4, 10), dtype=bool)})
    with pytest.raises(ValueError, match="cells"):
        ls.load_states(make_local("traffic", n_regions=3).local_states())
    yellow_too_long = {**ls.local_states(), "phase": np.array([1, 0]), "timer": np.array([4, 9])}
    with pytest.raises(ValueError, match=r"timer.*\[1, 3\] for a yellow phase"):
        ls.load_states(yellow_too_long)
    for _ in range(tr.HORIZON):
        gs.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(RuntimeError, match="reset"):
        gs.step(np.zeros(4, dtype=np.int64))


# ---------------------------------------------------------------- hand-coded controller

def test_hand_coded_controller_rule() -> None:
    """Switch only in green, after the minimum green, and only when the red axis has the longer queue."""
    n = 6
    cells = np.zeros((n, 4, 10), dtype=bool)
    cells[:, 2, :3] = True  # EW queue of 3 everywhere
    cells[5, 0, :5] = True  # region 5: NS queue of 5
    states = {
        "cells": cells,
        "phase": np.array([0, 0, 1, 2, 0, 2]),
        "timer": np.array([tr.MIN_GREEN, tr.MIN_GREEN - 1, 9, 9, 9, 9]),
        "t": np.zeros(n, dtype=np.int64),
    }
    np.testing.assert_array_equal(tr.hand_coded_actions(states), [1, 0, 0, 0, 1, 1])
    states["cells"][4, 0, :4] = True  # region 4: NS (green) now queues more than EW
    assert tr.hand_coded_actions(states)[4] == 0


def test_hand_coded_beats_random_control() -> None:
    """Over one episode on 25 agents the hand-coded lights earn more than random switching."""
    returns = {}
    for controller in ("random", "hand-coded"):
        gs = make_global("traffic", n_agents=25, seed=0)
        rng = np.random.default_rng(0)
        total, done = 0.0, False
        while not done:
            _, rew, done = gs.step(_policy(controller, 25, rng, gs.local_states()))
            total += float(rew.mean())
        returns[controller] = total
    assert returns["hand-coded"] > returns["random"] + 10


def test_render_draws_cars_and_lights() -> None:
    """The GS picture has one square per car and one light bar per lane; the LS picture marks 8 sources."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = make_global("traffic", n_agents=4, seed=0)
    for _ in range(60):
        gs.step(tr.hand_coded_actions(gs.local_states()))
    ax = tr.render(gs)
    n_cars = int(gs.local_states()["cells"].sum())
    assert n_cars > 0
    assert len(ax.collections[1].get_paths()) == n_cars  # roads, then cars
    assert len(ax.lines) == 4 * 4
    plt.close(ax.figure)
    ls = make_local("traffic", n_regions=2)
    ax = tr.render(ls, region=1)
    assert len(ax.collections) == 2 + 1 + 4  # roads, cars, 4 arrival cells, 4 downstream cells
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="sim"):
        tr.render(object())


# ---------------------------------------------------------------- notebook statistics

def test_environment_statistics_on_traffic() -> None:
    """Returns and influence statistics agree with the raw episodes they summarise."""
    from dials_lib.analysis import env_stats as stats

    run = stats.run_episodes("traffic", 4, "random", episodes=2, seed=0)
    assert run["rewards"].shape == (2, tr.HORIZON, 4) and run["influence_sources"].shape == (2, tr.HORIZON, 4, 8)
    returns = stats.episode_returns("traffic", 4, "random", episodes=2, seed=0)
    np.testing.assert_allclose(returns, run["rewards"].sum(axis=1, dtype=np.float64))
    table = stats.returns_table("traffic", [4], episodes=2, seed=0)
    assert list(table["controller"]) == ["random", "hand-coded"]
    assert table["average return"].iloc[0] == pytest.approx(returns.mean())
    summary = stats.influence_statistics(run["influence_sources"], stats.source_names("traffic"))
    assert list(summary["source"]) == list(tr.SOURCE_NAMES)
    np.testing.assert_allclose(summary["rate"], (run["influence_sources"] != 0).mean(axis=(0, 1, 2)))
    assert (summary["rate"].iloc[:4] > 0.03).all()
    # the entry cell is occupied right after an arrival, so no lane gets arrivals two steps in a row
    assert (summary["lag-1 corr"].iloc[:4] < 0).all()
    corr = stats.influence_correlation(run["influence_sources"])
    np.testing.assert_allclose(np.diag(corr), 1.0)
    with pytest.raises(ValueError, match="controller"):
        stats.run_episodes("traffic", 4, "greedy", episodes=1)
    with pytest.raises(ValueError, match="episodes"):
        stats.run_episodes("traffic", 4, "random", episodes=0)


def test_local_simulator_accepts_boolean_influence() -> None:
    """u as booleans (e.g. thresholded predictions) steps exactly like the same u as integers."""
    gs = make_global("traffic", n_agents=4, seed=1)
    as_int, as_bool = make_local("traffic", n_regions=4), make_local("traffic", n_regions=4)
    for _ in range(80):
        actions = tr.hand_coded_actions(gs.local_states())
        gs.step(actions)
        u = gs.influence_sources()
        a = as_int.step(actions, u)
        b = as_bool.step(actions, u.astype(bool))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    _assert_states_equal(as_int.local_states(), as_bool.local_states(), "after 80 steps")

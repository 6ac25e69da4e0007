"""Warehouse simulators: LS rules, the per-robot reference, invariants, determinism, argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from dials_lib.envs import get_spec, make_global, make_local
from dials_lib.envs.warehouse import hand_coded_actions
from dials_lib.envs.warehouse_map import CENTRE, N_SHELVES, TABLES


def _policy(kind: str, rng: np.random.Generator, states: dict[str, np.ndarray]) -> np.ndarray:
    if kind == "random":
        return rng.integers(0, 4, states["cell"].shape[0])
    return hand_coded_actions(states)


def _assert_same_states(gs_states: dict[str, np.ndarray], ls_states: dict[str, np.ndarray]) -> None:
    assert gs_states.keys() == ls_states.keys()
    for key in gs_states:
        assert gs_states[key].dtype == ls_states[key].dtype, key
        np.testing.assert_array_equal(gs_states[key], ls_states[key], err_msg=key)


# The whole-episode replay (an LS loaded once per episode and fed the GS's u and noise) is the contract test
# `tests/test_envs_contract.py::test_local_form_holds`, run through `dials_lib.envs.check_local_form`.


def test_neighbour_on_shared_cell_removes_item_in_local_simulator() -> None:
    """u says the northern neighbour stands on shared cell 1: that item goes, and nothing spawns there."""
    ls = make_local("warehouse", n_regions=1, seed=0)
    ls.reset()
    items = np.zeros((1, N_SHELVES), bool)
    items[0, [1, 4]] = True  # north middle and south middle
    ls.load_states({"cell": np.array([CENTRE]), "items": items, "ages": items.astype(np.int32) * 5,
                    "t": np.array([0])})
    noise = np.zeros((1, N_SHELVES))  # every free cell would spawn
    ls.step(np.array([2]), np.array([[1, 3, 3, 3]]), noise=noise)
    state = ls.local_states()
    assert not state["items"][0, 1] and state["ages"][0, 1] == 0
    assert state["items"][0, 4] and state["ages"][0, 4] == 6
    assert state["items"][0].sum() == N_SHELVES - 1
    assert TABLES["cell_shelf"][state["cell"][0]] == N_SHELVES  # moved left, still interior


@pytest.mark.parametrize(("n_agents", "copies"), [(4, 1), (25, 1), (100, 1), (4, 3), (25, 3)])
def test_matches_per_robot_reference(n_agents: int, copies: int) -> None:
    """The vectorized GS and the per-robot loop produce the same trajectory, step for step.

    With several copies, copy b of one batched GS follows the reference seeded with copy b's seed (rows
    b * n_agents .. of every array), through a reset that keeps the streams and one that reseeds them.
    """
    from tests.reference_warehouse import ReferenceWarehouse

    seeds = [5, 11, 7][:copies]
    gs = make_global("warehouse", n_agents=n_agents, seed=5 if copies == 1 else seeds)
    refs = [ReferenceWarehouse(n_agents, seed=s) for s in seeds]
    rng = np.random.default_rng(8)
    k = n_agents * copies

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
            # half random, half hand-coded learners: both kinds of movement and many collections
            actions = rng.integers(0, 4, k)
            if episode == 1:
                actions = np.where(rng.random(k) < 0.5, actions, hand_coded_actions(gs.local_states()))
            obs, rewards, done = gs.step(actions)
            sources, noise, states = gs.influence_sources(), gs.last_noise(), gs.local_states()
            for b, ref in enumerate(refs):
                ref_obs, ref_rewards, ref_done = ref.step(per_copy(actions, b))
                np.testing.assert_array_equal(per_copy(obs, b), ref_obs)
                np.testing.assert_array_equal(per_copy(rewards, b), ref_rewards)
                assert done == ref_done
                np.testing.assert_array_equal(per_copy(sources, b), ref.influence_sources())
                np.testing.assert_array_equal(per_copy(noise, b), ref.last_noise())
                _assert_same_states({key: per_copy(v, b) for key, v in states.items()}, ref.local_states())
        for b, ref in enumerate(refs):
            assert sum(ref.items.values()) > 0 and len(ref.items) > 0
            # the whole-map accessors of copy b show the reference's robots and items
            expected = np.full((gs.map_side, gs.map_side), -1, dtype=np.int32)
            for (row, col), age in ref.items.items():
                expected[row, col] = age
            np.testing.assert_array_equal(gs.item_ages_map(copy=b), expected)
            order = [ref.robots.index(divmod(int(g), gs.robots_per_side)) for g in gs.robot_grid]
            np.testing.assert_array_equal(gs.robot_positions(copy=b), np.array(ref.pos)[order])


def test_block_draws_are_the_per_step_stream_across_resets() -> None:
    """The GS draws a horizon of spawn draws at a time; the reference draws one step at a time. Episodes cut
    short by `reset()` (which keeps the streams) and a reseeding reset still see the very same numbers."""
    from tests.reference_warehouse import ReferenceWarehouse

    seeds = [5, 9]
    gs = make_global("warehouse", n_agents=4, seed=seeds)
    refs = [ReferenceWarehouse(4, seed=s) for s in seeds]
    rng = np.random.default_rng(3)
    for length, reseed in [(37, None), (100, None), (64, None), (30, [8, 1])]:
        gs.reset(seed=reseed)
        for b, ref in enumerate(refs):
            ref.reset(seed=None if reseed is None else reseed[b])
        for _ in range(length):
            actions = rng.integers(0, 4, 8)
            obs, _, _ = gs.step(actions)
            noise = gs.last_noise()
            for b, ref in enumerate(refs):
                np.testing.assert_array_equal(obs[4 * b:4 * b + 4], ref.step(actions[4 * b:4 * b + 4])[0])
                np.testing.assert_array_equal(noise[4 * b:4 * b + 4], ref.last_noise())


def test_accessors_of_a_batched_warehouse_show_one_copy() -> None:
    """`all_robots`, `robot_positions`, `item_ages_map` and the picture take one copy (0 by default)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    from dials_lib.envs.warehouse import render

    seeds = [3, 4]
    gs = make_global("warehouse", n_agents=4, seed=seeds, item_probability=0.2)
    singles = [make_global("warehouse", n_agents=4, seed=s, item_probability=0.2) for s in seeds]
    rng = np.random.default_rng(0)
    for _ in range(15):
        actions = rng.integers(0, 4, 8)
        gs.step(actions)
        for b, single in enumerate(singles):
            single.step(actions[4 * b:4 * b + 4])
    assert gs.n_copies == 2 and singles[0].n_copies == 1
    for b, single in enumerate(singles):
        _assert_same_states(gs.all_robots(copy=b), single.all_robots())
        np.testing.assert_array_equal(gs.robot_positions(copy=b), single.robot_positions())
        np.testing.assert_array_equal(gs.item_ages_map(copy=b), single.item_ages_map())
    np.testing.assert_array_equal(gs.item_ages_map(), singles[0].item_ages_map())
    assert not np.array_equal(gs.item_ages_map(copy=1), singles[0].item_ages_map())
    for bad in (2, -1, 0.0, True):
        with pytest.raises(ValueError, match="copy"):
            gs.robot_positions(copy=bad)
    ax = render(gs)
    assert sum(isinstance(p, Circle) for p in ax.patches) == gs.robots_per_side**2  # copy 0's robots
    plt.close("all")


def test_reference_hand_coded_matches_vectorized_controller() -> None:
    """The per-robot hand-coded decision equals `hand_coded_actions` on every robot of a busy warehouse."""
    from tests.reference_warehouse import ReferenceWarehouse

    ref = ReferenceWarehouse(25, seed=2, item_probability=0.1)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        ref.step(rng.integers(0, 4, 25))
        ours = hand_coded_actions(ref.local_states())
        theirs = [ref.hand_coded(robot) for robot in ref.learners]
        np.testing.assert_array_equal(ours, theirs)
        checked += len(theirs)
    assert checked == 60 * 25


def _item_map(gs) -> dict[tuple[int, int], int]:
    """{map cell: age} of every item in a global simulator."""
    ages = gs.item_ages_map()
    return {(int(a), int(b)): int(ages[a, b]) for a, b in zip(*np.nonzero(ages >= 0), strict=True)}


@pytest.mark.parametrize("policy", ["random", "hand-coded"])
def test_invariants_over_an_episode(policy: str) -> None:
    """Regions, corners, shelf-only items, removal only under robots, spawn ages, reward = age / oldest age."""
    gs = make_global("warehouse", n_agents=25, seed=4, item_probability=0.05)
    rng = np.random.default_rng(1)
    gs.reset()
    r = gs.robots_per_side
    region = np.divmod(gs.robot_grid, r)  # each robot's (row, column) in the robot grid
    assert sorted(gs.robot_grid.tolist()) == list(range(r * r))
    positions, items = gs.robot_positions(), _item_map(gs)
    assert not items and (gs.all_robots()["cell"] == CENTRE).all()
    done, oldest_paid, removed_seen = False, 0, 0
    while not done:
        before = gs.local_states()
        actions = _policy(policy, rng, before)
        _, rewards, done = gs.step(actions)
        new_positions, new_items = gs.robot_positions(), _item_map(gs)
        # robots stay in their own 5x5 region, off its corners, and move at most one cell
        local = new_positions - 4 * np.stack(region, axis=1)
        assert ((local >= 0) & (local <= 4)).all()
        assert not ((local[:, 0] % 4 == 0) & (local[:, 1] % 4 == 0)).any()
        assert (np.abs(new_positions - positions).sum(axis=1) <= 1).all()
        # a robot on a shelf cell at t can only stay or step back to the interior cell next to it
        was_on_shelf = (positions[:, 0] % 4 == 0) | (positions[:, 1] % 4 == 0)
        now_on_shelf = (new_positions[:, 0] % 4 == 0) | (new_positions[:, 1] % 4 == 0)
        moved = (new_positions != positions).any(axis=1)
        assert not (was_on_shelf & moved & now_on_shelf).any()
        # items only on shelf cells; kept items aged by one; removed only under a robot; new ones at age 0
        standing = {tuple(p) for p in new_positions.tolist()}
        for cell, age in new_items.items():
            assert (cell[0] % 4 == 0) != (cell[1] % 4 == 0)
            assert age == (items[cell] + 1 if cell in items else 0)
            assert cell not in standing
        for cell in set(items) - set(new_items):
            assert cell in standing
            removed_seen += 1
        # rewards: the collected item's age over the oldest age among its region's items
        for i in range(gs.n_agents):
            cell = tuple(new_positions[i].tolist())
            if cell not in items:
                assert rewards[i] == 0.0
                continue
            ages = before["ages"][i][before["items"][i]] + 1
            expected = np.float32(items[cell] + 1) / np.float32(ages.max())
            assert rewards[i] == expected and 0 < rewards[i] <= 1
            oldest_paid += int(items[cell] + 1 == ages.max())
            assert (rewards[i] == 1.0) == (items[cell] + 1 == ages.max())
        positions, items = new_positions, new_items
    assert removed_seen > 0 and oldest_paid > 0


def test_determinism_and_seeding() -> None:
    """Same seed, same trajectory; reset(seed) restarts the stream; another seed gives another trajectory."""
    def run(sim, seed: int | None = None, local: bool = False) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        out = [sim.reset(seed=seed)]
        for _ in range(60):
            n = out[0].shape[0]
            step = sim.step(rng.integers(0, 4, n), np.full((n, 4), 3)) if local else sim.step(rng.integers(0, 4, n))
            out += [step[0], step[1]]
        return out

    a = run(make_global("warehouse", n_agents=4, seed=7))
    b = run(make_global("warehouse", n_agents=4, seed=7))
    gs = make_global("warehouse", n_agents=4, seed=1)
    run(gs)
    c = run(gs, seed=7)
    d = run(make_global("warehouse", n_agents=4, seed=8))
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    assert any((x != y).any() for x, y in zip(a, d, strict=True))
    la = run(make_local("warehouse", n_regions=3, seed=2), local=True)
    lb = run(make_local("warehouse", n_regions=3, seed=2), local=True)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(x, y)


def test_spec_and_shapes() -> None:
    """SPEC sizes and the shapes and dtypes of every core-API output."""
    spec = get_spec("warehouse")
    assert (spec.obs_dim, spec.n_actions, spec.source_sizes, spec.dset_dim, spec.horizon) == (
        37, 4, (4, 4, 4, 4), 37, 100)
    gs = make_global("warehouse", n_agents=49, seed=0)
    assert gs.map_side == 4 * 9 + 1 and gs.robots_per_side**2 == 81
    obs = gs.reset()
    assert obs.shape == (49, 37) and obs.dtype == np.float32 and (obs[:, CENTRE] == 1).all()
    obs, rewards, done = gs.step(np.zeros(49, dtype=np.int64))
    assert rewards.shape == (49,) and rewards.dtype == np.float32 and done is False
    assert gs.influence_sources().shape == (49, 4) and gs.influence_sources().dtype == np.int64
    assert gs.dsets().shape == (49, 37) and gs.last_noise().shape == (49, 12)
    assert (obs.sum(axis=1)[:, None] >= 1).all() and (obs[:, :25].sum(axis=1) == 1).all()


def test_shared_cells_share_one_draw_and_one_item() -> None:
    """Two neighbours see the same draw and the same item (and age) on their common cells."""
    gs = make_global("warehouse", n_agents=4, seed=3, item_probability=0.3)
    gs.reset()
    for _ in range(5):
        gs.step(np.zeros(4, dtype=np.int64))
    noise, states = gs.last_noise(), gs.local_states()
    # learner 0 (top left) and learner 1 (top right): 0's east side is 1's west side
    east, west = slice(9, 12), slice(6, 9)
    np.testing.assert_array_equal(noise[0, east], noise[1, west])
    np.testing.assert_array_equal(states["items"][0, east], states["items"][1, west])
    np.testing.assert_array_equal(states["ages"][0, east], states["ages"][1, west])
    south, north = slice(3, 6), slice(0, 3)  # learner 0's south side is learner 2's north side
    np.testing.assert_array_equal(noise[0, south], noise[2, north])
    assert states["items"].any()


def test_bad_arguments_raise_clear_errors() -> None:
    """Every bad argument is refused with a message naming it."""
    with pytest.raises(ValueError, match="env"):
        make_global("warehous", n_agents=4)
    for bad in (3, 0, -4, 4.0, True, "4"):
        with pytest.raises(ValueError, match="n_agents"):
            make_global("warehouse", n_agents=bad)
    for bad in (0, 2.5, False):
        with pytest.raises(ValueError, match="n_regions"):
            make_local("warehouse", n_regions=bad)
    for bad in (-0.1, 1.5, "0.02", None):
        with pytest.raises(ValueError, match="item_probability"):
            make_global("warehouse", n_agents=4, item_probability=bad)
    gs = make_global("warehouse", n_agents=4, seed=0)
    for bad in (np.zeros(3, int), np.zeros((4, 1), int), np.zeros(4), np.array([0, 1, 2, 4]), [0, 0, 0, -1]):
        with pytest.raises(ValueError, match="actions"):
            gs.step(bad)
    ls = make_local("warehouse", n_regions=2, seed=0)
    ok_actions = np.zeros(2, dtype=np.int64)
    for bad in (np.zeros((2, 3), int), np.full((2, 4), 4), np.zeros((2, 4)), np.full((2, 4), -1)):
        with pytest.raises(ValueError, match="u must"):
            ls.step(ok_actions, bad)
    with pytest.raises(ValueError, match="noise"):
        ls.step(ok_actions, np.full((2, 4), 3), noise=np.zeros((2, 11)))
    states = ls.local_states()
    with pytest.raises(ValueError, match="items"):
        ls.load_states({k: v for k, v in states.items() if k != "items"})
    with pytest.raises(ValueError, match="'t'"):
        ls.load_states({**states, "t": np.array([0, 1])})
    with pytest.raises(ValueError, match="cell"):
        ls.load_states({**states, "cell": np.array([0, 12])})  # 0 is a corner
    for _ in range(100):
        gs.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(RuntimeError, match="reset"):
        gs.step(np.zeros(4, dtype=np.int64))


def test_hand_coded_walks_to_the_oldest_item_and_collects_it() -> None:
    """From the centre: oldest item on the east middle shelf -> right, right (reward 1.0), then back left."""
    ls = make_local("warehouse", n_regions=1, seed=0)
    items = np.zeros((1, N_SHELVES), bool)
    items[0, [0, 10]] = True
    ages = np.zeros((1, N_SHELVES), np.int32)
    ages[0, 0], ages[0, 10] = 3, 9
    ls.load_states({"cell": np.array([CENTRE]), "items": items, "ages": ages, "t": np.array([0])})
    no_neighbours, no_spawn = np.full((1, 4), 3), np.ones((1, N_SHELVES))
    taken, rewards = [], []
    for _ in range(7):
        action = hand_coded_actions(ls.local_states())
        taken.append(int(action[0]))
        rewards.append(float(ls.step(action, no_neighbours, noise=no_spawn)[1][0]))
    # east middle; then the north-west item (now the only one): back left, rows first up, left twice, up onto it
    assert taken == [3, 3, 2, 0, 2, 2, 0]
    assert rewards == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert not ls.local_states()["items"].any()


def test_hand_coded_beats_random_by_far() -> None:
    """Oldest-item-first robots collect many times more reward than random ones on the GS."""
    returns = {}
    for policy in ("random", "hand-coded"):
        gs = make_global("warehouse", n_agents=4, seed=0)
        rng = np.random.default_rng(0)
        total = np.zeros(4)
        for _ in range(3):
            gs.reset()
            done = False
            while not done:
                _, rewards, done = gs.step(_policy(policy, rng, gs.local_states()))
                total += rewards
        returns[policy] = total.mean() / 3
    assert returns["hand-coded"] > 8.0 and returns["hand-coded"] > 4 * returns["random"]


def test_render_global_and_local_pictures() -> None:
    """GS picture: one circle per robot; LS picture: the robot plus one hollow circle per neighbour on our side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    from dials_lib.envs.warehouse import render

    gs = make_global("warehouse", n_agents=4, seed=0)
    for _ in range(20):
        gs.step(hand_coded_actions(gs.local_states()))
    ax = render(gs)
    assert sum(isinstance(p, Circle) for p in ax.patches) == gs.robots_per_side**2
    ls = make_local("warehouse", n_regions=2, seed=0)
    ls.step(np.array([0, 1]), np.array([[3, 3, 3, 3], [0, 3, 2, 3]]))
    ax = render(ls, region=1)
    hollow = [p for p in ax.patches if isinstance(p, Circle) and not p.get_fill()]
    assert len(hollow) == 2 and "region 1" in ax.get_title()
    with pytest.raises(ValueError, match="region"):
        render(ls, region=2)
    with pytest.raises(ValueError, match="sim"):
        render("warehouse")
    plt.close("all")


def test_generic_statistics_on_the_warehouse() -> None:
    """`stats` on the warehouse: hand-coded far above random; rates count neighbours on a shared cell (u != 3)."""
    from dials_lib.analysis import env_stats as stats

    table = stats.returns_table("warehouse", (4,), episodes=2, seed=0)
    returns = dict(zip(table["controller"], table["average return"], strict=True))
    assert returns["hand-coded"] > 4 * returns["random"] > 0
    assert stats.idle_class("warehouse") == 3 and stats.idle_class("traffic") == 0
    sources = stats.run_episodes("warehouse", 4, "random", episodes=2, seed=0)["influence_sources"]
    summary = stats.influence_statistics(sources, stats.source_names("warehouse"), idle=stats.idle_class("warehouse"))
    assert list(summary["source"]) == ["neighbour N", "neighbour S", "neighbour W", "neighbour E"]
    np.testing.assert_allclose(summary["rate"], (sources != 3).mean(axis=(0, 1, 2)))
    assert ((summary["rate"] > 0) & (summary["rate"] < 0.3)).all()
    corr = stats.influence_correlation(sources, idle=3)
    assert corr.shape == (4, 4) and np.allclose(np.diag(corr), 1.0)

"""Warehouse simulators: local-form replay, the per-robot reference, invariants, determinism, argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from dials_lib.envs import get_spec, make_global, make_local
from dials_lib.envs.warehouse import CENTRE, N_SHELVES, TABLES, hand_coded_actions


def _policy(kind: str, rng: np.random.Generator, states: dict[str, np.ndarray]) -> np.ndarray:
    if kind == "random":
        return rng.integers(0, 4, states["cell"].shape[0])
    return hand_coded_actions(states)


def _assert_same_states(gs_states: dict[str, np.ndarray], ls_states: dict[str, np.ndarray]) -> None:
    assert gs_states.keys() == ls_states.keys()
    for key in gs_states:
        assert gs_states[key].dtype == ls_states[key].dtype, key
        np.testing.assert_array_equal(gs_states[key], ls_states[key], err_msg=key)


@pytest.mark.parametrize("n_agents", [4, 25, 100])
@pytest.mark.parametrize("policy", ["random", "hand-coded"])
def test_local_form_replay_whole_episodes(n_agents: int, policy: str) -> None:
    """An LS loaded once with the GS's local states and fed the GS's u and noise reproduces it bit for bit."""
    gs = make_global("warehouse", n_agents=n_agents, seed=11)
    ls = make_local("warehouse", n_regions=n_agents, seed=99)  # its own rng must never be used
    rng = np.random.default_rng(3)
    for _ in range(2):  # two whole episodes
        obs = gs.reset()
        np.testing.assert_array_equal(ls.load_states(gs.local_states()), obs)
        done, steps, rewarded = False, 0, 0
        while not done:
            actions = _policy(policy, rng, gs.local_states())
            obs, rewards, done = gs.step(actions)
            ls_obs, ls_rewards, ls_done = ls.step(actions, gs.influence_sources(), noise=gs.last_noise())
            assert ls_obs.dtype == obs.dtype == np.float32 and ls_rewards.dtype == rewards.dtype == np.float32
            np.testing.assert_array_equal(ls_obs, obs)
            np.testing.assert_array_equal(ls_rewards, rewards)
            assert ls_done == done
            _assert_same_states(gs.local_states(), ls.local_states())
            np.testing.assert_array_equal(ls.dsets(), gs.dsets())
            steps += 1
            rewarded += int((rewards > 0).sum())
        assert steps == get_spec("warehouse").horizon
        assert rewarded > 0  # the episode did exercise collection


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


@pytest.mark.parametrize("n_agents", [4, 25])
def test_matches_per_robot_reference(n_agents: int) -> None:
    """The vectorized GS and the per-robot loop produce the same trajectory, step for step."""
    from tests.reference_warehouse import ReferenceWarehouse

    gs = make_global("warehouse", n_agents=n_agents, seed=5)
    ref = ReferenceWarehouse(n_agents, seed=5)
    rng = np.random.default_rng(8)
    for episode in range(2):
        np.testing.assert_array_equal(gs.reset(), ref.reset())
        done = False
        while not done:
            # half random, half hand-coded learners: both kinds of movement and many collections
            actions = rng.integers(0, 4, n_agents)
            if episode == 1:
                actions = np.where(rng.random(n_agents) < 0.5, actions, hand_coded_actions(gs.local_states()))
            obs, rewards, done = gs.step(actions)
            ref_obs, ref_rewards, ref_done = ref.step(actions)
            np.testing.assert_array_equal(obs, ref_obs)
            np.testing.assert_array_equal(rewards, ref_rewards)
            assert done == ref_done
            np.testing.assert_array_equal(gs.influence_sources(), ref.influence_sources())
            np.testing.assert_array_equal(gs.last_noise(), ref.last_noise())
            _assert_same_states(gs.local_states(), ref.local_states())
        assert sum(ref.items.values()) > 0 and len(ref.items) > 0


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

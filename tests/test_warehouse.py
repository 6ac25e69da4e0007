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

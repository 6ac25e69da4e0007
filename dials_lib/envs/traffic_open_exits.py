"""traffic-open-exits: the traffic grid with the paper's 4 influence sources only, and its local form measured.

Our traffic local simulator (`dials_lib.envs.traffic`) has 8 influence sources per intersection: 4 "a car arrives
at cell 9 of incoming lane l" (the paper's) and 4 "the downstream entry cell is occupied, so a car at the stop
line of lane l may not cross" that the authors' SUMO local simulator lacks. An untrained AIP predicts every binary
source near 1/2, so on an untrained IALS of our grid the exits are blocked about half the time. This variant
removes those 4 sources to tell that apart from what the 4 arrival sources alone do
(`dials_lib.analysis.untrained_gap`):

- Global simulator: exactly traffic's (the same rules, draws, observations, rewards and d-set; its cars still
  wait behind an occupied downstream entry cell). Only `influence_sources()` changes: the 4 arrival bits, which
  are bit for bit the first 4 of traffic's on the same trajectory.
- Local simulator: traffic's with every exit open: a car at the stop line crosses on green whatever lies beyond
  the intersection; `step(actions, u)` takes u int [K, 4].

So the local form is no longer exact: fed the GS's 4 arrival sources, the LS lets a car cross where the GS held it
behind an occupied downstream cell, and the two differ from then on. The registry says so (`exact_local_form` is
False, so `check_local_form` refuses it), and `local_gap` measures how often the two differ, two ways: one step at
a time (the LS loaded with the GS's state before every step: the share of agent-steps whose next state or reward
differs, which is the share in which the GS held a car at a green stop line) and over whole episodes (the LS loaded
once at the episode start and never again: how far its roads and rewards drift from the GS's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dials_lib.envs import traffic
from dials_lib.envs.contract import EnvSpec
from dials_lib.envs.traffic_intersection import LANE_GREEN_PHASE, N_CELLS, N_LANES
from dials_lib.validation import check_choice

N_SOURCES = N_LANES

SPEC = EnvSpec(
    name="traffic-open-exits",
    obs_dim=traffic.SPEC.obs_dim,
    n_actions=traffic.SPEC.n_actions,
    source_sizes=(2,) * N_SOURCES,
    dset_dim=traffic.SPEC.dset_dim,
    horizon=traffic.SPEC.horizon,
)

SOURCE_NAMES = traffic.SOURCE_NAMES[:N_SOURCES]
"""The 4 arrival sources, named as traffic's first 4."""


class GlobalSimulator(traffic.GlobalSimulator):
    """Traffic's global simulator, unchanged, reporting only the 4 arrival sources."""

    spec = SPEC

    def influence_sources(self) -> np.ndarray:
        """u_t realised by the step just taken, int64 [n, 4]: a car arrived at cell 9 of incoming lane l."""
        return (self._arrival_bits != 0).astype(np.int64)


class LocalSimulator(traffic.LocalSimulator):
    """Traffic's local simulator with every exit open: the world outside enters only through the 4 arrivals."""

    spec = SPEC

    def __init__(self, n_regions: int = 1, seed: int | None = None) -> None:
        """A batch of `n_regions` intersections (`seed` is kept for the registry's signature: no draws)."""
        super().__init__(n_regions, seed)
        # traffic's 8 sources with the 4 blocked-exit bits held at 0 (a buffer: a step copies u into it)
        self._all_sources = np.zeros((self.n_regions, traffic.SPEC.n_sources), dtype=np.int64)

    def step(self, actions: Any, u: Any, noise: Any = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """Advance the K regions given the arrivals u (int or bool [K, 4]); no exit is ever blocked."""
        u = np.asarray(u)
        if u.shape != (self.n_regions, N_SOURCES) or u.dtype.kind not in "biu":
            raise ValueError(f"u must be an integer array of shape ({self.n_regions}, {N_SOURCES}) (the arrival "
                             f"sources); got {u.dtype} {u.shape}")
        self._all_sources[:, :N_SOURCES] = u
        return super().step(actions, self._all_sources, noise)

    def influence_sources(self) -> np.ndarray:
        """The arrivals the step just taken placed, int64 [K, 4]."""
        return (self._arrival_bits != 0).astype(np.int64)


# ---------------------------------------------------------------- the local form, measured

CONTROLLERS = ("random", "hand-coded", "half-stuck")
"""Who acts while the gap is measured: uniform random actions, traffic's hand-coded lights, or lights of which every
other one never switches (even agents keep green NS forever, odd agents switch every SWITCH_PERIOD steps): a 100 m
lane fills up only behind a light that stays red for long while its upstream light lets cars through, and that
spillback is the only way an exit is ever occupied when a car waits at a green stop line."""
SWITCH_PERIOD = 20


@dataclass(frozen=True)
class LocalGap:
    """How often the open-exit LS differs from the GS (`local_gap`), per agent and step."""

    n_agents: int
    episodes: int
    controller: str
    one_step: pd.DataFrame
    """The LS loaded with the GS's state before every step: one row per episode, step t and agent, with
    `held` (cars the GS held at a green stop line behind an occupied exit), `state_differs` (the 40 lane cells
    after the step differ), `reward_gs`, `reward_ls`."""
    episode: pd.DataFrame
    """The LS loaded once per episode (empty roads) and then fed only the GS's actions and arrivals: one row per
    episode, step and agent, with `cells_differing` (of 40), `reward_gs`, `reward_ls`."""

    @property
    def one_step_differs(self) -> float:
        """Share of agent-steps in which one LS step from the GS's own state ends elsewhere than the GS's step."""
        return float(self.one_step["state_differs"].mean())

    @property
    def held_share(self) -> float:
        """Share of agent-steps in which the GS held at least one car at a green stop line (a blocked exit)."""
        return float((self.one_step["held"] > 0).mean())

    @property
    def one_step_reward_gap(self) -> float:
        """Mean |r_GS - r_LS| of one step from the GS's state (rewards are in [0, 1])."""
        return float((self.one_step["reward_gs"] - self.one_step["reward_ls"]).abs().mean())

    @property
    def episode_differs(self) -> float:
        """Share of agent-steps of whole episodes in which the LS's 40 lane cells differ from the GS's."""
        return float((self.episode["cells_differing"] > 0).mean())

    @property
    def cell_error_rate(self) -> float:
        """Share of lane cells on which LS and GS disagree over whole episodes."""
        return float(self.episode["cells_differing"].mean() / (N_LANES * N_CELLS))

    @property
    def mean_returns(self) -> tuple[float, float]:
        """Mean episode return per agent on the GS and on the LS (whole episodes)."""
        returns = self.episode.groupby(["episode", "agent"])[["reward_gs", "reward_ls"]].sum()
        return float(returns["reward_gs"].mean()), float(returns["reward_ls"].mean())

    def __str__(self) -> str:
        """One paragraph for a notebook or a report."""
        gs_return, ls_return = self.mean_returns
        return (f"traffic-open-exits local form, {self.n_agents} agents, {self.episodes} episode(s), "
                f"{self.controller} actions: one step from the GS's state ends elsewhere in "
                f"{self.one_step_differs:.2%} of agent-steps (the GS held a car behind an occupied exit in "
                f"{self.held_share:.2%}; mean |reward gap| {self.one_step_reward_gap:.4f}); over whole episodes the "
                f"lane cells differ in {self.episode_differs:.1%} of agent-steps ({self.cell_error_rate:.2%} of "
                f"the cells); mean return GS {gs_return:.1f}, LS {ls_return:.1f} ({ls_return - gs_return:+.1f})")


def _held_at_green(before: dict[str, np.ndarray], phase: np.ndarray, u_traffic: np.ndarray) -> np.ndarray:
    """Cars that the GS step held at a stop line with green because their exit was occupied, per region, int64 [n].

    `before`: the local states at t; `phase`: the light after this step's action (cars cross on it); `u_traffic`:
    traffic's 8 sources of the step (4..7: the downstream entry cell was occupied at t)."""
    green = LANE_GREEN_PHASE[None, :] == phase[:, None]
    return np.count_nonzero(before["cells"][:, :, 0] & green & (u_traffic[:, N_SOURCES:] == 1), axis=1)


def _actions(controller: str, rng: np.random.Generator, t: int, before: dict[str, np.ndarray]) -> np.ndarray:
    """The actions of step t of `controller` (one of CONTROLLERS) from the local states before it."""
    n = len(before["phase"])
    if controller == "random":
        return rng.integers(0, 2, size=n)
    if controller == "hand-coded":
        return traffic.hand_coded_actions(before)
    switching = np.arange(n) % 2 == 1
    return (switching & (t % SWITCH_PERIOD == 0)).astype(np.int64)


def local_gap(n_agents: int = 4, episodes: int = 1, controller: str = "random", seed: int = 0) -> LocalGap:
    """Run `episodes` GS episodes of `n_agents` agents (seeded `seed`) under `controller` and compare the open-exit
    LS with the GS, one step at a time and over whole episodes (`LocalGap`).

    The GS is traffic's own (its influence sources give the blocked exits, to count the held cars); the LS gets only
    the first 4 of them, as in training.
    """
    check_choice("controller", controller, CONTROLLERS)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    gs = traffic.GlobalSimulator(n_agents, seed=seed)
    one_step_ls, episode_ls = LocalSimulator(n_agents), LocalSimulator(n_agents)
    rng = np.random.default_rng(seed)
    agents = np.arange(n_agents)
    one_step: dict[str, list[np.ndarray]] = {k: [] for k in ("episode", "t", "agent", "held", "state_differs",
                                                               "reward_gs", "reward_ls")}
    whole: dict[str, list[np.ndarray]] = {k: [] for k in ("episode", "t", "agent", "cells_differing", "reward_gs",
                                                            "reward_ls")}
    for episode in range(episodes):
        gs.reset()
        episode_ls.reset()
        episode_ls.load_states(gs.local_states())
        for t in range(1, SPEC.horizon + 1):
            before = gs.local_states()
            actions = _actions(controller, rng, t, before)
            _, reward_gs, _ = gs.step(actions)
            u_traffic = gs.influence_sources()
            arrivals = u_traffic[:, :N_SOURCES]
            one_step_ls.reset()
            one_step_ls.load_states(before)
            _, reward_one, _ = one_step_ls.step(actions, arrivals)
            _, reward_whole, _ = episode_ls.step(actions, arrivals)
            cells_gs = gs.local_states()["cells"].reshape(n_agents, -1)
            differs = (one_step_ls.local_states()["cells"].reshape(n_agents, -1) != cells_gs).any(axis=1)
            for key, value in (("episode", np.full(n_agents, episode)), ("t", np.full(n_agents, t)),
                               ("agent", agents), ("held", _held_at_green(before, gs.phase, u_traffic)),
                               ("state_differs", differs), ("reward_gs", reward_gs), ("reward_ls", reward_one)):
                one_step[key].append(value)
            cells_differing = (episode_ls.local_states()["cells"].reshape(n_agents, -1) != cells_gs).sum(axis=1)
            for key, value in (("episode", np.full(n_agents, episode)), ("t", np.full(n_agents, t)),
                               ("agent", agents), ("cells_differing", cells_differing), ("reward_gs", reward_gs),
                               ("reward_ls", reward_whole)):
                whole[key].append(value)
    return LocalGap(n_agents=n_agents, episodes=episodes, controller=controller,
                    one_step=pd.DataFrame({k: np.concatenate(v) for k, v in one_step.items()}),
                    episode=pd.DataFrame({k: np.concatenate(v) for k, v in whole.items()}))


__all__ = ["CONTROLLERS", "SOURCE_NAMES", "SPEC", "GlobalSimulator", "LocalGap", "LocalSimulator", "local_gap"]

"""The local form of sumo-traffic, measured: how closely the local simulator follows the global one.

The cell grid's local simulator replays its GS bit for bit (`check_local_form`); SUMO's cannot. A car that crosses
into a lane in the GS arrives wherever and as fast as SUMO's car following put it, while the LS inserts it 6 m
into the lane at 9.5 m/s (3 m/s in a crowded lane), and its exits are never blocked by a full lane downstream. So
`local_gap` measures the difference instead of asserting equality: it runs the GS, feeds one LS region per agent
the GS's own actions and entry events (its `influence_sources()`, the very u an AIP is trained to predict), and
compares the two per agent and step: the 36 observed lane bits, the number of cars on them, the rewards, and the
returns. Both start each episode with empty roads, so the gap is what the local rules add up to, not a loading
error. The GS holds this process's libsumo and the LS batch runs over traci (`sumo_network`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dials_lib.envs.sumo_traffic import HORIZON, OBSERVED_CELLS, GlobalSimulator, LocalSimulator
from dials_lib.validation import check_choice

CONTROLLERS = ("random", "keep", "alternate")
"""Who acts: uniform random actions, always keep (green NS forever), or a switch every 20 steps."""


@dataclass(frozen=True)
class LocalGap:
    """The per-step comparison (`steps`) and its summary over every agent-step."""

    n_agents: int
    episodes: int
    controller: str
    steps: pd.DataFrame
    """One row per episode, step and agent: bits_differing (of 36), occupied_gs and occupied_ls (occupied observed
    cells), reward_gs, reward_ls."""

    @property
    def bit_error_rate(self) -> float:
        """Fraction of observed lane bits on which LS and GS disagree."""
        return float(self.steps["bits_differing"].mean() / (4 * OBSERVED_CELLS))

    @property
    def identical_occupancy(self) -> float:
        """Fraction of agent-steps whose 36 observed lane bits are identical."""
        return float((self.steps["bits_differing"] == 0).mean())

    @property
    def mean_abs_reward_gap(self) -> float:
        """Mean |r_GS - r_LS| per agent-step (rewards are in [0, 1])."""
        return float((self.steps["reward_gs"] - self.steps["reward_ls"]).abs().mean())

    @property
    def returns(self) -> pd.DataFrame:
        """Episode returns per agent, GS and LS side by side."""
        return self.steps.groupby(["episode", "agent"])[["reward_gs", "reward_ls"]].sum().rename(
            columns={"reward_gs": "return_gs", "reward_ls": "return_ls"})

    @property
    def mean_returns(self) -> tuple[float, float]:
        """Mean episode return per agent on the GS and on the LS."""
        returns = self.returns
        return float(returns["return_gs"].mean()), float(returns["return_ls"].mean())

    @property
    def reward_correlation(self) -> float:
        """Pearson correlation of the per-step rewards of GS and LS."""
        return float(np.corrcoef(self.steps["reward_gs"], self.steps["reward_ls"])[0, 1])

    def per_step(self) -> pd.DataFrame:
        """Averages over episodes and agents per step t: bit error rate, |reward gap|, occupied observed cells."""
        frame = self.steps.assign(abs_reward_gap=(self.steps["reward_gs"] - self.steps["reward_ls"]).abs(),
                                  bit_error_rate=self.steps["bits_differing"] / (4 * OBSERVED_CELLS))
        return frame.groupby("t")[["bit_error_rate", "abs_reward_gap", "occupied_gs", "occupied_ls"]].mean()

    def __str__(self) -> str:
        """One paragraph for a notebook or a report."""
        gs_return, ls_return = self.mean_returns
        return (f"sumo-traffic local form, {self.n_agents} agents, {self.episodes} episode(s), {self.controller} "
                f"actions: observed lane bits differ at a rate of {self.bit_error_rate:.4f} (identical in "
                f"{self.identical_occupancy:.1%} of agent-steps); mean |reward gap| {self.mean_abs_reward_gap:.4f} "
                f"per step (reward correlation {self.reward_correlation:.3f}); mean return GS {gs_return:.1f}, "
                f"LS {ls_return:.1f} ({ls_return - gs_return:+.1f})")


def _actions(controller: str, rng: np.random.Generator, t: int, n: int) -> np.ndarray:
    if controller == "random":
        return rng.integers(0, 2, size=n)
    if controller == "keep":
        return np.zeros(n, dtype=np.int64)
    return np.full(n, int(t % 20 == 0), dtype=np.int64)


def local_gap(n_agents: int = 4, episodes: int = 1, controller: str = "random", seed: int = 0) -> LocalGap:
    """Run `episodes` GS episodes of `n_agents` agents (seeded `seed`) under `controller`, feed an LS batch of one
    region per agent the GS's actions and entry events, and return the per-step comparison (`LocalGap`)."""
    check_choice("controller", controller, CONTROLLERS)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    gs = GlobalSimulator(n_agents, seed=seed)
    ls = LocalSimulator(n_regions=n_agents)
    rng = np.random.default_rng(seed)
    columns: dict[str, list[np.ndarray]] = {key: [] for key in
                                            ("episode", "t", "agent", "bits_differing", "occupied_gs", "occupied_ls",
                                             "reward_gs", "reward_ls")}
    agents = np.arange(n_agents)
    try:
        for episode in range(episodes):
            gs.reset()
            ls.reset()
            for t in range(1, HORIZON + 1):
                actions = _actions(controller, rng, t, n_agents)
                _, reward_gs, _ = gs.step(actions)
                _, reward_ls, _ = ls.step(actions, gs.influence_sources())
                bits_gs, bits_ls = gs.dsets().astype(bool), ls.dsets().astype(bool)
                for key, value in (("episode", np.full(n_agents, episode)), ("t", np.full(n_agents, t)),
                                   ("agent", agents), ("bits_differing", (bits_gs != bits_ls).sum(axis=1)),
                                   ("occupied_gs", bits_gs.sum(axis=1)), ("occupied_ls", bits_ls.sum(axis=1)),
                                   ("reward_gs", reward_gs), ("reward_ls", reward_ls)):
                    columns[key].append(value)
    finally:
        ls.close()
        gs.close()
    steps = pd.DataFrame({key: np.concatenate(values) for key, values in columns.items()})
    return LocalGap(n_agents=n_agents, episodes=episodes, controller=controller, steps=steps)


__all__ = ["CONTROLLERS", "LocalGap", "local_gap"]

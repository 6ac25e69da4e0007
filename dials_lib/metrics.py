"""Evaluation on the global simulator: the paper's average return, the domain metrics, and the AIPs' cross-entropy.

`evaluate` runs a joint policy (stochastic, as the paper evaluates) for whole GS episodes and reports:
- `mean_return`: each agent's undiscounted episode return averaged over agents and episodes (the paper's y-axis);
  `sem_return`: its standard error over episodes (NaN with a single episode);
- the domain metrics of the environment (below), computed from local states, rewards and influence sources;
- `aip_ce`: the mean cross-entropy (nats per source and step) of the given AIPs on the (d-set, u) pairs of these
  very episodes, logged exactly as Algorithm 2 logs them (NaN when no AIPs are given, e.g. for GS training).

Traffic (a step is 1 s; a car that does not move during a step loses that second):
- `delay_per_car`: stopped car-steps in the episode divided by the cars that entered the network (seconds of
  delay per car; cars still in the network at the end count with the delay they have so far);
- `queue_length`: stopped cars per incoming lane per step;
- `throughput`: cars leaving the network per step (entered minus still inside at the end, over the horizon).
The number of cars of a region that moved is its reward times its car count (the reward is that fraction).

Warehouse (per learning robot, items of its own region; an item on a shared cell counts for whoever takes it):
- `items_collected`: items collected per robot per episode;
- `item_wait`: mean waiting time (steps since it appeared) of the collected items.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dials_lib.controllers import Controller, PolicyController
from dials_lib.envs import make_global
from dials_lib.envs.traffic import N_LANES, lane_topology
from dials_lib.envs.warehouse import N_SHELVES, TABLES
from dials_lib.influence import StackedPredictor, collect_dataset, cross_entropy
from dials_lib.ppo import PPOGroup

DOMAIN_METRICS: dict[str, tuple[str, ...]] = {
    "traffic": ("delay_per_car", "queue_length", "throughput"),
    "warehouse": ("items_collected", "item_wait"),
}
"""The domain metric columns of each environment, in the order of `metrics.csv`."""


class TrafficMetrics:
    """Accumulates delay, queues and throughput over GS episodes of the traffic grid."""

    def __init__(self, n_agents: int) -> None:
        _, _, entry = lane_topology(math.isqrt(n_agents))
        self.entry = np.zeros(N_LANES * n_agents, dtype=bool)
        self.entry[entry] = True
        self.entry = self.entry.reshape(n_agents, N_LANES)
        self.lanes = N_LANES * n_agents
        self.stopped = self.entered = self.left = self.steps = 0
        self._entered_episode = 0

    def step(self, before: dict[str, np.ndarray], rewards: np.ndarray, sim: Any) -> None:
        """Record one GS step from the local states before it, its rewards and the simulator after it."""
        n_cars = before["cells"].sum(axis=(1, 2))
        moved = np.rint(rewards * n_cars)
        self.stopped += int(n_cars.sum() - moved.sum())
        arrived = int(sim.influence_sources()[:, :N_LANES][self.entry].sum())
        self._entered_episode += arrived
        self.steps += 1

    def end_episode(self, sim: Any) -> None:
        """Close an episode: cars that entered and are no longer inside have left."""
        inside = int(sim.local_states()["cells"].sum())
        self.entered += self._entered_episode
        self.left += self._entered_episode - inside
        self._entered_episode = 0

    def summary(self) -> dict[str, float]:
        """The metrics over all recorded episodes."""
        return {
            "delay_per_car": self.stopped / self.entered if self.entered else math.nan,
            "queue_length": self.stopped / (self.lanes * self.steps),
            "throughput": self.left / self.steps,
        }


class WarehouseMetrics:
    """Accumulates items collected and their waiting times over GS episodes of the warehouse."""

    def __init__(self, n_agents: int) -> None:
        self.n_agents = n_agents
        self.collected = self.total_wait = self.episodes = 0

    def step(self, before: dict[str, np.ndarray], rewards: np.ndarray, sim: Any) -> None:
        """Record one GS step: an item under a learner after its move was collected, aged one more step."""
        shelf = TABLES["cell_shelf"][sim.local_states()["cell"]]
        robots = np.flatnonzero(shelf < N_SHELVES)
        had_item = before["items"][robots, shelf[robots]]
        self.collected += int(had_item.sum())
        self.total_wait += int((before["ages"][robots, shelf[robots]][had_item] + 1).sum())

    def end_episode(self, sim: Any) -> None:
        """Count the episode."""
        self.episodes += 1

    def summary(self) -> dict[str, float]:
        """The metrics over all recorded episodes."""
        return {
            "items_collected": self.collected / (self.n_agents * self.episodes),
            "item_wait": self.total_wait / self.collected if self.collected else math.nan,
        }


TRACKERS = {"traffic": TrafficMetrics, "warehouse": WarehouseMetrics}


def evaluate(
    env: str, group: PPOGroup, episodes: int, seed: int, predictor: StackedPredictor | None = None
) -> dict[str, float]:
    """Run `group`'s policies (all agents of the GS, stochastic) for `episodes` GS episodes; see module docstring."""
    return evaluate_controller(env, PolicyController(group), group.n_agents, episodes, seed, predictor)


def evaluate_controller(
    env: str, controller: Controller, n_agents: int, episodes: int, seed: int,
    predictor: StackedPredictor | None = None,
) -> dict[str, float]:
    """The evaluation of `evaluate` for any joint controller (e.g. the hand-coded one) of `n_agents` agents."""
    sim = make_global(env, n_agents=n_agents, seed=seed)
    tracker = TRACKERS[env](n_agents)
    data = collect_dataset(sim, controller, episodes * sim.spec.horizon, tracker=tracker)
    per_episode = data.rewards.sum(axis=2, dtype=np.float64).mean(axis=0)  # mean over agents of each episode's return
    sem = per_episode.std(ddof=1) / math.sqrt(episodes) if episodes > 1 else math.nan
    ce = math.nan
    if predictor is not None:
        ce = float(cross_entropy(predictor, data).mean())
    return {"mean_return": float(per_episode.mean()), "sem_return": float(sem), "aip_ce": ce, **tracker.summary()}


__all__ = ["DOMAIN_METRICS", "TrafficMetrics", "WarehouseMetrics", "evaluate", "evaluate_controller"]

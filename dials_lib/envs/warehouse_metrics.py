"""Domain metrics of the warehouse, measured on the global simulator.

Per learning robot, items of its own region (an item on a shared cell counts for whoever takes it):
- `items_collected`: items collected per robot per episode;
- `item_wait`: mean waiting time (steps since it appeared) of the collected items.
"""

from __future__ import annotations

import math

import numpy as np

from dials_lib.envs.contract import GlobalSimulator, LocalStates, Metric
from dials_lib.envs.warehouse_map import N_SHELVES, TABLES

METRICS = (
    Metric("items_collected", "items collected", "items per robot per episode"),
    Metric("item_wait", "wait of a collected item", "steps"),
)
"""The warehouse's domain metrics, in the column order of `metrics.csv`."""


class WarehouseMetrics:
    """Accumulates items collected and their waiting times over GS episodes of the warehouse."""

    def __init__(self, n_agents: int) -> None:
        """A tracker for a warehouse of `n_agents` learning robots."""
        self.n_agents = n_agents
        self.collected = self.total_wait = self.episodes = 0

    def step(self, before: LocalStates, rewards: np.ndarray, sim: GlobalSimulator) -> None:
        """Record one GS step: an item under a learner after its move was collected, aged one more step."""
        shelf = TABLES["cell_shelf"][sim.local_states()["cell"]]
        robots = np.flatnonzero(shelf < N_SHELVES)
        had_item = before["items"][robots, shelf[robots]]
        self.collected += int(had_item.sum())
        self.total_wait += int((before["ages"][robots, shelf[robots]][had_item] + 1).sum())

    def end_episode(self, sim: GlobalSimulator) -> None:
        """Count the episode."""
        self.episodes += 1

    def summary(self) -> dict[str, float]:
        """The metrics over all recorded episodes."""
        return {
            "items_collected": self.collected / (self.n_agents * self.episodes),
            "item_wait": self.total_wait / self.collected if self.collected else math.nan,
        }

"""Domain metrics of sumo-traffic, measured on the global simulator (a step is 1 s).

- `mean_speed`: mean speed of the cars on the incoming lanes over all steps (m/s, car-weighted);
- `queue_length`: cars standing (below 0.1 m/s) per incoming lane per step;
- `inflow`: cars entering the network per step (entered boundary entry lanes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dials_lib.envs.contract import Metric

N_LANES = 4
STANDING = 0.1
"""Speed (m/s) below which a car counts as queued."""

METRICS = (
    Metric("mean_speed", "mean speed", "m/s"),
    Metric("queue_length", "queue length", "stopped cars per lane"),
    Metric("inflow", "cars entering", "cars/s"),
)
"""sumo-traffic's domain metrics, in the column order of `metrics.csv`."""


class SumoTrafficMetrics:
    """Mean speed on the incoming lanes, stopped cars (below STANDING) per lane and step, cars entering per step."""

    def __init__(self, n_agents: int) -> None:
        """A tracker for a grid of `n_agents` intersections."""
        self.lanes = N_LANES * n_agents
        self.speed_sum = 0.0
        self.cars = self.stopped = self.entered = self.steps = 0

    def step(self, before: dict[str, np.ndarray], rewards: np.ndarray, sim: Any) -> None:
        """Record one GS step from the simulator after it."""
        speed = sim.local_states()["speed"]
        present = speed[~np.isnan(speed)]
        self.speed_sum += float(present.sum())
        self.cars += len(present)
        self.stopped += int(np.count_nonzero(present < STANDING))
        self.entered += int(sim.influence_sources()[sim.entry_mask].sum())
        self.steps += 1

    def end_episode(self, sim: Any) -> None:
        """Nothing to close: every metric is per step."""

    def summary(self) -> dict[str, float]:
        """The metrics over all recorded steps."""
        return {
            "mean_speed": self.speed_sum / self.cars if self.cars else float("nan"),
            "queue_length": self.stopped / (self.lanes * max(self.steps, 1)),
            "inflow": self.entered / max(self.steps, 1),
        }


__all__ = ["METRICS", "STANDING", "SumoTrafficMetrics"]

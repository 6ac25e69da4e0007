"""Domain metrics of the traffic grid, measured on the global simulator (a step is 1 s).

A car that does not move during a step loses that second:
- `delay_per_car`: stopped car-steps divided by the cars that entered the network (seconds of delay per car;
  cars still in the network at the end of an episode count with the delay they have so far);
- `queue_length`: stopped cars per incoming lane per step;
- `throughput`: cars leaving the network per step (entered minus still inside at the end, over the horizon).

The number of cars of a region that moved is its reward times its car count (the reward is that fraction).
"""

from __future__ import annotations

import math

import numpy as np

from dials_lib.envs.contract import GlobalSimulator, LocalStates, Metric
from dials_lib.envs.traffic import lane_topology
from dials_lib.envs.traffic_intersection import N_LANES

METRICS = (
    Metric("delay_per_car", "delay per car", "s"),
    Metric("queue_length", "queue length", "stopped cars per lane"),
    Metric("throughput", "throughput", "cars/s"),
)
"""The traffic grid's domain metrics, in the column order of `metrics.csv`."""


class TrafficMetrics:
    """Accumulates delay, queues and throughput over GS episodes of the traffic grid."""

    def __init__(self, n_agents: int) -> None:
        """A tracker for a grid of `n_agents` intersections."""
        _, _, entry = lane_topology(math.isqrt(n_agents))
        self.entry = np.zeros(N_LANES * n_agents, dtype=bool)
        self.entry[entry] = True
        self.entry = self.entry.reshape(n_agents, N_LANES)
        self.lanes = N_LANES * n_agents
        self.stopped = self.entered = self.left = self.steps = 0
        self._entered_episode = 0

    def step(self, before: LocalStates, rewards: np.ndarray, sim: GlobalSimulator) -> None:
        """Record one GS step from the local states before it, its rewards and the simulator after it."""
        n_cars = before["cells"].sum(axis=(1, 2))
        moved = np.rint(rewards * n_cars)
        self.stopped += int(n_cars.sum() - moved.sum())
        arrived = int(sim.influence_sources()[:, :N_LANES][self.entry].sum())
        self._entered_episode += arrived
        self.steps += 1

    def end_episode(self, sim: GlobalSimulator) -> None:
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

"""A deliberately simple per-car reference of the traffic grid's rules, written with plain Python loops.

It shares no code with `dials_lib.envs.traffic` (only the constants of the rules): its own neighbour
arithmetic, a list of cars, a set of occupied cells. Given the same seed it consumes the same random draws
(one `rng.random(4 * side)` per step, one per boundary entry lane in increasing flat-lane order), so its
trajectories must equal the vectorized global simulator's exactly. The benchmarks time it as the baseline.
"""

from __future__ import annotations

import math

import numpy as np

HORIZON = 300
YELLOW_STEPS = 3
INFLOW_PROBABILITY = 0.1
# Direction (row step, column step) of travel of each incoming lane: from N, from S, from E, from W.
DIRECTIONS = ((1, 0), (-1, 0), (0, -1), (0, 1))


class ReferenceTraffic:
    """Per-car traffic grid: cars are [agent, lane, cell] lists, stepped one at a time."""

    def __init__(self, n_agents: int, seed: int | None = None) -> None:
        self.side = math.isqrt(n_agents)
        if self.side * self.side != n_agents:
            raise ValueError(f"n_agents must be a square number; got {n_agents}")
        self.n_agents = n_agents
        self.rng = np.random.default_rng(seed)
        self.entry_lanes = [
            (agent, lane)
            for agent in range(n_agents)
            for lane in range(4)
            if self._neighbour(agent, lane, backwards=True) is None
        ]
        self.reset()

    def _neighbour(self, agent: int, lane: int, backwards: bool = False) -> int | None:
        """The next intersection a car on `lane` of `agent` reaches (or the previous one); None off the grid."""
        row, col = divmod(agent, self.side)
        d_row, d_col = DIRECTIONS[lane]
        if backwards:
            d_row, d_col = -d_row, -d_col
        row, col = row + d_row, col + d_col
        if 0 <= row < self.side and 0 <= col < self.side:
            return row * self.side + col
        return None

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Empty roads, green NS everywhere."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.cars: list[list[int]] = []
        self.phase = [0] * self.n_agents
        self.timer = [0] * self.n_agents
        self.t = 0
        self.entered = 0
        self.left = 0
        self.u = [[0] * 8 for _ in range(self.n_agents)]
        return self.observations()

    def step(self, actions: list[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """One step of every light and every car."""
        for agent in range(self.n_agents):
            if self.phase[agent] % 2 == 1:
                change = self.timer[agent] >= YELLOW_STEPS
            else:
                change = int(actions[agent]) == 1
            if change:
                self.phase[agent] = (self.phase[agent] + 1) % 4
                self.timer[agent] = 1
            else:
                self.timer[agent] += 1

        occupied = {(agent, lane, cell) for agent, lane, cell in self.cars}
        draws = self.rng.random(len(self.entry_lanes))
        self.u = [[0] * 8 for _ in range(self.n_agents)]
        for agent in range(self.n_agents):
            for lane in range(4):
                nxt = self._neighbour(agent, lane)
                if nxt is not None and (nxt, lane, 9) in occupied:
                    self.u[agent][4 + lane] = 1

        cars_here = [0] * self.n_agents
        moved_here = [0] * self.n_agents
        next_cars = []
        for agent, lane, cell in self.cars:
            cars_here[agent] += 1
            if cell > 0:
                if (agent, lane, cell - 1) not in occupied:
                    moved_here[agent] += 1
                    cell -= 1
                next_cars.append([agent, lane, cell])
                continue
            green = self.phase[agent] == (0 if lane < 2 else 2)
            if not green or self.u[agent][4 + lane]:
                next_cars.append([agent, lane, cell])
                continue
            moved_here[agent] += 1
            nxt = self._neighbour(agent, lane)
            if nxt is None:
                self.left += 1
            else:
                next_cars.append([nxt, lane, 9])
                self.u[nxt][lane] = 1

        for draw, (agent, lane) in zip(draws, self.entry_lanes, strict=True):
            if draw < INFLOW_PROBABILITY and (agent, lane, 9) not in occupied:
                next_cars.append([agent, lane, 9])
                self.u[agent][lane] = 1
                self.entered += 1
        self.cars = next_cars

        rewards = np.zeros(self.n_agents, dtype=np.float32)
        for agent in range(self.n_agents):
            rewards[agent] = np.float32(moved_here[agent] / max(cars_here[agent], 1))
        self.t += 1
        return self.observations(), rewards, self.t >= HORIZON

    def observations(self) -> np.ndarray:
        """Cells 0..8 of the 4 lanes, then the one-hot phase."""
        obs = np.zeros((self.n_agents, 40), dtype=np.float32)
        for agent, lane, cell in self.cars:
            if cell < 9:
                obs[agent, lane * 9 + cell] = 1.0
        for agent in range(self.n_agents):
            obs[agent, 36 + self.phase[agent]] = 1.0
        return obs

    def influence_sources(self) -> np.ndarray:
        """Arrival bits then downstream-blocked bits of the step just taken."""
        return np.array(self.u, dtype=np.int64)

    def local_states(self) -> dict[str, np.ndarray]:
        """The same layout as the vectorized simulator's `local_states()`."""
        cells = np.zeros((self.n_agents, 4, 10), dtype=bool)
        for agent, lane, cell in self.cars:
            cells[agent, lane, cell] = True
        return {
            "cells": cells,
            "phase": np.array(self.phase, dtype=np.int64),
            "timer": np.array(self.timer, dtype=np.int64),
            "t": np.full(self.n_agents, self.t, dtype=np.int64),
        }

"""A deliberately simple per-robot reference of the warehouse rules, written with plain Python loops.

It shares no code with `dials_lib.envs.warehouse`: robots are (row, col) map positions in a list, items a
dict {map cell: age}, and the hand-coded ring robots decide one at a time. Given the same seed it consumes the
same random draws (one `rng.random(n_shelf_cells)` per step, one per physical shelf cell in row-major map
order), so its trajectories must equal the vectorized global simulator's exactly. The benchmarks time it as
the baseline.
"""

from __future__ import annotations

import math

import numpy as np

HORIZON = 100
ITEM_PROBABILITY = 0.02
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


def region_shelves() -> list[tuple[int, int]]:
    """Local (y, x) of a region's 12 shelf cells: north, south, west, east sides, each left-to-right/top-down."""
    north = [(0, x) for x in (1, 2, 3)]
    south = [(4, x) for x in (1, 2, 3)]
    west = [(y, 0) for y in (1, 2, 3)]
    east = [(y, 4) for y in (1, 2, 3)]
    return north + south + west + east


def inside(y: int, x: int) -> bool:
    """Whether local (y, x) is one of the 9 interior cells of a region."""
    return 0 < y < 4 and 0 < x < 4


class ReferenceWarehouse:
    """Per-robot warehouse: learners inside a ring of oldest-item-first robots, stepped one robot at a time."""

    def __init__(self, n_agents: int, seed: int | None = None, item_probability: float = ITEM_PROBABILITY) -> None:
        side = math.isqrt(n_agents)
        if side * side != n_agents:
            raise ValueError(f"n_agents must be a square number; got {n_agents}")
        self.n_agents = n_agents
        self.per_side = side + 2
        size = 4 * self.per_side + 1
        self.shelf_cells = [
            (row, col) for row in range(size) for col in range(size) if (row % 4 == 0) != (col % 4 == 0)
        ]
        self.robots = [(r, c) for r in range(self.per_side) for c in range(self.per_side)]
        self.learners = [i for i, (r, c) in enumerate(self.robots) if 0 < r < side + 1 and 0 < c < side + 1]
        self.p = item_probability
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> np.ndarray:
        """No items, every robot in its region's centre."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = [(4 * r + 2, 4 * c + 2) for r, c in self.robots]
        self.items: dict[tuple[int, int], int] = {}
        self.t = 0
        self.noise: list[float] = []
        return self.observations()

    def local(self, robot: int) -> tuple[int, int]:
        """The robot's position inside its own region."""
        r, c = self.robots[robot]
        return self.pos[robot][0] - 4 * r, self.pos[robot][1] - 4 * c

    def region_items(self, robot: int) -> list[int | None]:
        """Ages of the robot's 12 shelf cells in shelf order (None = no item)."""
        r, c = self.robots[robot]
        return [self.items.get((4 * r + y, 4 * c + x)) for y, x in region_shelves()]

    def hand_coded(self, robot: int) -> int:
        """Walk to the oldest item of the region (first in shelf order on ties), or to the centre."""
        y, x = self.local(robot)
        if not inside(y, x):  # on a shelf cell: the only way out is back inside
            return 1 if y == 0 else 0 if y == 4 else 3 if x == 0 else 2
        ages = self.region_items(robot)
        oldest = None
        for k, age in enumerate(ages):
            if age is not None and (oldest is None or age > ages[oldest]):
                oldest = k
        if oldest is None:
            goal, enter = (2, 2), 0
        else:
            sy, sx = region_shelves()[oldest]
            enter = oldest // 3
            goal = (sy - MOVES[enter][0], sx - MOVES[enter][1])
        if goal[0] != y:
            return 0 if goal[0] < y else 1
        if goal[1] != x:
            return 2 if goal[1] < x else 3
        return enter

    def step(self, actions: list[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """One step: ages +1, robots move, rewards, collected items removed, new items spawn."""
        chosen = {robot: self.hand_coded(robot) for robot in range(len(self.robots)) if robot not in self.learners}
        for learner, action in zip(self.learners, actions, strict=True):
            chosen[learner] = int(action)
        for cell in self.items:
            self.items[cell] += 1
        for robot, action in chosen.items():
            y, x = self.local(robot)
            ny, nx = y + MOVES[action][0], x + MOVES[action][1]
            if inside(y, x) or inside(ny, nx):
                self.pos[robot] = (self.pos[robot][0] + ny - y, self.pos[robot][1] + nx - x)
        rewards = np.zeros(self.n_agents, dtype=np.float32)
        for i, robot in enumerate(self.learners):
            if self.pos[robot] in self.items:
                oldest = max(age for age in self.region_items(robot) if age is not None)
                rewards[i] = np.float32(self.items[self.pos[robot]]) / np.float32(oldest)
        for robot in range(len(self.robots)):
            self.items.pop(self.pos[robot], None)
        draws = self.rng.random(len(self.shelf_cells))
        self.noise = list(draws)
        standing = set(self.pos)
        for cell, draw in zip(self.shelf_cells, draws, strict=True):
            if draw < self.p and cell not in self.items and cell not in standing:
                self.items[cell] = 0
        self.t += 1
        return self.observations(), rewards, self.t >= HORIZON

    def observations(self) -> np.ndarray:
        """One-hot local position (25) + item bits (12) per learner."""
        obs = np.zeros((self.n_agents, 37), dtype=np.float32)
        for i, robot in enumerate(self.learners):
            y, x = self.local(robot)
            obs[i, 5 * y + x] = 1.0
            for k, age in enumerate(self.region_items(robot)):
                obs[i, 25 + k] = age is not None
        return obs

    def influence_sources(self) -> np.ndarray:
        """For each learner and neighbour N, S, W, E: which shared cell (0..2) it stands on, 3 if none."""
        u = np.full((self.n_agents, 4), 3, dtype=np.int64)
        for i, robot in enumerate(self.learners):
            r, c = self.robots[robot]
            for side, (dr, dc) in enumerate(MOVES):
                other = self.robots.index((r + dr, c + dc))
                for k, (sy, sx) in enumerate(region_shelves()[3 * side:3 * side + 3]):
                    if self.pos[other] == (4 * r + sy, 4 * c + sx):
                        u[i, side] = k
        return u

    def local_states(self) -> dict[str, np.ndarray]:
        """Learners' cell, item bits, ages (0 where empty) and time step, as arrays."""
        cell, items, ages = [], [], []
        for robot in self.learners:
            y, x = self.local(robot)
            cell.append(5 * y + x)
            region = self.region_items(robot)
            items.append([age is not None for age in region])
            ages.append([age or 0 for age in region])
        return {"cell": np.array(cell, dtype=np.int64), "items": np.array(items, dtype=bool),
                "ages": np.array(ages, dtype=np.int32), "t": np.full(self.n_agents, self.t, dtype=np.int64)}

    def last_noise(self) -> np.ndarray:
        """Each learner's 12 spawn draws of the step just taken, in shelf order."""
        index = {cell: k for k, cell in enumerate(self.shelf_cells)}
        out = np.zeros((self.n_agents, 12))
        for i, robot in enumerate(self.learners):
            r, c = self.robots[robot]
            for k, (y, x) in enumerate(region_shelves()):
                out[i, k] = self.noise[index[(4 * r + y, 4 * c + x)]] if self.noise else 0.0
        return out

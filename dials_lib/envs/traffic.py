"""Traffic grid: a square grid of signalised intersections as a vectorized cellular automaton.

Every intersection is an agent. One lane per direction, straight routes only: a car enters at a boundary,
crosses the grid along its row or column and leaves at the far side. Every road (between two intersections
or entering the grid) is 100 m = 10 cells of 10 m; a car moves at most one cell per 1 s step.

Layout. Agent i sits at row r = i // side, column c = i % side (row 0 is the north edge). Its region is its
4 incoming lanes, numbered by the side they come from: 0 = from the north (southbound), 1 = from the south
(northbound), 2 = from the east (westbound), 3 = from the west (eastbound). Lanes 0 and 1 form the NS axis,
lanes 2 and 3 the EW axis. Cells of a lane are numbered 0 (stop line) to 9 (entry). A car crossing
intersection i on lane l enters cell 9 of lane l of the next intersection in the same direction, or leaves
the network at the grid's edge.

Local state (`local_states()`, also what `load_states()` takes), leading axis = agent/region:
  cells  bool  [n, 4, 10]  occupancy of the 4 incoming lanes
  phase  int64 [n]         0 green NS, 1 yellow NS->EW, 2 green EW, 3 yellow EW->NS
  timer  int64 [n]         steps the light has spent in its current phase (counting this step)
  t      int64 [n]         time step of the episode (equal for all regions)

Step order (identical in GS and LS, all from the state at t):
  1. Light. A yellow phase that has lasted 3 steps turns green the other way (the action is ignored during
     yellow); in green, action 1 switches to yellow and action 0 keeps. The timer restarts at 1 on a change.
     Cars cross on the light AFTER this step's action: a switch makes this very step the first of 3 yellow
     steps in which nobody crosses, and green starts with the 4th step.
  2. Cars. A car at cell k > 0 moves to k - 1 if that cell is free at t. A car at cell 0 crosses if its axis
     is green and the entry cell (9) of its downstream lane is free at t (never blocked at the grid edge).
  3. Arrivals. Cell 9 of a lane receives the car that crossed from upstream, or, on a boundary entry lane, a
     new car with probability 0.1 if cell 9 is free at t. Random draws: one `rng.random(4 * side)` per step
     (per copy of the world, from that copy's generator), one number per boundary entry lane in increasing
     order of the flat lane index 4 * agent + lane, used whether or not the cell is free. An arriving car
     never collides: cell 9 is free at t, and the car that was there has moved on or not (if not, the
     upstream car was blocked and does not arrive).
  4. Reward: the fraction of the cars on the agent's 4 lanes at t that moved this step (crossing counts as
     moving); 0 if there were none.

Influence sources u_t (int64 [n, 8]), what the rest of the world does to a region during step t:
  0..3  a car arrives at cell 9 of incoming lane l this step (the paper's 4 sources; boundary arrivals too);
  4..7  the downstream entry cell of the direction of incoming lane l was occupied at t, so a car at cell 0
        of lane l may not cross this step, even on green (always 0 at the grid's edge). DEVIATION from the
        paper: its SUMO local simulator ignored spillback; we need these 4 bits for the LS to follow the GS's
        rules exactly.
`influence_sources()` after `step()` returns u_t; `dsets()` before that step is the d-set the AIP conditions on.
The LS therefore has no randomness of its own (`last_noise()` is None; `step(actions, u)` is deterministic).
Given an arrival into an occupied entry cell (impossible in GS replay, possible from an AIP), the LS does not
place the car.

Hand-coded controller (`hand_coded_actions`, the paper used SUMO's actuated lights): once the light has been
green for at least MIN_GREEN = 5 steps (the best of 1..20 on 4 and 25 agents), switch if the red axis queues
more cars, counting the cars on the observed cells 0..8 of the axis's two incoming lanes.

Inside the simulators each lane is one 10-bit integer (bit k = cell k) and each light one of 8 states (green or
one of the 3 yellow steps, per axis), so that a step is a handful of table lookups; `local_states()` unpacks them.

Observation (float32 [n, 40]): occupancy of cells 0..8 of the 4 incoming lanes (lane-major, 36 values) and a
one-hot of the phase (4). d-set (float32 [n, 40]): all 40 lane cells at t. Horizon 300 steps.

Independent copies (batched GS). `GlobalSimulator(n_agents, seed=[s_0, ..., s_{B-1}])` holds B independent
grids of n_agents intersections, stepped together: B grids are one bigger disconnected grid. Region b * n_agents
+ i is agent i of copy b (copy-major), so every per-agent array above, the actions included, has B * n_agents
rows and reshapes to [B, n_agents, ...]; flat lane 4 * (b * n_agents + i) + l is lane l of that region, the
padding lane comes after all copies, and no lane of one copy leads into another (`lane_topology(side, copies)`).
Copy b draws from its own `np.random.default_rng(s_b)` exactly the numbers a single GS seeded with s_b draws,
so it reproduces that GS bit for bit. All copies share t and the horizon: `done` is one bool and `reset()`
restarts every copy (`reset(seed=[...])` reseeds each, one seed per copy). An int or None seed is one copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dials_lib.envs.contract import EnvSpec, Seeds, check_n_agents, check_n_regions, check_seeds
from dials_lib.envs.traffic_intersection import (
    ENTRY_CELL,
    LANE_DIRECTION,
    LANE_GREEN_PHASE,
    N_CELLS,
    N_LANES,
    ONE_HOT_OF_LIGHT,
    PHASE_OF_LIGHT,
    YELLOW_STEPS,
    advance_light,
    check_actions,
    light_of,
)

INFLOW_PROBABILITY = 0.1
HORIZON = 300
MIN_GREEN = 5
"""Hand-coded controller: steps of green before it considers switching."""

SPEC = EnvSpec(
    name="traffic",
    obs_dim=N_LANES * (N_CELLS - 1) + 4,
    n_actions=2,
    source_sizes=(2,) * (2 * N_LANES),
    dset_dim=N_LANES * N_CELLS,
    horizon=HORIZON,
)

STATE_KEYS = ("cells", "phase", "timer", "t")
_FROM = ("N", "S", "E", "W")
_TOWARDS = ("S", "N", "W", "E")
SOURCE_NAMES = tuple(f"arrival from {d}" for d in _FROM) + tuple(f"blocked towards {d}" for d in _TOWARDS)
"""Readable names of the 8 influence sources, in the order of `influence_sources()`."""

# Inside the simulators a lane is one 10-bit integer, bit k = cell k occupied, so a step works on [n, 4]
# arrays instead of [n, 4, 10] ones. The tables below turn lane integers back into cells.
LANE_DTYPE = np.uint16
ENTRY_BIT = 1 << ENTRY_CELL  # a lane value >= ENTRY_BIT has its entry cell occupied
BEHIND_STOP_LINE = (1 << N_CELLS) - 2  # bits 1..9
CELL_POWERS = (1 << np.arange(N_CELLS)).astype(LANE_DTYPE)
CELLS_OF = (np.arange(1 << N_CELLS)[:, None] & CELL_POWERS).astype(bool)  # [1024, 10]
OBSERVED_CELLS_OF = np.ascontiguousarray(CELLS_OF[:, :ENTRY_CELL], dtype=np.float32)  # [1024, 9]: cells 0..8
DSET_CELLS_OF = CELLS_OF.astype(np.float32)


def lane_topology(side: int, copies: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat-lane index arrays of `copies` side x side grids: downstream lane, upstream lane, boundary entry lanes.

    Lane l of agent i of copy b has flat index 4 * (b * side**2 + i) + l. A lane without a downstream (upstream)
    lane points to the padding index 4 * copies * side**2, which the step keeps permanently empty (never moving).
    """
    per_copy = side * side
    n_lanes = N_LANES * per_copy * copies
    region = np.arange(n_lanes) // N_LANES
    lane = np.arange(n_lanes) % N_LANES
    agent = region % per_copy
    row, col = agent // side, agent % side
    next_row, next_col = row + LANE_DIRECTION[lane, 0], col + LANE_DIRECTION[lane, 1]
    inside = (next_row >= 0) & (next_row < side) & (next_col >= 0) & (next_col < side)
    # the next intersection is in the same copy: offset by the copy's first region
    next_region = region - agent + next_row * side + next_col
    downstream = np.where(inside, N_LANES * next_region + lane, n_lanes)
    upstream = np.full(n_lanes, n_lanes, dtype=np.int64)
    upstream[downstream[inside]] = np.flatnonzero(inside)
    entry = np.flatnonzero(upstream == n_lanes)
    return downstream, upstream, entry


def _lane_moves_rule(lanes: np.ndarray, can_cross: np.ndarray) -> np.ndarray:
    """Step 2 as bit arithmetic: a car moves if the cell ahead is free, or if at the stop line and may cross."""
    return (lanes & ~(lanes << 1) & BEHIND_STOP_LINE) | (lanes & can_cross)


# Steps 2 and 3 tabulated once over all 4096 keys (lane bits | green << 10 | downstream entry occupied << 11),
# so a step needs one lookup. Rows: 0 the cars that move (their bits at t), 1 the lane at t (rows 0-1 side by
# side let one popcount count both for the reward), 2 the lane after the moves and before arrivals, 3 the entry
# bit a crossing car brings to the downstream lane.
_KEYS = np.arange(1 << (N_CELLS + 2))
_LANE_MASK = (1 << N_CELLS) - 1
_MOVES = _lane_moves_rule((_KEYS & _LANE_MASK).astype(LANE_DTYPE), (_KEYS >> N_CELLS) == 1)  # green, not blocked
STEP_TABLE = np.stack((_MOVES, _KEYS & _LANE_MASK, (_KEYS ^ _MOVES ^ (_MOVES >> 1)) & _LANE_MASK,
                       (_MOVES & 1) << ENTRY_CELL)).astype(LANE_DTYPE)
GREEN_KEY_OF_LIGHT = (ONE_HOT_OF_LIGHT[:, LANE_GREEN_PHASE] * (1 << N_CELLS)).astype(LANE_DTYPE)  # [8, 4]
BLOCKED_KEY = 1 << (N_CELLS + 1)
BLOCKED_KEY_OF = np.where(np.arange(1 << N_CELLS) & ENTRY_BIT, BLOCKED_KEY, 0).astype(LANE_DTYPE)  # by lane value


def _step_cars(lanes: np.ndarray, light: np.ndarray, blocked_keys: np.ndarray) -> np.ndarray:
    """Steps 2-3 without arrivals, uint16 [4, n, 4]: the STEP_TABLE rows of every lane.

    `blocked_keys` is BLOCKED_KEY where the downstream entry cell of a lane is occupied at t, else 0.
    """
    return STEP_TABLE.take(lanes | GREEN_KEY_OF_LIGHT.take(light, axis=0) | blocked_keys, axis=1)


def _reward(moves_and_lanes: np.ndarray) -> np.ndarray:
    """Step 4: fraction of the cars present at t that moved, float32 [n] (0 without cars).

    `moves_and_lanes` is uint16 [2, n, 4]: the cars that moved, then the cars present at t.
    """
    n_moved, n_cars = np.bitwise_count(moves_and_lanes.view(np.uint64))[..., 0]  # a region's 4 lanes: 64 bits
    # float32 division of these small integers is correctly rounded, like float64 division then rounding
    return np.divide(n_moved, np.maximum(n_cars, 1), dtype=np.float32)


def _observe(lanes: np.ndarray, light: np.ndarray) -> np.ndarray:
    n = len(lanes)
    observed = OBSERVED_CELLS_OF.take(lanes.ravel(), axis=0).reshape(n, -1)
    return np.concatenate((observed, ONE_HOT_OF_LIGHT.take(light, axis=0)), axis=1)


class _TrafficBase:
    """State holding, observation and state exchange shared by the global and the local simulator."""

    spec = SPEC

    def __init__(self, n: int) -> None:
        """`n` regions with empty roads (the subclasses keep their random streams)."""
        self._n = n
        self._empty_roads()

    def _empty_roads(self) -> np.ndarray:
        """Empty roads and green NS everywhere at t = 0; returns the observations."""
        self.lanes = np.zeros((self._n, N_LANES), dtype=LANE_DTYPE)
        self.light = np.zeros(self._n, dtype=np.int64)
        self.timer = np.zeros(self._n, dtype=np.int64)
        self.t = 0
        self._arrival_bits = np.zeros((self._n, N_LANES), dtype=LANE_DTYPE)
        self._blocked_keys = np.zeros((self._n, N_LANES), dtype=LANE_DTYPE)
        return _observe(self.lanes, self.light)

    @property
    def phase(self) -> np.ndarray:
        """Light phase of every region, int64 [n] (0 green NS, 1 yellow NS->EW, 2 green EW, 3 yellow EW->NS)."""
        return PHASE_OF_LIGHT.take(self.light)

    def observations(self) -> np.ndarray:
        """Current observations, float32 [n, 40]."""
        return _observe(self.lanes, self.light)

    def influence_sources(self) -> np.ndarray:
        """u_t realised by the step just taken, int64 [n, 8] (arrival bits, then downstream-blocked bits)."""
        return (np.concatenate((self._arrival_bits, self._blocked_keys), axis=1) != 0).astype(np.int64)

    def dsets(self) -> np.ndarray:
        """d-separating set at the current t: all 40 lane cells, float32 [n, 40]."""
        return DSET_CELLS_OF[self.lanes].reshape(self._n, -1)

    def local_states(self) -> dict[str, np.ndarray]:
        """Copies of every region's local state (layout in the module docstring)."""
        return {
            "cells": CELLS_OF[self.lanes],
            "phase": self.phase,
            "timer": self.timer.copy(),
            "t": np.full(self._n, self.t, dtype=np.int64),
        }

    def last_noise(self) -> None:
        """Traffic's local rules have no randomness of their own (boundary arrivals are influence sources)."""
        return None

    def _check_running(self) -> None:
        if self.t >= HORIZON:
            raise RuntimeError(f"the episode ended at the horizon ({HORIZON} steps); call reset() first")


class GlobalSimulator(_TrafficBase):
    """The whole grid: n_agents intersections (a square number) stepped together, in one or B copies.

    With a sequence of B seeds the simulator holds B independent grids (`n_copies`); every per-agent array has
    B * n_agents rows, copy-major (module docstring, "Independent copies").
    """

    def __init__(
        self, n_agents: int = 4, seed: Seeds = None, inflow_probability: float = INFLOW_PROBABILITY
    ) -> None:
        """A grid of `n_agents` intersections whose boundary lanes receive a car with `inflow_probability`.

        `seed`: an int or None (one grid), or a sequence of B ints (B independent grids, copy b seeded with
        `seed[b]` and identical to a single grid with that seed).
        """
        self.side = check_n_agents(n_agents)
        self.n_agents = n_agents
        seeds = check_seeds(seed)
        if not 0.0 <= inflow_probability <= 1.0:
            raise ValueError(f"inflow_probability must be in [0, 1]; got {inflow_probability}")
        self.inflow_probability = inflow_probability
        self.n_copies = len(seeds)
        self._rngs = [np.random.default_rng(s) for s in seeds]
        self._downstream, self._upstream, self._entry = lane_topology(self.side, self.n_copies)
        n_flat = N_LANES * n_agents * self.n_copies
        # Padded flat buffers: index n_flat is the empty lane beyond every grid's edge.
        self._padded_lanes = np.zeros(n_flat + 1, dtype=LANE_DTYPE)
        self._padded_sent = np.zeros(n_flat + 1, dtype=LANE_DTYPE)
        self._draws = np.zeros((0, len(self._entry)), dtype=LANE_DTYPE)
        self._next_draw = 0
        super().__init__(n_agents * self.n_copies)

    def reset(self, seed: Seeds = None) -> np.ndarray:
        """Start an episode with empty roads and green NS everywhere in every copy; returns the observations.

        `seed` (optional) reseeds the random streams: an int for a single grid, or one seed per copy.
        """
        if seed is not None:
            seeds = check_seeds(seed)
            if len(seeds) != self.n_copies:
                raise ValueError(f"seed must give one seed per copy of the grid ({self.n_copies}); got {seed!r}")
            self._rngs = [np.random.default_rng(s) for s in seeds]
            # a new stream: forget the draws taken in advance from the old one
            self._draws, self._next_draw = self._draws[:0], 0
        return self._empty_roads()

    def _spawn_bits(self) -> np.ndarray:
        """ENTRY_BIT where this step's draw places a new car on a boundary entry lane (if its cell 9 is free).

        The draws are those of one `rng.random(4 * side)` call per step and copy, taken a horizon's worth at a
        time: a block of draws is the same stream of numbers as the per-step calls, at a fraction of the cost.
        The copies' blocks lie side by side, in the copy-major order of the entry lanes.
        """
        if self._next_draw == len(self._draws):
            per_copy = len(self._entry) // self.n_copies
            draws = [rng.random((HORIZON, per_copy)) for rng in self._rngs]
            block = (draws[0] if self.n_copies == 1 else np.concatenate(draws, axis=1)) < self.inflow_probability
            self._draws, self._next_draw = block.astype(LANE_DTYPE) << ENTRY_CELL, 0
        self._next_draw += 1
        return self._draws[self._next_draw - 1]

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """Advance all intersections of every copy by one step; returns (obs [B*n, 40], rewards [B*n], done)."""
        self._check_running()
        actions = check_actions(actions, self._n)
        self.light, self.timer = advance_light(self.light, self.timer, actions)
        flat = self._padded_lanes
        flat[:-1] = self.lanes.ravel()
        blocked_keys = BLOCKED_KEY_OF.take(flat.take(self._downstream)).reshape(self._n, N_LANES)
        cars = _step_cars(self.lanes, self.light, blocked_keys)
        self._padded_sent[:-1] = cars[3].ravel()
        arrival_bits = self._padded_sent.take(self._upstream)
        arrival_bits[self._entry] = self._spawn_bits() & ~flat.take(self._entry)
        arrival_bits = arrival_bits.reshape(self._n, N_LANES)
        rewards = _reward(cars[:2])
        self.lanes = cars[2] | arrival_bits
        self._arrival_bits, self._blocked_keys = arrival_bits, blocked_keys
        self.t += 1
        return _observe(self.lanes, self.light), rewards, self.t >= HORIZON


class LocalSimulator(_TrafficBase):
    """K independent copies of one intersection; the world outside enters only through u."""

    def __init__(self, n_regions: int = 1, seed: int | None = None) -> None:
        """A batch of `n_regions` intersections (`seed` is kept for the registry's signature: no draws)."""
        self.n_regions = check_n_regions(n_regions)
        self._rng = np.random.default_rng(seed)
        super().__init__(n_regions)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode with empty roads and green NS everywhere; returns the observations."""
        if seed is not None:  # kept for the Protocol's signature: the LS draws nothing
            self._rng = np.random.default_rng(seed)
        return self._empty_roads()

    def step(self, actions: Any, u: Any, noise: Any = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """Advance the K regions given the influence sources u (int or bool [K, 8]); deterministic given u."""
        self._check_running()
        actions = check_actions(actions, self._n)
        if noise is not None:
            raise ValueError("noise must be None for traffic: its local rules have no randomness of their own")
        u = np.asarray(u)
        if u.shape != (self._n, SPEC.n_sources) or u.dtype.kind not in "biu":
            raise ValueError(f"u must be an integer array of shape ({self._n}, {SPEC.n_sources}); got {u.dtype} "
                             f"{u.shape}")
        if np.any(u & -2):
            raise ValueError("u must be binary (0 or 1) for every traffic influence source")
        self.light, self.timer = advance_light(self.light, self.timer, actions)
        u_bits = u.astype(LANE_DTYPE)
        blocked_keys = u_bits[:, N_LANES:] * BLOCKED_KEY
        cars = _step_cars(self.lanes, self.light, blocked_keys)
        # never into an occupied entry cell: an AIP may predict one
        arrival_bits = (u_bits[:, :N_LANES] << ENTRY_CELL) & ~self.lanes
        rewards = _reward(cars[:2])
        self.lanes = cars[2] | arrival_bits
        self._arrival_bits, self._blocked_keys = arrival_bits, blocked_keys
        self.t += 1
        return _observe(self.lanes, self.light), rewards, self.t >= HORIZON

    def load_states(self, states: dict[str, np.ndarray]) -> np.ndarray:
        """Put the K regions into the given local states (same layout as `local_states()`); returns their
        observations, as `reset` does."""
        missing = [k for k in STATE_KEYS if k not in states]
        if missing:
            raise ValueError(f"states is missing {missing}; expected keys {list(STATE_KEYS)}")
        shapes = {"cells": (self._n, N_LANES, N_CELLS), "phase": (self._n,), "timer": (self._n,), "t": (self._n,)}
        for key, shape in shapes.items():
            if np.shape(states[key]) != shape:
                raise ValueError(f"states[{key!r}] must have shape {shape}; got {np.shape(states[key])}")
        t = np.asarray(states["t"])
        if np.any(t != t[0]) or not 0 <= t[0] <= HORIZON:
            raise ValueError(f"states['t'] must be one time step in [0, {HORIZON}] shared by all regions")
        phase = np.asarray(states["phase"], dtype=np.int64)
        if phase.min() < 0 or phase.max() > 3:
            raise ValueError("states['phase'] must be in {0, 1, 2, 3}")
        timer = np.array(states["timer"], dtype=np.int64)
        yellow_timer = timer[(phase & 1) == 1]
        if np.any((yellow_timer < 1) | (yellow_timer > YELLOW_STEPS)):
            raise ValueError(f"states['timer'] must be in [1, {YELLOW_STEPS}] for a yellow phase (1 or 3)")
        cells = np.asarray(states["cells"], dtype=bool)
        self.lanes = (cells * CELL_POWERS).sum(axis=2, dtype=LANE_DTYPE)
        self.light = light_of(phase, timer)
        self.timer = timer
        self.t = int(t[0])
        self._arrival_bits = np.zeros((self._n, N_LANES), dtype=LANE_DTYPE)
        self._blocked_keys = np.zeros((self._n, N_LANES), dtype=LANE_DTYPE)
        return _observe(self.lanes, self.light)


def hand_coded_actions(states: dict[str, np.ndarray], min_green: int = MIN_GREEN) -> np.ndarray:
    """Hand-coded lights, vectorized: after `min_green` steps of green, switch if the red axis queues more.

    Queue of an axis = number of cars on the observed cells 0..8 of its two incoming lanes.
    """
    cells, phase, timer = states["cells"], states["phase"], states["timer"]
    queue = np.count_nonzero(cells[..., :ENTRY_CELL], axis=2)  # [n, 4]
    ns, ew = queue[:, 0] + queue[:, 1], queue[:, 2] + queue[:, 3]
    red_longer = np.where(phase == 0, ew > ns, ns > ew)
    return (((phase & 1) == 0) & (timer >= min_green) & red_longer).astype(np.int64)


def render(sim: Any, ax: Any = None, region: int | None = None) -> Any:
    """Picture of a traffic GS (whole grid; one region if `region` is given) or of one LS region on matplotlib axes
    (drawn by `traffic_render`, which loads matplotlib only when a picture is asked for).

    The whole-grid picture needs a single-copy GS (a ValueError otherwise); one region (`region`, a row of the
    copy-major agent axis) can be drawn from any GS.
    """
    from dials_lib.envs.traffic_render import render_global, render_local

    if isinstance(sim, LocalSimulator):
        return render_local(sim, 0 if region is None else region, ax)
    if not isinstance(sim, GlobalSimulator):
        raise ValueError(f"sim must be a traffic GlobalSimulator or LocalSimulator; got {type(sim).__name__}")
    if region is not None:
        return render_local(sim, region, ax)
    if sim.n_copies > 1:
        raise ValueError(f"render draws the whole grid of a single-copy GS only; this one holds {sim.n_copies} "
                         f"copies: pass region=... to draw one region")
    return render_global(sim, ax)

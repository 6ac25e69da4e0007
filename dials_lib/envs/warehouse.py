"""Warehouse: robots collecting items from shelves, as a vectorized global simulator and batched local ones.

Geometry. Robots stand on a square grid; robot (r, c) owns the 5x5 region of map rows 4r..4r+4 and columns
4c..4c+4, so neighbouring regions share their border row or column and the map side is 4 * robots_per_side + 1.
The learners are the inner sqrt(n_agents) x sqrt(n_agents) robots; one outer ring of robots follows the
hand-coded rule, so every learner has 4 neighbours. The ring's regions (and their shelves on the map's outer
border) are simulated like any other.

A region's cells are numbered `cell = 5 * y + x` (y down, x right, both 0..4). Its 12 shelf cells are the
non-corner border cells, in the order north (y=0, x=1..3), south (y=4, x=1..3), west (x=0, y=1..3),
east (x=4, y=1..3); shelf k of side s has index 3 * s + k. Neighbours (and influence sources) come in the same
order N, S, W, E, and the shared side has the same k in both regions (our north k is the northern neighbour's
south k), so a shared cell is one physical cell seen by both regions.

Actions: 0 up, 1 down, 2 left, 3 right. From an interior cell (1..3, 1..3) every move is allowed; a shelf cell
is a dead end: only the move back to the interior cell next to it leaves it, any other action keeps the robot
where it is. Robots never leave their region, never enter a corner and never collide.

Step order (docs/design.md, "Warehouse"): waiting times +1; all robots move; rewards; items under any robot are
removed; new items spawn. A free shelf cell (no item, no robot on it after the move) spawns an item of age 0 when
its uniform draw is below `item_probability`: one draw per physical shelf cell per step (the numbers of one
`rng.random(n_shelf)` call per step, over the shelf cells in row-major map order), so a robot parked on a shelf
cell never gets items delivered under itself. Reward: standing on an item of its own region gives its age
divided by the oldest age among the region's items (1.0 for the oldest), else 0; a shared item pays whichever
robot (or both) stands on it. Episodes start empty, robots at their region's centre, and last 100 steps.

Local state (`local_states()`, one row per region): `cell` int64 [n] robot cell, `items` bool [n, 12],
`ages` int32 [n, 12] (0 where there is no item), `t` int64 [n] the time step. Influence source s of a region:
the cell 0, 1 or 2 of the shared side s the neighbour stands on after the step, 3 if elsewhere; in the local
simulator a neighbour standing on a shared cell removes its item and keeps it from spawning, exactly as in the
global simulator. `last_noise()`: per region its 12 draws in shelf order.

Independent copies (batched GS). `GlobalSimulator(n_agents, seed=[s_0, ..., s_{B-1}])` holds B independent
warehouses stepped together as one bigger disconnected one. Learner i of copy b is row b * n_agents + i of every
per-agent array (observations, rewards, actions, influence sources, d-sets, noise, local states), so they reshape
to [B, n_agents, ...]; the ring robots and the shelves of each copy follow the same copy-major order (see
`GlobalSimulator`). Copy b draws from its own `np.random.default_rng(s_b)` exactly the numbers a single GS
seeded with s_b draws, so it reproduces that GS bit for bit. All copies share t and the horizon: `done` is one
bool and `reset()` restarts every copy (`reset(seed=[...])` reseeds each, one seed per copy). An int or None
seed is one copy. The whole-map accessors (`all_robots`, `robot_positions`, `item_ages_map`, the picture)
show one copy, copy 0 unless told otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dials_lib.envs.contract import EnvSpec, Seeds, check_n_agents, check_n_regions, check_seeds
from dials_lib.envs.warehouse_map import CENTRE, N_CELLS, N_SHELVES, NO_NEIGHBOUR_ON_SIDE, TABLES

SPEC = EnvSpec(name="warehouse", obs_dim=37, n_actions=4, source_sizes=(4, 4, 4, 4), dset_dim=37, horizon=100)
ITEM_PROBABILITY = 0.02
SOURCE_NAMES = ("neighbour N", "neighbour S", "neighbour W", "neighbour E")
"""Readable names of the 4 influence sources, in the order of `influence_sources()`."""
IDLE_SOURCE_CLASS = NO_NEIGHBOUR_ON_SIDE
"""The influence class meaning "the neighbour is not on a shared cell" (used by `stats`)."""
_EYE = np.eye(N_CELLS, dtype=np.float32)


def hand_coded_actions(states: dict[str, np.ndarray]) -> np.ndarray:
    """Oldest-item-first robots: walk to the oldest item of the region (lowest shelf index on ties), else the centre.

    The path goes rows first, then columns, to the interior cell in front of the item, then onto it; a robot on a
    shelf cell steps back inside first. With no item it heads for the centre and, there, steps up (there is no
    'stay' action in the interior), so idle robots oscillate between the centre and the cell above it.
    """
    items = states["items"]
    oldest = np.argmax(np.where(items, states["ages"], -1), axis=1)
    return TABLES["hand"][states["cell"], np.where(items.any(axis=1), oldest, N_SHELVES)]


def observations(cell: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Observation rows: one-hot robot cell (25) followed by the 12 item bits, float32."""
    obs = np.empty((cell.shape[0], SPEC.obs_dim), dtype=np.float32)
    obs[:, :N_CELLS] = _EYE[cell]
    obs[:, N_CELLS:] = items
    return obs


def _check_probability(item_probability: Any) -> float:
    if isinstance(item_probability, bool) or not isinstance(item_probability, int | float) or not (
        0.0 <= item_probability <= 1.0
    ):
        raise ValueError(f"item_probability must be a number in [0, 1]; got {item_probability!r}")
    return float(item_probability)


def _check_actions(actions: Any, n: int, who: str) -> np.ndarray:
    actions = np.asarray(actions)
    if actions.shape != (n,) or actions.dtype.kind not in "iu":
        raise ValueError(f"actions must be an integer array of shape ({n},) (one per {who}); "
                         f"got shape {actions.shape} dtype {actions.dtype}")
    if (actions & -4).any():  # any bit outside 0..3 (negatives included)
        raise ValueError(f"actions must be in 0..3 (0 up, 1 down, 2 left, 3 right); got values "
                         f"from {actions.min()} to {actions.max()}")
    return actions


def _check_running(t: int) -> None:
    if t >= SPEC.horizon:
        raise RuntimeError(f"the episode is over (horizon {SPEC.horizon} reached); call reset()")


class GlobalSimulator:
    """The whole warehouse: learners plus a ring of hand-coded robots, all robots and shelves as flat arrays.

    Robots are ordered learners first (row-major), then the ring, so learner rows are plain slices. All items
    live in one int32 array `key` over the physical shelf cells (row-major map order): the item's age, or
    EMPTY; two extra slots follow, "not a shelf cell" (always EMPTY) and a sentinel (NO_TARGET) that makes one
    argmax pick the ring robots' oldest item or "none".

    With a sequence of B seeds the simulator holds B independent warehouses (`n_copies`), laid out as one bigger
    disconnected one: robots are the learners of every copy (copy-major: learner i of copy b is robot
    b * n_agents + i, the row of every per-agent array), then the rings of every copy (copy-major); copy b's
    shelves are ids b * n_shelf .. (b + 1) * n_shelf - 1 of `key`, and the two extra slots come after all copies.
    `n_shelf`, `shelf_flat` and `robot_grid` describe one copy (the same in every copy); `robot_shelves`,
    `neighbours`, `cell`, `key` and `noise` cover all copies.
    """

    spec = SPEC
    EMPTY, NO_TARGET = -2, -1

    def __init__(
        self, n_agents: int = 4, seed: Seeds = None, item_probability: float = ITEM_PROBABILITY
    ) -> None:
        """A warehouse with `n_agents` learning robots (a square number) inside a ring of hand-coded ones.

        `seed`: an int or None (one warehouse), or a sequence of B ints (B independent warehouses, copy b
        seeded with `seed[b]` and identical to a single warehouse with that seed).
        """
        side = check_n_agents(n_agents)
        self.n_agents = n_agents
        seeds = check_seeds(seed)
        self.item_probability = _check_probability(item_probability)
        self.n_copies = len(seeds)
        self.robots_per_side = side + 2
        self.map_side = 4 * self.robots_per_side + 1
        self._build_layout()
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self._draws = np.zeros((0, self.n_copies * self.n_shelf + 2))
        self._next_draw = 0
        self.reset()

    @property
    def rng(self) -> np.random.Generator:
        """The random generator of copy 0 (the only one of a single-copy warehouse); `rngs` has every copy's."""
        return self.rngs[0]

    def _build_layout(self) -> None:
        """Global shelf ids (row-major order of the physical cells, copy after copy) and per-robot index tables."""
        r, s, n, copies = self.robots_per_side, self.map_side, self.n_agents, self.n_copies
        rows, cols = np.divmod(np.arange(s * s), s)
        self.shelf_flat = np.flatnonzero((rows % 4 == 0) != (cols % 4 == 0))  # map cell of each shelf id
        self.n_shelf = n_shelf = self.shelf_flat.size
        not_a_shelf = copies * n_shelf  # the first extra slot of `key`
        flat_to_shelf = np.full(s * s, n_shelf)  # within one copy; n_shelf: "not a shelf cell"
        flat_to_shelf[self.shelf_flat] = np.arange(n_shelf)
        rr, cc = np.divmod(np.arange(r * r), r)
        inner = (rr >= 1) & (rr <= r - 2) & (cc >= 1) & (cc <= r - 2)
        self.robot_grid = np.concatenate([np.flatnonzero(inner), np.flatnonzero(~inner)])  # grid index of robot
        rank = np.argsort(self.robot_grid)  # robot (within its copy) of each grid index
        rr, cc = rr[self.robot_grid], cc[self.robot_grid]
        y, x = np.divmod(np.arange(N_CELLS), 5)
        region_flat = (4 * rr[:, None] + y) * s + 4 * cc[:, None] + x  # [robots, 25] map cell of each cell
        # Every robot of every copy, in the global order (learners of each copy, then rings of each copy): its
        # copy and its robot index within the copy.
        copy_of = np.concatenate([np.repeat(np.arange(copies), n), np.repeat(np.arange(copies), r * r - n)])
        robot_in_copy = np.concatenate([np.tile(np.arange(n), copies), np.tile(np.arange(n, r * r), copies)])
        cell_shelf = flat_to_shelf[region_flat][robot_in_copy]  # [robots, 25] shelf id within the copy
        cell_shelf = np.where(cell_shelf == n_shelf, not_a_shelf, cell_shelf + n_shelf * copy_of[:, None])
        self._cell_shelf = cell_shelf.ravel()  # [robots * 25] shelf id under robot and cell
        self._robot_offset = np.arange(copies * r * r) * N_CELLS
        shelves = flat_to_shelf[region_flat[:, TABLES["shelf_cells"]]]  # [robots of a copy, 12]
        self.robot_shelves = shelves[robot_in_copy] + n_shelf * copy_of[:, None]  # [robots, 12]
        self._spawn_key = np.array([self.EMPTY, 0], dtype=np.int32)
        n_learners = copies * n
        self._learner_shelves = self.robot_shelves[:n_learners]
        self._learner_shelves_t = np.ascontiguousarray(self._learner_shelves.T)  # max over axis 0 is faster
        self._ring_targets = np.concatenate(  # ring shelves + the sentinel column
            [self.robot_shelves[n_learners:], np.full((copies * (r * r - n), 1), not_a_shelf + 1)], axis=1)
        local = rank[self.robot_grid[:n, None] + np.array([-r, r, -1, 1])]  # [n, 4] robots N, S, W, E in a copy
        local = np.tile(local, (copies, 1))
        learner_copy = copy_of[:n_learners, None]
        self.neighbours = np.where(  # [copies * n, 4] their global robot indices
            local < n, learner_copy * n + local, n_learners + learner_copy * (r * r - n) + local - n)
        self._copy_of = copy_of

    def reset(self, seed: Seeds = None) -> np.ndarray:
        """Empty shelves, every robot at its region's centre; returns the learners' observations.

        `seed` (optional) reseeds the random streams: an int for a single warehouse, or one seed per copy.
        """
        if seed is not None:
            seeds = check_seeds(seed)
            if len(seeds) != self.n_copies:
                raise ValueError(f"seed must give one seed per copy of the warehouse ({self.n_copies}); "
                                 f"got {seed!r}")
            self.rngs = [np.random.default_rng(s) for s in seeds]
            # a new stream: forget the draws taken in advance from the old one
            self._draws, self._next_draw = self._draws[:0], 0
        self.cell = np.full(self.n_copies * self.robots_per_side**2, CENTRE, dtype=np.int64)
        self.key = np.full(self.n_copies * self.n_shelf + 2, self.EMPTY, dtype=np.int32)
        self.key[-1] = self.NO_TARGET
        self.noise = np.ones(self.key.size)  # the two extra slots never spawn
        self.noise[:-2] = 0.0  # no step taken yet: zeros, as in the local simulator
        self.t = 0
        self._observe()
        return self._obs

    def _next_noise(self) -> np.ndarray:
        """This step's spawn draws [n_copies * n_shelf + 2] (1.0 in the two extra slots, which never spawn).

        The draws of one `rng.random(n_shelf)` call per step and copy, taken a horizon's worth at a time: a block
        `rng.random((horizon, n_shelf))` is the same stream of numbers as the per-step calls, for fewer calls.
        The copies' blocks lie side by side, copy b in columns b * n_shelf .. (b + 1) * n_shelf - 1.
        """
        if self._next_draw == len(self._draws):
            horizon, n_shelf = SPEC.horizon, self.n_shelf
            block = np.ones((horizon, self._draws.shape[1]))
            for copy, rng in enumerate(self.rngs):
                block[:, copy * n_shelf:(copy + 1) * n_shelf] = rng.random((horizon, n_shelf))
            self._draws, self._next_draw = block, 0
        self._next_draw += 1
        return self._draws[self._next_draw - 1]

    def _observe(self) -> None:
        n = self.n_copies * self.n_agents
        items = self.key[self._learner_shelves] >= 0
        self._obs = np.concatenate([_EYE[self.cell[:n]], items], axis=1, dtype=np.float32, casting="unsafe")

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """Advance one step with the learners' `actions` (int [n_copies * n_agents], copy-major); returns
        (obs, rewards, done)."""
        _check_running(self.t)
        n, key = self.n_copies * self.n_agents, self.key
        actions = _check_actions(actions, n, "learning robot")
        ring_target = np.argmax(key[self._ring_targets], axis=1)  # 12 = no item: head for the centre
        ring_actions = TABLES["hand"][self.cell[n:], ring_target]
        key += key >= 0  # waiting times +1
        self.cell = cell = TABLES["move"][self.cell, np.concatenate([actions, ring_actions])]
        under = self._cell_shelf[self._robot_offset + cell]  # shelf id under each robot (or "not a shelf")
        region_oldest = key[self._learner_shelves_t].max(axis=0)
        rewards = np.divide(np.maximum(key[under[:n]], 0), np.maximum(region_oldest, 1), dtype=np.float32)
        key[under] = self.EMPTY  # collected
        self.noise = self._next_noise()
        fresh = self.noise < self.item_probability
        fresh[under] = False  # no item appears under a robot
        # EMPTY -> 0 where fresh; items already there (age >= 1 by now) keep their age: max(key, 0 or EMPTY)
        np.maximum(key, self._spawn_key[fresh.view(np.uint8)], out=key)
        self.t += 1
        self._observe()
        return self._obs, rewards, self.t >= SPEC.horizon

    def influence_sources(self) -> np.ndarray:
        """int64 [n_copies * n_agents, 4]: for each neighbour N, S, W, E the shared cell (0..2) it stands on,
        else 3."""
        return TABLES["facing"][np.arange(4), self.cell[self.neighbours]]

    def dsets(self) -> np.ndarray:
        """float32 [n_copies * n_agents, 37]: the d-set at the current t, i.e. the learners' own observations."""
        return self._obs.copy()

    def last_noise(self) -> np.ndarray:
        """float64 [n_copies * n_agents, 12]: the item-spawn draws of the step just taken, per region in shelf
        order."""
        return self.noise[self._learner_shelves]

    def _states(self, robots: slice | np.ndarray) -> dict[str, np.ndarray]:
        key = self.key[self.robot_shelves[robots]]
        cell = self.cell[robots].copy()
        return {"cell": cell, "items": key >= 0, "ages": np.maximum(key, 0),
                "t": np.full(cell.size, self.t, dtype=np.int64)}

    def _robots_of(self, copy: int) -> np.ndarray:
        """Global indices of copy `copy`'s robots, learners first, then its ring (the order of `robot_grid`)."""
        if isinstance(copy, bool) or not isinstance(copy, int | np.integer) or not 0 <= copy < self.n_copies:
            raise ValueError(f"copy must be an integer in 0..{self.n_copies - 1}; got {copy!r}")
        return np.flatnonzero(self._copy_of == copy)

    def local_states(self) -> dict[str, np.ndarray]:
        """The learners' local states: cell, items, ages, t (see the module docstring), copy-major."""
        return self._states(slice(0, self.n_copies * self.n_agents))

    def all_robots(self, copy: int = 0) -> dict[str, np.ndarray]:
        """Every robot's local state in copy `copy` (learners first, then the ring; `robot_grid` gives each
        one's place)."""
        return self._states(self._robots_of(copy))

    def robot_positions(self, copy: int = 0) -> np.ndarray:
        """int64 [robots, 2]: every robot's map (row, column) in copy `copy`, learners first, then the ring."""
        r = self.robots_per_side
        y, x = np.divmod(self.cell[self._robots_of(copy)], 5)
        return np.stack([4 * (self.robot_grid // r) + y, 4 * (self.robot_grid % r) + x], axis=1)

    def item_ages_map(self, copy: int = 0) -> np.ndarray:
        """int32 [map_side, map_side]: the age of the item on each map cell of copy `copy`, -1 where there is
        none."""
        self._robots_of(copy)  # validates `copy`
        key = self.key[copy * self.n_shelf:(copy + 1) * self.n_shelf]
        ages = np.full(self.map_side**2, -1, dtype=np.int32)
        ages[self.shelf_flat] = np.where(key >= 0, key, -1)
        return ages.reshape(self.map_side, self.map_side)


class LocalSimulator:
    """K independent copies of one warehouse region; neighbours enter only through the influence sources."""

    spec = SPEC

    def __init__(
        self, n_regions: int = 1, seed: int | None = None, item_probability: float = ITEM_PROBABILITY
    ) -> None:
        """A batch of `n_regions` local regions, each with its own robot and 12 shelf cells."""
        self.n_regions = check_n_regions(n_regions)
        self.item_probability = _check_probability(item_probability)
        self.rng = np.random.default_rng(seed)
        self._rows = np.arange(n_regions)[:, None]
        self._sides = np.arange(4)
        self.reset()

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Empty shelves, robots at the centre; returns [K, 37] observations."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        k = self.n_regions
        self._set(np.full(k, CENTRE, dtype=np.int64), np.zeros((k, N_SHELVES), bool),
                  np.zeros((k, N_SHELVES), np.int32), 0)
        return self._obs

    def _set(self, cell: np.ndarray, items: np.ndarray, ages: np.ndarray, t: int) -> None:
        k = self.n_regions
        self.cell = cell
        self.items = np.zeros((k, N_SHELVES + 1), dtype=bool)  # column 12: dummy "not on a shelf" slot
        self.items[:, :N_SHELVES] = items
        self.ages = np.zeros((k, N_SHELVES + 1), dtype=np.int32)
        self.ages[:, :N_SHELVES] = ages
        self.t = t
        self.noise = np.zeros((k, N_SHELVES))
        self.u = np.full((k, 4), NO_NEIGHBOUR_ON_SIDE, dtype=np.int64)  # the last influence sources received
        self._obs = observations(cell, items)

    def load_states(self, states: dict[str, np.ndarray]) -> np.ndarray:
        """Put the K regions into the given local states (the format of `local_states()`); returns obs."""
        k = self.n_regions
        shapes = {"cell": (k,), "items": (k, N_SHELVES), "ages": (k, N_SHELVES), "t": (k,)}
        for key, shape in shapes.items():
            if key not in states or np.shape(states[key]) != shape:
                raise ValueError(f"states[{key!r}] must have shape {shape}; got "
                                 f"{np.shape(states[key]) if key in states else 'nothing'}")
        t = np.asarray(states["t"])
        if (t != t[0]).any() or not 0 <= t[0] <= SPEC.horizon:
            raise ValueError(f"states['t'] must be one time step in 0..{SPEC.horizon} shared by all regions")
        cell = np.asarray(states["cell"], dtype=np.int64)
        if (TABLES["move"][cell.clip(0, N_CELLS - 1)] == cell[:, None]).all(axis=1).any() or (cell < 0).any():
            raise ValueError("states['cell'] must be a reachable cell index 5*y+x (no corner)")
        items = np.asarray(states["items"], dtype=bool)
        self._set(cell.copy(), items, np.where(items, states["ages"], 0).astype(np.int32), int(t[0]))
        return self._obs

    def step(self, actions: Any, u: Any, noise: Any = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """One step with robot `actions` [K], influence sources `u` [K, 4] and spawn draws `noise` [K, 12]."""
        _check_running(self.t)
        k = self.n_regions
        actions = _check_actions(actions, k, "region")
        u = np.asarray(u)
        if u.shape != (k, 4) or u.dtype.kind not in "iu" or (u & -4).any():
            raise ValueError(f"u must be an integer array of shape ({k}, 4) with values in 0..3 "
                             f"(shared cell of each neighbour N, S, W, E, 3 = elsewhere); got shape {u.shape}")
        if noise is None:
            noise = self.rng.random((k, N_SHELVES))
        else:
            noise = np.asarray(noise, dtype=np.float64)
            if noise.shape != (k, N_SHELVES):
                raise ValueError(f"noise must have shape ({k}, {N_SHELVES}); got {noise.shape}")
        items, ages, rows = self.items, self.ages, self._rows
        ages += items
        self.cell = cell = TABLES["move"][self.cell, actions]
        own = TABLES["cell_shelf"][cell]  # 12 (the dummy slot, age 0) off the shelves: reward 0
        region_oldest = ages.max(axis=1)
        rewards = np.divide(ages[rows[:, 0], own], np.maximum(region_oldest, 1), dtype=np.float32)
        occupied = np.zeros_like(items)
        occupied[rows, TABLES["neighbour_shelf"][self._sides, u]] = True
        occupied[rows[:, 0], own] = True
        items[occupied] = False  # collected by our robot or a neighbour
        ages[occupied] = 0
        items[:, :N_SHELVES] |= (noise < self.item_probability) & ~occupied[:, :N_SHELVES]
        self.noise, self.u = noise, u
        self.t += 1
        self._obs = observations(cell, items[:, :N_SHELVES])
        return self._obs, rewards, self.t >= SPEC.horizon

    def influence_sources(self) -> np.ndarray:
        """int64 [K, 4]: the influence sources the step just taken received (3 everywhere after a reset)."""
        return np.array(self.u, dtype=np.int64)

    def dsets(self) -> np.ndarray:
        """float32 [K, 37]: the d-set at the current t (the region's observation)."""
        return self._obs.copy()

    def last_noise(self) -> np.ndarray:
        """float64 [K, 12]: the spawn draws used by the step just taken."""
        return np.array(self.noise)

    def local_states(self) -> dict[str, np.ndarray]:
        """The K regions' local states, in the format of `GlobalSimulator.local_states()`."""
        return {"cell": self.cell.copy(), "items": self.items[:, :N_SHELVES].copy(),
                "ages": self.ages[:, :N_SHELVES].copy(), "t": np.full(self.n_regions, self.t, dtype=np.int64)}


def render(sim: Any, ax: Any = None, region: int = 0) -> Any:
    """Picture of a warehouse GS (whole map) or of one LS region on matplotlib axes (drawn by `warehouse_render`,
    which loads matplotlib only when a picture is asked for).

    A GS holding several copies is drawn as its copy 0.
    """
    from dials_lib.envs.warehouse_render import render_global, render_local

    if isinstance(sim, GlobalSimulator):
        return render_global(sim, ax)
    if isinstance(sim, LocalSimulator):
        if not 0 <= region < sim.n_regions:
            raise ValueError(f"region must be in 0..{sim.n_regions - 1}; got {region}")
        return render_local(sim, region, ax)
    raise ValueError(f"sim must be a warehouse GlobalSimulator or LocalSimulator; got {type(sim).__name__}")

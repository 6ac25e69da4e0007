"""`sumo-traffic`: the paper's traffic grid in SUMO, a global simulator and a batched local simulator.

The authors' setup (INFLUENCEorg/DIALS and its Flow fork): one lane per direction, 100 m lanes, limit 10 m/s;
every boundary entry lane receives a car with probability 0.1 per second (depart speed 10), which drives
straight across the grid; SUMO's IDM car following with min gap 2.5 m and decel 7.5 (`sumo_network.CAR`); 1 s
steps, 300-step episodes starting with empty roads. Networks, names and connections: `sumo_network`.

Agents, lanes, phases and actions are those of the cell grid (`dials_lib.envs.traffic`): agent i at row
i // side, column i % side; incoming lanes 0 from N, 1 from S, 2 from E, 3 from W; phases 0 green NS (SUMO
'GrGr'), 1 yellow NS->EW ('yryr'), 2 green EW ('rGrG'), 3 yellow EW->NS ('ryry'); action 0 keeps, 1 switches; a
switch is yellow for 3 steps during which actions are ignored, the same light rules as the cell grid's (whose
functions are used). The light is set before SUMO's step, so a switch makes that step the first yellow one.

Per step, in order: lights; new cars (global: one `rng.random(entry lanes)` per copy, a car on every entry lane
whose draw is below the inflow probability, queued by SUMO until it fits; local: the cars the influence sources
ask for); one SUMO step; one batched read of every car's lane, position and speed (subscriptions).

Observation float32 [n, 40]: occupancy of 10 m cells 0..8 (cell k = 10k to 10k + 10 m before the stop line) of
the 4 incoming lanes (36, lane-major) and a one-hot of the phase (4). Reward float32 [n]: mean speed of the cars
on the 4 incoming lanes / 10, 0 without cars. Influence sources int64 [n, 4]: a car entered incoming lane l
during the step (it then sits in cell 9); d-set float32 [n, 36]: the 36 observed lane bits.

Local simulator: K disconnected 1x1 grids in one SUMO simulation, without inflows. When source l of region k
fires, a car is inserted 6 m into its lane l (cell 9) at 9.5 m/s, or 3 m/s if the lane holds more than 8 cars
(the authors' rule); a car that SUMO cannot insert in that step is dropped. The LS therefore follows the GS only
approximately (`exact_local_form` is False in the registry): `sumo_local_gap.local_gap` measures how closely.

Local state (`local_states()`, what `load_states()` takes): cells bool [n, 4, 10], phase, timer and t int64 [n]
(as the cell grid's), and per lane the cars ordered from the stop line: position float64 [n, 4, MAX_CARS] (m from
the lane's start, NaN = no car) and speed float64 [n, 4, MAX_CARS].

Batched worlds. `GlobalSimulator(n_agents, seed=[s_0, ..., s_{B-1}])` holds B disjoint grids in one SUMO
simulation (copy-major rows, as the cell grid); copy b draws its new cars from its own `default_rng(s_b)`, and
SUMO itself draws nothing (IDM without speed deviation), so copy b is the single GS seeded with s_b.

Hand-coded baseline: `lights='actuated'` runs SUMO's actuated programs (green 31 s, min 8, max 45; yellow 6 s;
max-gap 3.0, detector-gap 0.8); the simulator then ignores the actions it is given.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np

from dials_lib.envs.contract import EnvSpec, Seeds, check_n_agents, check_n_regions, check_seeds
from dials_lib.envs.sumo_network import (
    LANE_LENGTH,
    GridLayout,
    SumoConnection,
    network_files,
    require_sumo,
    simulation_args,
)

# the intersection is the cell grid's (lanes, cells, light rules): the two environments cannot drift apart
from dials_lib.envs.traffic_intersection import (
    N_CELLS,
    N_LANES,
    PHASE_OF_LIGHT,
    PHASE_ONE_HOT,
    advance_light,
    check_actions,
    light_of,
)

CELL_LENGTH = LANE_LENGTH / N_CELLS
OBSERVED_CELLS = N_CELLS - 1
HORIZON = 300
INFLOW_PROBABILITY = 0.1
DEPART_SPEED = 10.0
INSERT_POSITION = 6.0
INSERT_SPEED, INSERT_SPEED_CROWDED, CROWDED = 9.5, 3.0, 8
"""Local simulator: a car arrives at 9.5 m/s, or at 3 m/s when its lane already holds more than 8 cars."""
MAX_CARS = 16
"""Cars per lane in the local states (100 m hold at most 14 cars of 5 m with 2.5 m gaps)."""
SIDES = range(2, 11)
"""Supported grid sides of the global simulator: 2x2 to 10x10 intersections."""
LIGHTS = ("rl", "actuated")
REWARD_SCALE = 10.0

SPEC = EnvSpec(name="sumo-traffic", obs_dim=N_LANES * OBSERVED_CELLS + 4, n_actions=2, source_sizes=(2,) * N_LANES,
               dset_dim=N_LANES * OBSERVED_CELLS, horizon=HORIZON)
SOURCE_NAMES = tuple(f"car entering from {d}" for d in ("N", "S", "E", "W"))
STATE_KEYS = ("cells", "phase", "timer", "t", "position", "speed")

_ROAD, _POSITION, _SPEED, _PHASE = 0x50, 0x56, 0x40, 0x28  # traci constants: road id, lane position, speed, phase
_VEHICLE_VARIABLES = (_ROAD, _POSITION, _SPEED)


def _sumo_errors() -> tuple[type[BaseException], ...]:
    import libsumo
    import traci

    return (traci.exceptions.FatalTraCIError, traci.exceptions.TraCIException, libsumo.libsumo.TraCIException,
            libsumo.libsumo.FatalTraCIError)


class _SumoGrid:
    """State reading, lights and observations shared by the two simulators (one SUMO simulation each)."""

    spec = SPEC

    def __init__(self, layout: GridLayout, lights: str, backend: str) -> None:
        if lights not in LIGHTS:
            raise ValueError(f"lights must be one of {', '.join(LIGHTS)}; got {lights!r}")
        require_sumo()
        self.layout, self.lights = layout, lights
        self._n = layout.n_regions
        self._files = network_files(layout)
        self._backend = backend
        self._connection: SumoConnection | None = None
        self._lane_of_edge = {layout.incoming(r, lane): N_LANES * r + lane
                              for r in range(self._n) for lane in range(N_LANES)}
        self._tls = [layout.junction(r) for r in range(self._n)]
        self._errors = _sumo_errors()
        self.t = 0

    @property
    def backend(self) -> str:
        """'libsumo' or 'traci': how this simulator talks to SUMO (set when its simulation starts)."""
        return self._connection.backend if self._connection else self._backend

    def _restart(self) -> None:
        """A fresh simulation (started on first use, reloaded after): empty roads, phase 0 everywhere."""
        if self._connection is None or self._connection.closed:
            with contextlib.redirect_stdout(io.StringIO()):  # traci prints its connection retries
                self._connection = SumoConnection(simulation_args(self._files), self._backend)
            self.api = self._connection.api
        else:
            with self._guard():
                self._connection.reload()
        if self.lights == "actuated":
            with self._guard():
                for tls in self._tls:
                    self.api.trafficlight.setProgram(tls, "actuated")
                    self.api.trafficlight.subscribe(tls, (_PHASE,))
        self.light = np.zeros(self._n, dtype=np.int64)
        self.phase = np.zeros(self._n, dtype=np.int64)
        self.timer = np.zeros(self._n, dtype=np.int64)
        self.t = 0
        self._previous_road: dict[str, str] = {}
        self._vehicles = 0
        self._read_cars({})

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Around every use of SUMO: a dead or failing simulation becomes one clear RuntimeError (and is closed;
        reset() starts a new one)."""
        try:
            yield
        except self._errors as error:
            if self._connection is not None:
                self._connection.close()
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RuntimeError(f"sumo-traffic: the SUMO simulation failed at step {self.t} ({message}); "
                               f"reset() starts a new one") from None

    def _add_car(self, route: str, speed: float, position: str = "base") -> None:
        vehicle = f"v{self._vehicles}"
        self._vehicles += 1
        self.api.vehicle.add(vehicle, route, "car", depart="now", departLane="first", departPos=position,
                             departSpeed=f"{speed:g}")
        self.api.vehicle.subscribe(vehicle, _VEHICLE_VARIABLES)

    def _set_lights(self, actions: np.ndarray) -> None:
        """Step 1: the cell grid's light rules; SUMO's phase follows (actuated lights ignore the actions)."""
        if self.lights == "actuated":
            return
        before = self.phase
        self.light, self.timer = advance_light(self.light, self.timer, actions)
        self.phase = PHASE_OF_LIGHT.take(self.light)
        for region in np.flatnonzero(self.phase != before):
            self.api.trafficlight.setPhase(self._tls[region], int(self.phase[region]))

    def _sumo_step(self) -> None:
        self.api.simulationStep()
        self._read_cars(self.api.vehicle.getAllSubscriptionResults())
        if self.lights == "actuated":
            results = self.api.trafficlight.getAllSubscriptionResults()
            phase = np.array([results[tls][_PHASE] for tls in self._tls], dtype=np.int64)
            self.timer = np.where(phase == self.phase, self.timer + 1, 1)
            self.phase = phase
        self.t += 1

    def _read_cars(self, results: dict[str, dict[int, Any]]) -> None:
        """Every car's lane, position and speed from one subscription read; which cars entered a lane."""
        lane_of, previous = self._lane_of_edge, self._previous_road
        lanes, positions, speeds, entered = [], [], [], []
        current = {}
        for vehicle, values in results.items():
            road = values[_ROAD]
            current[vehicle] = road
            lane = lane_of.get(road)
            if lane is None:
                continue
            lanes.append(lane)
            positions.append(values[_POSITION])
            speeds.append(values[_SPEED])
            if previous.get(vehicle) != road:
                entered.append(lane)
        self._previous_road = current
        n_lanes = N_LANES * self._n
        self._car_lane = np.array(lanes, dtype=np.int64)
        self._car_position = np.array(positions, dtype=np.float64)
        self._car_speed = np.array(speeds, dtype=np.float64)
        self._cars_per_lane = np.bincount(self._car_lane, minlength=n_lanes)
        self._entered = (np.bincount(np.array(entered, dtype=np.int64), minlength=n_lanes) > 0).reshape(
            self._n, N_LANES).astype(np.int64)
        cell = ((LANE_LENGTH - self._car_position) // CELL_LENGTH).astype(np.int64)
        inside = (cell >= 0) & (cell < N_CELLS)
        cells = np.zeros((n_lanes, N_CELLS), dtype=bool)
        cells[self._car_lane[inside], cell[inside]] = True
        self._cells = cells.reshape(self._n, N_LANES, N_CELLS)

    def _rewards(self) -> np.ndarray:
        region = self._car_lane // N_LANES
        total = np.bincount(region, weights=self._car_speed, minlength=self._n)
        count = np.bincount(region, minlength=self._n)
        return (total / np.maximum(count, 1) / REWARD_SCALE).astype(np.float32)

    def observations(self) -> np.ndarray:
        """Current observations, float32 [n, 40]: cells 0..8 of the 4 lanes, then the phase one-hot."""
        observed = self._cells[:, :, :OBSERVED_CELLS].reshape(self._n, -1).astype(np.float32)
        return np.concatenate((observed, PHASE_ONE_HOT.take(self.phase, axis=0)), axis=1)

    def dsets(self) -> np.ndarray:
        """The d-set at the current t: the 36 observed lane bits, float32 [n, 36]."""
        return self._cells[:, :, :OBSERVED_CELLS].reshape(self._n, -1).astype(np.float32)

    def local_states(self) -> dict[str, np.ndarray]:
        """Copies of every region's local state (module docstring)."""
        position = np.full((N_LANES * self._n, MAX_CARS), np.nan)
        speed = np.full((N_LANES * self._n, MAX_CARS), np.nan)
        order = np.lexsort((-self._car_position, self._car_lane))  # by lane, then from the stop line backwards
        lanes = self._car_lane[order]
        first = np.searchsorted(lanes, lanes)
        rank = np.arange(len(lanes)) - first
        keep = rank < MAX_CARS
        position[lanes[keep], rank[keep]] = self._car_position[order][keep]
        speed[lanes[keep], rank[keep]] = self._car_speed[order][keep]
        return {
            "cells": self._cells.copy(),
            "phase": self.phase.copy(),
            "timer": self.timer.copy(),
            "t": np.full(self._n, self.t, dtype=np.int64),
            "position": position.reshape(self._n, N_LANES, MAX_CARS),
            "speed": speed.reshape(self._n, N_LANES, MAX_CARS),
        }

    def last_noise(self) -> None:
        """SUMO draws nothing (IDM, no speed deviation): all randomness is in the new cars, i.e. in u."""
        return None

    def _check_running(self) -> None:
        if self._connection is None or self._connection.closed:
            raise RuntimeError("the simulation is not running: call reset() first")
        if self.t >= HORIZON:
            raise RuntimeError(f"the episode ended at the horizon ({HORIZON} steps); call reset() first")

    def close(self) -> None:
        """End the SUMO simulation (hands libsumo back to the process); reset() starts a new one."""
        if self._connection is not None:
            self._connection.close()

    def __enter__(self) -> _SumoGrid:
        """`with make_global('sumo-traffic', ...) as sim:` closes the simulation at the end of the block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the simulation."""
        self.close()


class GlobalSimulator(_SumoGrid):
    """The whole SUMO grid: n_agents intersections (4 to 100, a square) in one or B copies (module docstring)."""

    def __init__(self, n_agents: int = 4, seed: Seeds = None, inflow_probability: float = INFLOW_PROBABILITY,
                 lights: str = "rl", backend: str = "auto") -> None:
        """A grid of `n_agents` intersections whose boundary lanes receive a car with `inflow_probability` per
        second; `seed`: an int or None (one grid) or B ints (B grids); `lights`: 'rl' (the actions drive them) or
        'actuated' (SUMO's actuated programs, the baseline); `backend`: 'auto', 'libsumo' or 'traci'."""
        side = check_n_agents(n_agents)
        if side not in SIDES:
            raise ValueError(f"n_agents for sumo-traffic must be a square grid of 2x2 to 10x10 intersections "
                             f"(4, 9, 16, ..., 100); got {n_agents}")
        if not 0.0 <= inflow_probability <= 1.0:
            raise ValueError(f"inflow_probability must be in [0, 1]; got {inflow_probability}")
        seeds = check_seeds(seed)
        self.side, self.n_agents, self.n_copies = side, n_agents, len(seeds)
        self.inflow_probability = inflow_probability
        super().__init__(GridLayout(side, len(seeds)), lights, backend)
        self._rngs = [np.random.default_rng(s) for s in seeds]
        entries = self.layout.entry_lanes()
        self.entry_mask = np.zeros((self._n, N_LANES), dtype=bool)
        """Boundary entry lanes, bool [n, 4] (where the new cars appear)."""
        self.entry_mask[tuple(np.array(entries).T)] = True
        self._entry_routes = np.array([self.layout.route_id(r, lane) for r, lane in entries]).reshape(
            self.n_copies, -1)
        self._restart()

    def reset(self, seed: Seeds = None) -> np.ndarray:
        """Start an episode with empty roads and phase 0 everywhere; `seed` reseeds (one per copy)."""
        if seed is not None:
            seeds = check_seeds(seed)
            if len(seeds) != self.n_copies:
                raise ValueError(f"seed must give one seed per copy of the grid ({self.n_copies}); got {seed!r}")
            self._rngs = [np.random.default_rng(s) for s in seeds]
        self._restart()
        return self.observations()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """Advance every intersection of every copy by one second; returns (obs, rewards, done)."""
        self._check_running()
        actions = check_actions(actions, self._n)
        draws = [rng.random(self._entry_routes.shape[1]) for rng in self._rngs]
        with self._guard():
            self._set_lights(actions)
            for copy, draw in enumerate(draws):
                for route in self._entry_routes[copy, draw < self.inflow_probability]:
                    self._add_car(str(route), DEPART_SPEED)
            self._sumo_step()
        return self.observations(), self._rewards(), self.t >= HORIZON

    def influence_sources(self) -> np.ndarray:
        """u_t of the step just taken, int64 [n, 4]: a car entered incoming lane l."""
        return self._entered.copy()


class LocalSimulator(_SumoGrid):
    """K independent intersections (K disconnected 1x1 grids in one SUMO simulation) driven by u."""

    def __init__(self, n_regions: int = 1, seed: int | None = None, backend: str = "auto") -> None:
        """A batch of `n_regions` intersections (`seed` is kept for the registry's signature: no draws)."""
        self.n_regions = check_n_regions(n_regions)
        super().__init__(GridLayout(1, n_regions), "rl", backend)
        self._routes = [[self.layout.route_id(r, lane) for lane in range(N_LANES)] for r in range(n_regions)]
        self._u = np.zeros((n_regions, N_LANES), dtype=np.int64)
        self._restart()

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode with empty roads and phase 0 everywhere; returns the observations."""
        self._restart()
        self._u[:] = 0
        return self.observations()

    def step(self, actions: Any, u: Any, noise: Any = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """Advance the K regions, inserting a car in cell 9 of every lane whose source fires."""
        self._check_running()
        actions = check_actions(actions, self._n)
        if noise is not None:
            raise ValueError("noise must be None for sumo-traffic: SUMO draws nothing of its own")
        u = np.asarray(u)
        if u.shape != (self._n, N_LANES) or u.dtype.kind not in "biu" or np.any((u != 0) & (u != 1)):
            raise ValueError(f"u must be a binary integer array of shape ({self._n}, {N_LANES}); got {u.dtype} "
                             f"{u.shape}")
        crowded = (self._cars_per_lane > CROWDED).reshape(self._n, N_LANES)
        self._u = u.astype(np.int64)
        with self._guard():
            self._set_lights(actions)
            self._drop_pending()
            for region, lane in zip(*np.nonzero(u), strict=True):
                speed = INSERT_SPEED_CROWDED if crowded[region, lane] else INSERT_SPEED
                self._add_car(self._routes[region][lane], speed, f"{INSERT_POSITION:g}")
            self._sumo_step()
        return self.observations(), self._rewards(), self.t >= HORIZON

    def _drop_pending(self) -> None:
        """A car that SUMO could not insert in the last step is dropped (the authors' local simulator)."""
        pending = self.api.simulation.getPendingVehicles()
        for vehicle in pending:
            self.api.vehicle.unsubscribe(vehicle)  # else SUMO reports the vanished car at every step
        if pending:
            self.api.simulation.clearPending()

    def influence_sources(self) -> np.ndarray:
        """The u the step just taken received, int64 [K, 4]."""
        return self._u.copy()

    def load_states(self, states: dict[str, np.ndarray]) -> np.ndarray:
        """Restart the K regions in the given local states: their cars are placed where the states say (SUMO
        inserts them standing, in one step in which nothing else moves) and then given their speeds, the lights
        set; returns the observations. A car SUMO refuses to place is left out: the load is as exact as SUMO
        allows (cars on the junctions, which belong to no region's lanes, are not part of a local state)."""
        missing = [k for k in STATE_KEYS if k not in states]
        if missing:
            raise ValueError(f"states is missing {missing}; expected keys {list(STATE_KEYS)}")
        if np.shape(states["position"]) != (self._n, N_LANES, MAX_CARS) or np.shape(states["phase"]) != (self._n,):
            raise ValueError(f"states must hold {self._n} regions (position [{self._n}, {N_LANES}, {MAX_CARS}])")
        t = np.asarray(states["t"])
        if np.any(t != t[0]) or not 0 <= t[0] <= HORIZON:
            raise ValueError(f"states['t'] must be one time step in [0, {HORIZON}] shared by all regions")
        self._restart()
        position, speed = np.asarray(states["position"]), np.asarray(states["speed"])
        cars = list(zip(*np.nonzero(~np.isnan(position)), strict=True))
        with self._guard():
            # standing cars pass SUMO's insertion checks where moving ones may not; their speeds are set once placed
            for region, lane, car in cars:
                self._add_car(self._routes[region][lane], 0.0, f"{position[region, lane, car]:.6f}")
            self.api.simulationStep()
            placed = set(self.api.vehicle.getIDList())
            for vehicle, (region, lane, car) in enumerate(cars):
                if f"v{vehicle}" in placed:
                    self.api.vehicle.setPreviousSpeed(f"v{vehicle}", float(speed[region, lane, car]))
            self._drop_pending()
            self._read_cars({vehicle: {**values, _SPEED: self.api.vehicle.getSpeed(vehicle)}
                             for vehicle, values in self.api.vehicle.getAllSubscriptionResults().items()})
            self.phase = np.asarray(states["phase"], dtype=np.int64).copy()
            self.timer = np.asarray(states["timer"], dtype=np.int64).copy()
            self.light = light_of(self.phase, np.minimum(self.timer, 3))
            for region in np.flatnonzero(self.phase):
                self.api.trafficlight.setPhase(self._tls[region], int(self.phase[region]))
        self.t = int(t[0])
        self._entered[:] = 0
        self._u[:] = 0
        return self.observations()


def render(sim: Any, ax: Any = None, region: int | None = None) -> Any:
    """Picture of a sumo-traffic GS (whole grid) or of one region, drawn from its cells as the cell grid's."""
    from types import SimpleNamespace

    from dials_lib.envs.traffic_render import render_global

    if region is None:
        if not isinstance(sim, GlobalSimulator) or sim.n_copies > 1:
            raise ValueError("render draws the whole grid of a single-copy sumo-traffic GS; pass region=... "
                             "to draw one region")
        return render_global(sim, ax)
    states = {key: value[region: region + 1] for key, value in sim.local_states().items()}
    one = SimpleNamespace(side=1, n_agents=1, t=sim.t, local_states=lambda: states)
    ax = render_global(one, ax)
    ax.set_title(f"One sumo-traffic region, t = {sim.t}")
    return ax


__all__ = [
    "HORIZON", "LIGHTS", "MAX_CARS", "SIDES", "SOURCE_NAMES", "SPEC", "GlobalSimulator", "LocalSimulator", "render",
]

"""SUMO plumbing for `sumo-traffic`: the install check, the grid networks we generate, and the connection to SUMO.

Install. SUMO is the optional extra `sumo` (`pip install -e '.[sumo]'`: eclipse-sumo, libsumo, sumolib and traci
1.28). `require_sumo()` imports it, sets `SUMO_HOME` from `sumo.SUMO_HOME` (the user never has to) and raises
`SumoMissingError`, whose message is one line saying how to install, when it is absent.

Networks. `GridLayout(side, copies)` names everything of `copies` disjoint side x side grids of signalised
intersections (`copies` = 1 for a global simulator of one world; B for B independent worlds in one simulation;
side = 1 and copies = K for K local regions), and `network_files(layout)` writes them: plain node, edge and
connection XML run through SUMO's `netconvert`, plus an additional file with the vehicle type, the straight
routes and the two traffic-light programs. Everything is generated here, never downloaded, into a cache
(`build/sumo-networks/` of the repository, else the temporary directory) keyed by the layout, the SUMO version
and `NETWORK_FORMAT`; a cache entry is written in a fresh directory and renamed into place, so concurrent
processes never read half a network.

Layout of one grid (as in `dials_lib.envs.traffic`): agent i sits at row i // side (row 0 north), column
i % side; its incoming lanes are numbered by where they come from, 0 north, 1 south, 2 east, 3 west. Region r of
the simulation is agent r % side**2 of copy r // side**2. Edge `i{r}_{l}` is incoming lane l of region r; the
edge leaving region r in the direction of its lane l towards the grid's edge is `x{r}_{l}` (only where there is
no next intersection). Each lane is 100 m long and one lane wide, speed limit 10 m/s; junctions keep only the
straight connections, so SUMO's signal state has 4 links per junction, ordered north, east, south, west: state
'GrGr' is green north-south. Programs: 'rl' (static, the 4 phases GrGr, yryr, rGrG, ryry each lasting a day: the
simulator sets the phase itself) and 'actuated' (the paper's baseline: green 31 s, min 8, max 45; yellow 6 s,
min 3; max-gap 3.0, detector-gap 0.8).

Connections. libsumo runs one simulation per process, in-process and fast; traci runs each in a `sumo`
subprocess over a socket. `open_simulation(args, backend)` gives the first simulation of a process libsumo
('auto') and every further one open at the same time a traci connection; `SumoConnection.close()` hands libsumo
back. Both expose the same API (`.vehicle`, `.trafficlight`, `.simulation`, `.simulationStep`, ...).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dials_lib.paths import REPO_ROOT

INSTALL_HINT = "sumo-traffic needs SUMO 1.28: pip install -e '.[sumo]' (or 'make venv', which installs it)"
NETWORK_FORMAT = 1
"""Bumped whenever the generated files change, so that an older cache entry is not reused."""
LANE_LENGTH = 100.0
SPEED_LIMIT = 10.0
N_LANES = 4
BACKENDS = ("auto", "libsumo", "traci")

# Per incoming lane (0 from N, 1 from S, 2 from E, 3 from W): the row and column step of its direction of travel.
LANE_DIRECTION = ((1, 0), (-1, 0), (0, -1), (0, 1))
PHASE_STATES = ("GrGr", "yryr", "rGrG", "ryry")
"""SUMO signal states of phases 0 green NS, 1 yellow NS->EW, 2 green EW, 3 yellow EW->NS (links N, E, S, W)."""
ACTUATED = {"green": (31, 8, 45), "yellow": (6, 3, 6), "max_gap": 3.0, "detector_gap": 0.8}
"""The paper's actuated programs: (duration, minDur, maxDur) of green and yellow phases, detector settings."""
CAR = {"carFollowModel": "IDM", "accel": 2.6, "decel": 7.5, "tau": 1.0, "minGap": 2.5, "maxSpeed": SPEED_LIMIT,
       "length": 5.0, "speedDev": 0.0}
"""The one vehicle type: the authors' car-following settings (min gap 2.5 m, decel 7.5, max speed 10); every car's
desired speed is the limit (SUMO refuses a depart speed of 10 for a car with a speed factor below 1)."""


class SumoMissingError(ImportError):
    """SUMO (the `sumo` extra) is not installed; the message says how to install it."""


def require_sumo() -> Any:
    """Import SUMO's Python packages, setting SUMO_HOME from the installed `sumo` package; returns `libsumo`.

    Raises `SumoMissingError` (one line: how to install) if the extra is missing."""
    try:
        import sumo
    except ImportError as error:
        raise SumoMissingError(INSTALL_HINT) from error
    os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    try:
        import libsumo
        import traci  # noqa: F401  (the backend of every simulation after the first in a process)
    except ImportError as error:
        raise SumoMissingError(INSTALL_HINT) from error
    return libsumo


def sumo_available() -> bool:
    """True if SUMO's packages import (the `sumo` extra is installed)."""
    try:
        require_sumo()
    except SumoMissingError:
        return False
    return True


def sumo_binary(name: str) -> str:
    """Path of SUMO's program `name` ('sumo', 'netconvert') in the installed `sumo` package."""
    require_sumo()
    import sumo

    path = Path(sumo.SUMO_HOME) / "bin" / name
    if not path.exists():
        raise SumoMissingError(f"{INSTALL_HINT} ({path} is missing)")
    return str(path)


def sumo_version() -> str:
    """The installed eclipse-sumo version."""
    from importlib.metadata import version

    return version("eclipse-sumo")


@dataclass(frozen=True)
class GridLayout:
    """`copies` disjoint side x side grids: names, geometry and routes (module docstring, "Layout")."""

    side: int
    copies: int = 1

    @property
    def n_regions(self) -> int:
        """Intersections over all copies."""
        return self.side * self.side * self.copies

    def region(self, copy: int, row: int, col: int) -> int:
        """Region index of the intersection at (row, col) of `copy`."""
        return (copy * self.side + row) * self.side + col

    def junction(self, region: int) -> str:
        """SUMO id of a region's junction (and of its traffic light)."""
        return f"J{region}"

    def incoming(self, region: int, lane: int) -> str:
        """SUMO id of incoming lane `lane` of `region`."""
        return f"i{region}_{lane}"

    def exit(self, region: int, lane: int) -> str:
        """SUMO id of the edge leaving the grid from `region` in the direction of its lane `lane`."""
        return f"x{region}_{lane}"

    def _coordinates(self, region: int) -> tuple[int, int, int]:
        copy, agent = divmod(region, self.side * self.side)
        return copy, agent // self.side, agent % self.side

    def downstream(self, region: int, lane: int) -> int | None:
        """The region a car crossing `region` on `lane` drives into, None at the grid's edge."""
        copy, row, col = self._coordinates(region)
        d_row, d_col = LANE_DIRECTION[lane]
        row, col = row + d_row, col + d_col
        if 0 <= row < self.side and 0 <= col < self.side:
            return self.region(copy, row, col)
        return None

    def upstream(self, region: int, lane: int) -> int | None:
        """The region whose crossing cars enter incoming lane `lane` of `region`, None for a boundary entry."""
        copy, row, col = self._coordinates(region)
        d_row, d_col = LANE_DIRECTION[lane]
        row, col = row - d_row, col - d_col
        if 0 <= row < self.side and 0 <= col < self.side:
            return self.region(copy, row, col)
        return None

    def entry_lanes(self) -> list[tuple[int, int]]:
        """(region, lane) of every boundary entry lane, copy-major, in increasing flat index 4 * region + lane."""
        return [(r, lane) for r in range(self.n_regions) for lane in range(N_LANES) if self.upstream(r, lane) is None]

    def route(self, region: int, lane: int) -> list[str]:
        """The straight route of a car entering incoming lane `lane` of `region`: edges until it leaves the grid."""
        edges = [self.incoming(region, lane)]
        while (following := self.downstream(region, lane)) is not None:
            region = following
            edges.append(self.incoming(region, lane))
        edges.append(self.exit(region, lane))
        return edges

    def route_id(self, region: int, lane: int) -> str:
        """Id of the route starting on incoming lane `lane` of `region`."""
        return f"r{region}_{lane}"

    def position(self, region: int) -> tuple[float, float]:
        """Junction coordinates in metres (x east, y north); copies lie side by side, one grid apart."""
        copy, row, col = self._coordinates(region)
        return (copy * (self.side + 2) + col) * LANE_LENGTH, -row * LANE_LENGTH


def _node_xml(layout: GridLayout) -> str:
    lines = ["<nodes>"]
    for r in range(layout.n_regions):
        x, y = layout.position(r)
        lines.append(f'  <node id="{layout.junction(r)}" x="{x}" y="{y}" type="traffic_light"/>')
        for lane, (d_row, d_col) in enumerate(LANE_DIRECTION):
            # the dead end a boundary lane starts from (upstream) and the one an exit leads to (downstream)
            if layout.upstream(r, lane) is None:
                lines.append(f'  <node id="s{r}_{lane}" x="{x - d_col * LANE_LENGTH}" y="{y + d_row * LANE_LENGTH}" '
                             f'type="priority"/>')
            if layout.downstream(r, lane) is None:
                lines.append(f'  <node id="e{r}_{lane}" x="{x + d_col * LANE_LENGTH}" y="{y - d_row * LANE_LENGTH}" '
                             f'type="priority"/>')
    return "\n".join([*lines, "</nodes>", ""])


def _edge_xml(layout: GridLayout) -> str:
    attributes = f'numLanes="1" speed="{SPEED_LIMIT}" length="{LANE_LENGTH}"'
    lines = ["<edges>"]
    for r in range(layout.n_regions):
        for lane in range(N_LANES):
            upstream = layout.upstream(r, lane)
            start = f"s{r}_{lane}" if upstream is None else layout.junction(upstream)
            lines.append(f'  <edge id="{layout.incoming(r, lane)}" from="{start}" to="{layout.junction(r)}" '
                         f'{attributes}/>')
            if layout.downstream(r, lane) is None:
                lines.append(f'  <edge id="{layout.exit(r, lane)}" from="{layout.junction(r)}" to="e{r}_{lane}" '
                             f'{attributes}/>')
    return "\n".join([*lines, "</edges>", ""])


def _connection_xml(layout: GridLayout) -> str:
    lines = ["<connections>"]
    for r in range(layout.n_regions):
        for lane in range(N_LANES):
            following = layout.downstream(r, lane)
            to = layout.exit(r, lane) if following is None else layout.incoming(following, lane)
            lines.append(f'  <connection from="{layout.incoming(r, lane)}" to="{to}"/>')
    return "\n".join([*lines, "</connections>", ""])


def _additional_xml(layout: GridLayout) -> str:
    car = " ".join(f'{key}="{value}"' for key, value in CAR.items())
    lines = ["<additional>", f'  <vType id="car" {car}/>']
    for r in range(layout.n_regions):
        for lane in range(N_LANES):
            lines.append(f'  <route id="{layout.route_id(r, lane)}" edges="{" ".join(layout.route(r, lane))}"/>')
    green, yellow = ACTUATED["green"], ACTUATED["yellow"]
    for r in range(layout.n_regions):
        tls = layout.junction(r)
        lines.append(f'  <tlLogic id="{tls}" type="actuated" programID="actuated" offset="0">')
        lines.append(f'    <param key="max-gap" value="{ACTUATED["max_gap"]}"/>')
        lines.append(f'    <param key="detector-gap" value="{ACTUATED["detector_gap"]}"/>')
        for phase, state in enumerate(PHASE_STATES):
            duration, min_duration, max_duration = yellow if phase % 2 else green
            lines.append(f'    <phase duration="{duration}" minDur="{min_duration}" maxDur="{max_duration}" '
                         f'state="{state}"/>')
        lines.append("  </tlLogic>")
        # loaded last, so this is the program a simulation starts with (the actuated one is switched to on demand)
        lines.append(f'  <tlLogic id="{tls}" type="static" programID="rl" offset="0">')
        lines.extend(f'    <phase duration="86400" state="{state}"/>' for state in PHASE_STATES)
        lines.append("  </tlLogic>")
    return "\n".join([*lines, "</additional>", ""])


def cache_root() -> Path:
    """Where generated networks are kept: `build/sumo-networks/` of the repository if writable, else a temp dir."""
    for root in (REPO_ROOT / "build" / "sumo-networks", Path(tempfile.gettempdir()) / "dials-sumo-networks"):
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(root, os.W_OK):
            return root
    raise OSError("no writable directory for SUMO networks (tried build/sumo-networks and the temp dir)")


@dataclass(frozen=True)
class NetworkFiles:
    """The files of one generated layout."""

    net: Path
    additional: Path


def network_files(layout: GridLayout, root: Path | None = None) -> NetworkFiles:
    """The network of `layout`, generated with netconvert on first use and cached (module docstring)."""
    root = cache_root() if root is None else root
    folder = root / f"grid{layout.side}x{layout.side}-copies{layout.copies}-sumo{sumo_version()}-v{NETWORK_FORMAT}"
    files = NetworkFiles(folder / "grid.net.xml", folder / "grid.add.xml")
    if files.net.exists() and files.additional.exists():
        return files
    work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=root))
    try:
        for name, text in (("grid.nod.xml", _node_xml(layout)), ("grid.edg.xml", _edge_xml(layout)),
                           ("grid.con.xml", _connection_xml(layout)), ("grid.add.xml", _additional_xml(layout))):
            (work / name).write_text(text)
        command = [sumo_binary("netconvert"), "--node-files", "grid.nod.xml", "--edge-files", "grid.edg.xml",
                   "--connection-files", "grid.con.xml", "--output-file", "grid.net.xml", "--no-turnarounds", "true",
                   "--tls.default-type", "static", "--no-warnings", "true"]
        done = subprocess.run(command, cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"netconvert failed on the {layout.side}x{layout.side} grid: {last}")
        try:
            work.rename(folder)
        except OSError:  # another process put the same network in place first: use theirs
            if not (files.net.exists() and files.additional.exists()):
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return files


# ---------------------------------------------------------------- connections

_libsumo_holder: weakref.ref[SumoConnection] | None = None
"""The connection that holds this process's libsumo simulation, if any: a weak reference, so that a dropped
simulator's connection is collected and hands libsumo back (a strong one here kept the first simulation of a
process holding libsumo for good, and every later one ran on traci, 2 to 3 times slower)."""
_labels = itertools.count()


def libsumo_holder() -> SumoConnection | None:
    """The open connection that holds this process's libsumo simulation, if any."""
    holder = _libsumo_holder() if _libsumo_holder is not None else None
    return holder if holder is not None and not holder.closed else None


class SumoConnection:
    """One running SUMO simulation, through libsumo (in this process) or traci (a `sumo` subprocess)."""

    def __init__(self, args: list[str], backend: str = "auto") -> None:
        """Start SUMO with command-line `args` (without the program name) on `backend` (`BACKENDS`)."""
        global _libsumo_holder
        self.closed = True  # until SUMO runs: nothing to close if starting fails
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        libsumo = require_sumo()
        libsumo_free = libsumo_holder() is None and not libsumo.simulation.isLoaded()
        if backend == "libsumo" and not libsumo_free:
            raise RuntimeError("backend='libsumo': this process already runs a libsumo simulation (libsumo allows "
                               "one per process); close it, or use backend='auto' or 'traci'")
        self.args = list(args)
        self.backend = "libsumo" if backend == "libsumo" or (backend == "auto" and libsumo_free) else "traci"
        if self.backend == "libsumo":
            libsumo.start([sumo_binary("sumo"), *self.args])
            self.api: Any = libsumo
            _libsumo_holder = weakref.ref(self)
        else:
            import traci

            label = f"dials-{os.getpid()}-{next(_labels)}"
            traci.start([sumo_binary("sumo"), *self.args], label=label, stdout=subprocess.DEVNULL)
            self.api = traci.getConnection(label)
        self.closed = False

    def reload(self, args: list[str] | None = None) -> None:
        """Restart the simulation from its files (all vehicles, subscriptions and light states gone)."""
        if args is not None:
            self.args = list(args)
        self.api.load(self.args)

    def close(self) -> None:
        """End the simulation (and hand libsumo back); safe to call twice."""
        global _libsumo_holder
        if self.closed:
            return
        self.closed = True
        try:
            self.api.close()
        except Exception:  # noqa: BLE001  (a SUMO that already died has nothing left to close)
            pass
        if _libsumo_holder is not None and _libsumo_holder() in (self, None):  # None: being collected
            _libsumo_holder = None

    def __del__(self) -> None:
        """Close on garbage collection, so a dropped simulator frees libsumo."""
        self.close()


def simulation_args(files: NetworkFiles, seed: int = 0) -> list[str]:
    """SUMO options of every sumo-traffic simulation: 1 s steps, no teleports, quiet, deterministic."""
    return ["--net-file", str(files.net), "--additional-files", str(files.additional), "--step-length", "1",
            "--time-to-teleport", "-1", "--no-step-log", "true", "--no-warnings", "true", "--seed", str(seed),
            "--collision.action", "warn"]


__all__ = [
    "ACTUATED", "BACKENDS", "CAR", "INSTALL_HINT", "LANE_LENGTH", "PHASE_STATES", "SPEED_LIMIT", "GridLayout",
    "NetworkFiles", "SumoConnection", "SumoMissingError", "cache_root", "libsumo_holder", "network_files",
    "require_sumo", "simulation_args", "sumo_available", "sumo_binary", "sumo_version",
]

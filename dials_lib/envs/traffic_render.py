"""Pictures of the traffic grid (the paper's Figures 9 and 10): the whole global simulator and one local region.

Roads are grey, with one lane per direction (right-hand traffic); a car is a dark square on its 10 m cell;
the light of every incoming lane is a coloured bar at its stop line (green, yellow or red). In the local
picture the rest of the world is gone: the 4 entry cells where arriving cars appear (influence sources 0..3)
are outlined in blue, and the 4 downstream entry cells whose occupancy decides whether a car may cross
(sources 4..7) are drawn as blue squares, filled when occupied.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from dials_lib.envs.traffic_intersection import LANE_GREEN_PHASE, N_CELLS, N_LANES
from dials_lib.plots import picture_axes

SPACING = N_CELLS + 2  # intersection centres: a 2 x 2 junction plus one 10-cell road apart
LANE_OFFSET = 0.5  # distance of a lane's centre line from the road's centre line
# Per incoming lane: unit vector pointing upstream (towards cell 9) and the sideways offset of the lane.
UPSTREAM = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]], dtype=float)  # from N, S, E, W (y grows northwards)
SIDEWAYS = np.array([[-1, 0], [1, 0], [0, 1], [0, -1]], dtype=float) * LANE_OFFSET
CAR_COLOUR, ROAD_COLOUR, SOURCE_COLOUR = "0.15", "0.82", "tab:blue"
LIGHT_COLOURS = {"green": "tab:green", "yellow": "gold", "red": "tab:red"}


def _cell_centres(centres: np.ndarray) -> np.ndarray:
    """Centres [n, 4, 10, 2] of every lane cell of the intersections at `centres` [n, 2]."""
    distance = np.arange(N_CELLS) + 1.5  # cell 0 sits right next to the junction (half-width 1)
    return (centres[:, None, None, :] + SIDEWAYS[None, :, None, :]
            + distance[None, None, :, None] * UPSTREAM[None, :, None, :])


def _light_colours(phase: np.ndarray) -> np.ndarray:
    """Colour name of the light of every incoming lane, [n, 4]."""
    green = phase[:, None] == LANE_GREEN_PHASE
    yellow = phase[:, None] == LANE_GREEN_PHASE + 1  # the axis whose green is ending
    return np.where(green, LIGHT_COLOURS["green"], np.where(yellow, LIGHT_COLOURS["yellow"], LIGHT_COLOURS["red"]))


def _draw_roads(ax: plt.Axes, side: int, extent: float) -> None:
    length = (side - 1) * SPACING + 2 * extent
    roads = []
    for k in range(side):
        roads.append(Rectangle((-extent, -k * SPACING - 1), length, 2))  # row k, two lanes wide
        roads.append(Rectangle((k * SPACING - 1, extent - length), 2, length))  # column k
    ax.add_collection(PatchCollection(roads, facecolor=ROAD_COLOUR, edgecolor="none", zorder=1))


def _squares(points: np.ndarray, size: float, **style: Any) -> PatchCollection:
    half = size / 2
    return PatchCollection([Rectangle((x - half, y - half), size, size) for x, y in points], **style)


def _draw_intersections(ax: plt.Axes, states: dict[str, np.ndarray], centres: np.ndarray) -> np.ndarray:
    cells = _cell_centres(centres)
    ax.add_collection(_squares(cells[states["cells"]], 0.8, facecolor=CAR_COLOUR, edgecolor="none", zorder=3))
    stop_lines = centres[:, None, :] + SIDEWAYS[None] + 1.0 * UPSTREAM[None]
    colours = _light_colours(states["phase"]).ravel()
    for (x, y), (dx, dy), colour in zip(stop_lines.reshape(-1, 2), np.tile(UPSTREAM, (len(centres), 1)), colours,
                                        strict=True):
        ax.plot([x - 0.5 * dy, x + 0.5 * dy], [y - 0.5 * dx, y + 0.5 * dx], color=colour, lw=2.5, zorder=4,
                solid_capstyle="butt")
    return cells


def _legend(ax: plt.Axes, with_sources: bool) -> None:
    handles = [Line2D([], [], marker="s", ls="", color=CAR_COLOUR, label="car (10 m cell)")]
    handles += [Line2D([], [], color=c, lw=2.5, label=f"{name} light") for name, c in LIGHT_COLOURS.items()]
    if with_sources:
        handles.append(Line2D([], [], marker="s", ls="", mfc="none", color=SOURCE_COLOUR,
                              label="influence: arrival cell / downstream cell"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)


def render_global(sim: Any, ax: plt.Axes | None = None) -> plt.Axes:
    """The whole grid: every road, car and light of a traffic GS (anything with `side`, `n_agents`, `t` and
    `local_states()`)."""
    side = sim.side
    ax = picture_axes(ax, size=min(2.0 + 1.2 * side, 12.0))
    _draw_roads(ax, side, extent=N_CELLS + 1)
    rows, cols = np.divmod(np.arange(sim.n_agents), side)
    centres = np.stack([cols * SPACING, -rows * SPACING], axis=1).astype(float)
    _draw_intersections(ax, sim.local_states(), centres)
    margin = N_CELLS + 1.5
    ax.set_xlim(-margin, (side - 1) * SPACING + margin)
    ax.set_ylim(-(side - 1) * SPACING - margin, margin)
    ax.set_title(f"Traffic grid, {sim.n_agents} intersections, t = {sim.t}")
    _legend(ax, with_sources=False)
    return ax


def render_local(sim: Any, region: int = 0, ax: plt.Axes | None = None) -> plt.Axes:
    """One region (an LS region, or agent `region` of a GS) with its influence sources marked."""
    states = {key: value[region: region + 1] for key, value in sim.local_states().items()}
    ax = picture_axes(ax, size=4.5)
    _draw_roads(ax, 1, extent=N_CELLS + 1)
    centre = np.zeros((1, 2))
    cells = _draw_intersections(ax, states, centre)
    entry = cells[0, :, N_CELLS - 1]
    ax.add_collection(_squares(entry, 0.95, facecolor="none", edgecolor=SOURCE_COLOUR, lw=1.5, zorder=5))
    u = sim.influence_sources()[region]
    downstream = centre + SIDEWAYS - 1.5 * UPSTREAM  # cell 9 of the next lane in each direction, past the junction
    for lane in range(N_LANES):
        filled = bool(u[N_LANES + lane])
        ax.add_collection(_squares(downstream[lane: lane + 1], 0.8, facecolor=SOURCE_COLOUR if filled else "none",
                                   edgecolor=SOURCE_COLOUR, lw=1.5, zorder=5))
    extent = N_CELLS + 2
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_title(f"One local region, t = {sim.t}")
    _legend(ax, with_sources=True)
    return ax

"""Pictures of the warehouse (the paper's Figures 9 and 10): the whole global simulator and one local region.

Shelf cells are light grey, region corners dark grey, items coloured by waiting time, learning robots blue
and the ring of hand-coded robots grey. In the local picture, neighbours standing on a shared cell (known to
the local simulator only through the influence sources) are drawn as hollow circles.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.patches import Circle, Rectangle

from dials_lib.envs.warehouse_map import TABLES
from dials_lib.plots import picture_axes

FLOOR, SHELF, CORNER = 0, 1, 2
_CELL_COLOURS = ListedColormap(["white", "#dcdcdc", "#7f7f7f"])
_AGE_COLOURS = plt.get_cmap("YlOrRd")
LEARNER_COLOUR, RING_COLOUR = "tab:blue", "0.55"


def _age_scale(sim: Any) -> Normalize:
    """Item ages to colours: from 0 to half the episode, older items at the darkest colour."""
    return Normalize(vmin=0, vmax=sim.spec.horizon // 2, clip=True)


def _draw_item(ax: plt.Axes, row: int, col: int, age: int, label: bool, scale: Normalize) -> None:
    colour = _AGE_COLOURS(0.25 + 0.75 * scale(age))  # skip the palest yellows: new items stay visible
    ax.add_patch(Rectangle((col + 0.12, row + 0.12), 0.76, 0.76, color=colour, zorder=2))
    if label:
        ax.text(col + 0.5, row + 0.5, str(age), ha="center", va="center", fontsize=8, zorder=4)


def render_global(gs: Any, ax: plt.Axes | None = None) -> plt.Axes:
    """The whole map: regions, shelves, items by waiting time, learners (blue) and ring robots (grey)."""
    side = gs.map_side
    ax = picture_axes(ax, min(12.0, 0.16 * side + 2))
    rows, cols = np.divmod(np.arange(side * side), side)
    kind = np.where((rows % 4 == 0) & (cols % 4 == 0), CORNER,
                    np.where((rows % 4 == 0) | (cols % 4 == 0), SHELF, FLOOR)).reshape(side, side)
    ax.imshow(kind, cmap=_CELL_COLOURS, vmin=0, vmax=2, extent=(0, side, side, 0), interpolation="nearest")
    ages, scale = gs.item_ages_map(), _age_scale(gs)
    for row, col in zip(*np.nonzero(ages >= 0), strict=True):
        _draw_item(ax, row, col, int(ages[row, col]), label=False, scale=scale)
    for robot, (row, col) in enumerate(gs.robot_positions()):
        colour = LEARNER_COLOUR if robot < gs.n_agents else RING_COLOUR
        ax.add_patch(Circle((col + 0.5, row + 0.5), 0.38, color=colour, zorder=3))
    for line in range(0, side + 1, 4):  # region borders run through the middle of the shared cells
        ax.axhline(line + 0.5, color="0.3", lw=0.6, zorder=1)
        ax.axvline(line + 0.5, color="0.3", lw=0.6, zorder=1)
    ax.set_xlim(0, side)
    ax.set_ylim(side, 0)
    ax.set_title(f"Warehouse GS: {gs.n_agents} learners (blue) in a ring of hand-coded robots, t = {gs.t}")
    return ax


def render_local(ls: Any, region: int = 0, ax: plt.Axes | None = None) -> plt.Axes:
    """One local region: its robot, its 12 shelf cells with items (ages written), neighbours from u."""
    ax = picture_axes(ax, 4.0)
    states = ls.local_states()
    y, x = np.divmod(np.arange(25), 5)
    kind = np.where((y % 4 == 0) & (x % 4 == 0), CORNER, np.where((y % 4 == 0) | (x % 4 == 0), SHELF, FLOOR))
    ax.imshow(kind.reshape(5, 5), cmap=_CELL_COLOURS, vmin=0, vmax=2, extent=(0, 5, 5, 0), interpolation="nearest")
    shelf_rows, shelf_cols = np.divmod(TABLES["shelf_cells"], 5)
    scale = _age_scale(ls)
    for k in np.flatnonzero(states["items"][region]):
        _draw_item(ax, shelf_rows[k], shelf_cols[k], int(states["ages"][region, k]), label=True, scale=scale)
    for side, where in enumerate(ls.u[region]):
        if where < 3:
            cell = TABLES["shelf_cells"][3 * side + where]
            ax.add_patch(Circle((cell % 5 + 0.5, cell // 5 + 0.5), 0.38, fill=False, lw=2, ec=RING_COLOUR, zorder=3))
    row, col = divmod(int(states["cell"][region]), 5)
    ax.add_patch(Circle((col + 0.5, row + 0.5), 0.38, color=LEARNER_COLOUR, zorder=3))
    ax.set_xlim(0, 5)
    ax.set_ylim(5, 0)
    ax.set_title(f"Warehouse LS, region {region}, t = {ls.t}")
    return ax

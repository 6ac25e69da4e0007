"""The warehouse's map, seen from one region: its 5 x 5 cells, its 12 shelf cells and the moves between them.

The warehouse (`warehouse`) and its pictures (`warehouse_render`) share what is here.

A region's cells are numbered `cell = 5 * y + x` (y down, x right, both 0..4). Its 12 shelf cells are the
non-corner border cells, in the order north (y=0, x=1..3), south (y=4, x=1..3), west (x=0, y=1..3), east (x=4,
y=1..3); shelf k of side s has index 3 * s + k. Neighbouring regions share their border row or column, and the
shared side has the same k in both regions (our north k is the northern neighbour's south k).

Moves (0 up, 1 down, 2 left, 3 right): from an interior cell (1..3, 1..3) every move is allowed; a shelf cell is a
dead end, left only by the move back to the interior cell next to it; any other action keeps the robot where it
is. Every rule the simulators apply per step is a lookup in `TABLES`, built here once.
"""

from __future__ import annotations

import numpy as np

N_SHELVES = 12
"""Shelf cells of a region: its non-corner border cells."""
N_CELLS = 25
"""Cells of a region (5 x 5)."""
CENTRE = 12
"""The region's centre cell, where its robot starts."""
NO_NEIGHBOUR_ON_SIDE = 3
"""The influence class of a side whose neighbour stands on none of the 3 cells it shares with us."""
ACTION_NAMES = ("up", "down", "left", "right")
"""The robots' actions 0..3."""
_DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (dy, dx) of up, down, left, right
_OPPOSITE_SIDE = (1, 0, 3, 2)  # the neighbour's side facing us, for our sides N, S, W, E


def _shelf_yx(shelf: int) -> tuple[int, int]:
    side, k = divmod(shelf, 3)
    return [(0, 1 + k), (4, 1 + k), (1 + k, 0), (1 + k, 4)][side]


def _interior(y: int, x: int) -> bool:
    return 1 <= y <= 3 and 1 <= x <= 3


def _build_tables() -> dict[str, np.ndarray]:
    """Lookup tables over the 25 cells of a region, so that every per-step rule is one array index."""
    shelf_cells = np.array([5 * y + x for y, x in map(_shelf_yx, range(N_SHELVES))])
    cell_shelf = np.full(N_CELLS, N_SHELVES)  # N_SHELVES = "not a shelf cell" (a dummy slot)
    cell_shelf[shelf_cells] = np.arange(N_SHELVES)
    move = np.empty((N_CELLS, 4), dtype=np.int64)
    back_home = np.full(N_CELLS, -1)  # the one action that leaves a shelf cell
    for cell in range(N_CELLS):
        y, x = divmod(cell, 5)
        for action, (dy, dx) in enumerate(_DELTAS):
            ny, nx = y + dy, x + dx
            allowed = (_interior(y, x) or _interior(ny, nx)) and 0 <= ny <= 4 and 0 <= nx <= 4
            move[cell, action] = 5 * ny + nx if allowed else cell
            if allowed and not _interior(y, x):
                back_home[cell] = action
    # toward[cell, goal]: hand-coded move from `cell` to interior `goal` (rows first); -1 when already there.
    toward = np.full((N_CELLS, N_CELLS), -1, dtype=np.int64)
    for cell in range(N_CELLS):
        y, x = divmod(cell, 5)
        for goal in range(N_CELLS):
            gy, gx = divmod(goal, 5)
            if not _interior(y, x):
                toward[cell, goal] = back_home[cell]
            elif (y, x) != (gy, gx):
                toward[cell, goal] = 0 if gy < y else 1 if gy > y else 2 if gx < x else 3
    approach = np.empty(N_SHELVES, dtype=np.int64)  # the interior cell in front of each shelf cell
    enter = np.empty(N_SHELVES, dtype=np.int64)  # the action stepping from there onto the shelf cell
    for shelf in range(N_SHELVES):
        side = shelf // 3
        y, x = _shelf_yx(shelf)
        dy, dx = _DELTAS[side]
        approach[shelf] = 5 * (y - dy) + (x - dx)
        enter[shelf] = side
    # facing[s, cell]: influence class of a neighbour on our side s standing on its own `cell`.
    facing = np.full((4, N_CELLS), NO_NEIGHBOUR_ON_SIDE, dtype=np.int64)
    for side in range(4):
        for k in range(3):
            facing[side, shelf_cells[3 * _OPPOSITE_SIDE[side] + k]] = k
    # hand[cell, target]: the hand-coded action heading for shelf `target` (12: no item, go to the centre).
    hand = np.empty((N_CELLS, N_SHELVES + 1), dtype=np.int64)
    for target in range(N_SHELVES + 1):
        goal, step_in = (approach[target], enter[target]) if target < N_SHELVES else (CENTRE, 0)
        hand[:, target] = np.where(toward[:, goal] < 0, step_in, toward[:, goal])
    # neighbour_shelf[s, u]: our shelf index a neighbour with influence class u on side s stands on (12: none).
    neighbour_shelf = np.full((4, 4), N_SHELVES, dtype=np.int64)
    neighbour_shelf[:, :3] = 3 * np.arange(4)[:, None] + np.arange(3)
    return {"shelf_cells": shelf_cells, "cell_shelf": cell_shelf, "move": move, "hand": hand,
            "approach": approach, "enter": enter, "facing": facing, "neighbour_shelf": neighbour_shelf}


TABLES = _build_tables()
"""The region's lookup tables (`_build_tables`): shelf cells, moves, hand-coded moves, influence classes."""


__all__ = ["ACTION_NAMES", "CENTRE", "NO_NEIGHBOUR_ON_SIDE", "N_CELLS", "N_SHELVES", "TABLES"]

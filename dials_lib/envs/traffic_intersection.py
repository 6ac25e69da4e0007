"""One intersection of the traffic grid: its 4 incoming lanes of 10 cells, and its light.

The cell grid (`traffic`), its SUMO twin (`sumo_traffic`) and the pictures (`traffic_render`) share what is here.

Lanes. An intersection has one incoming lane per side, numbered by the side it comes from: 0 = from the north
(southbound), 1 = from the south (northbound), 2 = from the east (westbound), 3 = from the west (eastbound). Lanes 0
and 1 form the NS axis, lanes 2 and 3 the EW axis. A lane is 100 m = 10 cells of 10 m, numbered 0 (stop line) to 9
(entry).

Light. Four phases: 0 green NS, 1 yellow NS->EW, 2 green EW, 3 yellow EW->NS. The action is 1 (switch) or 0
(keep): in green, a switch starts 3 yellow steps, after which the other axis has green; during yellow the action is
ignored. The timer counts the steps spent in the current phase, this one included. Inside the simulators the light
is one of 8 states, so that a step updates it with one table lookup: 0 green NS, 1..3 the 1st..3rd yellow step
NS->EW, 4 green EW, 5..7 the 1st..3rd yellow step EW->NS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

N_LANES = 4
"""Incoming lanes of an intersection (one per side)."""
N_CELLS = 10
"""Cells of a lane (10 m each)."""
ENTRY_CELL = N_CELLS - 1
"""The cell where a car enters a lane."""
YELLOW_STEPS = 3
"""Steps of yellow between two greens."""

LANE_GREEN_PHASE = np.array([0, 0, 2, 2], dtype=np.int64)
"""Phase in which each incoming lane has green: lanes 0, 1 (NS) in phase 0; lanes 2, 3 (EW) in phase 2."""
LANE_DIRECTION = np.array([[1, 0], [-1, 0], [0, -1], [0, 1]], dtype=np.int64)
"""Row and column step of the direction each incoming lane travels in."""

PHASE_ONE_HOT = np.eye(4, dtype=np.float32)
"""One-hot of each phase (the last 4 values of an observation)."""
PHASE_OF_LIGHT = np.array([0, 1, 1, 1, 2, 3, 3, 3], dtype=np.int64)
"""The phase of each of the 8 light states."""
_LIGHT_AFTER = np.array([[0, 1], [2, 2], [3, 3], [4, 4], [4, 5], [6, 6], [7, 7], [0, 0]], dtype=np.int64)
NEXT_LIGHT = _LIGHT_AFTER.ravel()
"""The light state after an action, indexed by 2 * light + action."""
# The timer restarts when the phase changes (a yellow step that follows another keeps counting).
TIMER_KEEPS = (PHASE_OF_LIGHT[NEXT_LIGHT] == PHASE_OF_LIGHT[np.arange(16) // 2]).astype(np.int64)
ONE_HOT_OF_LIGHT = PHASE_ONE_HOT[PHASE_OF_LIGHT]  # [8, 4]


def check_actions(actions: Any, n: int) -> np.ndarray:
    """`actions` as an integer array of shape (n,) of 0 (keep) and 1 (switch); a ValueError saying what is wrong
    otherwise."""
    actions = np.asarray(actions)
    if actions.shape != (n,) or actions.dtype.kind not in "iu":
        raise ValueError(f"actions must be an integer array of shape ({n},); got {actions.dtype} {actions.shape}")
    if np.count_nonzero(actions & -2):  # any bit other than the lowest: not 0 or 1 (negatives included)
        raise ValueError(f"actions must be 0 (keep) or 1 (switch); got values in [{actions.min()}, {actions.max()}]")
    return actions


def light_of(phase: np.ndarray, timer: np.ndarray) -> np.ndarray:
    """Light states from phases and timers (a yellow timer counts the yellow steps so far, 1..3)."""
    return np.where(phase & 1, phase // 2 * 4 + timer, phase * 2)


def advance_light(light: np.ndarray, timer: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The light and its timer after this step's action (actions 0 or 1, as `check_actions` returns them)."""
    key = (light << 1) | actions
    return NEXT_LIGHT.take(key), timer * TIMER_KEEPS.take(key) + 1


__all__ = ["ENTRY_CELL", "LANE_DIRECTION", "LANE_GREEN_PHASE", "NEXT_LIGHT", "N_CELLS", "N_LANES", "ONE_HOT_OF_LIGHT",
           "PHASE_OF_LIGHT", "PHASE_ONE_HOT", "TIMER_KEEPS", "YELLOW_STEPS", "advance_light", "check_actions",
           "light_of"]

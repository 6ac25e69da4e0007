"""Warehouse throughput: vectorized GS and batched LS against the per-robot reference, side by side.

Every timed call runs one whole 100-step episode (reset included) with actions drawn beforehand, so only the
simulators are timed. An LS batch of K regions replays the influence sources recorded on a GS with K learners
(drawing its own item spawns, as in training) and is compared with the reference at that same size. The machine
may be shared: every size is timed in ROUNDS alternating rounds (reference, GS, LS) and the fastest round of
each counts, so that a burst of load elsewhere does not land on one side of a ratio only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _common import time_calls

from dials_lib.envs import make_global, make_local
from dials_lib.envs.warehouse import SPEC
from tests.reference_warehouse import ReferenceWarehouse

GS_SIZES = (4, 25, 49, 100)
LS_SIZES = (1, 25, 100)
HORIZON = SPEC.horizon
ROUNDS = 3


def _episode(sim: Any, actions: np.ndarray, u: np.ndarray | None = None) -> Any:
    """A function running one episode of `sim` with the pre-drawn `actions` (and `u` for a local simulator)."""
    def run() -> None:
        sim.reset()
        for t in range(HORIZON):
            if u is None:
                sim.step(actions[t])
            else:
                sim.step(actions[t], u[t])
    return run


def _row(simulator: str, size: int, seconds_per_episode: float, reference_rate: float | None) -> dict[str, Any]:
    steps = HORIZON / seconds_per_episode
    agent_steps = steps * size
    return {
        "env": "warehouse",
        "simulator": simulator,
        "size": size,
        "steps/s": steps,
        "agent-steps/s": agent_steps,
        "us per agent-step": 1e6 / agent_steps,
        "ratio vs reference": agent_steps / reference_rate if reference_rate else 1.0,
    }


def _best_of_rounds(episodes: dict[str, Any], min_seconds: float) -> dict[str, float]:
    """Seconds per episode of each named function: the fastest of ROUNDS interleaved timings."""
    best = dict.fromkeys(episodes, float("inf"))
    for _ in range(ROUNDS):
        for name, episode in episodes.items():
            best[name] = min(best[name], time_calls(episode, min_seconds / ROUNDS, min_calls=2))
    return best


def _recorded_influence(k: int, actions: np.ndarray) -> np.ndarray:
    """The influence sources [HORIZON, k, 4] of one GS episode with k learners under `actions`."""
    gs = make_global("warehouse", n_agents=k, seed=0)
    u = []
    for a in actions:
        gs.step(a)
        u.append(gs.influence_sources())
    return np.stack(u)


def run(quick: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure GS agent-steps/s at 4..100 learners and LS region-steps/s at K = 1, 25, 100; return (rows, goals)."""
    min_seconds = 0.3 if quick else 2.0
    rows: list[dict[str, Any]] = []
    gs_rate: dict[int, float] = {}
    reference_rate: dict[int, float] = {}
    for n in sorted(set(GS_SIZES) | set(LS_SIZES)):
        actions = np.random.default_rng(n).integers(0, 4, (HORIZON, n))
        episodes = {"reference": _episode(ReferenceWarehouse(n, seed=0), actions)}
        if n in GS_SIZES:
            episodes["GS"] = _episode(make_global("warehouse", n_agents=n, seed=0), actions)
        if n in LS_SIZES:
            local = make_local("warehouse", n_regions=n, seed=0)
            episodes["LS"] = _episode(local, actions, _recorded_influence(n, actions))
        seconds = _best_of_rounds(episodes, min_seconds)
        reference_rate[n] = HORIZON * n / seconds["reference"]
        rows.append(_row("per-robot reference", n, seconds["reference"], None))
        if "GS" in seconds:
            rows.append(_row("GS (vectorized)", n, seconds["GS"], reference_rate[n]))
            gs_rate[n] = rows[-1]["agent-steps/s"]
        if "LS" in seconds:
            rows.append(_row("LS batch", n, seconds["LS"], reference_rate[n]))
    order = {"per-robot reference": 0, "GS (vectorized)": 1, "LS batch": 2}
    rows.sort(key=lambda row: (order[row["simulator"]], row["size"]))
    cost_25, cost_100 = 1e6 / gs_rate[25], 1e6 / gs_rate[100]
    ratio_100 = gs_rate[100] / reference_rate[100]
    goals = [
        {"goal": "warehouse GS, N=100: >= 1,000,000 agent-steps/s",
         "measured": f"{gs_rate[100]:,.0f}", "met": gs_rate[100] >= 1e6},
        {"goal": "warehouse GS, N=100: >= 20x the per-robot reference",
         "measured": f"{ratio_100:.1f}x", "met": ratio_100 >= 20},
        {"goal": "warehouse GS: cost per agent-step at N=100 <= at N=25",
         "measured": f"{cost_100:.3f} us vs {cost_25:.3f} us", "met": cost_100 <= cost_25},
    ]
    return rows, goals

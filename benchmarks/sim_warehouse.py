"""Warehouse throughput: vectorized GS and batched LS against the per-robot reference, side by side.

Every timed call runs one whole 100-step episode (reset included) with actions drawn beforehand, so only the
simulators are timed. The ratio of an LS batch of K regions compares its region-steps/s with the reference's
agent-steps/s at the smallest warehouse holding at least K learners (4 for K=1).
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


def run(quick: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure GS agent-steps/s at 4..100 learners and LS region-steps/s at K = 1, 25, 100; return (rows, goals)."""
    min_seconds = 0.3 if quick else 2.0
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    reference_rate: dict[int, float] = {}
    gs_rate: dict[int, float] = {}
    for n in GS_SIZES:
        actions = rng.integers(0, 4, (HORIZON, n))
        ref_seconds = time_calls(_episode(ReferenceWarehouse(n, seed=0), actions), min_seconds, min_calls=1)
        reference_rate[n] = HORIZON * n / ref_seconds
        rows.append(_row("reference (per robot)", n, ref_seconds, None))
        seconds = time_calls(_episode(make_global("warehouse", n_agents=n, seed=0), actions), min_seconds)
        rows.append(_row("GS (vectorized)", n, seconds, reference_rate[n]))
        gs_rate[n] = rows[-1]["agent-steps/s"]
    for k in LS_SIZES:
        actions = rng.integers(0, 4, (HORIZON, k))
        # neighbours on a shared cell about one step in ten, as under hand-coded control
        u = np.where(rng.random((HORIZON, k, 4)) < 0.1, rng.integers(0, 3, (HORIZON, k, 4)), 3)
        seconds = time_calls(_episode(make_local("warehouse", n_regions=k, seed=0), actions, u), min_seconds)
        matching = min(n for n in GS_SIZES if n >= k)
        rows.append(_row(f"LS batch (vs reference at N={matching})", k, seconds, reference_rate[matching]))
    cost_25, cost_100 = 1e6 / gs_rate[25], 1e6 / gs_rate[100]
    ratio_100 = gs_rate[100] / reference_rate[100]
    goals = [
        {"goal": "warehouse GS at N=100: at least 1,000,000 agent-steps/s",
         "measured": f"{gs_rate[100]:,.0f}", "met": gs_rate[100] >= 1e6},
        {"goal": "warehouse GS at N=100: at least 20x the per-robot reference",
         "measured": f"{ratio_100:.1f}x", "met": ratio_100 >= 20},
        {"goal": "warehouse GS: per-agent-step cost at N=100 no higher than at N=25",
         "measured": f"{cost_100:.3f} us vs {cost_25:.3f} us", "met": cost_100 <= cost_25},
    ]
    return rows, goals

"""Traffic simulator throughput: vectorized GS and batched LS against the per-car reference, same process.

Every timing runs whole 300-step episodes (reset included) on action sequences drawn beforehand, so
simulators and reference do exactly the same work. The LS batch replays influence sources recorded on a GS
of the same size, so its traffic is as dense as the real thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _common import time_calls

from dials_lib.envs import make_global, make_local
from dials_lib.envs.traffic import HORIZON
from tests.reference_traffic import ReferenceTraffic

GS_SIZES = (4, 25, 49, 100)
LS_SIZES = (1, 25, 100)


def _episode_actions(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(HORIZON, n))


def _seconds_per_step(run_episode: Any, min_seconds: float) -> float:
    return time_calls(run_episode, min_seconds=min_seconds, min_calls=2) / HORIZON


def _reference_seconds_per_step(n: int, actions: np.ndarray, min_seconds: float) -> float:
    reference = ReferenceTraffic(n, seed=0)

    def episode() -> None:
        reference.reset()
        for a in actions:
            reference.step(a)

    return _seconds_per_step(episode, min_seconds)


def _row(simulator: str, size: int, seconds: float, reference_seconds: float) -> dict[str, Any]:
    return {
        "env": "traffic",
        "simulator": simulator,
        "size": size,
        "steps/s": 1.0 / seconds,
        "agent-steps/s": size / seconds,
        "us per agent-step": 1e6 * seconds / size,
        "ratio vs reference": reference_seconds / seconds,
    }


def run(quick: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure GS agent-steps/s and LS region-steps/s, each against the per-car reference."""
    min_seconds = 0.3 if quick else 2.0
    rows: list[dict[str, Any]] = []
    reference_cost: dict[int, float] = {}
    for n in sorted(set(GS_SIZES) | set(LS_SIZES)):
        reference_cost[n] = _reference_seconds_per_step(n, _episode_actions(n, seed=n), min_seconds)
        rows.append(_row("per-car reference", n, reference_cost[n], reference_cost[n]))

    for n in GS_SIZES:
        gs = make_global("traffic", n_agents=n, seed=0)
        actions = _episode_actions(n, seed=n)

        def gs_episode(gs: Any = gs, actions: np.ndarray = actions) -> None:
            gs.reset()
            for a in actions:
                gs.step(a)

        rows.append(_row("GS (vectorized)", n, _seconds_per_step(gs_episode, min_seconds), reference_cost[n]))

    for k in LS_SIZES:
        actions = _episode_actions(k, seed=k)
        gs = make_global("traffic", n_agents=k, seed=0)
        influences = []
        for a in actions:
            gs.step(a)
            influences.append(gs.influence_sources())
        ls = make_local("traffic", n_regions=k, seed=0)

        def ls_episode(ls: Any = ls, actions: np.ndarray = actions, influences: list = influences) -> None:
            ls.reset()
            for a, u in zip(actions, influences, strict=True):
                ls.step(a, u)

        rows.append(_row("LS batch", k, _seconds_per_step(ls_episode, min_seconds), reference_cost[k]))

    def measured(simulator: str, size: int, key: str) -> float:
        return next(r[key] for r in rows if r["simulator"] == simulator and r["size"] == size)

    gs100 = measured("GS (vectorized)", 100, "agent-steps/s")
    ratio100 = measured("GS (vectorized)", 100, "ratio vs reference")
    cost100 = measured("GS (vectorized)", 100, "us per agent-step")
    cost25 = measured("GS (vectorized)", 25, "us per agent-step")
    goals = [
        {"goal": "traffic GS, N=100: >= 1,000,000 agent-steps/s", "measured": f"{gs100:,.0f}",
         "met": gs100 >= 1e6},
        {"goal": "traffic GS, N=100: >= 20x the per-car reference", "measured": f"{ratio100:.1f}x",
         "met": ratio100 >= 20},
        {"goal": "traffic GS: cost per agent-step at N=100 <= at N=25",
         "measured": f"{cost100:.3f} us vs {cost25:.3f} us", "met": cost100 <= cost25},
    ]
    return rows, goals

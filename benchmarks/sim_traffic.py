"""Traffic simulator throughput: vectorized GS and batched LS against the per-car reference, same process.

Every timing runs whole 300-step episodes (reset included) on action sequences drawn beforehand, so
simulators and reference do exactly the same work. The LS batch replays influence sources recorded on a GS
of the same size, so its traffic is as dense as the real thing. The machine is shared: each simulator is timed
in rounds interleaved with its reference, and the fastest round of each counts (the least disturbed one), so
that a burst of load from elsewhere does not tilt the ratio.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dials_lib.envs import make_global, make_local
from dials_lib.envs.traffic import HORIZON
from tests.reference_traffic import ReferenceTraffic

GS_SIZES = (4, 25, 49, 100)
LS_SIZES = (1, 25, 100)


def _episode_actions(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(HORIZON, n))


def _episode_seconds(run_episode: Any) -> float:
    start = time.perf_counter()
    run_episode()
    return time.perf_counter() - start


def _interleaved_seconds_per_step(simulator: Any, reference: Any, rounds: int) -> tuple[float, float]:
    """Fastest episode of `simulator` and of `reference` over interleaved rounds, per step."""
    simulator()
    reference()  # warm-up
    best_sim = best_ref = float("inf")
    for _ in range(rounds):
        best_ref = min(best_ref, _episode_seconds(reference))
        best_sim = min(best_sim, _episode_seconds(simulator))
    return best_sim / HORIZON, best_ref / HORIZON


def _reference_episode(n: int, actions: np.ndarray) -> Any:
    reference = ReferenceTraffic(n, seed=0)

    def episode() -> None:
        reference.reset()
        for a in actions:
            reference.step(a)

    return episode


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
    rounds = 3 if quick else 15
    rows: list[dict[str, Any]] = []
    reference_rows: dict[int, dict[str, Any]] = {}

    for n in GS_SIZES:
        gs = make_global("traffic", n_agents=n, seed=0)
        actions = _episode_actions(n, seed=n)

        def gs_episode(gs: Any = gs, actions: np.ndarray = actions) -> None:
            gs.reset()
            for a in actions:
                gs.step(a)

        sim_s, ref_s = _interleaved_seconds_per_step(gs_episode, _reference_episode(n, actions), rounds)
        reference_rows[n] = _row("per-car reference", n, ref_s, ref_s)
        rows.append(_row("GS (vectorized)", n, sim_s, ref_s))

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

        sim_s, ref_s = _interleaved_seconds_per_step(ls_episode, _reference_episode(k, actions), rounds)
        reference_rows.setdefault(k, _row("per-car reference", k, ref_s, ref_s))
        rows.append(_row("LS batch", k, sim_s, ref_s))
    rows = [reference_rows[n] for n in sorted(reference_rows)] + rows

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

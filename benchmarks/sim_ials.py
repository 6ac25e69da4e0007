"""IALS throughput: local regions plus AIP inference, against the GS of the same size, same process.

An IALS step reads every region's d-set, runs the AIPs (numpy snapshot of the stacked networks: FNN for
traffic, GRU for the warehouse, the paper's sizes), samples the influence sources and steps the local
simulator. Its cost per region-step is compared with the GS's cost per agent-step at N = K; the goal is at
most 2x. As in the other simulator benchmarks, rounds are interleaved and the fastest round counts.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from dials_lib.envs import get_spec, make_global
from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.learning.ials import untrained_ials

SIZES = (1, 25, 100)
GOAL_RATIO = 2.0


def _seconds_per_step(sim: Any, actions: np.ndarray) -> float:
    start = time.perf_counter()
    sim.reset()
    for a in actions:
        sim.step(a)
    return (time.perf_counter() - start) / len(actions)


def _measure(env: str, k: int, rounds: int) -> dict[str, Any]:
    spec = get_spec(env)
    actions = np.random.default_rng(k).integers(0, spec.n_actions, size=(spec.horizon, k))
    ials = untrained_ials(env, paper_hyperparameters(env).aip, seed=0, agent_ids=range(k))
    gs = make_global(env, n_agents=k, seed=0)
    _seconds_per_step(ials, actions)
    _seconds_per_step(gs, actions)  # warm-up
    best_ials = best_gs = float("inf")
    for _ in range(rounds):
        best_gs = min(best_gs, _seconds_per_step(gs, actions))
        best_ials = min(best_ials, _seconds_per_step(ials, actions))
    return {
        "env": env,
        "simulator": f"IALS ({paper_hyperparameters(env).aip.architecture.upper()} AIP)",
        "size": k,
        "steps/s": 1.0 / best_ials,
        "agent-steps/s": k / best_ials,
        "us per agent-step": 1e6 * best_ials / k,
        "GS us per agent-step (N=K)": 1e6 * best_gs / k,
        "cost vs GS": best_ials / best_gs,
    }


def run(quick: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """IALS region-steps/s at K = 1, 25, 100 for both environments, with the cost relative to the GS."""
    torch.set_num_threads(1)
    rounds = 2 if quick else 7
    rows = [_measure(env, k, rounds) for env in ("traffic", "warehouse") for k in SIZES]
    goals = [
        {"goal": f"{r['env']} IALS, K={r['size']}: cost per agent-step <= {GOAL_RATIO:g}x the GS's (N=K)",
         "measured": f"{r['cost vs GS']:.2f}x", "met": r["cost vs GS"] <= GOAL_RATIO}
        for r in rows
    ]
    return rows, goals

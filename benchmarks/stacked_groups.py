"""Stacked seeds: is one PPO group of 3 seeds' agents cheaper per agent-step than each seed's agents alone?

`plans.run_experiments` trains a GS or untrained-DIALS seed batch in one process, its seeds' agents stacked in one
PPO group: one batched call per step for all of them. Stacking saves Python overhead per call, but the group's
tensors grow with it, and past some size the PPO update costs more per agent (`benchmarks/results/training.md`,
"The PPO update alone": the warehouse's from 12 ms per agent at 25 agents to 15 at 100). This benchmark measures
the whole training loop (acting, the simulator and the update) of one process, one thread, per agent-step, with
1 and with 3 seeds stacked, at 4, 25 and 100 agents per seed, on the GS and on the IALS (untrained AIPs: the cost
of an IALS step does not depend on the AIP's weights). Time is the process's CPU time; the two ways run in `PAIRS`
pairs, alternating which goes first, and a cell's ratio is the median of its pairs' ratios, so that other work on
the machine (a niced training run, say) slows both alike.

Goal: `plans.MAX_STACKED_AGENTS`, the largest group `run_experiments` stacks seeds into, stacks 3 seeds where that
is cheaper per agent-step and splits them only where stacking would save less than `WORTH_STACKING` of the time:
parts of a batch train side by side on the cores, where a stacked batch keeps to one.

    .venv/bin/python benchmarks/stacked_groups.py   # writes benchmarks/results/stacked_groups.json and .md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402
from training import stacked_group  # noqa: E402

from dials_lib.analysis.plans import MAX_STACKED_AGENTS  # noqa: E402
from dials_lib.hyperparameters import paper_hyperparameters  # noqa: E402
from dials_lib.learning.ppo_loop import run_ppo  # noqa: E402
from dials_lib.training.parallel import single_threaded  # noqa: E402

AGENTS_PER_SEED = (4, 25, 100)
"""The preset sizes (a traffic grid of 4, 25 or 100 intersections, as many warehouse robots)."""
STACKED = 3
"""The seeds of a preset's batch."""
UPDATES = 3
"""Timed PPO rollouts and updates per measurement (after one untimed, the warm-up)."""
PAIRS = 3
"""Measurements of each way per cell, in pairs."""
WORTH_STACKING = 0.05
"""The share of the time per agent-step below which a saving does not pay for keeping a batch to one core."""


def cpu_seconds_per_agent_step(env: str, simulator: str, n_agents: int, n_seeds: int) -> float:
    """CPU seconds per agent-step of one process training `n_agents` agents of each of `n_seeds` stacked seeds."""
    hp = paper_hyperparameters(env)
    group, sim = stacked_group(hp, simulator, n_agents, n_seeds)
    steps = UPDATES * hp.ppo.buffer_size
    with single_threaded():
        run_ppo(group, sim, hp.ppo.buffer_size)  # warm-up
        start = time.process_time()
        run_ppo(group, sim, steps)
        return (time.process_time() - start) / (n_agents * n_seeds * steps)


def main() -> None:
    """Measure the grid and write the results."""
    import numpy as np

    rows, goals = [], []
    for env in ("traffic", "warehouse"):
        for simulator in ("gs", "ials"):
            for n_agents in AGENTS_PER_SEED:
                alone, stacked = [], []
                for pair in range(PAIRS):
                    for n_seeds in (1, STACKED) if pair % 2 == 0 else (STACKED, 1):
                        seconds = cpu_seconds_per_agent_step(env, simulator, n_agents, n_seeds)
                        (alone if n_seeds == 1 else stacked).append(seconds)
                ratio = float(np.median(np.array(stacked) / np.array(alone)))
                stacks = n_agents * STACKED <= MAX_STACKED_AGENTS
                row = {"env": env, "simulator": simulator, "agents per seed": n_agents,
                       "us per agent-step, 1 seed": 1e6 * float(np.median(alone)),
                       f"us per agent-step, {STACKED} stacked": 1e6 * float(np.median(stacked)),
                       "stacked / alone (median of pairs)": ratio,
                       "pairs' ratios": ", ".join(f"{s / a:.3f}" for s, a in zip(stacked, alone, strict=True)),
                       "run_experiments stacks them": stacks}
                rows.append(row)
                print(row, flush=True)
                wanted = ratio < 1 if stacks else ratio >= 1 - WORTH_STACKING
                goals.append({"goal": f"{env}, {simulator}, {n_agents} agents per seed: "
                                      + ("stacked, cheaper" if stacks else
                                         f"split, stacking would save under {WORTH_STACKING:.0%}"),
                              "measured": f"stacked / alone {ratio:.3f}", "met": bool(wanted)})
    write_results("stacked_groups", rows, goals,
                  f"Stacked seeds: CPU per agent-step of {STACKED} seeds in one group against one seed alone",
                  notes=__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()

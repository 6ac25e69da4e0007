"""DIALS worker groups: how many stacked agents should one worker task of a DIALS seed batch hold?

A DIALS seed batch trains its seeds stacked: group g of every seed is one worker task, one PPO group on one IALS
batch, and one stacked set of AIPs when they retrain. By default a run splits its agents into `n_workers` groups,
so 3 seeds of 100 agents on 2 workers make tasks of 150 stacked agents. The seed-stacking benchmark
(`stacked_groups.md`) found the IALS loop dearer per agent-step with 300 stacked agents than with 100, and cheaper
with 12 than with 4: the cost per agent has a lowest point in between. This benchmark draws that curve for the
two parts of a DIALS batch that run in its worker tasks, at 3 seeds stacked and the group sizes a 25- or 100-agent
run can be split into:

- the agents' training: the PPO loop on the IALS (acting, the IALS with its AIP forward pass, the update), CPU
  seconds per agent-step (untrained AIPs: the cost of a step does not depend on their weights);
- the AIPs' training: CPU seconds per agent and epoch over `AIP_EPISODES` episodes of random data of the shapes of
  a GS data set (the cost of an epoch does not depend on the values).

The layouts of one size are built once and then timed in `ROUNDS` interleaved rounds: each round runs one PPO
rollout and update (and one AIP epoch) of every layout, in a rotating order, so that other work on the machine (a
niced training run, whose phases last minutes) slows them alike. A layout's ratio to the default split over 2
workers (13 and 12 agents per seed at 25 agents, 50 at 100) is the median of the rounds' ratios, and its cost for a
whole batch weighs the two parts by their shares of the scale preset's 100-agent DIALS batches (`agent_share`:
their runtime records).

Goal: `plans.dials_agents_per_worker`, the grouping `run_experiments` gives a DIALS batch, costs at most
`WITHIN` more than the cheapest layout measured, at 25 and at 100 agents per seed.

    .venv/bin/python benchmarks/dials_groups.py   # writes benchmarks/results/dials_groups.json and .md
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, write_results  # noqa: E402
from training import stacked_group  # noqa: E402

from dials_lib.analysis.plans import dials_agents_per_worker  # noqa: E402
from dials_lib.envs import get_spec  # noqa: E402
from dials_lib.files import read_json  # noqa: E402
from dials_lib.hyperparameters import paper_hyperparameters  # noqa: E402
from dials_lib.learning.influence import InfluenceData, train_predictor  # noqa: E402
from dials_lib.learning.ppo_loop import run_ppo  # noqa: E402
from dials_lib.training import group_tasks  # noqa: E402
from dials_lib.training.parallel import single_threaded  # noqa: E402
from dials_lib.training.run_config import default_groups  # noqa: E402
from dials_lib.training.run_stack import RunStack  # noqa: E402

SEEDS = 3
"""The seeds of a preset's batch."""
LAYOUTS = {25: (5, 13, 25), 100: (10, 20, 25, 50)}
"""Agents per seed -> the per-seed group sizes measured: every split into equal groups of at least two, 25 at 25
agents (one task, as on one worker) and the default split over 2 workers (13 stands for its 13 and 12)."""
ROUNDS = 9
"""Interleaved rounds of timing (after one untimed, the warm-up)."""
AIP_EPISODES = 4
"""GS episodes in the AIPs' random data set (the paper's 1e4 steps are 100 warehouse or 10 traffic episodes: the cost
per epoch grows in proportion)."""
WITHIN = 0.05
"""How much dearer than the cheapest measured layout the chosen one may be."""


def agents_training(env: str, group_size: int) -> tuple[Callable[[], None], int]:
    """One PPO rollout and update on the IALS of `group_size` agents per seed, SEEDS seeds stacked (untrained AIPs),
    as a call, and the agent-steps it makes."""
    hp = paper_hyperparameters(env)
    group, sim = stacked_group(hp, "ials", group_size, SEEDS)
    return (lambda: run_ppo(group, sim, hp.ppo.buffer_size)), group_size * SEEDS * hp.ppo.buffer_size


def aip_training(env: str, group_size: int) -> tuple[Callable[[], None], int]:
    """One epoch of training the stacked AIPs of `group_size` agents per seed, SEEDS seeds, on AIP_EPISODES episodes
    of random data, as a call, and the AIPs it trains."""
    hp = paper_hyperparameters(env)
    spec = get_spec(env)
    ids, runs = list(range(group_size)), RunStack(tuple(range(SEEDS)))
    predictor = group_tasks.new_predictors(hp, ids, runs)
    rng = np.random.default_rng(0)
    shape = (group_size * SEEDS, AIP_EPISODES, spec.horizon)
    data = InfluenceData(rng.integers(0, 2, (*shape, spec.dset_dim), dtype=np.uint8),
                         np.stack([rng.integers(0, size, shape, dtype=np.int8) for size in spec.source_sizes], -1),
                         rng.integers(0, spec.n_actions, shape), rng.random(shape, dtype=np.float32))
    stacked_ids, seeds = runs.agents(ids)
    one_epoch = dataclasses.replace(hp.aip, epochs=1)
    rounds = iter(range(10**9))  # a fresh minibatch order every call, as every epoch of a training has
    return (lambda: train_predictor(predictor, data, one_epoch, seeds, stacked_ids, round_index=next(rounds))), \
        group_size * SEEDS


def interleaved(calls: dict[int, tuple[Callable[[], None], int]]) -> dict[int, np.ndarray]:
    """CPU seconds per unit (agent-step, or AIP) of each call, per round: ROUNDS rounds, each calling every one once
    in a rotating order, after one untimed round."""
    sizes = list(calls)
    seconds = {size: [] for size in sizes}
    with single_threaded():
        for size in sizes:
            calls[size][0]()  # warm-up
        for r in range(ROUNDS):
            for size in sizes[r % len(sizes):] + sizes[: r % len(sizes)]:
                call, units = calls[size]
                start = time.process_time()
                call()
                seconds[size].append((time.process_time() - start) / units)
    return {size: np.array(values) for size, values in seconds.items()}


def agent_share(env: str) -> float:
    """The agents' training's share of the worker time of the scale preset's 100-agent DIALS batch (the rest: the
    AIPs' training; both phases keep every worker busy), from its first run's committed runtime record."""
    path = next((REPO_ROOT / "records" / "scale").glob(f"{env}_n100_dials_*_seed0")) / "runtime.json"
    runtime = read_json(path)
    return runtime["agents_training_s"] / (runtime["agents_training_s"] + runtime["aip_training_s"])


def main() -> None:
    """Measure every layout and write the results."""
    rows, goals = [], []
    for env in ("traffic", "warehouse"):
        share = agent_share(env)
        for n_agents, sizes in LAYOUTS.items():
            reference = len(default_groups(n_agents, 2)[0])
            chosen = dials_agents_per_worker(n_agents, SEEDS, n_workers=2) or reference
            steps = interleaved({size: agents_training(env, size) for size in sizes})
            epochs = interleaved({size: aip_training(env, size) for size in sizes})
            cells = []
            for size in sizes:
                step_ratios, epoch_ratios = steps[size] / steps[reference], epochs[size] / epochs[reference]
                step_ratio, epoch_ratio = float(np.median(step_ratios)), float(np.median(epoch_ratios))
                cells.append({"env": env, "agents per seed": n_agents, "agents per group, per seed": size,
                              "stacked agents per task": size * SEEDS,
                              "us per agent-step": 1e6 * float(np.median(steps[size])),
                              "agent-step vs default": step_ratio,
                              "rounds' ratios (agents), quartiles": _quartiles(step_ratios),
                              "ms per AIP-epoch": 1e3 * float(np.median(epochs[size])),
                              "AIP epoch vs default": epoch_ratio,
                              "rounds' ratios (AIPs), quartiles": _quartiles(epoch_ratios),
                              "batch vs default": share * step_ratio + (1 - share) * epoch_ratio,
                              "run_experiments picks it": size == chosen})
                print(cells[-1], flush=True)
            best = min(cells, key=lambda c: c["batch vs default"])
            picked = next(c for c in cells if c["run_experiments picks it"])
            cost = picked["batch vs default"] / best["batch vs default"]
            goals.append({"goal": f"{env}, {n_agents} agents per seed: the chosen groups within {WITHIN:.0%} of the "
                                  "cheapest measured",
                          "measured": f"{picked['agents per group, per seed']} per seed: x{cost:.3f} the cheapest "
                                      f"({best['agents per group, per seed']} per seed), "
                                      f"x{picked['batch vs default']:.3f} the default split",
                          "met": bool(cost <= 1 + WITHIN)})
            rows += cells
    write_results("dials_groups", rows, goals,
                  f"DIALS worker groups: CPU per agent-step and per AIP epoch by group size, {SEEDS} seeds stacked",
                  notes="\n\n".join(__doc__.split("\n\n")[1:4]))


def _quartiles(values: np.ndarray) -> str:
    """The lower and upper quartile, as text."""
    return f"{np.quantile(values, 0.25):.3f} - {np.quantile(values, 0.75):.3f}"


if __name__ == "__main__":
    main()

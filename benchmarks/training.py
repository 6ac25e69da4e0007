"""Training benchmark: DIALS against GS training for the same agent-step budget, traffic and warehouse, N = 4, 25, 100.

For every environment and size it runs, each in a fresh Python process (so memory readings start clean):
- GS training (one PPOGroup of all agents on the global simulator, in the main process);
- DIALS with 1 worker and with 2 workers, the same agent groups (so the same work, only spread differently). Under
  loky, 2 workers are the main process and one worker process: the main process runs tasks too.
It reports wall time, agents-training throughput (agent-steps/s), the runtime breakdown (agents training vs data
collection + AIP training vs evaluation), the peak resident memory of the main process and of each worker and the
total, and the speed-up of 2 workers over 1 in agents training (the parallel part of DIALS). "worker core share" is
the CPU time of the worker tasks over their wall time: about 1 when each worker had a core to itself, lower when
other processes on the machine took CPU from them (the load average is recorded too), which caps the speed-up.

Budgets are reduced so the default run takes about 15 minutes on 2 cores: few steps per agent in two chunks
(`scaling.MEASURED_CHUNKS`: DIALS retrains its AIPs at the start and again after the first chunk, when
the main process holds every agent's Adam moments, as in a long run), AIP data sets of `DATASET_STEPS` GS steps (the
paper's 1e4) but `AIP_EPOCHS` training epochs instead of 100/300, and one evaluation episode at every boundary.
Throughput and memory are what is measured here, not learning. Every row, and every row of the stacked-seeds table
below, also says how close its training runs to the machine's limit (`benchmarks/compute.py`, measured at the end):
the networks' FLOPs per agent-step, the GFLOP/s of the PPO update of a group of the row's size and of the row's
agents training per core, each also as a share of one core's matrix-multiply peak, measured beside them.
Goals (2 cores): 2 workers at least 1.6x one worker in agents training (at N = 4 and 100, where the groups split
evenly over the two workers; N = 25 is split into 5 groups of 5, at best 5/3 = 1.67x); DIALS total peak memory at
N = 100 under 1.5 GB = 1,431 MiB (the paper needed 22.9 GB with one process per agent). The total is reported two
ways: the peak of the main process and its workers together ("simultaneous", sampled every 0.1 s) and the sum of
each process's own peak (an upper bound: the main process and the workers peak at different moments); each as PSS
(shared library pages split among processes: their joint footprint) and as RSS (shared pages counted once per
process: an overstatement).

    .venv/bin/python benchmarks/training.py           # writes benchmarks/results/training.json and .md
    .venv/bin/python benchmarks/training.py --quick   # N = 4 and 25 only
    .venv/bin/python benchmarks/training.py --rounds 2  # retry a size whose 2-worker run was starved of CPU
    .venv/bin/python benchmarks/training.py --experiment  # the whole-experiment tables only (training_experiment.*)

Whole experiment (`--experiment`, written to benchmarks/results/training_experiment.json and .md): the quick
preset's 4-agent comparison (GS, DIALS and untrained-DIALS, 3 seeds each: 9 runs) of each environment, run the old
way (one run after another, each DIALS run on its 2 workers) and the new way (`plans.run_experiments`: the 3 seeds
of a simulator stacked in one process, the 3 seed batches spread over the cores), both at 30,720 steps per agent
(`--experiment-steps`); wall time, machine-wide agent-steps/s and the speed-up, and a check that both ways give the
same metrics. Goals on 2 cores: traffic at least 4x, warehouse at least 2.5x the old way. Then agent-steps/s of one
process (one core) training 4 agents per seed with 1, 3 and 8 seeds stacked, on the GS and on the IALS.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402
from compute import (  # noqa: E402
    COMPUTE_NOTES,
    STACKED_NOTES,
    STACKED_TITLE,
    ComputeMeter,
    add_grid_columns,
    add_stacked_columns,
)

from dials_lib.analysis import plans, scaling  # noqa: E402
from dials_lib.hyperparameters import EnvHyperparameters  # noqa: E402
from dials_lib.learning.ppo import PPOGroup  # noqa: E402
from dials_lib.learning.ppo_loop import run_ppo  # noqa: E402
from dials_lib.presets import get_preset  # noqa: E402
from dials_lib.training import group_tasks  # noqa: E402
from dials_lib.training.memory import MB  # noqa: E402
from dials_lib.training.parallel import single_threaded  # noqa: E402
from dials_lib.training.run_stack import RunStack  # noqa: E402
from dials_lib.training.runner import train  # noqa: E402

SIZES = (4, 25, 100)
STEPS_PER_AGENT = {"traffic": {4: 5120, 25: 2560, 100: 1280}, "warehouse": {4: 2560, 25: 1280, 100: 1280}}
"""Steps per agent by environment and size (in two chunks): the same budget for GS and DIALS."""
DATASET_STEPS = 10_000
GOAL_BYTES = 1.5e9
"""The issue's memory goal, 1.5 GB (decimal: 1,431 MiB)."""
AIP_EPOCHS = 1
TITLE = "Training: DIALS vs GS, same agent-step budget (reduced budgets: see benchmarks/training.py)"
COLUMNS = {"env": "env", "n_agents": "agents", "simulator": "simulator", "workers": "workers",
           "steps_per_agent": "steps per agent", "wall_s": "wall s", "agents_training_s": "agents training s",
           "agent_steps_per_s": "agent-steps/s (training)", "evaluation_s": "evaluation s",
           "worker_core_share": "worker core share", "main_peak_rss_mib": "main peak RSS MiB",
           "max_worker_peak_rss_mib": "max worker peak RSS MiB",
           "simultaneous_peak_rss_mib": "simultaneous peak RSS MiB",
           "simultaneous_peak_pss_mib": "simultaneous peak PSS MiB", "total_peak_rss_mib": "sum of peaks RSS MiB",
           "total_peak_pss_mib": "sum of peaks PSS MiB", "load_avg": "load avg"}
"""Columns of the results table, from the fields of `dials_lib.analysis.scaling.measure`."""


def measure(env: str, n_agents: int, simulator: str, workers: int) -> dict[str, Any]:
    """One timed run in a fresh Python process (`dials_lib.analysis.scaling.measure` on this benchmark's budget).

    Agents are grouped one grid row per worker task (`dials_lib.analysis.scaling.agents_per_worker`: 2, 5, 10)."""
    row = scaling.measure(env, n_agents, simulator, workers, "quick", steps=STEPS_PER_AGENT[env][n_agents],
                          aip_epochs=AIP_EPOCHS, dataset_steps=DATASET_STEPS)
    out = {}
    for field, name in COLUMNS.items():
        out[name] = row[field]
        if field == "agent_steps_per_s":  # the table's order: throughput, then the influence part
            out["data + AIP s"] = row["data_collection_s"] + row["aip_training_s"]
    return out


EXPERIMENT_STEPS = 30_720
"""Steps per agent of each whole-experiment run: about 5 minutes (traffic) and 15 (warehouse) for both ways on 2 cores,
the budget of the committed table (the quick preset's own 1,056,000 steps would take hours)."""


def whole_experiment(env: str, folder: Path, total_timesteps: int | None) -> list[dict[str, Any]]:
    """The quick 4-agent comparison of `env` the old way and the new way (run directories under `folder`)."""
    def plan(way: str) -> list[Any]:
        configs = []
        for config in plans.comparison_configs("quick", env):
            if total_timesteps is not None:
                config = dataclasses.replace(config, total_timesteps=total_timesteps, eval_every=None)
            configs.append(dataclasses.replace(config, run_dir=str(folder / way / config.name())))
        return configs

    old, new = plan("old"), plan("new")
    start = time.perf_counter()
    for config in old:  # one run after another
        train(config, progress=False)
    old_s = time.perf_counter() - start
    start = time.perf_counter()
    frame = plans.run_experiments(new, progress=False, log=None)
    new_s = time.perf_counter() - start
    old_frame = plans.run_experiments(old, progress=False, log=None)  # finished: read back
    drop = ["wall_time_s", "run_dir"]
    same = frame.drop(columns=drop).equals(old_frame.drop(columns=drop))
    agent_steps = sum(c.n_agents * c.total_timesteps for c in new)
    return [{"env": env, "way": way, "runs": len(new), "steps per agent": new[0].total_timesteps,
             "agent-steps": agent_steps, "wall s": seconds, "agent-steps/s (machine)": agent_steps / seconds,
             "speed-up": old_s / seconds, "same metrics": same}
            for way, seconds in (("old: one run after another", old_s),
                                 ("new: seeds stacked, batches over the cores", new_s))]


def stacked_group(hp: EnvHyperparameters, simulator: str, n_agents: int, n_seeds: int) -> tuple[PPOGroup, Any]:
    """One process's stacked PPO group of `n_agents` agents of each of `n_seeds` seeds, and the simulator it trains
    on: the GS ('gs') or the IALS ('ials', with untrained AIPs: the cost of a step does not depend on their weights)."""
    ids, runs = list(range(n_agents)), RunStack(tuple(range(n_seeds)))
    group = group_tasks.new_learners(hp, ids, runs, hp.total_timesteps)
    if simulator == "gs":
        on: Any = group_tasks.OnGlobal(runs)
    else:
        on = group_tasks.OnIALS(group_tasks.new_predictors(hp, ids, runs).state_dict(), runs)
    return group, on.build(hp, ids, runs)


def stacked_throughput(env: str, simulator: str, n_seeds: int, n_steps: int) -> dict[str, Any]:
    """Agent-steps/s of one process training 4 agents per seed, `n_seeds` seeds stacked, on the GS or the IALS."""
    hp = get_preset("quick").hyperparameters(env)
    group, sim = stacked_group(hp, simulator, 4, n_seeds)
    with single_threaded():
        run_ppo(group, sim, hp.ppo.buffer_size)  # warm-up
        start = time.perf_counter()
        run_ppo(group, sim, n_steps)
        seconds = time.perf_counter() - start
    return {"env": env, "simulator": simulator, "stacked seeds": n_seeds, "agents in the group": 4 * n_seeds,
            "agent-steps/s per core": 4 * n_seeds * n_steps / seconds}


def experiment_main(total_timesteps: int | None) -> None:
    """The whole-experiment tables (training_experiment.json and .md)."""
    import tempfile

    rows: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    for env in ("traffic", "warehouse"):
        for n_seeds in (1, 3, 8):
            for simulator in ("gs", "ials"):
                row = stacked_throughput(env, simulator, n_seeds, 20 * 128)
                rows.append(row)
                print(row, flush=True)
    per_core = rows
    rows = []
    for env, goal in (("traffic", 4.0), ("warehouse", 2.5)):
        with tempfile.TemporaryDirectory() as folder:
            pair = whole_experiment(env, Path(folder), total_timesteps)
        for row in pair:
            print(row, flush=True)
        rows += pair
        goals.append({"goal": f"{env}: quick 4-agent comparison at least {goal}x faster than one run after another",
                      "measured": f"{pair[1]['speed-up']:.2f}x", "met": pair[1]["speed-up"] >= goal})
        goals.append({"goal": f"{env}: both ways give the same metrics", "measured": str(pair[1]["same metrics"]),
                      "met": bool(pair[1]["same metrics"])})
    meter = ComputeMeter()
    add_stacked_columns(per_core, meter)
    write_results("training_experiment", rows, goals,
                  "Training: whole experiments, one run after another vs seeds stacked and batches over the cores",
                  {STACKED_TITLE: per_core, **meter.tables()}, notes=STACKED_NOTES)


def main() -> None:
    """Run the grid and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="sizes 4 and 25 only")
    parser.add_argument("--experiment", action="store_true", help="the whole-experiment tables only")
    parser.add_argument("--experiment-steps", type=int, default=EXPERIMENT_STEPS,
                        help=f"steps per agent of the whole-experiment runs (default {EXPERIMENT_STEPS:,}; the "
                        "quick preset's full budget takes hours)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="up to this many (1 worker, 2 workers) rounds per size, stopping at the first whose "
                        "2-worker run had 0.9 of a core per worker; the round with the largest core share counts")
    args = parser.parse_args()
    if args.experiment:
        experiment_main(args.experiment_steps)
        return
    sizes = SIZES[:2] if args.quick else SIZES
    rows: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    for env in ("traffic", "warehouse"):
        for n in sizes:
            gs = measure(env, n, "gs", 1)
            rounds = []
            for _ in range(args.rounds):
                rounds.append((measure(env, n, "dials", 1), measure(env, n, "dials", 2)))
                if rounds[-1][1]["worker core share"] >= 0.9:
                    break
            one, two = max(rounds, key=lambda pair: pair[1]["worker core share"])
            speedup = one["agents training s"] / two["agents training s"]
            for row in (gs, one, two):
                row["speed-up 2 vs 1 workers"] = speedup if row is two else float("nan")
                rows.append(row)
                print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
            if n in (4, 100):
                goals.append({"goal": f"{env} N={n}: 2 workers >= 1.6x one worker (agents training)",
                              "measured": f"{speedup:.2f}x", "met": speedup >= 1.6})
            if n == 100:
                for total in ("simultaneous peak", "sum of peaks"):
                    for kind in ("PSS", "RSS"):
                        used = two[f"{total} {kind} MiB"] * MB  # bytes
                        goals.append({"goal": f"{env} N=100, 2 workers: DIALS total memory < 1.5 GB ({total}, {kind})",
                                      "measured": f"{used / 1e9:.2f} GB", "met": used < GOAL_BYTES})
    meter = ComputeMeter()
    add_grid_columns(rows, meter)
    write_results("training", rows, goals, TITLE, meter.tables(), notes=COMPUTE_NOTES)


if __name__ == "__main__":
    main()

"""Training benchmark: DIALS against GS training for the same agent-step budget, traffic and warehouse, N = 4, 25, 100.

For every environment and size it runs, each in a fresh Python process (so memory readings start clean):
- GS training (one PPOGroup of all agents on the global simulator, in the main process);
- DIALS with 1 worker and with 2 workers, the same agent groups (so the same work, only spread differently).
It reports wall time, agents-training throughput (agent-steps/s), the runtime breakdown (agents training vs data
collection + AIP training vs evaluation), the peak resident memory of the main process and of each worker and the
total, and the speed-up of 2 workers over 1 in agents training (the parallel part of DIALS). "worker core share" is
the CPU time of the worker tasks over their wall time: about 1 when each worker had a core to itself, lower when
other processes on the machine took CPU from them (the load average is recorded too), which caps the speed-up.

Budgets are reduced so the default run takes about 10 minutes on 2 cores: few steps per agent, one chunk, AIP data
sets of `DATASET_STEPS` GS steps (the paper's 1e4) but `AIP_EPOCHS` training epochs instead of 100/300, and one
evaluation episode at the start and the end. Throughput and memory are what is measured here, not learning.
Goals (2 cores): 2 workers at least 1.6x one worker in agents training (at N = 4 and 100, where the groups split
evenly over the two workers; N = 25 is split into 5 groups of 5, at best 5/3 = 1.67x); DIALS total peak memory at
N = 100 under 1.5 GiB (the paper needed 22.9 GB with one process per agent), reported as the sum of the processes'
PSS (shared library pages split among processes: their joint footprint) and of their RSS (shared pages counted
once per process: an overstatement).

    .venv/bin/python benchmarks/training.py           # writes benchmarks/results/training.json and .md
    .venv/bin/python benchmarks/training.py --quick   # N = 4 and 25 only
    .venv/bin/python benchmarks/training.py --rounds 2  # retry a size whose 2-worker run was starved of CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, write_results  # noqa: E402

SIZES = (4, 25, 100)
STEPS_PER_AGENT = {"traffic": {4: 5120, 25: 2560, 100: 1280}, "warehouse": {4: 2560, 25: 1280, 100: 1280}}
"""Steps per agent by environment and size (one chunk each): the same budget for GS and DIALS."""
AGENTS_PER_WORKER = {4: 2, 25: 5, 100: 10}
"""Agents per worker task: N = 100 runs 10 tasks of 10 (smaller tasks hold less AIP-training memory per worker)."""
DATASET_STEPS = 10_000
AIP_EPOCHS = 1


def run_one(env: str, n_agents: int, simulator: str, workers: int) -> dict[str, Any]:
    """One training run in this process; returns its measurements (called in a fresh subprocess)."""
    import torch

    from dials_lib.config import paper_hyperparameters, with_fields
    from dials_lib.run_config import RunConfig
    from dials_lib.runner import train

    torch.set_num_threads(1)
    hp = paper_hyperparameters(env)
    hp = with_fields(hp, aip=with_fields(hp.aip, epochs=AIP_EPOCHS, dataset_steps=DATASET_STEPS))
    steps = STEPS_PER_AGENT[env][n_agents]
    if simulator == "dials" and workers > 1:  # start the worker processes before timing (imports take seconds)
        from joblib import Parallel, delayed

        Parallel(n_jobs=workers)(delayed(_warm_up)() for _ in range(workers))
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(env, n_agents=n_agents, simulator=simulator, total_timesteps=steps, chunk_steps=steps,
                           retrain_every=steps, eval_every=steps, eval_episodes=1, n_workers=workers,
                           agents_per_worker=AGENTS_PER_WORKER[n_agents], hyperparameters=hp, run_dir=tmp + "/run")
        start = time.perf_counter()
        result = train(config, progress=False)
        wall = time.perf_counter() - start
    rt, mem = result.runtime, result.memory
    return {
        "env": env, "agents": n_agents, "simulator": simulator, "workers": workers if simulator == "dials" else 1,
        "steps per agent": steps, "wall s": wall, "agents training s": rt["agents_training_s"],
        "agent-steps/s (training)": n_agents * steps / rt["agents_training_s"],
        "data + AIP s": rt["data_collection_plus_aip_training_s"], "evaluation s": rt["evaluation_s"],
        "worker core share": rt["worker_cpu_s"] / rt["worker_busy_s"] if rt["worker_busy_s"] else float("nan"),
        "main peak RSS MiB": mem["main_peak_rss_mb"], "max worker peak RSS MiB": mem["max_worker_peak_rss_mb"],
        "total peak RSS MiB": mem["total_peak_rss_mb"], "total peak PSS MiB": mem["total_peak_pss_mb"],
        "load avg": os.getloadavg()[0],
    }


def _warm_up() -> int:
    import dials_lib.workers  # noqa: F401

    return os.getpid()


def measure(env: str, n_agents: int, simulator: str, workers: int) -> dict[str, Any]:
    """`run_one` in a fresh Python process."""
    code = (f"import json, training; print(json.dumps(training.run_one({env!r}, {n_agents}, {simulator!r}, "
            f"{workers})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the grid and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 4 and 25 only")
    parser.add_argument("--rounds", type=int, default=1,
                        help="up to this many (1 worker, 2 workers) rounds per size, stopping at the first whose "
                        "2-worker run had 0.9 of a core per worker; the round with the largest core share counts")
    args = parser.parse_args()
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
                for kind in ("PSS", "RSS"):
                    total_gib = two[f"total peak {kind} MiB"] / 1024
                    goals.append({"goal": f"{env} N=100: DIALS total peak memory < 1.5 GiB (2 workers, sum of {kind})",
                                  "measured": f"{total_gib:.2f} GiB", "met": total_gib < 1.5})
    write_results("training", rows, goals,
                  "Training: DIALS vs GS, same agent-step budget (reduced budgets: see benchmarks/training.py)")


if __name__ == "__main__":
    main()

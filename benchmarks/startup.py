"""DIALS start-up: what a DIALS run spends before its first PPO step, at the paper's settings.

A DIALS run first runs its (untrained) policies on the GS for `aip.dataset_steps` steps (10,000) and trains its
AIPs on those data (100 epochs for traffic, 300 for the warehouse), evaluates, and only then trains its agents.
This times that start-up in a short run (`--steps` per agent, default 1,000: one chunk) of 4 agents on 2 workers,
the command line's defaults otherwise, from the run's own records (runtime.json), with the machine's load average.

    .venv/bin/python benchmarks/startup.py                 # traffic; writes benchmarks/results/startup.json and .md
    .venv/bin/python benchmarks/startup.py --env warehouse  # the warehouse too (its 300 GRU epochs take longer)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402

from dials_lib.training.run_config import RunConfig  # noqa: E402
from dials_lib.training.runner import train  # noqa: E402


def measure(env: str, steps: int) -> dict[str, Any]:
    """One short DIALS run of `env` from scratch; its start-up and total seconds."""
    with tempfile.TemporaryDirectory() as folder:
        config = RunConfig(env, n_agents=4, simulator="dials", total_timesteps=steps, n_workers=2,
                           run_dir=str(Path(folder) / "run"))
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        result = train(config, progress=False)
        wall = time.perf_counter() - start
    runtime = result.runtime
    return {"env": env, "steps_per_agent": steps, "dataset_steps": config.hp.aip.dataset_steps,
            "aip_epochs": config.hp.aip.epochs, "data_collection_s": round(runtime["data_collection_s"], 1),
            "aip_training_s": round(runtime["aip_training_s"], 1),
            "start_up_s": round(runtime["data_collection_s"] + runtime["aip_training_s"], 1),
            "evaluation_s": round(runtime["evaluation_s"], 1),
            "agents_training_s": round(runtime["agents_training_s"], 1), "run_wall_s": round(wall, 1),
            "load_average_1min": round((load_before + os.getloadavg()[0]) / 2, 2)}


def main() -> None:
    """Time the start-up of each environment asked for and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--env", nargs="+", default=["traffic"], choices=["traffic", "warehouse"])
    parser.add_argument("--steps", type=int, default=1_000, help="steps per agent of the timed run (default 1,000)")
    args = parser.parse_args()
    rows = []
    for env in args.env:
        print(f"{env}: a {args.steps:,}-step DIALS run of 4 agents on 2 workers ...", flush=True)
        rows.append(measure(env, args.steps))
        print(f"    start-up {rows[-1]['start_up_s']} s of {rows[-1]['run_wall_s']} s", flush=True)
    write_results("startup", rows, [], "DIALS start-up at the paper's settings (4 agents, 2 workers)")


if __name__ == "__main__":
    main()

"""Simulator throughput: vectorized GS and batched LS against simple per-car / per-robot references.

Run `python benchmarks/simulators.py [--env traffic|warehouse|all] [--quick]`; writes
benchmarks/results/simulators.json and simulators.md. Each environment's measurements live in
`sim_<env>.py` and return (rows, goals); ratios are measured side by side in this one process.
"""

from __future__ import annotations

import argparse
import importlib

from _common import write_results


def main() -> None:
    """Run the simulator benchmarks and write the results table."""
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--env", default="all", choices=["traffic", "warehouse", "ials", "all"])
    parser.add_argument("--quick", action="store_true", help="shorter timings (for a smoke check)")
    args = parser.parse_args()
    envs = ["traffic", "warehouse", "ials"] if args.env == "all" else [args.env]
    rows, goals = [], []
    for env in envs:
        module = importlib.import_module(f"sim_{env}")
        env_rows, env_goals = module.run(quick=args.quick)
        rows += env_rows
        goals += env_goals
    write_results("simulators", rows, goals, "Simulator throughput")
    for goal in goals:
        print(goal)


if __name__ == "__main__":
    main()

"""What share of a sumo-traffic training run the simulator takes, beside the cell grid (`traffic`).

For 4 agents it runs one stretch of PPO training (`ppo_loop.run_ppo` on a `PPOGroup` built as the runner builds it,
`group_tasks.new_learners`, with the quick preset's hyperparameters) on each of:
- the GS (`group_tasks.OnGlobal`), as GS training does;
- the IALS with AIPs trained on a short GS data set (`group_tasks.OnIALS`), as DIALS does after a retraining;
- the IALS with untrained AIPs, as untrained-DIALS does (they fire far more often, so SUMO's local roads fill up).
The simulator object is wrapped in a timing proxy (`TimedCalls`) that adds up the wall and CPU seconds of its
`step` and `reset` calls; library code is untouched. For the IALS the simulator is its local simulator (`ials.ls`),
and the IALS as a whole (local simulator + AIP sampling) is timed too. Everything else of the stretch is the
learners: acting, buffering and the PPO updates.

The rows run one after another in one process, single-threaded like a worker task, SUMO and cell grid alternating,
and each SUMO simulator is closed before the next is built so that every one holds the process's libsumo (the
`backend` column says so). The machine is shared with a niced training run, so CPU seconds (this process's, which
include the in-process libsumo) are given beside wall seconds, with the load average before and after.

The AIPs of the DIALS rows are trained on `DATASET_STEPS` GS steps of random actions for `AIP_EPOCHS` epochs
(the preset trains on 10,000 steps for 100 epochs; this is enough for them to predict the entry rate) and that
training is not part of the timed stretch.

    .venv/bin/python benchmarks/sumo_training_share.py           # writes results/sumo_training_share.json and .md
    .venv/bin/python benchmarks/sumo_training_share.py --quick   # 512 steps per row (a smoke check)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

import torch
from _common import machine_info, write_results

from dials_lib.envs import get_spec
from dials_lib.learning.controllers import RandomController
from dials_lib.learning.influence import collect_compact_dataset, train_predictor
from dials_lib.learning.ppo_loop import run_ppo
from dials_lib.presets import get_preset
from dials_lib.training import group_tasks
from dials_lib.training.run_stack import RunStack

ENVS = ("sumo-traffic", "traffic")
N_AGENTS = 4
STEPS = 6144
"""Steps per agent of each stretch (48 PPO updates of 128 steps, about 20 episodes)."""
QUICK_STEPS = 512
DATASET_STEPS = 3000
AIP_EPOCHS = 10
RUN_SEED = 0
CHUNK_SEED = 1


class TimedCalls:
    """A stand-in for a simulator that forwards everything to it and adds up the wall and CPU seconds spent in its
    `step` and `reset` calls."""

    def __init__(self, sim: Any) -> None:
        self.wrapped = sim
        """The simulator itself."""
        self.wall = 0.0
        self.cpu = 0.0
        self.calls = 0

    def _timed(self, method: str, *args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = getattr(self.wrapped, method)(*args, **kwargs)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.calls += 1
        return out

    def step(self, *args: Any, **kwargs: Any) -> Any:
        """The simulator's step, timed."""
        return self._timed("step", *args, **kwargs)

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        """The simulator's reset, timed."""
        return self._timed("reset", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # called only for what the proxy does not define itself
        return getattr(self.wrapped, name)


def _trained_aips(env: str, ids: list[int], runs: RunStack) -> dict[str, torch.Tensor]:
    """The group's AIPs after a short retraining on GS data of random actions (as DIALS's first data set)."""
    hp = get_preset("quick").hyperparameters(env)
    gs = group_tasks.OnGlobal(RunStack((CHUNK_SEED + 100,))).build(hp, ids, runs)
    try:
        data = collect_compact_dataset(gs, RandomController(get_spec(env).n_actions, ids, RUN_SEED), DATASET_STEPS)
    finally:
        _close(gs)
    predictor = group_tasks.new_predictors(hp, ids, runs)
    train_predictor(predictor, data, dataclasses.replace(hp.aip, epochs=AIP_EPOCHS), RUN_SEED, ids)
    return predictor.state_dict()


def _close(sim: Any) -> None:
    """Hand a SUMO simulation back (the cell grid has nothing to close)."""
    if hasattr(sim, "close"):
        sim.close()


def _stretch(env: str, simulator: str, aips: dict[str, torch.Tensor] | None, n_steps: int) -> dict[str, Any]:
    """One PPO stretch of `n_steps` per agent on the GS (`aips` None) or the IALS; the row of its timings."""
    hp = get_preset("quick").hyperparameters(env)
    ids, runs, chunk = list(range(N_AGENTS)), RunStack((RUN_SEED,)), RunStack((CHUNK_SEED,))
    group = group_tasks.new_learners(hp, ids, runs, hp.total_timesteps)
    if aips is None:
        sim = simulated = TimedCalls(group_tasks.OnGlobal(chunk).build(hp, ids, runs))
        whole = None
    else:
        ials = group_tasks.OnIALS(aips, chunk).build(hp, ids, runs)
        ials.ls = simulated = TimedCalls(ials.ls)  # the local simulator inside the IALS
        sim = whole = TimedCalls(ials)
    sumo = simulated.wrapped
    backend = getattr(sumo, "backend", "numpy")
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        trace = run_ppo(group, sim, n_steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        _close(sumo)
    agent_steps = n_steps * N_AGENTS
    row = {"env": env, "simulator": simulator, "backend": backend, "steps per agent": n_steps,
           "total s": wall, "simulator s": simulated.wall, "simulator share": simulated.wall / wall,
           "total CPU s": cpu, "simulator CPU s": simulated.cpu, "simulator CPU share": simulated.cpu / cpu,
           "IALS s (simulator + AIP sampling)": None if whole is None else whole.wall,
           "IALS share": None if whole is None else whole.wall / wall,
           "learners s (the rest)": wall - (simulated.wall if whole is None else whole.wall),
           "agent-steps/s": agent_steps / wall, "agent-steps per CPU s": agent_steps / cpu}
    row["mean return"] = float(trace.episode_returns.mean()) if len(trace.episode_returns) else float("nan")
    return row


def run(n_steps: int) -> list[dict[str, Any]]:
    """Every row: for each simulator kind, SUMO then the cell grid."""
    ids, runs = list(range(N_AGENTS)), RunStack((RUN_SEED,))
    aips, untrained = {}, {}
    for env in ENVS:
        aips[env] = _trained_aips(env, ids, runs)
        hp = get_preset("quick").hyperparameters(env)
        untrained[env] = group_tasks.new_predictors(hp, ids, runs).state_dict()
    rows = []
    for simulator, by_env in (("GS", None), ("IALS (DIALS)", aips), ("IALS, untrained AIPs", untrained)):
        for env in ENVS:
            rows.append(_stretch(env, simulator, None if by_env is None else by_env[env], n_steps))
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    return rows


def main() -> None:
    """Run the stretches and write benchmarks/results/sumo_training_share.json and .md."""
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps per row (a smoke check)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the runner's worker tasks (parallel.single_threaded)
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = run(QUICK_STEPS if args.quick else STEPS)
    elapsed = time.perf_counter() - start
    load_after = os.getloadavg()

    conditions = [
        {"note": "machine load (1, 5, 15 min) before / after",
         "value": f"{load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f} / {load_after[0]:.1f} "
                  f"{load_after[1]:.1f} {load_after[2]:.1f} on {machine_info()['cpu_count']} cores, shared with "
                  f"a niced background training run and test runs: wall seconds include time waiting for a core, "
                  f"CPU seconds do not"},
        {"note": "whole benchmark", "value": f"{elapsed:.0f} s wall (AIP data and training included)"},
        {"note": "AIPs of the DIALS rows",
         "value": f"trained on {DATASET_STEPS} GS steps of random actions for {AIP_EPOCHS} epochs (not timed)"},
    ]
    notes = ("One PPO training stretch of 4 agents per row (quick preset hyperparameters, one process, torch "
             "single-threaded), the simulator's `step`/`reset` calls timed through a proxy. \"simulator\" is the GS "
             "for GS rows and the local simulator inside the IALS for IALS rows; the IALS column adds the AIP "
             "sampling. \"mean return\" is the stretch's training return per agent and episode (the runs are not "
             "comparable to each other in learning: a few thousand steps).")
    write_results("sumo_training_share", rows, [], "sumo-traffic: the simulator's share of a training run",
                  more={"Conditions": conditions}, notes=notes)


if __name__ == "__main__":
    main()

"""Training runs, the entry points: `train` (any simulator), `train_gs`, `train_dials`, and `load_run`.

    from dials_lib.training.run_config import RunConfig
    from dials_lib.training.runner import train
    result = train(RunConfig("traffic", n_agents=4, simulator="dials", total_timesteps=200_000, seed=0))
    result.metrics            # pandas DataFrame, one row per evaluation
    results = train_seeds(RunConfig("traffic", n_agents=4, simulator="dials", total_timesteps=200_000), [0, 1, 2])

`train_seeds` trains runs that differ only in seed as one stacked batch (faster than one after another, the
same numbers as each run alone; a run directory per seed).

Where things are:
- `dials`: Algorithm 1, the loop every run follows (GS training is the same loop with one group on the
  GS), and `WorkerDiedError`.
- `group_tasks`: what a worker does for one group of agents (a chunk of PPO; an AIP retraining).
- `parallel`: how tasks are spread over processes (loky with this process as one of the workers, Dask,
  any joblib backend), measured, and how a dead worker is reported.
- `run_records`: the run directory (config.json, metrics.csv, runtime.json, memory.json,
  checkpoint.pt), checkpoint and resume, the run's clock.

Restarting a killed run with the same config resumes from its last checkpoint (work after it is redone, with the
same results); a finished run returns its records without training. A worker process that dies (killed, out of
memory) makes the run raise `WorkerDiedError`, naming the agents of the tasks that had not returned and the last
checkpoint; rerun the same command to resume.
"""

from __future__ import annotations

from dials_lib.training.dials import train, train_seeds
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import CHECKPOINT, RunResult, WorkerDiedError, load_run, metric_columns


def train_gs(config: RunConfig, progress: bool | None = None) -> RunResult:
    """All agents learn together on the GS (independent PPO, one stacked group, no shared parameters)."""
    if config.simulator != "gs":
        raise ValueError(f"train_gs needs simulator='gs'; got {config.simulator!r} (use train_dials or train)")
    return train(config, progress)


def train_dials(config: RunConfig, progress: bool | None = None) -> RunResult:
    """DIALS ('dials') or untrained-DIALS ('untrained-dials'): agents learn on their IALS in parallel workers."""
    if config.simulator not in ("dials", "untrained-dials"):
        raise ValueError(f"train_dials needs simulator 'dials' or 'untrained-dials'; got {config.simulator!r}")
    return train(config, progress)


__all__ = ["CHECKPOINT", "RunResult", "WorkerDiedError", "load_run", "metric_columns", "train", "train_dials",
           "train_gs", "train_seeds"]

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
  GS); `run_session`: its bookkeeping (clock, progress, memory, worker calls); `run_state`: what a checkpoint
  holds; `run_stack`: the runs x agents layout of a seed batch.
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

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack

from dials_lib.training.dials import Run
from dials_lib.training.parallel import single_threaded
from dials_lib.training.run_config import RunConfig, seed_configs
from dials_lib.training.run_records import (
    CHECKPOINT,
    RunDirectory,
    RunResult,
    WorkerDiedError,
    load_run,
    metric_columns,
)
from dials_lib.training.run_state import RunState


def train(config: RunConfig, progress: bool | None = None) -> RunResult:
    """Run (or resume, or read back) the training run `config`; progress bar on a terminal unless told."""
    return train_seeds(config, [config.seed], progress)[0]


def train_seeds(config: RunConfig, seeds: Sequence[int], progress: bool | None = None) -> list[RunResult]:
    """The runs of `config` with each of `seeds`, trained as one stacked batch; each has its own run directory and
    exactly the records it would have alone. Finished runs are read back, interrupted ones resume (runs whose last
    checkpoints are at different boundaries train as separate batches). Torch runs single-threaded throughout, as
    in the workers, so the numbers do not depend on the caller's thread setting (restored on return)."""
    return train_batch(seed_configs(config, seeds), progress)


def train_batch(configs: Sequence[RunConfig], progress: bool | None = None) -> list[RunResult]:
    """`train_seeds` for runs given one config each (they must differ only in seed and run directory)."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs must hold at least one run")
    for other in configs[1:]:
        if dataclasses.replace(other, seed=configs[0].seed, run_dir=configs[0].run_dir) != configs[0]:
            raise ValueError(f"the runs of a batch must differ only in seed; {other.name()} differs from "
                             f"{configs[0].name()} in more")
    with single_threaded():
        return _train_batch(configs, progress)


def is_finished(config: RunConfig) -> bool:
    """Whether the run `config` has a checkpoint at its last boundary (then `train` only reads it back)."""
    state = RunDirectory(config).load_checkpoint()
    return state is not None and state.boundary == config.schedule().n_chunks


def _train_batch(configs: list[RunConfig], progress: bool | None) -> list[RunResult]:
    """Lock every run directory, then train the runs that are not finished, those at the same point of their
    schedule as one batch (`dials.Run`); a finished run's records are rewritten from its checkpoint."""
    n_chunks, directories = configs[0].schedule().n_chunks, [RunDirectory(c) for c in configs]
    with ExitStack() as locks:
        for directory in directories:
            locks.enter_context(directory.locked())
        states = [directory.load_checkpoint() for directory in directories]
        batches: dict[tuple[int, bool, bool], list[int]] = {}
        for i, state in enumerate(states):
            if state is None:
                batches.setdefault((0, False, False), []).append(i)
            elif state.boundary < n_chunks:
                batches.setdefault((state.boundary, state.prepared, state.retrained), []).append(i)
            else:  # finished: its records are rewritten from the checkpoint, whatever a kill left of them
                directories[i].write_records(state)
        for members in batches.values():
            batch_states: list[RunState | None] = [states[i] for i in members]
            Run([configs[i] for i in members], [directories[i] for i in members], batch_states).run(progress)
        return [directory.result() for directory in directories]


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


__all__ = ["CHECKPOINT", "RunResult", "WorkerDiedError", "is_finished", "load_run", "metric_columns", "train",
           "train_batch", "train_dials", "train_gs", "train_seeds"]

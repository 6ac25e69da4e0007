"""A run's bookkeeping, apart from the algorithm: its directory, checkpoint, records and clock.

Run directory (`RunConfig.directory()`):
- config.json: the config with its resolved worker groups. A directory holding another config (anything but
  `n_workers`, `run_dir` and a grouping in groups of at least two agents differing) is refused with an error
  naming the differences, unless it holds a shorter run of the same config that is a prefix of the one asked for:
  that run is then extended (`dials_lib.training.extension`).
- metrics.csv: one row per evaluation (`metric_columns`): timestep = steps per agent so far, wall_time_s since
  the run started over all sessions, mean_return, sem_return, greedy_return (see
  `dials_lib.training.evaluation`), aip_ce, the environment's domain metrics, and
  train_return = the mean return of the training episodes completed in the chunk before (on the IALS for DIALS).
- runtime.json: seconds of agents training, data collection, AIP training, evaluation and in total;
  worker_busy_s and worker_cpu_s: wall and CPU seconds summed over worker tasks (their ratio shows how much of a
  core the workers got); sessions: how many times the run was started or resumed; stacked_runs: how many runs
  (seeds) trained together in the run's last session, whose shared wall time these seconds are.
- memory.json: peak RSS and PSS in MiB of the main process, of each worker and in total (`dials_lib.training.memory`).
- checkpoint.pt: the whole run state at the last boundary, with a checksum and the run's identity
  (`dials_lib.training.checkpoints`), and checkpoint.prev.pt, the one before; a run restarted with the same config
  resumes from the newest that passes its checks, and a finished run is read back without training. The records
  above are written from the checkpointed state (rewritten whenever a run is opened), so they always agree.
- run.lock: locked while a process trains the run; a second process on the same directory is refused at once.
  The lock dies with its process. Our own temporary files (`.<name>.*.tmp`) left by a kill are removed on the
  next start, and a directory whose creation was cut short (nothing in it but such files) is taken as new.
- ppo_states.spill.pt: exists only while the AIPs retrain (the agents' PPO states wait there, see
  `RunDirectory.ppo_states_on_disk`).
- aips.partial.pt: exists only while the AIPs retrain: the new AIPs of every group whose retraining has finished,
  verified like a checkpoint, so that a run stopped during a long retraining resumes without training those again
  (`RunDirectory.save_partial_aips`, `partial_aips`), with the seconds their training took.
- aips.training.<first agent>-<last agent>.pt: exists only while a group's AIPs train: the training's state a few
  minutes back (`dials_lib.training.group_tasks.AIPSnapshot`), from which a stopped retraining carries on. Kept in
  the directory of the first run of a batch stacked over seeds (the task trains them all).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dials_lib.files import atomic_write, atomic_write_json, atomic_write_text, read_json
from dials_lib.training.checkpoints import (
    previous_path,
    read_checkpoint,
    record_identity,
    verified_state_or_none,
    write_checkpoint,
)
from dials_lib.training.evaluation import DOMAIN_METRICS
from dials_lib.training.extension import extend_in_place, prefix_problem
from dials_lib.training.memory import release_free_memory
from dials_lib.training.run_config import RunConfig, config_differences
from dials_lib.training.run_state import RUNTIME_PARTS, GroupState, RunState

CHECKPOINT = "checkpoint.pt"
SPILL = "ppo_states.spill.pt"
PARTIAL_AIPS = "aips.partial.pt"
AIP_SNAPSHOTS = "aips.training.{first}-{last}.pt"
LOCK = "run.lock"


class WorkerDiedError(RuntimeError):
    """A worker process died (killed, out of memory) while holding some agents; the run can be resumed."""

    @classmethod
    def of_call(cls, what: str, step: int, boundary: int, lost: list[list[int]], checkpoint: Path,
                saved_step: int) -> WorkerDiedError:
        """The error for a parallel call (`what`, from `step` per agent) whose tasks for the agents `lost` had not
        returned, with where the run can resume from (the checkpoint, if one was written yet)."""
        resume = (f"Last checkpoint: {checkpoint} (step {saved_step} per agent). Run the same command again to resume "
                  "from it." if checkpoint.exists() else
                  "No checkpoint was written yet: run the same command again to start the run over.")
        return cls(f"a worker process died while {what} at step {step} per agent (boundary {boundary}); tasks that "
                   f"had not returned held agents {lost}. {resume}")


@dataclass(frozen=True)
class FinishedAIPs:
    """A group's AIPs from a retraining that finished before a stop, and what their training cost."""

    aip: dict[str, torch.Tensor]
    """The group's new AIPs (state dict)."""
    seconds: float
    """Wall seconds of the worker task(s) that trained them, over all sessions."""
    cpu_seconds: float
    """CPU seconds of the same."""


@dataclass
class RunResult:
    """What a run leaves behind: its config, directory and records."""

    config: RunConfig
    """The run's configuration."""
    run_dir: Path
    """The run directory."""
    metrics: pd.DataFrame
    """One row per evaluation (metrics.csv)."""
    runtime: dict[str, float]
    """Seconds per activity (runtime.json)."""
    memory: dict[str, Any]
    """Peak resident memory in MiB (memory.json)."""


def metric_columns(env: str) -> list[str]:
    """Columns of metrics.csv for `env`."""
    return ["timestep", "wall_time_s", "mean_return", "sem_return", "greedy_return", "aip_ce", *DOMAIN_METRICS[env],
            "train_return"]


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """The records of a run directory: config (dict), metrics (DataFrame), runtime and memory (dicts)."""
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"config": read_json(run_dir / "config.json")}
    out["metrics"] = pd.read_csv(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else None
    for name in ("runtime", "memory"):
        path = run_dir / f"{name}.json"
        out[name] = read_json(path) if path.exists() else {}
    return out


def _is_our_temp_file(path: Path) -> bool:
    """A temporary file as `dials_lib.files.atomic_write` names them (checkpoints included)."""
    return path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp")


class RunDirectory:
    """The directory of one run: opened (or created) for `config`, refusing one that holds another run."""

    def __init__(self, config: RunConfig) -> None:
        self.config, self.path = config, config.directory()
        record, config_path = config.record(), self.path / "config.json"
        self.identity = record_identity(record)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"run_dir {self.path} is a file, not a directory; choose another run_dir")
        if config_path.exists():
            try:
                stored = read_json(config_path)
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"{config_path} is damaged (not readable JSON); delete the run directory to start "
                                 "the run over, or choose another run_dir") from None
            diffs = config_differences(stored, record)
            if diffs and all(d.startswith("total_timesteps:") for d in diffs):  # only the budget differs
                problem = prefix_problem(stored, config)
                if problem is None:  # a shorter run of this config: extended, its numbers kept
                    with self.locked():  # not while a process trains the shorter run
                        state = extend_in_place(self.path, stored, config)
                        if state is not None:
                            self.write_records(state)
                    return
                diffs.append(f"it cannot be extended to this run: {problem}")
            if diffs:
                raise ValueError(
                    f"run directory {self.path} holds a run with a different config ({'; '.join(diffs)}); it is "
                    "left untouched: choose another run_dir, or delete that directory to start over")
        elif self.path.exists() and not all(_is_our_temp_file(p) for p in self.path.iterdir()):
            raise ValueError(f"{self.path} exists, is not empty and has no config.json: not a run directory; "
                             "choose another run_dir")
        else:  # new, or its creation was cut short before config.json was in place
            try:
                atomic_write_json(config_path, record)
            except OSError as err:
                raise ValueError(f"cannot create the run directory {self.path}: {err.strerror}; choose another "
                                 "run_dir") from None

    @property
    def checkpoint_path(self) -> Path:
        """Where the run state is checkpointed."""
        return self.path / CHECKPOINT

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run's lock (run.lock) for the block, after removing our temporary files that a kill left
        behind; a directory another process holds is refused at once."""
        import fcntl

        file = open(self.path / LOCK, "a+")  # noqa: SIM115 (held open for the whole block)
        try:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"run directory {self.path} is in use by another process (its run.lock is "
                                 "held); wait for it to finish or stop it first") from None
            for stale in [p for p in self.path.iterdir() if _is_our_temp_file(p) or p.name == SPILL]:
                stale.unlink(missing_ok=True)
            yield
        finally:
            file.close()  # releases the lock

    def load_checkpoint(self) -> RunState | None:
        """The run state of the newest checkpoint that passes its checks, or None for a new run; a one-line
        `CheckpointError` when checkpoints exist and none passes."""
        state, problems = read_checkpoint(self.checkpoint_path, self.identity)
        for problem in problems:
            print(f"warning: {problem}; resuming from {previous_path(self.checkpoint_path).name}", file=sys.stderr)
        return None if state is None else RunState.from_checkpoint(state)

    def save(self, state: RunState) -> None:
        """Checkpoint `state` and write the records it holds (metrics.csv, runtime.json, memory.json)."""
        write_checkpoint(self.checkpoint_path, state.to_checkpoint(), self.identity)
        self.write_records(state)

    def save_partial_aips(self, boundary: int, groups: dict[tuple[int, ...], FinishedAIPs]) -> None:
        """The new AIPs of the groups (by agent ids) whose retraining at `boundary` has finished so far: what
        `partial_aips` gives back to a run that resumes at that boundary."""
        state = {"boundary": boundary, "groups": [{"agent_ids": list(ids), "aip": done.aip, "seconds": done.seconds,
                                                   "cpu_seconds": done.cpu_seconds} for ids, done in groups.items()]}
        write_checkpoint(self.path / PARTIAL_AIPS, state, self.identity, keep_previous=False,
                         progress={"groups done": len(groups)})

    def partial_aips(self, boundary: int) -> dict[tuple[int, ...], FinishedAIPs]:
        """The AIPs saved by `save_partial_aips` at `boundary`, by the agent ids of their group; none when there is
        no such file or it holds another boundary's, and none, with a warning line, when it fails its checks (those
        AIPs then train again)."""
        state = verified_state_or_none(self.path / PARTIAL_AIPS, self.identity, "its AIPs train again")
        if state is None or int(state["boundary"]) != boundary:
            return {}
        return {tuple(group["agent_ids"]): FinishedAIPs(group["aip"], float(group.get("seconds", 0.0)),
                                                        float(group.get("cpu_seconds", 0.0)))
                for group in state["groups"]}

    def aip_snapshot_path(self, agent_ids: list[int]) -> Path:
        """Where the AIP training of the group `agent_ids` keeps its state while it runs."""
        return self.path / AIP_SNAPSHOTS.format(first=agent_ids[0], last=agent_ids[-1])

    def drop_partial_aips(self) -> None:
        """Remove the partial AIPs and the AIP trainings' snapshots once the whole retraining is checkpointed."""
        (self.path / PARTIAL_AIPS).unlink(missing_ok=True)
        for snapshot in self.path.glob(AIP_SNAPSHOTS.format(first="*", last="*")):
            snapshot.unlink(missing_ok=True)

    def write_records(self, state: RunState) -> None:
        """metrics.csv, runtime.json and memory.json from a checkpointed state (so they always agree with it)."""
        runtime = dict(state.runtime)
        runtime["data_collection_plus_aip_training_s"] = runtime["data_collection_s"] + runtime["aip_training_s"]
        runtime["sessions"] = state.sessions
        atomic_write_json(self.path / "runtime.json", runtime)
        atomic_write_json(self.path / "memory.json", state.memory)
        frame = pd.DataFrame(state.rows, columns=metric_columns(self.config.env))
        atomic_write_text(self.path / "metrics.csv", frame.to_csv(index=False))

    def result(self) -> RunResult:
        """The records as written, read back."""
        records = load_run(self.path)
        return RunResult(self.config, self.path, records["metrics"], records["runtime"], records["memory"])

    @contextmanager
    def ppo_states_on_disk(self, groups: list[GroupState]) -> Iterator[None]:
        """Inside the block the groups' PPO states (weights and Adam moments) wait on disk, not in memory.

        Training AIPs does not need them; at 100 warehouse agents they are ~190 MiB, held in this process while it
        and the workers train AIPs, the run's memory peak otherwise. Writing and reading them takes a fraction of
        a second."""
        path = self.path / SPILL
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as file:  # through Python's file: a full disk is an OSError, not torch's RuntimeError
                torch.save([g.ppo for g in groups], file)

        atomic_write(path, write)
        for group in groups:
            group.ppo = None
        release_free_memory()
        try:
            yield
        finally:
            for group, ppo in zip(groups, torch.load(path, weights_only=False), strict=True):
                group.ppo = ppo
            path.unlink()


class RunClock:
    """Seconds per part of the runs of a batch (often one), accumulated into each run's `runtime` (its
    checkpointed dict) over all sessions: the runs share the batch's wall time."""

    def __init__(self, runtimes: list[dict[str, float]]) -> None:
        self.runtimes = runtimes
        self._bases, self._start = [runtime["total_s"] for runtime in runtimes], time.perf_counter()

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Add the block's wall-clock seconds to `part` (one of `RUNTIME_PARTS`) of every run."""
        start = time.perf_counter()
        try:
            yield
        finally:
            for runtime in self.runtimes:
                runtime[part] += time.perf_counter() - start

    def elapsed(self, r: int = 0) -> float:
        """Seconds since run r started, over all its sessions."""
        return self._bases[r] + time.perf_counter() - self._start

    def add_tasks(self, seconds: float, cpu_seconds: float) -> None:
        """Count a worker task's wall and CPU seconds (in every run)."""
        for runtime in self.runtimes:
            runtime["worker_busy_s"] += seconds
            runtime["worker_cpu_s"] = runtime.get("worker_cpu_s", 0.0) + cpu_seconds


__all__ = ["AIP_SNAPSHOTS", "CHECKPOINT", "LOCK", "PARTIAL_AIPS", "RUNTIME_PARTS", "SPILL", "FinishedAIPs", "RunClock",
           "RunDirectory", "RunResult", "WorkerDiedError", "load_run", "metric_columns"]

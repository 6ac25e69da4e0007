"""The bookkeeping of one session of a training run, kept apart from Algorithm 1 (`dials_lib.training.dials`).

A session is one start or resume of a batch of runs (runs that differ only in seed, often one) in this process.
It counts the session in every run's state, and it owns what the algorithm does not need to know about:
- the clock (`RunClock`: seconds per part of the run, into each run's `runtime`);
- the progress bar (`RunProgress`), which the worker tasks of this process report to (`progress.task_reports`);
- the memory sampling of the process tree (`TreeMemorySampler`, `RunMemory`: memory.json);
- the calls on the worker processes (`in_workers`): measured, and a dead worker turned into a `WorkerDiedError`
  that names the agents it held and the last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dials_lib.training.memory import RunMemory, TreeMemorySampler
from dials_lib.training.parallel import WorkerLostError, map_tasks
from dials_lib.training.progress import RunProgress, task_reports
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import RunClock, RunDirectory, WorkerDiedError
from dials_lib.training.run_state import RunState


class RunSession:
    """The clock, progress bar, memory records and worker calls of a batch of runs from boundary `states[0].boundary`
    on; `groups` are the agent ids of each group (one worker task per group)."""

    def __init__(self, config: RunConfig, states: list[RunState], directories: list[RunDirectory],
                 groups: list[list[int]], progress: bool | None) -> None:
        self.config, self.states, self.directories, self.groups = config, states, directories, groups
        self.schedule, n_runs = config.schedule(), len(states)
        for state in states:
            state.sessions += 1
            state.runtime["stacked_runs"] = n_runs
        self.clock = RunClock([state.runtime for state in states])
        n = config.n_agents * n_runs
        name = config.name() if n_runs == 1 else f"{config.name()} (+{n_runs - 1} seeds)"
        self.progress = RunProgress(name, n * self.schedule.steps_per_agent, n * self.schedule.starts[
            states[0].boundary], groups, n_runs, progress)
        self.memory = RunMemory()
        self._aip_epochs: Callable[[int], None] = lambda epochs: None

    @contextmanager
    def open(self) -> Iterator[None]:
        """The session's block: the process tree's memory sampled, this process's tasks reporting to the bar."""
        try:
            with TreeMemorySampler(own=self.memory.main) as self.memory.tree, \
                    task_reports(self.progress.advance, lambda ids, epochs: self._aip_epochs(epochs)):
                yield
        finally:
            self.progress.close()

    @contextmanager
    def phase(self, part: str, what: str, total: int, unit: str) -> Iterator[Callable[[int], None]]:
        """A boundary's phase, timed as `part` of the runtime and shown as `what` with its progress in `unit`s (up to
        `total`); yields the function to report how far it is."""
        with self.clock.timed(part), self.progress.phase(what, total, unit) as reached:
            yield reached

    @contextmanager
    def aip_training(self) -> Iterator[None]:
        """The AIP retraining of a boundary: timed, its epochs shown as the tasks of this process report them."""
        with self.phase("aip_training_s", "training AIPs", self.config.hp.aip.epochs, "epochs") as self._aip_epochs:
            try:
                yield
            finally:
                self._aip_epochs = lambda epochs: None

    @contextmanager
    def chunk(self, c: int) -> Iterator[None]:
        """Chunk c's PPO training: timed as agents training, its speed shown once it is done."""
        start, n_chunks = time.perf_counter(), self.schedule.n_chunks
        self.progress.doing(f"training agents (chunk {c + 1} of {n_chunks})")
        with self.clock.timed("agents_training_s"):
            self.progress.start_chunk()
            yield
        steps = self.config.n_agents * len(self.states) * self.schedule.chunk_length(c)
        self.progress.doing(f"{steps / (time.perf_counter() - start):,.0f} agent-steps/s")

    def checkpoint(self, c: int, prepared: bool, retrained: bool) -> None:
        """Checkpoint every run at boundary c: `prepared` once the boundary's work is done (the next chunk may
        train), `retrained` when only its AIPs are (a resume then starts at the evaluation)."""
        memory = self.memory.records(self.states[0].memory)
        for r, (state, directory) in enumerate(zip(self.states, self.directories, strict=True)):
            state.boundary, state.prepared, state.retrained = c, prepared, retrained
            state.runtime["total_s"] = self.clock.elapsed(r)
            state.memory = memory
            directory.save(state)

    def in_workers(self, function: Callable[[Any], dict[str, Any]], jobs: list[Any], what: str, c: int,
                   groups: list[list[int]] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """The tasks (job j for the agents `groups[j]`: by default every group, job g for group g) on the run's
        workers; yields (j, result) as each arrives, to be taken in at once: `map_tasks` lets go of a task when it
        is handed out, so this process holds one task's old and new state at a time, not every task's."""
        groups = self.groups if groups is None else groups
        reports = []
        try:
            for g, report in map_tasks(function, jobs, self.config.n_workers):
                reports.append({"pid": report.pid, "peak_rss_mb": report.peak_rss_mb,
                                "peak_pss_mb": report.peak_pss_mb})
                self.clock.add_tasks(report.seconds, report.cpu_seconds)
                yield g, report.value
        except WorkerLostError as err:
            starts = self.schedule.starts
            raise WorkerDiedError.of_call(f"idle, before {what}" if err.idle else what, starts[c], c,
                                          [groups[j] for j in err.pending], self.directories[0].checkpoint_path,
                                          starts[self.states[0].boundary]) from err.__cause__
        self.memory.add_call(reports)


__all__ = ["RunSession"]

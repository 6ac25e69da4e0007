"""The progress bar of a training run: agent-steps trained, what the run is doing now, and a clock that keeps moving.

The bar counts agent-steps of PPO training. The phases between chunks (GS data collection, AIP training,
evaluation) add no agent-steps, and a DIALS run starts with two of them that take minutes (10,000 GS steps, then
100 epochs of AIP training at the paper's settings). So a phase says how far it is on the bar itself
("collecting GS data: 4,000 of 10,000 steps, 0:12"), and while the bar is shown a ticker thread redraws it every
second, so that its elapsed time moves even when no report arrives (a task in another process reports only when it
returns). A bar that is off (`progress=False`, or not on a terminal) starts no thread and costs nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm  # the text bar: tqdm.auto warns in kernels without ipywidgets

TICK_SECONDS = 1.0
"""How often the ticker redraws a shown bar."""


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss from an hour on)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class TaskSinks:
    """Where the worker tasks running in this process report their progress (`dials_lib.training.group_tasks`):
    `steps(agent_ids, steps)` after every PPO update of a group, `epochs(agent_ids, epochs)` after every AIP
    epoch; None: not reported (tasks in other processes report only when they return)."""

    steps: Callable[[tuple[int, ...], int], None] | None = None
    epochs: Callable[[tuple[int, ...], int], None] | None = None


_SINKS = [TaskSinks()]  # a module-level stack: a task pickled by value for another process does not take it along


def task_sinks() -> TaskSinks:
    """The sinks the tasks running in this process report to now."""
    return _SINKS[-1]


@contextmanager
def task_reports(steps: Callable[[tuple[int, ...], int], None],
                 epochs: Callable[[tuple[int, ...], int], None] | None = None) -> Iterator[None]:
    """Inside the block, tasks running in this process report their PPO steps to `steps` and AIP epochs to
    `epochs`."""
    _SINKS.append(TaskSinks(steps, epochs))
    try:
        yield
    finally:
        _SINKS.pop()


class RunProgress:
    """The bar of a batch of `n_runs` runs whose agents train in `groups` (agent ids per group)."""

    def __init__(self, name: str, total: int, initial: int, groups: list[list[int]], n_runs: int,
                 enabled: bool | None, file: TextIO | None = None) -> None:
        """`enabled`: always shown (True), never (False), on a terminal only (None); `file`: where (stderr)."""
        self.bar = tqdm(total=total, initial=initial, unit="agent-step", unit_scale=True,
                        disable=None if enabled is None else not enabled, desc=name, file=file)
        self.groups, self.n_runs = groups, n_runs
        self._reported = [0] * len(groups)
        self._lock = threading.Lock()
        self._phase: tuple[str, int, str, float] | None = None  # (what, total, unit, start)
        self._phase_done = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not self.bar.disable:
            self._ticker = threading.Thread(target=self._tick, name="progress-ticker", daemon=True)
            self._ticker.start()

    @property
    def shown(self) -> bool:
        """Whether the bar is drawn at all."""
        return not self.bar.disable

    def doing(self, what: str) -> None:
        """Say on the bar what the run is doing now (ends a phase)."""
        with self._lock:
            self._phase = None
            self.bar.set_postfix_str(what)

    @contextmanager
    def phase(self, what: str, total: int, unit: str) -> Iterator[Callable[[int], None]]:
        """Within the block the bar shows `what: done of total unit, m:ss` (the phase's own elapsed time); the
        block moves it by calling the function it gets with how much is done."""
        with self._lock:
            self._phase, self._phase_done = (what, total, unit, time.perf_counter()), 0
            self._show_phase()
        try:
            yield self._phase_reached
        finally:
            with self._lock:
                self._phase = None

    def _phase_reached(self, done: int) -> None:
        with self._lock:
            if self._phase is not None and done > self._phase_done:
                self._phase_done = done
                self._show_phase()

    def _show_phase(self) -> None:
        """Draw the current phase (called with the lock held)."""
        if self._phase is None or not self.shown:
            return
        what, total, unit, start = self._phase
        self.bar.set_postfix_str(f"{what}: {self._phase_done:,} of {total:,} {unit}, "
                                 f"{clock(time.perf_counter() - start)}")

    def start_chunk(self) -> None:
        """A chunk begins: no group has reported steps of it yet."""
        with self._lock:
            self._reported = [0] * len(self.groups)

    def advance(self, agent_ids: tuple[int, ...], steps: int) -> None:
        """Move the bar to `steps` per agent done by the group of `agent_ids` in the current chunk (told after every
        PPO update by calls in this process, and at the end of every call)."""
        g = self.groups.index(list(agent_ids))
        with self._lock:
            self.bar.update((steps - self._reported[g]) * len(agent_ids) * self.n_runs)
            self._reported[g] = steps

    def _tick(self) -> None:
        """Redraw the bar every `TICK_SECONDS` until closed (its elapsed time and the phase's clock move)."""
        while not self._stop.wait(TICK_SECONDS):
            with self._lock:
                self._show_phase()
                self.bar.refresh()

    def close(self) -> None:
        """Stop the ticker and close the bar."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.bar.close()


__all__ = ["RunProgress", "TaskSinks", "clock", "task_reports", "task_sinks"]

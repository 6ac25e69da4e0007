"""Fault injection for the runner's tests: a task wrapper whose worker process dies like a killed one, and Ctrl-C
sent to a training process.

Production code knows nothing of this: the tests put `DieInWorker(...)` in place of the task function the DIALS
loop sends to its workers (`dials_lib.training.group_tasks.train_agents` or `train_aips`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class DieInWorker:
    """Run `function(task)`, except where the task's chunk seed is `chunk_seed` (None: any task, e.g. every AIP
    retraining), it holds `agent` (None: any) and it runs in a process other than `parent`: there, write the task's
    agent ids to `record` and end the process at once (exit 17)."""

    function: Callable[[Any], Any]
    chunk_seed: int | None
    parent: int
    record: str
    agent: int | None = None

    def __call__(self, task: Any) -> Any:
        holds = self.agent is None or self.agent in task.agent_ids
        in_chunk = self.chunk_seed is None or self.chunk_seed in task.on.chunk_seeds.seeds
        if os.getpid() != self.parent and in_chunk and holds:
            Path(self.record).write_text(json.dumps(task.agent_ids))
            os._exit(17)
        return self.function(task)


def register_by_value() -> None:
    """Send this module's code to worker processes with the task (they may not have `tests` on their path).

    loky and Dask both pickle tasks with cloudpickle."""
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def interrupt_when(process: subprocess.Popen, ready: Callable[[], bool], timeout_s: float = 300) -> list[Any]:
    """Once `ready()` holds (and a second later, so that training is under way), send SIGINT to `process` alone, as
    a terminal's Ctrl-C or Jupyter's interrupt reaches a Python process; returns its descendant processes from just
    before the signal. Fails if the process ends or `timeout_s` passes first."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.2)
    time.sleep(1.0)
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    return children


def still_running(processes: list[Any]) -> list[Any]:
    """Those of `processes` (psutil) that still run (a zombie waiting for its parent does not)."""
    import psutil

    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def default_signals() -> None:
    """`preexec_fn` of a child that must react to SIGINT and SIGTERM as at a terminal: a test session started in the
    background without job control hands its children SIGINT ignored."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, timeout_s: float = 300) -> None:
    """Wait until `ready()` holds; fails if `process` ends or `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None, f"the process ended first (exit {process.returncode})"
        assert time.monotonic() < deadline, f"not ready after {timeout_s} s"
        time.sleep(0.1)


def still_running_after(processes: list[Any], timeout_s: float) -> list[Any]:
    """Those of `processes` still running once all have ended or `timeout_s` has passed, whichever comes first."""
    deadline = time.monotonic() + timeout_s
    while (running := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return running


def train_until_ctrl_c_at_evaluation(config: Any, boundary: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train `config` until the evaluation at chunk boundary `boundary`, where a Ctrl-C (KeyboardInterrupt) stops
    the run, as it stops a run at a terminal; the evaluation is patched only meanwhile."""
    from dials_lib.training import dials
    from dials_lib.training.runner import train

    evaluate = dials.Run.evaluate

    def interrupted(self: Any, r: int, c: int) -> None:
        if c == boundary:
            raise KeyboardInterrupt
        evaluate(self, r, c)

    with monkeypatch.context() as patched:
        patched.setattr(dials.Run, "evaluate", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False)

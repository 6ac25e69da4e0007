"""Processes the test session leaves behind: the check `conftest.py` runs at the end of the session.

Only descendants of this process count (the machine may run other jobs). A process whose parent ended is
reparented to init and would no longer be a descendant; `adopt_orphans` makes this process their new parent
instead (Linux's child subreaper), so that the workers a killed training process orphans are still seen here.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time

import psutil

_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> bool:
    """Make this process the parent of the orphans among its descendants (Linux); whether that was possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def stop_own_pools(wait_s: float = 60.0) -> None:
    """Shut down the pools this process itself keeps for reuse (loky's executor, which joblib shares) and its
    resource trackers, which would otherwise live until the interpreter exits."""
    executor_module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(executor_module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)
    for name in ("joblib.externals.loky.backend.resource_tracker", "multiprocessing.resource_tracker"):
        tracker = getattr(sys.modules.get(name), "_resource_tracker", None)
        if tracker is not None and getattr(tracker, "_fd", None) is not None:
            # closing its pipe stops it; it exits once no process holds the pipe any more (a leftover might)
            stopper = threading.Thread(target=tracker._stop, daemon=True)  # noqa: SLF001
            stopper.start()
            stopper.join(wait_s)


def running_descendants() -> list[psutil.Process]:
    """This process's descendants that still run (a zombie waiting to be reaped does not)."""
    running = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.Error:
            pass
    return running


def leftover_processes(wait_s: float) -> list[str]:
    """The descendants still running after waiting up to `wait_s` seconds for them to end, described (pid, command);
    they are killed. Empty when none is left."""
    deadline = time.monotonic() + wait_s
    while (left := running_descendants()) and time.monotonic() < deadline:
        time.sleep(0.5)
    described = []
    for process in left:
        try:
            described.append(f"  pid {process.pid}: {' '.join(process.cmdline())[:200]}")
            process.kill()
        except psutil.Error:
            pass
    return described

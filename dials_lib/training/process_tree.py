"""The processes of a run end with it, however it ends; SIGTERM stops it like Ctrl-C.

A run's main process starts worker processes (loky's, an experiment plan's pool, a Dask LocalCluster's) and, through
them, resource trackers. When the main process is killed outright (SIGKILL, the OOM killer, a Jupyter kernel
restart, a cluster scheduler), nothing in it runs any more: its workers would be reparented to init and keep
computing for minutes, competing with the next run for the cores. So every worker process watches its parent
(`end_with_parent`, run first thing in each worker) and kills itself as soon as the parent is gone:
- on Linux, the kernel tells it at once: `prctl(PR_SET_PDEATHSIG)` delivers a signal when the parent ends. The
  kernel sends it when the parent *thread* that started the worker ends, which for a pool started from a helper
  thread happens while the parent process lives on, so the signal only triggers a check of the parent pid;
- everywhere, a daemon thread checks the parent pid every `PARENT_CHECK_S` seconds (the fallback, and the only
  mechanism where the signal is unavailable or cannot be handled, e.g. outside a process's main thread).
Resource trackers (loky's and multiprocessing's) end by themselves once every process holding their pipe is gone,
so they follow the workers. Dask's worker processes also end with their nanny by Dask's own means.

The main process turns SIGTERM (what `timeout`, systemd, cluster schedulers and container stops send first) into
`Terminated`, a KeyboardInterrupt, so that it stops exactly as on Ctrl-C (`sigterm_as_interrupt`); `stop_status`
gives the conventional exit status of either (130, 143). `kill_descendants` ends the worker processes at once, and
`exit_now` leaves without Python's shutdown, which (Python 3.11) aborts the process when a daemon thread is still
inside a torch call ("terminate called without an active exception"): that thread is ended while it runs C++
code that cannot be unwound.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

PARENT_CHECK_S = 0.5
"""Seconds between two checks of the parent pid by a worker's watchdog thread."""
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PARENT_DEATH_SIGNAL = signal.SIGUSR1
_watched_parent: list[int] = []  # the parent this process watches (set once per process)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that everything that stops cleanly on
    Ctrl-C stops the same way."""


def end_with_parent(parent: int) -> None:
    """Make this worker process kill itself as soon as process `parent`, which started it, has ended (at once if it
    already has). Safe to call more than once; meant as a pool's initializer, with the pid of the process that
    creates the pool."""
    if _watched_parent:
        return
    _watched_parent.append(parent)
    if os.getppid() != parent:  # it died before this process got here
        _die()
    if threading.current_thread() is threading.main_thread():  # only there can a signal handler be set
        previous = signal.signal(_PARENT_DEATH_SIGNAL, _on_parent_death_signal)  # before the kernel may send it
        if not _set_parent_death_signal():
            signal.signal(_PARENT_DEATH_SIGNAL, previous)
    threading.Thread(target=_watch_parent, daemon=True, name="dials-parent-watchdog").start()


def end_with_local_parent(parent: int) -> None:
    """`end_with_parent(parent)` if `parent` started this process (a Dask LocalCluster's worker of the process that
    submits the tasks); a worker of a remote cluster, whose parent is its nanny or a shell, is left alone."""
    if os.getppid() == parent:
        end_with_parent(parent)


def _set_parent_death_signal() -> bool:
    """Ask the Linux kernel for `_PARENT_DEATH_SIGNAL` when the parent ends; whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(_PARENT_DEATH_SIGNAL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _on_parent_death_signal(signum: int, frame: FrameType | None) -> None:
    _check_parent()  # the parent process, or only the thread of it that started this process, has ended


def _watch_parent() -> None:
    while True:
        _check_parent()
        time.sleep(PARENT_CHECK_S)


def _check_parent() -> None:
    if os.getppid() != _watched_parent[0]:  # reparented: the parent process has ended
        _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # no clean-up: nothing of this process is wanted without its parent


def kill_descendants() -> None:
    """Kill every process this one started, and theirs (worker processes, pools, resource trackers, kernels)."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises `Terminated` in the main thread (as SIGINT raises KeyboardInterrupt); the
    previous handler is restored after it. Does nothing outside the main thread, where no handler can be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signal.Signals(signum).name}")


def stop_status(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """How a run stopped by `interrupt` says so, and its exit status: 128 + the signal's number, as a shell reports
    a process ended by it (SIGINT 130, SIGTERM 143)."""
    if isinstance(interrupt, Terminated):
        return "terminated (SIGTERM)", 128 + signal.SIGTERM
    return "interrupted", 128 + signal.SIGINT


def exit_process(status: int) -> None:
    """End a command-line process with `status`: Python's usual exit on success (pools shut down in order), and
    `exit_now` on an error, when a thread may still be inside a call."""
    if status == 0:
        sys.exit(0)
    exit_now(status)


def exit_now(status: int) -> None:
    """End this process with `status` at once, after flushing its output and killing its worker processes: no
    interpreter shutdown, which would wait for pools to drain and abort on a thread still inside a torch call."""
    kill_descendants()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


__all__ = ["PARENT_CHECK_S", "Terminated", "end_with_local_parent", "end_with_parent", "exit_now", "exit_process",
           "kill_descendants", "sigterm_as_interrupt", "stop_status"]

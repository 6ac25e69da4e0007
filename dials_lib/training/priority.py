"""A niced run stays niced against other terminals: its scheduling group gets its niceness too (Linux autogroups).

`make train` runs a long training under `nice -n 10` so that whatever else the machine does (the tests, a notebook,
another terminal's work) keeps its speed. On Linux with autogroup scheduling
(`/proc/sys/kernel/sched_autogroup_enabled`, on in most desktop and many server kernels), that alone does not work:
the scheduler first shares the cores fairly between *sessions* (each terminal, each `setsid`), and only within a
session by niceness. A niced training in one
terminal then takes as much CPU as a `make test` in another, however niced it is: the two sessions share the cores
evenly.

`match_session_priority` closes that gap: a process whose niceness is above 0 sets its session's autogroup
niceness to the same value (never lowering it, which an unprivileged user could not do anyway). Everything else in
that session (the shell, a second command run from it) shares the lower priority, which is what a user who starts
a long run with `nice` in its own terminal expects. Elsewhere (another OS, autogroups off, no permission) it does
nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dials_lib.training.process_tree import sigterm_as_interrupt

AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
"""Whether the kernel schedules by autogroup ("1") or not."""
WRITE_ATTEMPTS = 10
"""Tries at setting the autogroup's niceness (the kernel refuses a second write within 100 ms machine-wide)."""


def autogroup_file(pid: int | str = "self") -> Path:
    """The file holding a process's autogroup and its niceness (e.g. "/autogroup-296 nice 0")."""
    return Path(f"/proc/{pid}/autogroup")


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The niceness of a process's autogroup, or None where there is none to read."""
    try:
        return int(autogroup_file(pid).read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def autogroup_scheduling() -> bool:
    """Whether this kernel shares the cores between sessions first (autogroup scheduling on, its files readable)."""
    try:
        return AUTOGROUP_SWITCH.read_text().strip() == "1" and autogroup_nice() is not None
    except OSError:
        return False


def match_session_priority() -> int | None:
    """Give this process's autogroup (its session) this process's niceness, if that is higher; return the
    autogroup's niceness afterwards (None without autogroup scheduling)."""
    if not autogroup_scheduling():
        return None
    current = autogroup_nice()
    own = os.nice(0)
    if current is None or own <= current:
        return current
    for _ in range(WRITE_ATTEMPTS):
        try:
            autogroup_file().write_text(str(own))
            break
        except BlockingIOError:  # EAGAIN: without CAP_SYS_ADMIN the kernel takes one such write per 100 ms
            time.sleep(0.15)
        except OSError:  # not permitted here (a restricted container): the process's own niceness still applies
            return current
    return autogroup_nice()


@contextmanager
def long_training() -> Iterator[None]:
    """The block of a command-line training (`make train`, `make train-sumo`, `python -m dials_lib train`): its
    session gets the process's niceness (`match_session_priority`) and SIGTERM stops it as Ctrl-C does
    (`process_tree.sigterm_as_interrupt`)."""
    match_session_priority()
    with sigterm_as_interrupt():
        yield


__all__ = ["autogroup_file", "autogroup_nice", "autogroup_scheduling", "long_training", "match_session_priority"]

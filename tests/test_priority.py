"""A niced run lowers its session's autogroup priority too (Linux with autogroup scheduling only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dials_lib.training import priority

pytestmark = pytest.mark.skipif(not priority.autogroup_scheduling(), reason="no autogroup scheduling on this machine")

PROBE = ("from dials_lib.training import priority; before = priority.autogroup_nice(); "
         "after = priority.match_session_priority(); print(before, after)")


def in_new_session(niceness: int) -> tuple[int, int]:
    """Run the probe niced, as the leader of a new session (its own autogroup, not the test runner's)."""
    done = subprocess.run(["nice", "-n", str(niceness), sys.executable, "-c", PROBE], capture_output=True,
                          text=True, check=True, start_new_session=True)
    before, after = done.stdout.split()
    return int(before), int(after)


def test_a_niced_process_gives_its_session_its_niceness():
    before, after = in_new_session(7)
    if after == before == 0 and not writable_autogroup():
        pytest.skip("this machine refuses writes to /proc/<pid>/autogroup (a restricted container)")
    assert (before, after) == (0, 7)


def writable_autogroup() -> bool:
    """Whether a process in a new session may set its autogroup's niceness here (EAGAIN, the kernel's rate limit,
    counts as permitted)."""
    probe = """
import errno
from pathlib import Path
try:
    Path('/proc/self/autogroup').write_text('3')
    print('yes')
except OSError as error:
    print('yes' if error.errno == errno.EAGAIN else 'no')
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          start_new_session=True)
    return done.stdout.strip() == "yes"


def test_an_unniced_process_leaves_its_session_alone():
    assert in_new_session(0) == (0, 0)


def test_the_test_runner_session_is_untouched():
    before = priority.autogroup_nice()
    in_new_session(5)
    assert priority.autogroup_nice() == before


LONG_TRAINING_PROBE = """
import os, signal, time
from dials_lib.training import priority
from dials_lib.training.process_tree import Terminated
try:
    with priority.long_training():
        print(priority.autogroup_nice())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this returns
    print("not stopped")
except Terminated:
    print("terminated", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


def test_a_long_training_block_nices_its_session_and_stops_on_sigterm():
    done = subprocess.run(["nice", "-n", "6", sys.executable, "-c", LONG_TRAINING_PROBE], capture_output=True,
                          text=True, check=True, start_new_session=True, timeout=120)
    niceness, outcome = done.stdout.splitlines()
    if int(niceness) == 0 and not writable_autogroup():
        pytest.skip("this machine refuses writes to /proc/<pid>/autogroup (a restricted container)")
    assert (int(niceness), outcome) == (6, "terminated True")

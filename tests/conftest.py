"""Shared pytest configuration of the test suite."""

from __future__ import annotations

import pytest

from tests.leftovers import adopt_orphans, leftover_processes, stop_own_pools

# ---- No process left behind --------------------------------------------------------------------------------------
# A test that kills a training process (SIGKILL, a series killed midway) must not leave its workers computing. This
# session adopts the orphans of the processes it starts (a child subreaper on Linux: without it an orphan would be
# reparented to init and never seen here), and at its end it fails if any process it started, directly or not, is
# still alive a while after its own pools have been shut down. Only descendants of this process count: the machine
# may run other jobs.
LEFTOVER_WAIT_S = 60.0
"""How long the session's end waits for its descendants to end by themselves before calling them leftovers."""


def pytest_sessionstart(session: pytest.Session) -> None:
    adopt_orphans()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_own_pools()
    left = leftover_processes(LEFTOVER_WAIT_S)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"{len(left)} process(es) started by the tests are still alive (killed now):", *left]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

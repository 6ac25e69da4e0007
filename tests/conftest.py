"""Shared pytest configuration of the test suite, and the tiny training runs the training tests share.

Test modules import the helpers below as `from tests.conftest import ...` (a child process started by a test does
the same, with the repository root on its path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dials_lib.hyperparameters import EnvHyperparameters, paper_hyperparameters
from dials_lib.training.run_config import RunConfig
from dials_lib.validation import with_fields
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


# ---- Tiny training runs --------------------------------------------------------------------------------------------
# Runs small enough to train in seconds that still go through every part of Algorithm 1: several chunks, AIP
# retraining and evaluation at every chunk boundary, two groups of agents.


def tiny_hp(env: str = "traffic", epochs: int = 2, dataset_steps: int = 300) -> EnvHyperparameters:
    """The paper's hyperparameters of `env` with a tiny AIP training budget: `epochs` passes over data sets of
    `dataset_steps` GS steps."""
    hp = paper_hyperparameters(env)
    return with_fields(hp, aip=with_fields(hp.aip, epochs=epochs, dataset_steps=dataset_steps))


def tiny_config(run_dir: Path | str, env: str = "traffic", simulator: str = "dials", *, steps_per_chunk: int = 256,
                chunks: int = 3, **changes: Any) -> RunConfig:
    """4 agents, `chunks` chunks of `steps_per_chunk` steps each (768 steps by default), AIPs retrained and the
    policies evaluated on one GS episode every chunk, on one worker in groups of 2 agents, with the AIP budget of
    `tiny_hp`; `changes` set any field of the config (a `chunk_steps` there changes that field alone)."""
    values = dict(env=env, n_agents=4, simulator=simulator, total_timesteps=chunks * steps_per_chunk,
                  retrain_every=steps_per_chunk, eval_every=steps_per_chunk, eval_episodes=1,
                  chunk_steps=steps_per_chunk, n_workers=1, agents_per_worker=2, hyperparameters=tiny_hp(env),
                  run_dir=str(run_dir))
    values.update(changes)
    return RunConfig(**values)


def runner_config(run_dir: Path | str, **changes: Any) -> RunConfig:
    """The traffic DIALS run of the runner tests (and of the extension, start-up and trained-agents tests): 2 chunks
    of 640 steps, AIPs of 3 epochs on 600 GS steps; otherwise `tiny_config`."""
    return tiny_config(run_dir, **{"steps_per_chunk": 640, "chunks": 2,
                                   "hyperparameters": tiny_hp(epochs=3, dataset_steps=600), **changes})


def results_only(metrics: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv without the wall-clock column: what two runs that trained alike have equal."""
    return metrics.drop(columns="wall_time_s")

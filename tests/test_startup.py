"""A DIALS run's start-up (GS data collection, then AIP training, before the first PPO step) and its later AIP
retrainings: a progress bar that moves through them, a checkpoint before and right after each, and each group's new
AIPs kept as they come, so that an interruption loses at most the groups still training."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib.training import dials, group_tasks, progress
from dials_lib.training.checkpoints import read_header, verified_state
from dials_lib.training.run_records import PARTIAL_AIPS, FinishedAIPs, RunClock, RunDirectory
from dials_lib.training.runner import train
from tests.conftest import results_only, runner_config
from tests.faults import train_until_ctrl_c_at_evaluation


def states_equal(a: object, b: object) -> bool:
    """Whether two checkpointed run states hold the same tensors, arrays and values (recursively)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)  # NaN equals NaN here


def learned(run_dir) -> dict:
    """What a run has learned and recorded: its checkpointed state without the clocks, memory and session count."""
    state = verified_state(run_dir / "checkpoint.pt")
    kept = {key: value for key, value in state.items() if key not in ("runtime", "memory", "sessions")}
    kept["rows"] = [{k: v for k, v in row.items() if k != "wall_time_s"} for row in state["rows"]]
    return kept


def counted_tasks(monkeypatch) -> list[tuple[float, float]]:
    """The (wall, CPU) seconds of every task the run clocks count from here on, in order."""
    counted, add_tasks = [], RunClock.add_tasks
    monkeypatch.setattr(RunClock, "add_tasks", lambda clock, seconds, cpu_seconds: counted.append(
        (seconds, cpu_seconds)) or add_tasks(clock, seconds, cpu_seconds))
    return counted


def test_an_interrupt_after_the_aips_are_trained_resumes_at_the_evaluation_with_the_same_numbers(tmp_path,
                                                                                                 monkeypatch):
    whole = train(runner_config(tmp_path / "whole"), progress=False)
    config = runner_config(tmp_path / "interrupted")
    # Ctrl-C during the first evaluation, after the start-up's AIP training
    train_until_ctrl_c_at_evaluation(config, 0, monkeypatch)
    saved = verified_state(config.directory() / "checkpoint.pt")
    assert read_header(config.directory() / "checkpoint.pt")["boundary"] == 0
    assert saved["retrained"] and not saved["prepared"] and saved["runtime"]["aip_training_s"] > 0

    collected = []
    collect = dials.Run.collect_gs_data
    monkeypatch.setattr(dials.Run, "collect_gs_data",
                        lambda self, r, c, reached=None: collected.append(c) or collect(self, r, c, reached))
    resumed = train(config, progress=False)
    assert collected == [1]  # the start-up's data were not collected again (boundary 1 is the next retraining)
    pd.testing.assert_frame_equal(results_only(resumed.metrics), results_only(whole.metrics))
    assert states_equal(learned(config.directory()), learned(whole.run_dir))
    assert resumed.runtime["sessions"] == 2


def test_the_start_up_shows_steps_collected_and_epochs_trained(tmp_path, capsys):
    train(runner_config(tmp_path / "shown"), progress=True)
    shown = capsys.readouterr().err
    assert "collecting GS data: 600 of 600 steps" in shown and "collecting GS data: 0 of 600 steps" in shown
    for epoch in (1, 2, 3):
        assert f"training AIPs: {epoch} of 3 epochs" in shown, epoch
    assert "evaluating on the GS (1 episodes per run): 1 of 1 runs" in shown


def test_a_phase_without_reports_still_shows_its_clock_moving(monkeypatch):
    """The ticker redraws the bar while nothing reports (a task in another process): the phase's clock moves."""
    monkeypatch.setattr(progress, "TICK_SECONDS", 0.05)
    out = io.StringIO()
    bar = progress.RunProgress("run", 100, 0, [[0, 1]], 1, enabled=True, file=out)
    try:
        with bar.phase("training AIPs", 100, "epochs"):
            deadline = time.monotonic() + 120  # generous: a loaded machine may starve the ticker for a while
            while "training AIPs: 0 of 100 epochs, 0:01" not in out.getvalue():
                assert time.monotonic() < deadline, out.getvalue()[-300:]
                time.sleep(0.05)
    finally:
        bar.close()
    assert not bar._ticker.is_alive()


def test_a_bar_that_is_off_starts_no_ticker():
    bar = progress.RunProgress("run", 100, 0, [[0, 1]], 1, enabled=False)
    assert bar._ticker is None
    bar.close()


def test_clock_reads_minutes_and_hours():
    assert progress.clock(0) == "0:00" and progress.clock(73.9) == "1:13" and progress.clock(3725) == "1:02:05"


def test_a_stop_during_aip_retraining_keeps_the_chunk_before_and_the_groups_that_finished(tmp_path, monkeypatch):
    """A retraining after the first chunk, stopped once the first of its two groups is trained: the resume starts at
    that boundary (not one chunk earlier), trains only the other group's AIPs, and ends where an uninterrupted run
    ends."""
    whole = train(runner_config(tmp_path / "whole"), progress=False)
    config = runner_config(tmp_path / "interrupted")  # 2 groups of 2 agents, AIPs retrained at boundaries 0 and 1
    trained, train_aips = [], group_tasks.train_aips

    def stopping_after_one_group(task):
        if task.round_index == 1 and trained.count(1) == 1:  # the second group of the retraining at boundary 1
            raise KeyboardInterrupt
        trained.append(task.round_index)
        return train_aips(task)

    with monkeypatch.context() as patched:
        patched.setattr(group_tasks, "train_aips", stopping_after_one_group)
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False)
    run_dir = config.directory()
    saved = verified_state(run_dir / "checkpoint.pt")
    assert (saved["boundary"], saved["prepared"], saved["retrained"]) == (1, False, False)  # chunk 0 is kept
    done = RunDirectory(config).partial_aips(1)
    assert list(done) == [(0, 1)] and RunDirectory(config).partial_aips(0) == {}
    assert done[(0, 1)].cpu_seconds > 0  # what that group's training cost, counted again by the resume

    retrained, collected, counted = [], [], counted_tasks(monkeypatch)
    monkeypatch.setattr(group_tasks, "train_aips", lambda task: retrained.append(task.agent_ids) or train_aips(task))
    collect = dials.Run.collect_gs_data
    monkeypatch.setattr(dials.Run, "collect_gs_data",
                        lambda self, r, c, reached=None: collected.append(c) or collect(self, r, c, reached))
    resumed = train(config, progress=False)
    assert retrained == [[2, 3]] and collected == [1]  # the finished group's AIPs were not trained again
    assert counted[0] == (done[(0, 1)].seconds, done[(0, 1)].cpu_seconds)  # the finished group's task, counted once
    pd.testing.assert_frame_equal(results_only(resumed.metrics), results_only(whole.metrics))
    assert states_equal(learned(run_dir), learned(whole.run_dir))
    assert not (run_dir / PARTIAL_AIPS).exists()


def test_partial_aips_of_another_boundary_or_damaged_are_not_used(tmp_path, capsys):
    directory = RunDirectory(runner_config(tmp_path / "run"))
    aip = {"weight": torch.arange(6.0).reshape(2, 3)}
    directory.save_partial_aips(1, {(0, 1): FinishedAIPs(aip, 2.5, 2.0)})
    done = directory.partial_aips(1)
    assert list(done) == [(0, 1)] and torch.equal(done[(0, 1)].aip["weight"], aip["weight"])
    assert (done[(0, 1)].seconds, done[(0, 1)].cpu_seconds) == (2.5, 2.0)
    assert directory.partial_aips(2) == {}
    path = directory.path / PARTIAL_AIPS
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    assert directory.partial_aips(1) == {}
    assert "its AIPs train again" in capsys.readouterr().err
    directory.drop_partial_aips()
    assert not path.exists() and directory.partial_aips(1) == {}


def test_a_stop_in_the_middle_of_an_aip_training_resumes_from_its_last_snapshot(tmp_path, monkeypatch):
    """The start-up's AIP training of the first group, stopped right after its snapshot at epoch 2 of 3: the resume
    trains that group from epoch 2 (the other from the start), counts the epochs before the stop once, ends where
    an uninterrupted run ends, and leaves no snapshot behind."""
    whole = train(runner_config(tmp_path / "whole"), progress=False)
    config = runner_config(tmp_path / "interrupted")
    monkeypatch.setattr(group_tasks, "SNAPSHOT_SECONDS", 0.0)  # a snapshot after every epoch
    write, written = group_tasks.AIPSnapshot.write, []

    def stopping_after_epoch_2(snapshot, state, epochs):
        assert write(snapshot, state, epochs)
        written.append((snapshot.path.name, state["training"]["epoch"], (state["seconds"], state["cpu_seconds"])))
        if state["training"]["epoch"] == 2:
            raise KeyboardInterrupt
        return True

    with monkeypatch.context() as patched:
        patched.setattr(group_tasks.AIPSnapshot, "write", stopping_after_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False)
    assert [(name, epoch) for name, epoch, _ in written] == [("aips.training.0-1.pt", 1), ("aips.training.0-1.pt", 2)]
    assert (config.directory() / "aips.training.0-1.pt").exists()

    started_at, train_predictor, counted = [], group_tasks.train_predictor, counted_tasks(monkeypatch)
    monkeypatch.setattr(group_tasks, "train_predictor", lambda *args, resume=None, **kwargs: started_at.append(
        None if resume is None else resume["epoch"]) or train_predictor(*args, resume=resume, **kwargs))
    resumed = train(config, progress=False)
    assert started_at[:2] == [2, None]  # the start-up: group (0, 1) from its snapshot, group (2, 3) afresh
    pd.testing.assert_frame_equal(results_only(resumed.metrics), results_only(whole.metrics))
    assert states_equal(learned(config.directory()), learned(whole.run_dir))
    assert not list(config.directory().glob("aips.training.*"))
    # the group's task as the runner measured it this time (its last epoch), then its two epochs before the stop
    assert counted[1] == written[-1][2]


def test_a_snapshot_of_another_task_or_damaged_is_not_resumed_from(tmp_path, capsys):
    path = tmp_path / "aips.training.0-1.pt"
    mine, other = (group_tasks.AIPSnapshot(path, identity, 0, 300) for identity in ("task-a", "task-b"))
    assert mine.read() is None  # no file yet
    assert mine.write({"training": {"epoch": 1}, "seconds": 1.0, "cpu_seconds": 1.0}, 1)
    assert read_header(path)["progress"] == {"epochs done": 1, "epochs": 300}  # what `make status` shows
    assert mine.read()["training"] == {"epoch": 1} and other.read() is None
    assert "belongs to another run" in capsys.readouterr().err
    path.write_bytes(path.read_bytes()[:-2])
    assert mine.read() is None and "starts over" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    unwritable = group_tasks.AIPSnapshot(tmp_path / "a-file" / "x.pt", "task-a", 0, 300)  # no such folder can be
    assert not unwritable.write({"training": {}, "seconds": 0.0, "cpu_seconds": 0.0}, 1)

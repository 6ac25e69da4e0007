"""Run records that never lose or silently corrupt results: verified checkpoints, torn writes, locks.

Faults are injected from here (flipped bytes, truncation, files copied between runs, a kill simulated between two
writes, a second process on the same directory), never through hooks in the library.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.training import checkpoints, dials
from dials_lib.training.checkpoints import CheckpointError, previous_path, verified_state
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import CHECKPOINT, RunDirectory
from dials_lib.training.runner import train
from dials_lib.validation import with_fields
from tests.conftest import tiny_config


def tiny(run_dir: Path, simulator: str = "gs", **changes) -> RunConfig:
    """`tiny_config` on traffic, GS unless told otherwise, its 4 agents in one group."""
    return tiny_config(run_dir, "traffic", simulator, agents_per_worker=None, **changes)


def results(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns="wall_time_s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """The metrics of the tiny GS run trained without a break."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    train(tiny(run_dir), progress=False)
    return results(run_dir)


def stop_before_chunk(monkeypatch, chunk: int) -> None:
    """Make the next run stop (as if killed) right before it trains chunk `chunk`."""
    train_chunk = dials.Run.train_chunk

    def stopping(run: dials.Run, c: int) -> None:
        if c == chunk:
            raise KeyboardInterrupt
        train_chunk(run, c)

    monkeypatch.setattr(dials.Run, "train_chunk", stopping)


def test_a_checkpoint_carries_a_checksum_and_its_runs_identity(tmp_path):
    config = tiny(tmp_path / "run")
    train(config, progress=False)
    path = config.directory() / CHECKPOINT
    assert path.read_bytes().startswith(checkpoints.MAGIC)
    assert verified_state(path, checkpoints.run_identity(config))["boundary"] == 3
    assert previous_path(path).exists()  # the one before stays until the next is in place
    other = with_fields(config, seed=1)
    assert checkpoints.run_identity(other) != checkpoints.run_identity(config)
    assert checkpoints.run_identity(with_fields(config, n_workers=3, run_dir="elsewhere")) == \
        checkpoints.run_identity(config)
    with pytest.raises(CheckpointError, match="belongs to another run"):
        verified_state(path, checkpoints.run_identity(other))


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch, reference):
    config = tiny(tmp_path / "run")
    stop_before_chunk(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.undo()
    path = config.directory() / CHECKPOINT
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 16] = bytes(16 - b % 16 for b in data[len(data) // 2: len(data) // 2 + 16])
    path.write_bytes(bytes(data))  # 16 bytes changed, the size kept
    result = train(config, progress=False)  # resumes from boundary 1 and ends as the run without a break
    pd.testing.assert_frame_equal(result.metrics.drop(columns="wall_time_s"), reference)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no header", "foreign"])
def test_a_run_never_loads_a_bad_checkpoint_and_says_so_in_one_line(tmp_path, damage):
    config = tiny(tmp_path / "run")
    train(config, progress=False)
    path = config.directory() / CHECKPOINT
    previous_path(path).unlink()
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) - 1000])
    elif damage == "flipped":
        path.write_bytes(data[:-64] + bytes(b ^ 0xFF for b in data[-64:]))
    elif damage == "no header":
        path.write_bytes(data[data.index(b"\n") + 1:])  # a bare torch.save file
    else:  # a checkpoint of a run with another budget, copied into this run's directory
        other = tiny(tmp_path / "other", total_timesteps=512)
        train(other, progress=False)
        shutil.copy(other.directory() / CHECKPOINT, path)
    with pytest.raises(CheckpointError) as caught:
        train(config, progress=False)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "Delete the run directory" in message


def test_records_agree_with_the_checkpoint_after_a_kill_between_the_two(tmp_path, reference):
    config = tiny(tmp_path / "run")
    train(config, progress=False)
    metrics = config.directory() / "metrics.csv"
    rows = metrics.read_text().splitlines()
    metrics.write_text("\n".join(rows[:-1]) + "\n")  # the last row lost: killed after the checkpoint
    result = train(config, progress=False)
    pd.testing.assert_frame_equal(result.metrics.drop(columns="wall_time_s"), reference)
    metrics.unlink()  # a finished run whose metrics were deleted gets them back from its checkpoint
    pd.testing.assert_frame_equal(train(config, progress=False).metrics.drop(columns="wall_time_s"), reference)


def test_a_torn_creation_is_reused_and_stale_temporary_files_are_removed(tmp_path, reference):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".config.json.abc123.tmp").write_text("{")  # killed while writing config.json
    config = tiny(run_dir)
    train(config, progress=False)
    assert not list(run_dir.glob(".*.tmp"))
    pd.testing.assert_frame_equal(results(run_dir), reference)
    (run_dir / ".checkpoint.pt.new.tmp").write_bytes(b"x" * 1000)  # killed while writing a checkpoint
    train(config, progress=False)
    assert not list(run_dir.glob(".*.tmp"))
    foreign = tmp_path / "not_a_run"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a run directory"):
        train(tiny(foreign), progress=False)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_a_damaged_config_or_a_run_dir_that_is_a_file_is_refused_in_one_line(tmp_path):
    config = tiny(tmp_path / "run")
    RunDirectory(config)
    (config.directory() / "config.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ValueError, match=r"config.json is damaged") as caught:
        train(config, progress=False)
    assert "\n" not in str(caught.value)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        train(tiny(a_file), progress=False)


def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path):
    config = RunConfig("traffic", n_agents=4, simulator="gs", total_timesteps=768, run_dir=str(tmp_path / "run"))
    directory = RunDirectory(config)
    script = (
        "from dials_lib.training.run_records import RunDirectory\n"
        "from dials_lib.training.run_config import RunConfig\n"
        "config = RunConfig('traffic', n_agents=4, simulator='gs', total_timesteps=768, "
        f"run_dir={config.run_dir!r})\n"
        "try:\n"
        "    with RunDirectory(config).locked():\n"
        "        print('locked')\n"
        "except ValueError as err:\n"
        "    print(err)\n"
    )
    with directory.locked():
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert "in use by another process" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "locked", out.stderr  # the lock went with the block that held it


KILL_POINTS = {
    # where the training process dies (SIGKILL, no clean-up): at the nth call of one of these
    "flushing a new checkpoint": ("os", "fsync"),
    "renaming any file into place": ("os", "replace"),
    "writing the records": ("run_records", "atomic_write_json"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
@pytest.mark.parametrize("nth", [2, 4])
def test_a_run_killed_at_any_moment_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path, point, nth, reference):
    """A separate process trains the run and is killed with SIGKILL at the `nth` call of a file operation; the same
    command then finishes the run with exactly the uninterrupted run's rows."""
    module, function = KILL_POINTS[point]
    run_dir = tmp_path / "run"
    script = f"""
import os, signal
from pathlib import Path
import tests.test_run_records as t
from dials_lib.training import run_records
from dials_lib.training.runner import train
calls, original = [0], getattr({module}, {function!r})
def dying(*args, **kwargs):
    calls[0] += 1
    if calls[0] == {nth}:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
setattr({module}, {function!r}, dying)
train(t.tiny(Path({str(run_dir)!r})), progress=False)
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert killed.returncode == -9, killed.stderr[-2000:]
    result = train(tiny(run_dir), progress=False)
    pd.testing.assert_frame_equal(result.metrics.drop(columns="wall_time_s"), reference)
    assert not list(run_dir.glob(".*.tmp"))


def test_the_progress_bar_says_what_the_run_does_and_is_silent_when_off(tmp_path, capsys):
    train(tiny(tmp_path / "shown", "dials", n_workers=2), progress=True)
    shown = capsys.readouterr().err
    for doing in ("collecting GS data", "training AIPs", "evaluating on the GS", "training agents (chunk 1 of 3)",
                  "agent-steps/s", "3.07k/3.07k"):
        assert doing in shown, doing
    train(tiny(tmp_path / "quiet", "dials", n_workers=2), progress=False)
    assert capsys.readouterr().err == ""


def test_a_chunk_reports_its_progress_after_every_ppo_update_when_it_runs_here():
    from dials_lib.training import group_tasks
    from dials_lib.training.progress import task_reports
    from dials_lib.training.run_stack import RunStack

    hp = paper_hyperparameters("traffic")
    ids, runs = [0, 1, 2, 3], RunStack((0,))
    state = group_tasks.new_learners(hp, ids, runs, 4_000_000).state_dict()
    task = group_tasks.TrainAgents(hp, ids, runs, 4_000_000, state, group_tasks.OnGlobal(RunStack((5,))), 3 * 128)
    reports = []
    with task_reports(lambda agents, steps: reports.append((agents, steps))):
        group_tasks.train_agents(task)
    assert reports == [((0, 1, 2, 3), 128), ((0, 1, 2, 3), 256), ((0, 1, 2, 3), 384)]
    group_tasks.train_agents(task)  # outside the block: nobody to tell
    assert len(reports) == 3

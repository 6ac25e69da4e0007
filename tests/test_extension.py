"""A finished run extends to a longer budget: the same config with a larger total_timesteps (`--steps`) trains on
from its checkpoint, and the extended run is exactly the longer run trained from the start."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from dials_lib.__main__ import main as cli_main
from dials_lib.training import dials
from dials_lib.training.extension import prefix_problem, shorter_sibling
from dials_lib.training.run_config import RunConfig
from dials_lib.training.runner import train
from tests.conftest import results_only, runner_config
from tests.test_startup import learned, states_equal


@pytest.fixture(scope="module")
def longer_from_the_start(tmp_path_factory):
    """The tiny DIALS run of 1,280 steps per agent (AIPs retrained and evaluated every 640 steps), uninterrupted."""
    return train(runner_config(tmp_path_factory.mktemp("runs") / "whole"), progress=False)


def test_a_finished_run_extended_equals_the_longer_run_trained_from_the_start(longer_from_the_start, tmp_path,
                                                                            monkeypatch):
    run_dir = tmp_path / "extended"
    short = train(runner_config(run_dir, total_timesteps=640), progress=False)
    assert list(short.metrics["timestep"]) == [0, 640]
    chunks = []
    train_chunk = dials.Run.train_chunk
    monkeypatch.setattr(dials.Run, "train_chunk", lambda self, c: chunks.append(c) or train_chunk(self, c))
    extended = train(runner_config(run_dir), progress=False)
    assert chunks == [1]  # only the new chunk trained: the first was read back from the checkpoint
    pd.testing.assert_frame_equal(results_only(extended.metrics), results_only(longer_from_the_start.metrics))
    assert states_equal(learned(run_dir), learned(longer_from_the_start.run_dir))
    assert extended.runtime["sessions"] == 2
    again = train(runner_config(run_dir), progress=False)  # finished at the longer budget: read back
    pd.testing.assert_frame_equal(again.metrics, extended.metrics)


def test_a_run_that_is_no_prefix_is_refused_and_left_untouched(tmp_path):
    cut, run_dir = tmp_path / "cut", tmp_path / "run"
    train(runner_config(cut, total_timesteps=384), progress=False)  # one chunk of 384 steps: the longer run's is 640
    train(runner_config(run_dir, total_timesteps=640), progress=False)
    before = {p: p.read_bytes() for d in (cut, run_dir) for p in d.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="does not end on a chunk boundary"):
        train(runner_config(cut), progress=False)
    with pytest.raises(ValueError, match="can be extended, not shortened"):
        train(runner_config(run_dir, total_timesteps=384), progress=False)
    with pytest.raises(ValueError, match="seed: stored 0, now 1") as err:
        train(runner_config(run_dir, seed=1), progress=False)
    assert "extended" not in str(err.value)  # more than the budget differs: no talk of extending
    assert {p: p.read_bytes() for d in (cut, run_dir) for p in d.iterdir() if p.is_file()} == before


def test_prefix_problem_needs_the_shorter_budget_on_a_chunk_boundary(tmp_path):
    longer = runner_config(tmp_path / "x", total_timesteps=1920)
    assert prefix_problem(runner_config(tmp_path / "x", total_timesteps=1280).record(), longer) is None
    assert "chunk boundary" in prefix_problem(runner_config(tmp_path / "x", total_timesteps=960).record(), longer)


def test_the_same_command_with_more_steps_extends_a_copy_of_the_shorter_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    command = ["train", "--env", "traffic", "--agents", "4", "--simulator", "gs", "--workers", "1",
               "--eval-episodes", "1", "--chunk-steps", "128", "--no-progress"]
    assert cli_main([*command, "--steps", "384"]) == 0
    shorter = RunConfig("traffic", simulator="gs", total_timesteps=384, eval_episodes=1, chunk_steps=128)
    shorter_files = {p.name: p.read_bytes() for p in shorter.directory().iterdir() if p.is_file()}
    # the default evaluation interval is a twentieth of the budget (here 166 steps, the shorter run's 128): the
    # longer run keeps the shorter one's, so that it is that run continued
    longer = RunConfig("traffic", simulator="gs", total_timesteps=3328, eval_episodes=1, chunk_steps=128)
    assert longer.eval_every == 166 and shorter.eval_every == 128 and shorter_sibling(longer) is None
    assert shorter_sibling(longer, any_eval_every=True)[0] == shorter.directory()
    assert cli_main([*command, "--steps", "3328"]) == 0
    assert "extending" in capsys.readouterr().out
    # the shorter run is kept as it was; the longer one equals that run trained from the start
    assert {p.name: p.read_bytes() for p in shorter.directory().iterdir() if p.is_file()} == shorter_files
    from_start = train(dataclasses.replace(longer, eval_every=128, run_dir=str(tmp_path / "from_start")),
                       progress=False)
    extended = pd.read_csv(tmp_path / "runs" / longer.name() / "metrics.csv")
    pd.testing.assert_frame_equal(results_only(extended), results_only(from_start.metrics))

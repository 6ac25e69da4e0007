"""A shorter run is a prefix of a longer one: PPO's learning rate and clip decay over `anneal_timesteps` (the paper's
4M steps by default) and F is in steps, so the first steps of any run train exactly alike, whatever its length."""

from __future__ import annotations

import pandas as pd
import pytest

from dials_lib.training.run_config import RunConfig, config_from_preset
from dials_lib.training.runner import train
from tests.conftest import tiny_config


def tiny(run_dir, simulator: str, total: int, **changes) -> RunConfig:
    """`tiny_config` on traffic for `total` steps per agent, its 4 agents in one group."""
    return tiny_config(run_dir, "traffic", simulator, total_timesteps=total, agents_per_worker=None, **changes)


@pytest.mark.parametrize("simulator", ["gs", "dials"])
def test_a_shorter_run_is_the_prefix_of_a_longer_one(tmp_path, simulator):
    short = train(tiny(tmp_path / "short", simulator, 512), progress=False).metrics.drop(columns="wall_time_s")
    long = train(tiny(tmp_path / "long", simulator, 1024), progress=False).metrics.drop(columns="wall_time_s")
    assert list(short["timestep"]) == [0, 256, 512] and len(long) == 5
    # a run never retrains at its end, so the last AIP loss of the shorter run is that of the AIPs it trained with,
    # where the longer run has just retrained them: every other number is the same
    same = short.columns.drop("aip_ce")
    pd.testing.assert_frame_equal(short[same], long.iloc[:3][same])
    pd.testing.assert_series_equal(short["aip_ce"].iloc[:2], long["aip_ce"].iloc[:2])
    assert simulator == "gs" or short["aip_ce"].iloc[2] != long["aip_ce"].iloc[2]
    # squeezing the decay into the run (the old schedule) makes its steps differ from the longer run's
    squeezed = train(tiny(tmp_path / "squeezed", simulator, 512, anneal_timesteps=512), progress=False).metrics
    assert not squeezed["mean_return"].iloc[1:].equals(long["mean_return"].iloc[1:3])


def test_the_paper_preset_decays_over_its_whole_run_as_the_paper_does():
    for env in ("traffic", "warehouse"):
        config = config_from_preset("paper", env, "dials")
        assert config.anneal_timesteps == config.total_timesteps == 4_000_000
    with pytest.raises(ValueError, match="anneal_timesteps"):
        RunConfig("traffic", anneal_timesteps=5)

"""The scale study's tables on synthetic records: the preset's training time from its runs' runtime records."""

from __future__ import annotations

import pandas as pd
import pytest

from dials_lib.analysis.comparison import Comparison
from dials_lib.analysis.scale_study import ScaleStudy
from dials_lib.presets import get_preset


@pytest.fixture(autouse=True)
def figures(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_FIGURES_DIR", str(tmp_path))
    return tmp_path


def test_training_time_counts_each_seed_batch_once_and_sums_the_plan():
    # two seeds trained as one batch of 7,200 s: each run's record holds its share, 3,600 s
    runtimes = pd.DataFrame([
        {"n_agents": n, "simulator": sim, "seed": seed, "total_s": 3600.0 * k, "stacked_runs": 2,
         "worker_busy_s": 1800.0 * k, "worker_cpu_s": 450.0 * k}
        for k, (n, sim) in enumerate([(25, "gs"), (25, "dials"), (100, "gs")], start=1) for seed in (0, 1)])
    comparison = Comparison("traffic", "10", get_preset("scale").traffic, pd.DataFrame(), runtimes,
                            pd.DataFrame(), [])
    table = ScaleStudy("scale", {"traffic": comparison}, None, pd.DataFrame()).training_time()
    batches = table[table["env"] == "traffic"].set_index(["n_agents", "method"])
    assert batches.loc[(25, "GS"), "batch wall h"] == 2.0 and batches.loc[(25, "DIALS"), "batch wall h"] == 4.0
    assert batches.loc[(100, "GS"), "batch wall h"] == 6.0
    assert (batches["worker core share"] == 0.25).all() and (batches["seeds"] == 2).all()
    # each run's record holds its share of the batch's worker CPU too: the batch's is twice a run's
    assert batches.loc[(25, "GS"), "worker CPU h"] == 0.25 and batches.loc[(100, "GS"), "worker CPU h"] == 0.75
    totals = table[table["env"] == "all"].set_index("method")
    assert totals["batch wall h"].tolist() == [12.0, 6.0]  # the sum, and over 2 processes side by side
    assert totals["worker CPU h"].tolist() == [1.5, 0.75]

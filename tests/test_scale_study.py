"""The scale study's tables on synthetic records: the preset's training time from its runs' runtime records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dials_lib.analysis import projection
from dials_lib.analysis.comparison import Comparison
from dials_lib.analysis.scale_study import ScaleStudy
from dials_lib.presets import get_preset

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def figures(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_FIGURES_DIR", str(tmp_path))
    return tmp_path


def test_training_time_counts_each_seed_batch_once_and_sums_the_plan():
    # two seeds trained as one batch of 7,200 s: each run's record holds its share, 3,600 s
    runtimes = pd.DataFrame([
        {"n_agents": n, "simulator": sim, "seed": seed, "total_s": 3600.0 * k, "stacked_runs": 2,
         "worker_busy_s": 1800.0 * k, "worker_cpu_s": 450.0 * k, "evaluation_s": 90.0 * k,
         "data_collection_s": 90.0 if sim == "dials" else 0.0}
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
    # the main process's evaluations and data collection, outside the worker tasks: 2 runs x (90 k + 90 if DIALS) s
    serial = batches["evaluation + data wall h"]
    assert [serial[(25, "GS")], serial[(25, "DIALS")], serial[(100, "GS")]] == pytest.approx([0.05, 0.15, 0.15])
    totals = table[table["env"] == "all"].set_index("method")
    assert totals["batch wall h"].tolist() == [12.0, 6.0]  # the sum, and over 2 processes side by side
    assert totals["worker CPU h"].tolist() == [1.5, 0.75]
    assert totals["evaluation + data wall h"].tolist() == pytest.approx([0.35, 0.175])


def test_training_time_sums_a_batch_whose_seeds_trained_in_parts():
    # 3 seeds of 100 agents, each trained alone (`plans.stacked_parts`): every run's record is its own whole time
    runtimes = pd.DataFrame([
        {"n_agents": 100, "simulator": "gs", "seed": seed, "total_s": 3600.0 * (seed + 1), "stacked_runs": 1,
         "worker_busy_s": 1800.0 * (seed + 1), "worker_cpu_s": 900.0 * (seed + 1), "evaluation_s": 36.0}
        for seed in (0, 1, 2)])
    comparison = Comparison("warehouse", "10", get_preset("scale").warehouse, pd.DataFrame(), runtimes,
                            pd.DataFrame(), [])
    table = ScaleStudy("scale", {"warehouse": comparison}, None, pd.DataFrame()).training_time()
    batch = table[table["env"] == "warehouse"].iloc[0]
    assert batch["seeds"] == 3 and batch["batch wall h"] == 6.0 and batch["worker CPU h"] == 1.5
    assert batch["worker core share"] == 0.5 and batch["evaluation + data wall h"] == pytest.approx(0.03)


def test_training_time_sets_each_batch_beside_its_projection_from_the_timed_runs():
    # the committed timed runs of notebook 07 (quick preset), as the scale preset reads them
    rows = json.loads((REPO_ROOT / "records" / "quick" / "scaling" / "measurements.json").read_text())["rows"]
    measured = pd.DataFrame(rows)
    runtimes = pd.DataFrame([
        {"n_agents": n, "simulator": sim, "seed": seed, "total_s": 3600.0, "stacked_runs": 3,
         "worker_busy_s": 3000.0, "worker_cpu_s": cpu}
        for n, sim, cpu in [(25, "gs", 1200.0), (100, "dials", 2400.0), (4, "gs", 300.0)]
        for seed in (0, 1, 2)])
    runtimes["prefix_of"] = [f"traffic_n4_gs_T1056000_seed{s}" if n == 4 else float("nan")
                             for n, s in zip(runtimes["n_agents"], runtimes["seed"], strict=True)]
    # the 4-agent batch is read from another preset's longer run: its prorated CPU is not this preset's
    comparison = Comparison("traffic", "10", get_preset("scale").traffic, pd.DataFrame(), runtimes,
                            pd.DataFrame(), [])
    table = ScaleStudy("scale", {"traffic": comparison}, measured, pd.DataFrame()).training_time()
    one_worker = projection.training_runs_runtime(measured, "scale", 1)

    def projected(n: int, simulator: str) -> float:
        part = one_worker[(one_worker["env"] == "traffic") & (one_worker["n_agents"] == n)
                          & (one_worker["simulator"] == simulator)]
        assert len(part) == 3  # the batch's three seeds
        return part["total_s"].sum() / 3600

    batches = table[table["env"] == "traffic"].set_index(["n_agents", "method"])
    assert batches.loc[(25, "GS"), "projected CPU h"] == pytest.approx(projected(25, "gs"))
    assert batches.loc[(100, "DIALS"), "projected CPU h"] == pytest.approx(projected(100, "dials"))
    assert batches.loc[(25, "GS"), "worker CPU h"] == pytest.approx(1.0)  # 3 runs x 1,200 s
    assert pd.isna(batches.loc[(4, "GS"), "worker CPU h"]) and pd.isna(batches.loc[(4, "GS"), "worker core share"])
    total = table[table["method"] == "sum of the batches"].iloc[0]
    assert total["projected CPU h"] == pytest.approx(projected(25, "gs") + projected(100, "dials"))  # not the 4's
    assert total["worker CPU h"] == pytest.approx(3.0)


def test_the_runtime_panel_has_every_size_measured_projected_or_in_the_paper():
    """Panel 3: our CPU hours per run where runs finished (a run read from a longer run included, prorated), and at
    every size of the timed runs and of the paper's Tables 1-2 their projection and the paper's hours, so a size not
    trained here still shows both."""
    rows = json.loads((REPO_ROOT / "records" / "quick" / "scaling" / "measurements.json").read_text())["rows"]
    measured = pd.DataFrame(rows)
    runtimes = pd.DataFrame([
        {"n_agents": n, "simulator": sim, "retrain_every": f, "f_fraction": 0.25 if f else float("nan"),
         "seed": seed, "total_s": 7200.0, "stacked_runs": 3, "worker_busy_s": 7000.0, "worker_cpu_s": cpu}
        for n, sim, f, cpu in [(100, "dials", 1_000_000, 1800.0), (4, "gs", None, 360.0)] for seed in (0, 1, 2)])
    comparison = Comparison("traffic", "10", get_preset("scale").traffic, pd.DataFrame(), runtimes,
                            pd.DataFrame(), [])
    table = ScaleStudy("scale", {"traffic": comparison}, measured, pd.DataFrame()).runtime_vs_agents()
    assert sorted(set(table["n_agents"])) == [4, 25, 49, 100]
    assert set(table["method"]) == {"GS", "DIALS", "untrained-DIALS"}  # the paper's other F rows are left out
    rows = table.set_index(["n_agents", "method"])
    assert rows.loc[(100, "DIALS"), "measured here (worker CPU h per run, this budget)"] == 0.5
    assert rows.loc[(4, "GS"), "measured here (worker CPU h per run, this budget)"] == 0.1
    assert rows.loc[(100, "DIALS"), "measured here (wall h per run, this budget)"] == 2.0
    assert rows.loc[[(25, "GS"), (49, "DIALS")], "measured here (worker CPU h per run, this budget)"].isna().all()
    assert rows.loc[(49, "GS"), "paper, 4M steps, 128 CPUs (h)"] == 105.41  # paper/runtimes.csv
    assert rows[["projected, 4M steps, 128 workers (h)", "paper, 4M steps, 128 CPUs (h)"]].notna().all().all()
    projected = projection.projections(measured, "scale")
    pick = projected[(projected["env"] == "traffic") & (projected["n_agents"] == 25)
                     & (projected["budget"] == "paper protocol") & (projected["workers"] == 128)
                     & (projected["simulator"] == "GS")]
    assert rows.loc[(25, "GS"), "projected, 4M steps, 128 workers (h)"] == pytest.approx(pick["total_s"].iloc[0] / 3600)

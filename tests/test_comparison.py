"""DIALS against GS in one environment (notebooks 04, 05: `dials_lib.analysis.comparison`) on synthetic records.

Three seeds of each method at 4 traffic agents, evaluated at 0, 250K and 500K steps per agent: GS and DIALS learn
(from about 145 to 181 and 186), untrained-DIALS ends where it started; the hand-coded controller returns 176. The
paper's numbers come from paper/*.csv as in the notebooks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dials_lib import paper
from dials_lib.analysis import comparison, plans
from dials_lib.paper import read_paper_table
from dials_lib.presets import RunBudget, get_preset

STEPS = 500_000
SEEDS = (0, 1, 2)
FINAL = {"gs": 180.0, "dials": 185.0, "untrained-dials": None}  # seed s adds s; None: stays at its start
SECONDS = {"gs": 600.0, "dials": 300.0, "untrained-dials": 240.0}  # total runtime of each run


@pytest.fixture(autouse=True)
def figures(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_FIGURES_DIR", str(tmp_path))
    return tmp_path


def start_of(seed: int) -> float:
    """Every run's return before training: 145, 145.5, 146 for seeds 0, 1, 2."""
    return 145.0 + 0.5 * seed


def synthetic_comparison() -> comparison.Comparison:
    """The records of a traffic comparison at 4 agents, as `comparison.compare` would gather them."""
    rows, runtimes = [], []
    for simulator, final in FINAL.items():
        f_fraction = paper.main_f_fraction("traffic") if simulator == "dials" else np.nan
        retrain_every = f_fraction * paper.TOTAL_STEPS
        for seed in SEEDS:
            end = start_of(seed) if final is None else final + seed
            for step in (0, STEPS // 2, STEPS):
                value = start_of(seed) + (end - start_of(seed)) * step / STEPS
                rows.append({"env": "traffic", "n_agents": 4, "simulator": simulator, "retrain_every": retrain_every,
                             "f_fraction": f_fraction, "seed": seed, "timestep": step, "mean_return": value,
                             "greedy_return": value + 1.0,
                             "aip_ce": np.nan if simulator == "gs" else 0.7 - 0.2 * step / STEPS,
                             "delay_per_car": 20.0 - 10.0 * step / STEPS + seed, "throughput": 0.3,
                             "queue_length": 2.0, "wall_time_s": SECONDS[simulator] * step / STEPS})
            runtimes.append({"env": "traffic", "n_agents": 4, "simulator": simulator, "retrain_every": retrain_every,
                             "f_fraction": f_fraction, "seed": seed, "agents_training_s": SECONDS[simulator] / 2,
                             "data_collection_plus_aip_training_s": 0.0 if simulator == "gs" else 60.0,
                             "evaluation_s": 30.0, "total_s": SECONDS[simulator]})
    hand_coded = pd.DataFrame([{"n_agents": 4, "episodes": 6, "mean_return": 176.0, "delay_per_car": 12.0,
                                "throughput": 0.35, "queue_length": 1.5}])
    budget = RunBudget(sizes=(4,), n_seeds=len(SEEDS), total_timesteps=STEPS, eval_every=STEPS // 2,
                       eval_episodes=2)
    return comparison.Comparison("traffic", "04", budget, pd.DataFrame(rows), pd.DataFrame(runtimes), hand_coded,
                                 configs=[])


def test_final_returns_beside_the_papers_are_drawn_and_saved(figures):
    """Mean and SEM over seeds of the last evaluation per method, the paper's 4M-step return beside it."""
    table = synthetic_comparison().returns().set_index("method")
    assert list(table.index) == ["GS", "DIALS", "untrained-DIALS"]
    assert table["final (ours)"].tolist() == pytest.approx([181.0, 186.0, 145.5])
    assert table.loc["GS", "SEM (ours)"] == pytest.approx(1 / np.sqrt(3))
    assert table["seeds"].tolist() == [3, 3, 3]
    results = read_paper_table("results").query("env == 'traffic' and agents == 4").iloc[0]
    assert table["final (paper, 4M steps)"].tolist() == [results["GS"], results["DIALS"], results["untrained_DIALS"]]
    assert (figures / "04_traffic_returns_and_runtime.png").exists()
    assert (figures / "04_traffic_final_returns.csv").exists()


def test_learning_table_says_who_learned_next_to_the_paper_at_the_same_step(figures):
    """Start and final return per method, the gain and its verdict; the paper's return at 500K, at 0 and at 4M;
    the hand-coded controller as a flat row with the paper's value."""
    table = synthetic_comparison().learning().set_index("method")
    assert list(table.index) == ["GS", "DIALS", "untrained-DIALS", "hand-coded"]
    assert table["start"].tolist() == pytest.approx([145.5, 145.5, 145.5, 176.0])
    assert table["final"].tolist() == pytest.approx([181.0, 186.0, 145.5, 176.0])
    assert table.loc["DIALS", "final - start"] == pytest.approx(40.5)
    assert table.loc["DIALS", "95% CI low"] <= 40.5 <= table.loc["DIALS", "95% CI high"]
    assert table["learned"].iloc[:3].tolist() == ["yes", "yes", "no"]
    assert table["final, greedy"].iloc[:3].tolist() == pytest.approx([182.0, 187.0, 146.5])
    for method in ("GS", "DIALS", "untrained-DIALS"):
        assert table.loc[method, "paper at 500,000"] == paper.curve_at("traffic", 4, method, STEPS)
        assert table.loc[method, "paper start"] == paper.curve_at("traffic", 4, method, 0)
        assert table.loc[method, "paper at 4M"] == paper.curve_at("traffic", 4, method, paper.TOTAL_STEPS)
    hand_coded = read_paper_table("results").query("env == 'traffic' and agents == 4")["hand_coded"].iloc[0]
    assert table.loc["hand-coded", ["paper at 500,000", "paper start", "paper at 4M"]].tolist() == [hand_coded] * 3
    assert (figures / "04_traffic_learning.csv").exists()


def test_a_run_of_the_papers_length_has_no_separate_same_step_column():
    """At 4M steps per agent the paper's return 'at the same step' is its 'at 4M' column: shown once."""
    records = synthetic_comparison()
    records.metrics["timestep"] = records.metrics["timestep"] * (paper.TOTAL_STEPS // STEPS)
    columns = records.learning().columns
    assert "paper at 4M" in columns and not [c for c in columns if c.startswith("paper at 4,000,000")]


def test_differences_between_methods_have_bootstrap_intervals_over_seeds(figures):
    """Each pair's difference of mean final returns, an interval around it, and the seeds on each side."""
    table = synthetic_comparison().differences().set_index("comparison")
    assert list(table.index) == ["DIALS - GS", "untrained-DIALS - GS", "DIALS - untrained-DIALS"]
    assert table["difference"].tolist() == pytest.approx([5.0, -35.5, 40.5])
    assert (table["95% CI low"] <= table["difference"]).all() and (table["difference"] <= table["95% CI high"]).all()
    assert table.loc["DIALS - GS", "95% CI low"] > 0 > table.loc["untrained-DIALS - GS", "95% CI high"]
    assert set(table["seeds"]) == {"3 vs 3"}
    assert (figures / "04_traffic_differences.csv").exists()


def test_conclusion_names_the_learners_and_the_verdict_of_each_claim():
    """One line on who learned at each size, then one line per claim with its verdict and the paper's numbers."""
    lines = synthetic_comparison().conclusion().splitlines()
    assert lines[0] == ("4 agents, 500,000 steps per agent: learned: GS, DIALS (final return clearly above the "
                        "start)")
    claims = {line.split(" (")[0]: line for line in lines[1:]}
    assert list(claims) == ["- DIALS matches or beats GS on return", "- untrained-DIALS is clearly worse than DIALS",
                            "- DIALS reaches or beats the hand-coded controller"]
    assert all(": REPRODUCED." in line for line in claims.values())
    assert "DIALS 186 (from 145.5) vs GS 181 (from 145.5)" in claims["- DIALS matches or beats GS on return"]


def test_conclusion_without_learning_says_none():
    """When no method gains on its start, no claim that needs learning is decided."""
    records = synthetic_comparison()
    records.metrics["mean_return"] = records.metrics["seed"].map(start_of)
    lines = records.conclusion().splitlines()
    assert lines[0].endswith("learned: none (final return clearly above the start)")
    assert all(": NOT MEASURED." in line for line in lines[1:])


def test_runtimes_and_speedups_per_run_beside_the_papers_hours(figures):
    """Minutes per run of each part (mean over seeds) with the paper's total hours; GS over DIALS, ours and
    theirs; the AIP loss figure."""
    records = synthetic_comparison()
    table = records.aip_and_runtime().set_index("method")
    assert table["total per run (min)"].tolist() == pytest.approx([10.0, 5.0, 4.0])
    assert table["agents training per run (min)"].tolist() == pytest.approx([5.0, 2.5, 2.0])
    runtimes = read_paper_table("runtimes")
    paper_hours = [paper.table_value(runtimes, "traffic", 4, name, "total_h")
                   for name in ("GS", paper.main_dials_label("traffic"), "untrained-DIALS")]
    assert table["paper total per run (h, 4M steps)"].tolist() == paper_hours
    assert (figures / "04_traffic_aip_loss.png").exists() and (figures / "04_traffic_runtimes.csv").exists()
    assert records.speedups() == (f"4 agents: GS / DIALS total runtime: ours 2.00x on 2 cores, paper "
                                  f"{paper_hours[0] / paper_hours[1]:.2f}x on {paper.CPUS} CPUs")


def test_domain_metrics_final_values_and_figure(figures):
    """The first domain metric's final mean per method (delay per car for traffic), without a paper column."""
    table = synthetic_comparison().domain_metrics().set_index("method")
    assert table["final (ours)"].tolist() == pytest.approx([11.0, 11.0, 11.0])
    assert "final (paper, 4M steps)" not in table.columns
    assert (figures / "04_traffic_domain_metrics.png").exists()


def test_start_and_hand_coded_returns_as_text():
    """Our start per size, the paper's start and hand-coded return, and our hand-coded controller's."""
    text = synthetic_comparison().start_and_hand_coded()
    assert "return before training (ours): [{'n_agents': 4, 'start': 145.5}]" in text
    assert "hand-coded controller here: [{'n_agents': 4, 'mean_return': 176.0}]" in text
    assert "'agents': 4, 'random_policy_start': 145" in text


def test_describe_counts_the_presets_runs():
    """The smoke preset's main comparison: its number of runs, its F and its share of the paper's steps."""
    configs = plans.comparison_configs("smoke", "traffic")
    budget = get_preset("smoke").budget("traffic")
    text = comparison.describe("smoke", "traffic")
    f = next(c.retrain_every for c in configs if c.simulator == "dials")
    assert text.startswith(f"preset smoke: {len(configs)} runs = sizes {budget.sizes} x {budget.n_seeds} seeds")
    assert f"F = {f:,} steps" in text and f"{budget.total_timesteps:,} steps per agent" in text

"""The SUMO study (`dials_lib.analysis.sumo_study`): its plan, its table and conclusion on synthetic records where
runs are missing, learned or did not; then the smoke runs trained end to end (skipped without SUMO)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib import paper
from dials_lib.analysis import plans, sumo_study
from dials_lib.analysis.sumo_study import SUMO_ENV, SumoStudy, grid_configs, study, sumo_configs
from dials_lib.envs.sumo_network import INSTALL_HINT, sumo_available

torch.set_num_threads(1)
STEPS = 1_056_000
START = (143.0, 145.0, 147.0)
LEARNED = {"gs": (190.0, 195.0, 200.0), "dials": (205.0, 210.0, 212.0), "untrained-dials": (150.0, 170.0, 190.0)}


def records(env: str = SUMO_ENV, finals: dict[str, tuple[float, ...]] = LEARNED) -> pd.DataFrame:
    """Evaluations of each method's seeds at step 0 (START), half-way and at the end (the finals given)."""
    rows = []
    for simulator, final in finals.items():
        f = 1_000_000 if simulator == "dials" else np.nan
        for seed, (start, end) in enumerate(zip(START, final, strict=False)):
            for timestep, value in ((0, start), (STEPS // 2, (start + end) / 2), (STEPS, end)):
                rows.append({"env": env, "n_agents": 4, "simulator": simulator, "retrain_every": f,
                             "f_fraction": f / 4e6, "seed": seed, "timestep": timestep, "mean_return": value})
    return pd.DataFrame(rows)


def result(metrics: pd.DataFrame, grid: pd.DataFrame | None = None, actuated: float = 181.0) -> SumoStudy:
    grid = records("traffic", {"gs": (246.0,) * 3, "dials": (245.0,) * 3, "untrained-dials": (70.0,) * 3}) \
        if grid is None else grid
    return SumoStudy("quick", 3, STEPS, metrics, grid, actuated)


def test_the_plan_is_the_quick_traffic_comparison_on_sumo_at_four_agents() -> None:
    configs = sumo_configs("quick")
    assert len(configs) == 9 and {c.env for c in configs} == {SUMO_ENV}
    assert {c.simulator for c in configs} == {"gs", "dials", "untrained-dials"}
    assert {c.seed for c in configs} == set(plans.run_seeds("quick", "traffic")) and len({c.seed for c in configs}) == 3
    assert {(c.n_agents, c.total_timesteps, c.eval_every) for c in configs} == {(4, 1_056_000, 96_000)}
    assert all(c.retrain_every == 1_000_000 for c in configs if c.simulator == "dials")
    assert all(c.directory().parent == plans.preset_runs_dir("quick") for c in configs)
    grid = grid_configs("quick")
    assert [(c.simulator, c.seed, c.total_timesteps) for c in grid] == [
        (c.simulator, c.seed, c.total_timesteps) for c in configs] and {c.env for c in grid} == {"traffic"}


def test_the_table_sets_each_method_beside_the_paper_and_our_grid() -> None:
    table = result(records()).table(save=False).set_index("method")
    assert list(table.index) == ["GS", "DIALS", "untrained-DIALS", "actuated lights"]
    assert (table.loc[["GS", "DIALS", "untrained-DIALS"], "runs"] == "3 of 3").all()
    gs = table.loc["GS"]
    assert gs["start"] == pytest.approx(145.0) and gs["final"] == pytest.approx(195.0)
    assert gs["final - start"] == pytest.approx(50.0) and gs["95% CI low"] < 50.0 < gs["95% CI high"]
    assert gs["learned"] == "yes" and table.loc["untrained-DIALS", "learned"] in ("partly", "no")
    assert gs["paper start"] == 145.0 and gs["paper after 4M"] == 200.0
    assert gs["paper at our steps"] == pytest.approx(paper.curve_at("traffic", 4, "GS", STEPS))
    assert table.loc["DIALS", "paper after 4M"] == 214.0 and table.loc["untrained-DIALS", "paper after 4M"] == 172.0
    assert table.loc["GS", "our cell grid, final"] == 246.0
    assert table.loc["untrained-DIALS", "our cell grid, final"] == 70.0
    actuated = table.loc["actuated lights"]
    assert actuated["final"] == 181.0 and actuated["paper after 4M"] == pytest.approx(176.4)


def test_the_conclusion_compares_dials_with_gs_only_when_both_learned() -> None:
    text = result(records()).conclusion()
    assert "actuated lights score 181.0 on our SUMO grid (paper 176.4)" in text
    assert "GS goes from 145.0 to 195.0" in text and "DIALS minus GS at the end: +14.0 [95% CI" in text
    flat = dict(LEARNED, gs=(146.0, 144.0, 147.0))
    text = result(records(finals=flat)).conclusion()
    assert "DIALS against GS is not measured: GS did not clearly learn." in text and "minus GS" not in text


def test_missing_runs_are_not_measured_and_say_how_to_train_them() -> None:
    partial = records()
    partial = partial[~((partial["simulator"] == "dials") & (partial["seed"] == 2))]
    missing_grid = records("traffic").iloc[:0]
    study_ = result(partial, grid=missing_grid, actuated=np.nan)
    table = study_.table(save=False).set_index("method")
    assert table.loc["DIALS", "runs"] == "2 of 3" and table.loc["DIALS", "learned"] == "not measured"
    assert np.isnan(table.loc["DIALS", "final"]) and table["our cell grid, final"].isna().all()
    text = study_.conclusion()
    assert text.startswith("Training on SUMO is not measured") and "DIALS (2 of 3 runs finished)" in text
    assert "make train-sumo PRESET=quick" in text and "actuated" not in text
    empty = pd.DataFrame(columns=[*plans.RUN_COLUMNS, "timestep", "mean_return"])
    nothing = result(empty, grid=empty)
    assert "GS (0 of 3 runs finished)" in nothing.conclusion()
    assert (nothing.table(save=False)["learned"].iloc[:3] == "not measured").all()


def test_the_curves_figure_draws_runs_paper_points_and_baselines(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = []
    monkeypatch.setattr(sumo_study, "save_figure", lambda fig, name: saved.append(name))
    fig = result(records()).curves()
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"GS", "DIALS", "untrained-DIALS", "GS, paper (Figure 5)", "actuated lights (ours)",
            "actuated lights (paper)"} <= set(labels)
    assert ax.get_xlabel() == "timesteps per agent" and "return" in ax.get_ylabel()
    paper_gs = next(line for line in ax.get_lines() if line.get_label() == "GS, paper (Figure 5)")
    assert list(paper_gs.get_xdata()) == [0, 500_000, 1_000_000]  # the 4M point lies beyond our steps
    assert saved == ["11_sumo_traffic_curves"]


def test_other_presets_only_read_finished_runs_and_a_bad_preset_is_one_line(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside SUMO_PRESETS `study(train=True)` never trains (make train-sumo does): nothing finished, not measured."""
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(tmp_path / "records"))
    monkeypatch.setattr(plans, "train_batch", lambda *a, **k: pytest.fail("the quick preset must not train here"))
    quick = study("quick", train=True, actuated=False)
    assert quick.metrics.empty and quick.steps == 1_056_000 and quick.seeds == 3
    assert "GS (0 of 3 runs finished)" in quick.conclusion() and "make train-sumo PRESET=quick" in quick.conclusion()
    with pytest.raises(ValueError, match=r"^unknown preset 'fast'; allowed values") as caught:
        study("fast")
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(not sumo_available(), reason=INSTALL_HINT)
def test_the_smoke_gs_runs_train_then_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The smoke preset's GS runs train through the notebook's call (the notebook at smoke trains all six), then
    read back without training; the methods not trained stay not measured."""
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(tmp_path / "records"))
    monkeypatch.setenv("DIALS_FIGURES_DIR", str(tmp_path / "figures"))
    everything = sumo_study.sumo_configs
    monkeypatch.setattr(sumo_study, "sumo_configs", lambda preset: [c for c in everything(preset)
                                                                    if c.simulator == "gs"])
    before = study("smoke", actuated=False)
    assert before.metrics.empty and "GS (0 of 2 runs finished)" in before.conclusion()
    trained = study("smoke", train=True)
    assert np.isfinite(trained.actuated)
    assert all((c.directory() / "metrics.csv").exists() for c in sumo_study.sumo_configs("smoke"))
    table = trained.table().set_index("method")
    assert table.loc["GS", "runs"] == "2 of 2" and np.isfinite(table.loc["GS", "final"])
    assert table.loc["DIALS", "learned"] == "not measured" and table.loc["actuated lights", "final"] > 0
    assert (tmp_path / "figures" / "11_sumo_traffic_returns.csv").exists()
    assert "DIALS (0 of 2 runs finished)" in trained.conclusion()
    monkeypatch.setattr(plans, "train_batch", lambda *a, **k: pytest.fail("finished runs must not train"))
    again = study("smoke", train=True)
    pd.testing.assert_frame_equal(again.table(save=False), trained.table(save=False))
    assert sumo_study.main(["--preset", "smoke"]) == 0  # `make train-sumo` on finished runs: nothing to train


def test_training_cost_reads_the_benchmark_rates_and_prices_the_preset_plan(tmp_path: Path) -> None:
    # 3 seeds x 4 agents x 1,056,000 steps = 12,672,000 agent-steps per method: at 3,520 per CPU second, 1 CPU hour
    rates = {("sumo-traffic", "GS"): 3520.0, ("traffic", "GS"): 7040.0,
             ("sumo-traffic", "IALS (DIALS)"): 1760.0, ("traffic", "IALS (DIALS)"): 8800.0,
             ("sumo-traffic", "IALS, untrained AIPs"): 880.0, ("traffic", "IALS, untrained AIPs"): 880.0}
    benchmark = tmp_path / "share.json"
    benchmark.write_text(json.dumps({"rows": [{"env": env, "simulator": row, "agent-steps per CPU s": rate}
                                              for (env, row), rate in rates.items()]}))
    cost = sumo_study.training_cost("quick", benchmark).set_index("method")
    assert list(cost.index) == ["GS", "DIALS", "untrained-DIALS"]
    assert cost["SUMO's cost per step / cell grid's"].tolist() == [2.0, 5.0, 1.0]
    assert cost["CPU h of the preset's runs at SUMO's rate"].tolist() == pytest.approx([1.0, 2.0, 4.0])


def test_training_cost_reads_the_committed_benchmark() -> None:
    cost = sumo_study.training_cost("quick").set_index("method")
    assert (cost["SUMO's cost per step / cell grid's"] > 1).all()  # SUMO is the costlier simulator per step
    assert cost["CPU h of the preset's runs at SUMO's rate"].idxmax() == "untrained-DIALS"

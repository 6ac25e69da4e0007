"""The experiment plans of the notebook series, their statistics and their report tables."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from dials_lib.analysis import plans, preset_plan, published, report, untrained_gap
from dials_lib.analysis.stats import bootstrap_ci, bootstrap_ratio_ci, mean_and_sem
from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.presets import get_preset


@pytest.mark.parametrize("preset", ["smoke", "quick", "full4", "scale", "paper"])
@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_comparison_plan_covers_sizes_seeds_and_simulators(preset, env):
    budget = get_preset(preset).budget(env)
    configs = plans.comparison_configs(preset, env)
    keys = {(c.n_agents, c.simulator, c.seed) for c in configs}
    assert len(keys) == len(configs) == len(budget.sizes) * budget.n_seeds * 3
    assert all(c.total_timesteps == budget.total_timesteps for c in configs)
    assert len({c.directory() for c in configs}) == len(configs)
    assert all(c.directory().parent == plans.preset_runs_dir(preset) for c in configs)


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_ablation_reuses_the_main_dials_runs(env):
    # The F of the paper's main figure is one of the ablation's F values: those runs must be the same directories.
    main = {c.directory() for c in plans.comparison_configs("quick", env, ["dials"])}
    ablation = plans.ablation_configs("quick", env)
    shared = [c for c in ablation if c.directory() in main]
    budget = get_preset("quick").budget(env)
    hp = paper_hyperparameters(env)
    main_fraction = hp.retrain_every / hp.total_timesteps
    assert len(shared) == (budget.ablation_seeds if main_fraction in budget.f_fractions else 0)
    fractions = {plans.run_identity(c)["f_fraction"] for c in ablation}
    assert fractions == set(budget.f_fractions)
    assert {plans.run_identity(c)["f_fraction"] for c in shared} <= {main_fraction}


@pytest.mark.parametrize("preset", ["quick", "full4", "paper"])
@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_the_ablation_runs_only_f_values_that_retrain_at_different_steps(preset, env):
    # within a shorter run, an F at or beyond its length trains the AIPs once, at the start, like any other such F
    schedules = [c.schedule().retrain for c in plans.ablation_configs(preset, env) if c.seed == 0]
    assert len(set(schedules)) == len(schedules) == len(get_preset(preset).budget(env).f_fractions)


@pytest.mark.parametrize("preset", ["smoke", "quick"])
def test_the_training_plan_holds_every_run_of_the_training_notebooks_once(preset):
    plan = preset_plan.training_plan(preset)
    everything = [c for env in ("traffic", "warehouse")
                  for c in plans.comparison_configs(preset, env) + plans.ablation_configs(preset, env)]
    # notebook 04's untrained-DIALS gap experiment runs on the smoke and quick presets only
    everything += untrained_gap.gap_configs(preset) if preset in untrained_gap.GAP_PRESETS else []
    assert len({c.directory() for c in plan}) == len(plan)
    assert {c.directory() for c in plan} == {c.directory() for c in everything}
    assert len(plan) < len(everything)  # the ablation shares the main-F runs of the comparison


def test_unknown_simulator_and_preset_are_rejected():
    with pytest.raises(ValueError, match="simulator.*allowed values"):
        plans.comparison_configs("smoke", "traffic", ["gs", "ials"])
    with pytest.raises(ValueError, match="preset.*allowed values"):
        plans.comparison_configs("fast", "traffic")


def test_bootstrap_interval_is_deterministic_and_covers_the_difference():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 8), rng.normal(7, 1, 8)
    first, second = bootstrap_ci(a, b, seed=3), bootstrap_ci(a, b, seed=3)
    assert first == second
    est, lo, hi = first
    assert est == pytest.approx(a.mean() - b.mean())
    assert lo < est < hi and lo > 0  # a difference of 3 standard deviations is resolved by 8 seeds
    # Identical groups: the interval straddles 0; a wider confidence gives a wider interval.
    _, lo90, hi90 = bootstrap_ci(a, a, confidence=0.9)
    _, lo99, hi99 = bootstrap_ci(a, a, confidence=0.99)
    assert lo99 < lo90 < 0 < hi90 < hi99
    ratio, rlo, rhi = bootstrap_ratio_ci(a, b)
    assert ratio == pytest.approx(a.mean() / b.mean()) and rlo < ratio < rhi
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(a, confidence=1.5)


def _metrics() -> pd.DataFrame:
    rows = []
    for simulator, slope in (("gs", 1.0), ("dials", 2.0), ("untrained-dials", -1.0)):
        for seed in (0, 1, 2):
            for t in (0, 10, 20):
                rows.append({"env": "traffic", "n_agents": 4, "simulator": simulator, "retrain_every": np.nan,
                             "f_fraction": np.nan, "seed": seed, "timestep": t,
                             "mean_return": 100 + slope * t + seed, "wall_time_s": t / 10})
    return pd.DataFrame(rows)


def test_final_evaluations_and_curves_use_the_last_evaluation_and_all_seeds():
    metrics = _metrics()
    finals = plans.final_evaluations(metrics)
    assert len(finals) == 9 and set(finals["timestep"]) == {20}
    curves = report.learning_curves(metrics)
    gs_end = curves[(curves["method"] == "GS") & (curves["timestep"] == 20)].iloc[0]
    assert gs_end["mean"] == pytest.approx(121.0) and gs_end["seeds"] == 3
    assert gs_end["sem"] == pytest.approx(np.std([120, 121, 122], ddof=1) / np.sqrt(3))
    table = report.final_comparison(finals, "traffic")
    assert list(table["method"]) == ["GS", "DIALS", "untrained-DIALS"]
    paper = table.set_index("method")["final (paper, 4M steps)"]
    assert paper["GS"] == 200 and paper["DIALS"] == 214 and paper["untrained-DIALS"] == 172


def test_mean_and_sem_counts_seeds_per_group():
    frame = pd.DataFrame({"g": ["a", "a", "a", "b"], "mean_return": [1.0, 2.0, 3.0, 5.0]})
    table = mean_and_sem(frame, ["g"]).set_index("g")
    assert table.loc["a", "mean"] == 2.0 and table.loc["a", "seeds"] == 3
    assert table.loc["a", "sem"] == pytest.approx(1 / np.sqrt(3))
    assert table.loc["b", "seeds"] == 1 and np.isnan(table.loc["b", "sem"])


def test_runs_of_picks_the_rows_of_a_plan_and_main_runs_keep_dials_at_the_main_f():
    configs = plans.ablation_configs("quick", "traffic")
    everything = configs + plans.comparison_configs("quick", "traffic")
    rows = [{**plans.run_identity(c), "mean_return": 1.0} for c in everything]
    frame = pd.DataFrame(rows)
    picked = plans.runs_of(frame, configs)
    assert len(picked.drop_duplicates(subset=list(plans.RUN_COLUMNS))) == len(configs)
    assert set(picked["simulator"]) == {"dials"}
    main = plans.main_comparison_runs(frame)
    assert set(main.loc[main["simulator"] == "dials", "f_fraction"]) == {0.25}
    assert (main["simulator"] == "gs").sum() == (frame["simulator"] == "gs").sum()


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_the_scale_plan_is_the_paper_sizes_and_its_4_agent_runs_are_prefixes_of_the_quick_runs(env):
    scale = get_preset("scale").budget(env)
    assert scale.sizes == (4, 25, 100) and scale.n_seeds == 3
    assert scale.total_timesteps >= {"traffic": 512_000, "warehouse": 256_000}[env]  # where the quick run learned
    by_key = {(c.simulator, c.seed): c for c in plans.comparison_configs("quick", env)}
    for config in plans.comparison_configs("scale", env):
        if config.n_agents != 4:
            continue
        longer = by_key[(config.simulator, config.seed)]
        assert dataclasses.replace(config, total_timesteps=longer.total_timesteps, run_dir=longer.run_dir) == longer
        # every evaluation of the scale run is one of the quick run's, so its records are the quick run's rows
        assert set(published.evaluation_steps(config)) <= set(published.evaluation_steps(longer))
        assert published.evaluation_steps(config)[-1] == config.total_timesteps
    assert {c.n_agents for c in preset_plan.training_plan("scale") if c.env == env} == {4, 25, 100}
    assert not [c for c in plans.ablation_configs("scale", env) if c.retrain_every != paper_hyperparameters(env)
                .retrain_every]  # only the main F: the ablation is the quick preset's


def test_runtime_summary_of_runs_read_from_longer_runs_has_their_total_and_no_breakdown():
    """A run read from a longer run's prefix keeps only its total (its breakdown is the longer run's): the summary
    shows the total and NaN parts, where it raised a KeyError when every run of an environment was such a run."""
    runtimes = pd.DataFrame({"env": "warehouse", "n_agents": 4, "simulator": ["gs", "gs", "dials"], "seed": [0, 1, 0],
                             "retrain_every": [np.nan, np.nan, 4e6], "f_fraction": [np.nan, np.nan, 1.0],
                             "total_s": [600.0, 720.0, 900.0]})
    table = report.runtime_summary(runtimes).set_index("method")
    assert table.loc["GS", "total (min)"] == pytest.approx(11.0) and table.loc["DIALS", "total (min)"] == 15.0
    assert table[["agents training (min)", "data + AIP training (min)", "evaluation (min)"]].isna().all().all()

"""The experiment plans of the notebook series, their statistics and the claim verdicts."""

import numpy as np
import pandas as pd
import pytest

from dials_lib import claims, report
from dials_lib import experiments as ex
from dials_lib.config import get_preset, paper_hyperparameters


@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_comparison_plan_covers_sizes_seeds_and_simulators(preset, env):
    budget = get_preset(preset).budget(env)
    configs = ex.comparison_configs(preset, env)
    keys = {(c.n_agents, c.simulator, c.seed) for c in configs}
    assert len(keys) == len(configs) == len(budget.sizes) * budget.n_seeds * 3
    assert all(c.total_timesteps == budget.total_timesteps for c in configs)
    assert len({c.directory() for c in configs}) == len(configs)
    assert all(c.directory().parent == ex.preset_runs_dir(preset) for c in configs)


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
def test_ablation_reuses_the_main_dials_runs(env):
    # The F of the paper's main figure is one of the ablation's F values: those runs must be the same directories.
    main = {c.directory() for c in ex.comparison_configs("quick", env, ["dials"])}
    ablation = ex.ablation_configs("quick", env)
    shared = [c for c in ablation if c.directory() in main]
    assert len(shared) == get_preset("quick").budget(env).ablation_seeds
    fractions = {ex.run_identity(c)["f_fraction"] for c in ablation}
    assert fractions == set(get_preset("quick").budget(env).f_fractions)
    hp = paper_hyperparameters(env)
    assert {ex.run_identity(c)["f_fraction"] for c in shared} == {hp.retrain_every / hp.total_timesteps}


def test_unknown_simulator_and_preset_are_rejected():
    with pytest.raises(ValueError, match="simulator.*allowed values"):
        ex.comparison_configs("smoke", "traffic", ["gs", "ials"])
    with pytest.raises(ValueError, match="preset.*allowed values"):
        ex.comparison_configs("fast", "traffic")


def test_bootstrap_interval_is_deterministic_and_covers_the_difference():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 8), rng.normal(7, 1, 8)
    first, second = ex.bootstrap_ci(a, b, seed=3), ex.bootstrap_ci(a, b, seed=3)
    assert first == second
    est, lo, hi = first
    assert est == pytest.approx(a.mean() - b.mean())
    assert lo < est < hi and lo > 0  # a difference of 3 standard deviations is resolved by 8 seeds
    # Identical groups: the interval straddles 0; a wider confidence gives a wider interval.
    _, lo90, hi90 = ex.bootstrap_ci(a, a, confidence=0.9)
    _, lo99, hi99 = ex.bootstrap_ci(a, a, confidence=0.99)
    assert lo99 < lo90 < 0 < hi90 < hi99
    ratio, rlo, rhi = ex.bootstrap_ratio_ci(a, b)
    assert ratio == pytest.approx(a.mean() / b.mean()) and rlo < ratio < rhi
    with pytest.raises(ValueError, match="confidence"):
        ex.bootstrap_ci(a, confidence=1.5)


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
    finals = ex.final_evaluations(metrics)
    assert len(finals) == 9 and set(finals["timestep"]) == {20}
    curves = report.learning_curves(metrics)
    gs_end = curves[(curves["method"] == "GS") & (curves["timestep"] == 20)].iloc[0]
    assert gs_end["mean"] == pytest.approx(121.0) and gs_end["seeds"] == 3
    assert gs_end["sem"] == pytest.approx(np.std([120, 121, 122], ddof=1) / np.sqrt(3))
    table = report.final_comparison(finals, "traffic")
    assert list(table["method"]) == ["GS", "DIALS", "untrained-DIALS"]
    paper = table.set_index("method")["final (paper, 4M steps)"]
    assert paper["GS"] == 200 and paper["DIALS"] == 214 and paper["untrained-DIALS"] == 172


def test_claim_rules():
    assert claims.at_least(1.0, -0.5, 2.0, reference=100).verdict == "reproduced"  # -0.5 is within 5% of 100
    assert claims.at_least(-3.0, -8.0, 2.0, reference=100).verdict == "partly"
    assert claims.at_least(-9.0, -12.0, -6.0, reference=100).verdict == "not reproduced"
    assert claims.clearly_worse(-5, -8, -2).verdict == "reproduced"
    assert claims.clearly_worse(-5, -8, 1).verdict == "partly"
    assert claims.clearly_worse(1, -2, 4).verdict == "not reproduced"
    assert claims.both_hurt((-5, -8, -2), (-3, -6, -1)).verdict == "reproduced"
    assert claims.both_hurt((-5, -8, -2), (3, 1, 6)).verdict == "partly"
    assert claims.both_hurt((5, 2, 8), (3, 1, 6)).verdict == "not reproduced"
    assert claims.grows_far_slower(2.0, 30.0).verdict == "reproduced"
    assert claims.grows_far_slower(2.0, 3.0).verdict == "partly"
    assert claims.grows_far_slower(3.0, 2.0).verdict == "not reproduced"
    assert claims.stays_flat(1.1).verdict == "reproduced"
    assert claims.stays_flat(2.0).verdict == "partly"
    assert claims.stays_flat(4.0).verdict == "not reproduced"
    assert all(v in claims.VERDICTS for v in ("reproduced", "partly", "not reproduced"))

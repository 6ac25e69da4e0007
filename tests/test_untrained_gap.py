"""The untrained-DIALS gap experiment (`dials_lib.analysis.untrained_gap`): its runs, and its rule on synthetic records
where it decides (a), (b), undecided and "not measured"; then the smoke-size path end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib.analysis import plans
from dials_lib.analysis.untrained_gap import (
    EXPLANATIONS,
    TABLE_NAME,
    VARIANT,
    compare_gap,
    gap_configs,
    our_grid_configs,
    untrained_gap,
)

torch.set_num_threads(1)
START = (170.0, 172.0, 174.0)
DIALS_FINAL = (241.0, 243.0, 245.0)
COLLAPSED = (65.0, 69.0, 72.0)


def records(untrained_open: tuple[float, ...], dials_open: tuple[float, ...] = DIALS_FINAL,
            untrained_ours: tuple[float, ...] = COLLAPSED) -> pd.DataFrame:
    """Evaluations of 3 seeds per grid and method, at step 0 (START) and at the end (the finals given)."""
    finals = {("traffic", "dials"): DIALS_FINAL, ("traffic", "untrained-dials"): untrained_ours,
              (VARIANT, "dials"): dials_open, (VARIANT, "untrained-dials"): untrained_open}
    rows = []
    for (env, simulator), final in finals.items():
        f = 1_000_000 if simulator == "dials" else np.nan
        for seed, (start, end) in enumerate(zip(START, final, strict=False)):
            for timestep, value in ((0, start), (1_056_000, end)):
                rows.append({"env": env, "n_agents": 4, "simulator": simulator, "retrain_every": f,
                             "f_fraction": f / 4e6, "seed": seed, "timestep": timestep, "mean_return": value})
    return pd.DataFrame(rows)


def test_the_experiments_runs_are_the_quick_traffic_runs_on_the_authors_sources() -> None:
    ours, theirs = gap_configs("quick"), our_grid_configs("quick")
    assert len(ours) == len(theirs) == 6
    assert {c.env for c in ours} == {VARIANT} and {c.simulator for c in ours} == {"dials", "untrained-dials"}
    assert {c.seed for c in ours} == set(plans.run_seeds("quick", "traffic")) and len({c.seed for c in ours}) == 3
    comparison = {c.directory() for c in plans.comparison_configs("quick", "traffic")}
    assert {c.directory() for c in theirs} <= comparison  # the 8-source runs are the preset's own
    for a, b in zip(ours, theirs, strict=True):
        assert (a.n_agents, a.total_timesteps, a.eval_every, a.eval_episodes, a.chunk_steps, a.retrain_every) == (
            4, 1_056_000, 96_000, 10, b.chunk_steps, b.retrain_every)
        assert a.schedule() == b.schedule() and a.seed == b.seed and a.simulator == b.simulator
        assert a.directory().parent == plans.preset_runs_dir("quick")
    assert all(c.retrain_every == 1_000_000 for c in ours if c.simulator == "dials")


def test_the_rule_picks_the_blocked_exits_when_the_collapse_goes_away_without_them() -> None:
    result = compare_gap(records(untrained_open=(168.0, 172.0, 175.0)), seeds=3)
    assert result.explanation == "(a)" and result.sentence.startswith("Explanation (a), the blocked-exit sources")
    assert result.share is not None and result.share[1] > 0.5
    table = result.table.set_index(["grid", "method"])
    assert table.loc[("our 8 sources", "untrained-DIALS"), "final - start"] == pytest.approx(np.mean(COLLAPSED) - 172)
    assert table.loc[("our 8 sources", "untrained-DIALS"), "learned"] == "no"
    assert table.loc[("the authors' 4 sources", "DIALS"), "learned"] == "yes"
    assert (table["runs"] == "3 of 3").all() and len(table) == 4


def test_the_rule_picks_the_arrivals_when_it_collapses_without_blocked_exits_too() -> None:
    frame = records(untrained_open=(70.0, 76.0, 80.0))
    # other runs of the same plan (another F, another size) do not count
    other_f = frame[(frame["simulator"] == "dials")].assign(retrain_every=100_000, mean_return=0.0)
    other_size = frame.assign(n_agents=25, mean_return=0.0)
    result = compare_gap(pd.concat([frame, other_f, other_size], ignore_index=True), seeds=3)
    assert result.explanation == "(b)" and result.sentence.startswith("Explanation (b), the arrival sources alone")
    assert result.share is not None and result.share[2] < 0.5
    assert "gains -103.3 [95% CI" in result.sentence  # the 8-source gain, with its interval


def test_the_rule_stays_undecided_when_the_interval_holds_one_half() -> None:
    result = compare_gap(records(untrained_open=(60.0, 122.0, 184.0)), seeds=3)
    assert result.explanation == "undecided"
    assert result.share is not None and result.share[1] <= 0.5 <= result.share[2]


@pytest.mark.parametrize(("frame", "reason"), [
    (records(untrained_open=(168.0, 172.0)), "untrained-DIALS on the authors' 4 sources (2 of 3 runs finished)"),
    (records(untrained_open=(168.0, 172.0, 175.0), dials_open=(171.0, 173.0, 172.0)),
     "DIALS did not clearly learn"),
    (records(untrained_open=(168.0, 172.0, 175.0), untrained_ours=(171.0, 170.0, 175.0)), "did not clearly fall"),
])
def test_the_rule_says_not_measured_when_a_run_is_missing_or_nothing_learned_or_fell(frame: pd.DataFrame,
                                                                                     reason: str) -> None:
    result = compare_gap(frame, seeds=3)
    assert result.explanation == "not measured" and result.share is None
    assert result.sentence.startswith("Not measured") and reason in result.sentence
    assert len(result.table) == 4


def test_nothing_finished_is_not_measured_and_bad_seeds_are_refused_in_one_line() -> None:
    empty = pd.DataFrame(columns=[*plans.RUN_COLUMNS, "timestep", "mean_return"])
    result = compare_gap(empty, seeds=3)
    assert result.explanation == "not measured" and "0 of 3 runs finished" in result.sentence
    assert (result.table["learned"] == "not measured").all()
    with pytest.raises(ValueError, match=r"^seeds must be a positive integer") as caught:
        compare_gap(empty, seeds=0)
    assert "\n" not in str(caught.value)


def test_the_smoke_experiment_trains_reads_back_and_concludes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """The smoke preset's 8 runs (2 seeds per grid and method) train, then read back without training."""
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(tmp_path / "records"))
    monkeypatch.setenv("DIALS_FIGURES_DIR", str(tmp_path / "figures"))
    before = untrained_gap("smoke")
    assert before.explanation == "not measured" and "0 of 2 runs finished" in before.sentence
    result = untrained_gap("smoke", train=True)
    assert (result.table["runs"] == "2 of 2").all() and result.table["start"].notna().all()
    assert result.explanation in EXPLANATIONS
    assert all((c.directory() / "metrics.csv").exists() for c in gap_configs("smoke"))
    monkeypatch.setattr(plans, "train_batch", lambda *a, **k: pytest.fail("finished runs must not train"))
    again = untrained_gap("smoke", train=True)
    pd.testing.assert_frame_equal(again.table, result.table)
    assert again.sentence == result.sentence
    saved = pd.read_csv(tmp_path / "figures" / f"{TABLE_NAME}.csv")  # the table as notebook 04 shows it, and its answer
    assert saved["grid"].tolist() == result.table["grid"].tolist()
    assert (saved["explanation"] == result.explanation).all()
    # a preset outside GAP_PRESETS never trains the experiment: it reads what exists, here nothing
    elsewhere = untrained_gap("full4", train=True)
    assert elsewhere.explanation == "not measured" and "0 of 3 runs finished" in elsewhere.sentence

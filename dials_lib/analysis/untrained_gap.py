"""Why untrained-DIALS collapses on our traffic grid, decided by experiment.

On our cell grid untrained-DIALS ends far below its start (notebook 04), where the paper's does not fall. An
untrained AIP predicts every binary source near 1/2, and two explanations are on the table:

- (a) the blocked-exit sources: our local simulator has 4 sources "the downstream entry cell is occupied" that the
  authors' lacks; predicted near 1/2, they block the exits of the untrained IALS half the time and jam it;
- (b) the arrival sources alone: the untrained AIP also predicts a car arriving on each lane about every other
  step, several times the GS's rate, whatever the exits do.

The experiment trains the same DIALS (the paper's F) and untrained-DIALS at 4 agents on `traffic-open-exits`, our
grid with the authors' 4 arrival sources only and exits never blocked in the local simulator
(`dials_lib.envs.traffic_open_exits`), with the preset's traffic seeds, budget and evaluation schedule
(`gap_configs`); the 8-source runs are the preset's own comparison runs (`our_grid_configs`).

The rule (`compare_gap`), written down once. Per grid and method: the return before training and at the end (means
over seeds), the gain with its 95% bootstrap interval (`stats.bootstrap_ci` of final against start, seeds resampled
apart, as notebook 04 does) and whether it learned (`verdicts.learned`). Then:

1. "not measured" when a planned run has not finished (a cell holds fewer seeds than planned), when DIALS did not
   clearly learn on either grid (the runs then say nothing about what an IALS teaches), or when untrained-DIALS on
   our grid did not clearly fall (the whole interval of its gain below -LEARNING_MARGIN x |start|): there is no
   collapse to explain.
2. Else the share of the collapse that the blocked-exit sources account for,
   S = (gain_4 - gain_8) / -gain_8, with gain_8 and gain_4 untrained-DIALS's gains on our grid and on the authors'
   sources (1: removing them removes the whole collapse; 0: it collapses just as far without them), and its 95%
   interval (`stats.bootstrap_statistic` over the four groups of seeds: start and final on each grid).
3. (a) when the whole interval of S is above MAJORITY (one half): the blocked-exit sources account for most of the
   collapse. (b) when the whole interval is below it: untrained-DIALS falls at least about half as far without
   them, so the arrival sources alone drive most of it. Otherwise "undecided": the interval holds one half (both
   contribute, or the seeds cannot tell).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dials_lib.analysis import plans, verdicts
from dials_lib.analysis.published import has_records
from dials_lib.analysis.stats import bootstrap_ci, bootstrap_statistic
from dials_lib.plots import save_table
from dials_lib.training.run_config import RunConfig

VARIANT = "traffic-open-exits"
GRIDS: dict[str, str] = {"traffic": "our 8 sources", VARIANT: "the authors' 4 sources"}
"""The two local simulators compared, by environment: their labels in the table."""
METHODS: dict[str, str] = {"dials": "DIALS", "untrained-dials": "untrained-DIALS"}
"""The two methods trained on each, by simulator."""
GAP_AGENTS = 4
"""Agents of every run of the experiment (the size notebook 04 shows)."""
GAP_PRESETS: tuple[str, ...] = ("smoke", "quick")
"""The presets that train the experiment (its training plan holds its runs; notebook 04 trains them): smoke, so
that the whole path runs in CI, and quick, whose comparison shows the collapse. On other presets it reads runs
that exist, else says not measured."""
MAJORITY = 0.5
"""The share of the collapse above which (over the whole interval) explanation (a) holds, below which (b) does."""
EXPLANATIONS: tuple[str, ...] = ("(a)", "(b)", "undecided", "not measured")
"""What `compare_gap` can conclude."""


def _configs(preset: str, env: str) -> list[RunConfig]:
    """DIALS and untrained-DIALS of `env` at GAP_AGENTS agents, on the preset's traffic budget and seeds."""
    return [config for config in plans.comparison_configs(preset, env, tuple(METHODS))
            if config.n_agents == GAP_AGENTS]


def gap_configs(preset: str) -> list[RunConfig]:
    """The experiment's own runs: DIALS (the paper's F) and untrained-DIALS on traffic-open-exits at 4 agents, with
    the preset's traffic seeds, steps and evaluation schedule, under `runs/<preset>/`."""
    return _configs(preset, VARIANT)


def our_grid_configs(preset: str) -> list[RunConfig]:
    """The 8-source runs it compares with: the preset's own DIALS and untrained-DIALS traffic runs at 4 agents."""
    return _configs(preset, "traffic")


def finished_metrics(configs: Sequence[RunConfig]) -> pd.DataFrame:
    """One row per evaluation of every finished run of `configs` (RUN_COLUMNS first), read back without training;
    an empty frame with the RUN_COLUMNS when none has finished."""
    finished = [config for config in configs if has_records(config)]
    if not finished:
        return pd.DataFrame(columns=[*plans.RUN_COLUMNS, "timestep", "mean_return"])
    return plans.run_experiments(finished, log=None)


@dataclass(frozen=True)
class GapComparison:
    """The comparison table, the explanation the rule picks and the sentence that says why."""

    table: pd.DataFrame
    """One row per grid and method: runs finished, start, final, gain with its 95% interval, learned."""
    explanation: str
    """One of EXPLANATIONS."""
    sentence: str
    """The conclusion in words, with the numbers that decided it."""
    share: tuple[float, float, float] | None = None
    """S, the share of the collapse the blocked-exit sources account for, with its 95% interval (None when not
    measured)."""

    def __str__(self) -> str:
        """The sentence."""
        return self.sentence


def _interval(estimate: float, low: float, high: float, percent: bool = False) -> str:
    shown = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:+.1f}")
    return f"{shown(estimate)} [95% CI {shown(low)}, {shown(high)}]"


def compare_gap(metrics: pd.DataFrame, seeds: int) -> GapComparison:
    """The comparison of the module docstring from the evaluations of finished runs (`finished_metrics`, or any frame
    with the RUN_COLUMNS, `timestep` and `mean_return`), each cell expected to hold `seeds` runs."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer (runs planned per grid and method); got {seeds!r}")
    rows, samples, missing = [], {}, []
    for env, grid in GRIDS.items():
        for simulator, method in METHODS.items():
            start, final = (plans.seed_returns(metrics, env, simulator, GAP_AGENTS, first) for first in (True, False))
            row: dict[str, object] = {"grid": grid, "method": method, "runs": f"{len(final)} of {seeds}"}
            if len(final) < seeds or len(start) < seeds:
                missing.append(f"{method} on {grid} ({len(final)} of {seeds} runs finished)")
                rows.append(row | {"learned": "not measured"})
                continue
            gain = bootstrap_ci(final, start)
            samples[env, simulator] = (start, final, gain)
            rows.append(row | {"start": start.mean(), "final": final.mean(), "final - start": gain[0],
                               "95% CI low": gain[1], "95% CI high": gain[2],
                               "learned": verdicts.learned_word(*gain, start=float(start.mean()))})
    table = pd.DataFrame(rows, columns=["grid", "method", "runs", "start", "final", "final - start", "95% CI low",
                                        "95% CI high", "learned"])
    if missing:
        return GapComparison(table, "not measured", "Not measured: not every run has finished: " +
                             "; ".join(missing) + ".")
    dials_learned = {env: verdicts.learned(*samples[env, "dials"][2], start=float(samples[env, "dials"][0].mean()))
                     for env in GRIDS}
    not_learned = [f"DIALS on {GRIDS[env]} ({verdict.reason})" for env, verdict in dials_learned.items()
                   if verdict.verdict != "reproduced"]
    if not_learned:
        return GapComparison(table, "not measured", "Not measured: DIALS did not clearly learn, so these runs do not "
                             "show what an informed IALS teaches: " + "; ".join(not_learned) + ".")
    start_8, final_8, gain_8 = samples["traffic", "untrained-dials"]
    start_4, final_4, gain_4 = samples[VARIANT, "untrained-dials"]
    fall = verdicts.LEARNING_MARGIN * abs(float(start_8.mean()))
    if not gain_8[2] < -fall:
        return GapComparison(table, "not measured", f"Not measured: untrained-DIALS on our 8 sources did not clearly "
                             f"fall (gain {_interval(*gain_8)}; a fall needs the whole interval below {-fall:+.1f}), "
                             f"so there is no collapse to explain.")

    def blocked_share(means: list[np.ndarray]) -> np.ndarray:
        loss_8 = means[0] - means[1]  # start - final on our grid: the collapse, positive
        return ((means[3] - means[2]) + loss_8) / loss_8

    share = bootstrap_statistic([start_8, final_8, start_4, final_4], blocked_share)
    numbers = (f"untrained-DIALS gains {_interval(*gain_8)} on our 8 sources and {_interval(*gain_4)} on the "
               f"authors' 4, so the blocked-exit sources account for {_interval(*share, percent=True)} of its "
               f"collapse")
    if share[1] > MAJORITY:
        return GapComparison(table, "(a)", f"Explanation (a), the blocked-exit sources: {numbers}, more than half "
                             f"over the whole interval.", share)
    if share[2] < MAJORITY:
        return GapComparison(table, "(b)", f"Explanation (b), the arrival sources alone: {numbers}, less than half "
                             f"over the whole interval; without the blocked exits it still falls.", share)
    return GapComparison(table, "undecided", f"Undecided between (a) and (b): {numbers}, an interval that holds one "
                         f"half (both contribute, or {seeds} seeds cannot tell).", share)


TABLE_NAME = "04_untrained_gap"
"""The table `untrained_gap` saves (figures/, or the preset's folder)."""


def untrained_gap(preset: str, train: bool = False) -> GapComparison:
    """The comparison on `preset`'s runs: `train=True` trains (or resumes) the runs not finished yet first (the
    experiment's and the 8-source ones) on the presets of GAP_PRESETS; unfinished runs count as not measured. Its
    table is saved as TABLE_NAME, with the conclusion as its last column."""
    configs = our_grid_configs(preset) + gap_configs(preset)
    if train and preset in GAP_PRESETS:
        plans.run_experiments(configs, log=None)
    result = compare_gap(finished_metrics(configs), len(plans.run_seeds(preset, "traffic")))
    save_table(result.table.assign(explanation=result.explanation), TABLE_NAME)
    return result


__all__ = ["EXPLANATIONS", "GAP_AGENTS", "GAP_PRESETS", "GRIDS", "MAJORITY", "METHODS", "TABLE_NAME", "VARIANT",
           "GapComparison", "compare_gap", "finished_metrics", "gap_configs", "our_grid_configs", "untrained_gap"]

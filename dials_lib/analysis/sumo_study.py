"""GS, DIALS and untrained-DIALS on the paper's own traffic simulator, SUMO, beside the paper's and our cell grid's.

Our cell grid (`traffic`) reproduces the orderings of the paper's Figure 5 but not its numbers: it is a different
simulator. `sumo-traffic` (`dials_lib.envs.sumo_traffic`) is the authors' SUMO grid, so its returns can be set
against theirs directly (start 145, actuated lights 176.4, the 4-agent curves of Figure 5).

The plan (`sumo_configs`): the preset's main comparison (`plans.comparison_configs`) on `sumo-traffic` at
SUMO_AGENTS agents: GS, DIALS at the paper's F and untrained-DIALS, on the preset's traffic budget and seeds (quick:
3 seeds of 1,056,000 steps per agent, the prefix of the paper's 4M-step schedule, evaluated every 96,000 steps),
under `runs/<preset>/`, resumable. SUMO costs about twice the cell grid per step, and several times that for
untrained-DIALS, whose untrained AIPs fill the local simulator with cars (benchmarks/results/sumo_training_share.md),
so the quick preset's series does not train them: `make train-sumo` does (`train_sumo`), and notebook 11 reads the
finished runs. Only the presets of SUMO_PRESETS (smoke, so that CI runs the whole path) train them in the notebook.

The rule (`SumoStudy.table`, `SumoStudy.conclusion`), written down once. Per method: the return before training and
at the end (means over seeds), the gain with its 95% bootstrap interval (`stats.bootstrap_ci`, seeds resampled
apart) and whether it learned (`verdicts.learned`), beside the paper's return at its start, at our last step
(`paper.curve_at`, read off Figure 5) and after 4M steps, and our cell grid's final return at the same preset when
those runs have finished. A method with fewer finished runs than planned is "not measured"; DIALS is compared with
GS (final difference with its interval) only when both clearly learned, else that comparison is "not measured".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dials_lib import paper
from dials_lib.analysis import plans, report, verdicts
from dials_lib.analysis.stats import bootstrap_ci
from dials_lib.analysis.untrained_gap import finished_metrics
from dials_lib.paths import benchmarks_dir
from dials_lib.plots import save_figure, save_table
from dials_lib.presets import get_preset
from dials_lib.training.run_config import RunConfig

SUMO_ENV = "sumo-traffic"
SUMO_AGENTS = 4
"""Agents of every run: the size of the paper's Figure 5 curves."""
SUMO_PRESETS: tuple[str, ...] = ("smoke",)
"""Presets whose notebook trains the runs (smoke: CI runs the whole path); the others read finished runs only and
`make train-sumo` (`train_sumo`) trains them."""
PAPER_ENV = "traffic"
"""The paper's name of the environment SUMO simulates (its tables and curves)."""
PREFIX = "11_sumo_traffic"
"""Start of the names of the saved figure and table."""
TRAINING_SHARE = "sumo_training_share"
"""The benchmark (`benchmarks/results/<name>.json`) that times a training stretch on SUMO and on the cell grid."""
BENCHMARK_ROWS = {"gs": "GS", "dials": "IALS (DIALS)", "untrained-dials": "IALS, untrained AIPs"}
"""Each method's row ("simulator" column) in that benchmark."""


def _at_four(configs: Sequence[RunConfig]) -> list[RunConfig]:
    return [config for config in configs if config.n_agents == SUMO_AGENTS]


def sumo_configs(preset: str) -> list[RunConfig]:
    """The SUMO runs: GS, DIALS (the paper's F) and untrained-DIALS on sumo-traffic at 4 agents, with the preset's
    traffic seeds, steps and evaluation schedule, under `runs/<preset>/`."""
    return _at_four(plans.comparison_configs(preset, SUMO_ENV))


def grid_configs(preset: str) -> list[RunConfig]:
    """Our cell grid's runs at the same preset and size, read when finished (never trained here)."""
    return _at_four(plans.comparison_configs(preset, PAPER_ENV))


def train_sumo(preset: str) -> pd.DataFrame:
    """Train (or resume) every SUMO run of `preset`; one row per evaluation of every run (`plans.run_experiments`)."""
    from dials_lib.envs.sumo_network import require_sumo

    require_sumo()
    return plans.run_experiments(sumo_configs(preset))


def training_cost(preset: str, benchmark: Path | None = None) -> pd.DataFrame:
    """What the preset's SUMO runs cost, per method, by the rates of the committed training-share benchmark
    (`benchmark`, default benchmarks/results/sumo_training_share.json): agent-steps per CPU second of a PPO training
    stretch on SUMO and on the cell grid, SUMO's CPU cost per step against the grid's, and the CPU hours of the
    preset's runs of that method at SUMO's rate (their agents' training and simulators; GS evaluations and AIP
    training come on top)."""
    path = benchmarks_dir() / "results" / f"{TRAINING_SHARE}.json" if benchmark is None else benchmark
    rates = pd.DataFrame(json.loads(path.read_text())["rows"]).set_index(["env", "simulator"])["agent-steps per CPU s"]
    configs, rows = sumo_configs(preset), []
    for simulator, row in BENCHMARK_ROWS.items():
        sumo_rate, grid_rate = float(rates[(SUMO_ENV, row)]), float(rates[(PAPER_ENV, row)])
        agent_steps = sum(config.n_agents * int(config.total_timesteps or 0)
                          for config in configs if config.simulator == simulator)
        rows.append({"method": report.METHOD_LABELS[simulator], "agent-steps per CPU s, SUMO": sumo_rate,
                     "agent-steps per CPU s, cell grid": grid_rate,
                     "SUMO's cost per step / cell grid's": grid_rate / sumo_rate,
                     "CPU h of the preset's runs at SUMO's rate": agent_steps / sumo_rate / 3600})
    return pd.DataFrame(rows)


def _interval(estimate: float, low: float, high: float) -> str:
    return f"{estimate:+.1f} [95% CI {low:+.1f}, {high:+.1f}]"


@dataclass(frozen=True)
class SumoStudy:
    """The finished SUMO runs of one preset, our cell grid's beside them and the actuated lights' return."""

    preset: str
    """The preset whose budget the runs follow."""
    seeds: int
    """Runs planned per method."""
    steps: int
    """Steps per agent of every run (the preset's traffic budget)."""
    metrics: pd.DataFrame
    """One row per evaluation of every finished SUMO run (RUN_COLUMNS, `timestep`, `mean_return`)."""
    grid_metrics: pd.DataFrame
    """The same for our cell grid's finished runs at this preset."""
    actuated: float
    """The actuated lights' mean return on the SUMO grid (NaN when not evaluated)."""

    def _method_rows(self) -> list[dict[str, object]]:
        theirs = paper.final_returns_table(PAPER_ENV).set_index("agents").loc[SUMO_AGENTS]
        rows = []
        for simulator, method in report.METHOD_LABELS.items():
            start, final = (plans.seed_returns(self.metrics, SUMO_ENV, simulator, SUMO_AGENTS, first)
                            for first in (True, False))
            grid = plans.seed_returns(self.grid_metrics, PAPER_ENV, simulator, SUMO_AGENTS, False)
            row: dict[str, object] = {
                "method": method, "runs": f"{len(final)} of {self.seeds}",
                "paper start": float(theirs["start"]),
                "paper at our steps": paper.curve_at(PAPER_ENV, SUMO_AGENTS, method, self.steps),
                "paper after 4M": float(theirs[method]),
                "our cell grid, final": grid.mean() if len(grid) == self.seeds else np.nan}
            if len(final) < self.seeds or len(start) < self.seeds:
                rows.append(row | {"learned": "not measured"})
                continue
            gain = bootstrap_ci(final, start)
            rows.append(row | {"start": start.mean(), "final": final.mean(), "final - start": gain[0],
                               "95% CI low": gain[1], "95% CI high": gain[2],
                               "learned": verdicts.learned_word(*gain, start=float(start.mean()))})
        rows.append({"method": "actuated lights", "runs": "", "start": self.actuated, "final": self.actuated,
                     "learned": "", "paper start": float(theirs["hand-coded"]),
                     "paper at our steps": float(theirs["hand-coded"]), "paper after 4M": float(theirs["hand-coded"])})
        return rows

    def table(self, save: bool = True) -> pd.DataFrame:
        """One row per method (runs finished, start, final, gain with its 95% interval, learned, the paper's start,
        curve at our steps and 4M-step return, our cell grid's final) and one for the actuated lights; saved as
        figures/11_sumo_traffic_returns.csv/.md unless `save` is False."""
        table = pd.DataFrame(self._method_rows(), columns=[
            "method", "runs", "start", "final", "final - start", "95% CI low", "95% CI high", "learned",
            "paper start", "paper at our steps", "paper after 4M", "our cell grid, final"])
        if save:
            save_table(table, f"{PREFIX}_returns")
        return table

    def curves(self) -> plt.Figure:
        """Learning curves on SUMO (mean and one SEM over seeds) with the paper's Figure 5 points at 4 agents within
        our steps and the actuated lights dashed; saved as figures/11_sumo_traffic_curves.png/.pdf."""
        fig, ax = plt.subplots(figsize=(10, 4.5))
        if not self.metrics.empty:
            report.plot_curves(ax, report.learning_curves(self.metrics[self.metrics["n_agents"] == SUMO_AGENTS]))
        for method in report.METHOD_ORDER:
            points = paper.curve(PAPER_ENV, SUMO_AGENTS, method)
            points = points[points["step"] <= self.steps]
            ax.plot(points["step"], points["return"], ls="none", marker="x", ms=8, mew=2,
                    color=report.METHOD_COLORS.get(method), label=f"{method}, paper (Figure 5)")
        if np.isfinite(self.actuated):
            ax.axhline(self.actuated, color="k", ls="--", label="actuated lights (ours)")
        theirs = float(paper.final_returns_table(PAPER_ENV).set_index("agents").loc[SUMO_AGENTS, "hand-coded"])
        ax.axhline(theirs, color="tab:gray", ls=":", label="actuated lights (paper)")
        finished = "" if not self.metrics.empty else " (no run finished yet: make train-sumo)"
        ax.set(title=f"SUMO traffic grid, {SUMO_AGENTS} agents, preset {self.preset}{finished}",
               xlabel="timesteps per agent", ylabel="average return per agent and episode (300 s)",
               xlim=(-0.02 * self.steps, 1.02 * self.steps))
        report.steps_axis(ax)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: curves stay visible
        fig.tight_layout()
        save_figure(fig, f"{PREFIX}_curves")
        return fig

    def conclusion(self) -> str:
        """The results in sentences, with their numbers; 'not measured' where runs are missing or did not learn."""
        table = self.table(save=False).set_index("method")
        sentences = []
        theirs = table.loc["actuated lights", "paper start"]
        if np.isfinite(self.actuated):
            sentences.append(f"The actuated lights score {self.actuated:.1f} on our SUMO grid (paper {theirs:.1f}).")
        missing = [f"{m} ({table.loc[m, 'runs']} runs finished)" for m in report.METHOD_ORDER
                   if table.loc[m, "learned"] == "not measured"]
        if missing:
            return " ".join([*sentences, "Training on SUMO is not measured: not every run has finished: " +
                             "; ".join(missing) + f". Train them with `make train-sumo PRESET={self.preset}`."])
        for method in report.METHOD_ORDER:
            row = table.loc[method]
            gain = (row["final - start"], row["95% CI low"], row["95% CI high"])
            grid = row["our cell grid, final"]
            sentences.append(
                f"{method} goes from {row['start']:.1f} to {row['final']:.1f} in {self.steps:,} steps "
                f"(gain {_interval(*gain)}, learned: {row['learned']}; the paper's curve at these steps "
                f"{row['paper at our steps']:.1f}, after 4M steps {row['paper after 4M']:.1f}; our cell grid "
                + ("not measured" if np.isnan(grid) else f"{grid:.1f}") + ").")
        not_learned = [m for m in ("GS", "DIALS") if table.loc[m, "learned"] != "yes"]
        if not_learned:
            sentences.append("DIALS against GS is not measured: " + " and ".join(not_learned) +
                             " did not clearly learn.")
        else:
            finals = {simulator: plans.seed_returns(self.metrics, SUMO_ENV, simulator, SUMO_AGENTS, False)
                      for simulator in ("dials", "gs")}
            difference = bootstrap_ci(finals["dials"], finals["gs"])
            paper_difference = table.loc["DIALS", "paper at our steps"] - table.loc["GS", "paper at our steps"]
            sentences.append(f"DIALS minus GS at the end: {_interval(*difference)} (the paper's curves at these "
                             f"steps: {paper_difference:+.1f}).")
        return " ".join(sentences)


def study(preset: str, train: bool = False, actuated: bool = True) -> SumoStudy:
    """The study on `preset`'s runs: `train=True` trains (or resumes) the unfinished SUMO runs first on the presets
    of SUMO_PRESETS; elsewhere it reads finished runs only. `actuated` evaluates the actuated lights on the SUMO GS
    (as notebook 04 evaluates the cell grid's rule: the preset's evaluation episodes times its seeds, its seed;
    needs SUMO)."""
    budget = get_preset(preset).budget(SUMO_ENV)
    if train and preset in SUMO_PRESETS:
        train_sumo(preset)
    rule = np.nan
    if actuated:
        baseline = report.hand_coded_baseline(SUMO_ENV, [SUMO_AGENTS], episodes=budget.eval_episodes * budget.n_seeds,
                                              seed=get_preset(preset).seed)
        rule = float(baseline["mean_return"].iloc[0])
    return SumoStudy(preset, budget.n_seeds, budget.total_timesteps, finished_metrics(sumo_configs(preset)),
                     finished_metrics(grid_configs(preset)), rule)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dials_lib.analysis.sumo_study --preset quick` (`make train-sumo`): train (or resume) the preset's
    SUMO runs. Ctrl-C or SIGTERM stops it like the series' training, every worker with it; rerun to resume."""
    from dials_lib.envs.sumo_network import SumoMissingError
    from dials_lib.presets import PRESET_NAMES
    from dials_lib.training.priority import long_training
    from dials_lib.training.process_tree import exit_now, stop_status

    parser = argparse.ArgumentParser(description="Train (or resume) GS, DIALS and untrained-DIALS on sumo-traffic.",
                                     allow_abbrev=False)
    parser.add_argument("--preset", default="quick", choices=PRESET_NAMES)
    args = parser.parse_args(argv)
    try:
        with long_training():  # `make train-sumo` is niced: against other terminals too
            train_sumo(args.preset)
    except SumoMissingError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM: every worker stops with this process
        how, status = stop_status(interrupt)
        print(f"{how}: rerun the same command to continue (finished runs are read back, interrupted ones resume "
              "from their last checkpoint)", file=sys.stderr, flush=True)
        exit_now(status)
    return 0


__all__ = ["SUMO_AGENTS", "SUMO_ENV", "SUMO_PRESETS", "SumoStudy", "grid_configs", "main",
           "study", "sumo_configs", "train_sumo"]

if __name__ == "__main__":
    sys.exit(main())

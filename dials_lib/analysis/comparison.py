"""DIALS against training on the global simulator in one environment: the paper's Figures 5 (traffic) and 6
(warehouse), with their tables, as notebooks 04 and 05 show them.

`compare(preset, env, prefix)` trains (or reads back) every run of the main comparison and the hand-coded
baseline, and returns a `Comparison` whose methods draw and save one section each, under names starting with
`prefix` ('04_traffic_...'):

- `returns()`: learning curves per size (the paper's 4-agent curve points marked), final returns next to the paper's,
  total runtime (figure and table);
- `learning()`: per method, the return before training and at the end, whether it learned, the greedy policies'
  final return, and the paper's return at the same step, at its start and after 4M steps; the hand-coded
  controller's, ours and the paper's (table);
- `conclusion()`: the verdicts of the paper's claims on these runs, in words (`dials_lib.analysis.claims`);
- `differences()`: differences of the final returns between methods with bootstrap intervals over seeds;
- `domain_metrics()`: the environment's own measures (delay, throughput, items collected, ...) over training;
- `aip_and_runtime()`: the AIPs' cross-entropy over training, and the runtime next to the paper's Tables 1-2;
- `influence_on_gs()`: what the AIPs that DIALS and untrained-DIALS agents trained on last predict, next to the
  influence the GS really produces under those agents' final policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from dials_lib import paper
from dials_lib.analysis import claims, plans, report, verdicts
from dials_lib.analysis.env_stats import idle_class, source_names
from dials_lib.analysis.influence_eval import pooled_predicted_vs_empirical
from dials_lib.analysis.stats import bootstrap_ci
from dials_lib.envs import close_simulator, make_global
from dials_lib.learning.controllers import PolicyController
from dials_lib.learning.influence import collect_dataset
from dials_lib.paper import read_paper_table
from dials_lib.paths import REPO_ROOT
from dials_lib.plots import save_figure, save_table
from dials_lib.presets import RunBudget, get_preset
from dials_lib.training.run_config import RunConfig
from dials_lib.training.trained_agents import trained_agents

DOMAIN_METRICS: dict[str, list[tuple[str, str]]] = {
    "traffic": [("delay_per_car", "delay per car (s)"), ("throughput", "throughput (cars/s)"),
                ("queue_length", "queue (stopped cars per lane)")],
    "warehouse": [("items_collected", "items collected per robot per episode"),
                  ("item_wait", "wait of a collected item (steps)")],
}
"""The domain metrics of each environment shown next to the return: (column of the metrics, axis label)."""
DIFFERENCES: tuple[tuple[str, str], ...] = (("dials", "gs"), ("untrained-dials", "gs"), ("dials", "untrained-dials"))
"""Pairs of simulators whose final returns are compared (first minus second)."""


@dataclass
class Comparison:
    """The records of the main comparison in one environment, and the sections drawn from them."""

    env: str
    """'traffic' or 'warehouse'."""
    prefix: str
    """Start of the saved figure and table names ('04', '05')."""
    budget: RunBudget
    """The preset's training budget in this environment."""
    metrics: pd.DataFrame
    """One row per evaluation of every run (`plans.run_experiments`)."""
    runtimes: pd.DataFrame
    """One row per run: its runtime breakdown (`plans.runtime_frame`)."""
    hand_coded: pd.DataFrame
    """The hand-coded controller's return and domain metrics per size (`report.hand_coded_baseline`)."""
    configs: list[RunConfig]
    """The runs behind `metrics`."""

    @property
    def finals(self) -> pd.DataFrame:
        """The last evaluation of every run."""
        return plans.final_evaluations(self.metrics)

    def _name(self, what: str) -> str:
        """Name of a saved figure or table: '04_traffic_<what>'."""
        return f"{self.prefix}_{self.env}_{what}"

    def _hand_coded(self, size: int, column: str = "mean_return") -> float:
        """The hand-coded controller's `column` at one size."""
        return self.hand_coded.loc[self.hand_coded["n_agents"] == size, column].iloc[0]

    def returns(self) -> pd.DataFrame:
        """Learning curves per size, final returns against the paper's and total runtimes; the final-return table."""
        curves = report.learning_curves(self.metrics)
        final_table = report.final_comparison(self.finals, self.env)
        runtime_table = report.runtime_summary(self.runtimes)
        sizes = list(self.budget.sizes)
        fig, axes = plt.subplots(1, len(sizes) + 2, figsize=(5 * len(sizes) + 9, 4),
                                 gridspec_kw={"width_ratios": [1.6] * len(sizes) + [1, 1]})
        greedy = report.learning_curves(self.metrics, "greedy_return")
        for ax, size in zip(axes, sizes, strict=False):
            report.plot_curves(ax, curves[curves["n_agents"] == size])
            for method, group in greedy[greedy["n_agents"] == size].groupby("method"):
                ax.plot(group["timestep"], group["mean"], ls=":", lw=1.2, color=report.METHOD_COLORS.get(method),
                        label="greedy policies (dotted)" if method == report.METHOD_ORDER[0] else None)
            self._paper_points(ax, size)
            ax.axhline(self._hand_coded(size), color="k", ls="--", label="hand-coded")
            ax.set(title=f"{size} agents", xlabel="timesteps per agent", ylabel="average return per agent")
            report.steps_axis(ax)
        _final_bars(axes[len(sizes)], final_table)
        rt = runtime_table.assign(method=runtime_table["method"].astype(str))
        report.plot_bars(axes[-1], rt, "total (min)")
        # a linear axis from 0: bar heights compare as the runtimes do (a log axis cut near the smallest bar made
        # 14.6 against 18.5 minutes look tenfold)
        axes[-1].set(title="runtime per run (this machine)", xlabel="number of agents", ylabel="minutes per run",
                     ylim=(0, None))
        # one legend for the curve panels, below the figure: inside a panel it hid the paper's late points
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        save_figure(fig, self._name("returns_and_runtime"))
        save_table(final_table, self._name("final_returns"))
        return final_table

    def _paper_points(self, ax: plt.Axes, size: int) -> None:
        """The paper's curve points (paper/curves.csv) within this budget's steps, as crosses in the method colours."""
        end = self.budget.total_timesteps
        for method in report.METHOD_ORDER:
            points = paper.curve(self.env, size, method)
            points = points[points["step"] <= end]
            if not points.empty:
                ax.plot(points["step"], points["return"], ls="none", marker="x", ms=7, mew=2,
                        color=report.METHOD_COLORS.get(method),
                        label="paper (Figure 5/6)" if method == report.METHOD_ORDER[0] else None)

    @property
    def starts(self) -> pd.DataFrame:
        """The evaluation before training of every run."""
        return plans.first_evaluations(self.metrics)

    def learning(self) -> pd.DataFrame:
        """Per size and method: our return before training and at the end (mean over seeds), the gain with its 95%
        interval and whether it counts as learned (`verdicts.learned`), next to the paper's return at the same step,
        at its start and after 4M steps; the hand-coded controller as a row of its own. Saved and returned."""
        table = self._learning_table()
        save_table(table, self._name("learning"))
        return table

    def _learning_table(self) -> pd.DataFrame:
        """The table of `learning`, not saved."""
        finals, starts, rows = self.finals, self.starts, []
        steps = int(finals["timestep"].max())
        for size in self.budget.sizes:
            for simulator, method in report.METHOD_LABELS.items():
                pick = (finals["n_agents"] == size) & (finals["simulator"] == simulator)
                final = finals.loc[pick, "mean_return"].to_numpy()
                start = starts.loc[(starts["n_agents"] == size) & (starts["simulator"] == simulator),
                                   "mean_return"].to_numpy()
                gain = bootstrap_ci(final, start)
                greedy = finals.loc[pick, "greedy_return"].to_numpy()
                rows.append({"n_agents": size, "method": method, "start": start.mean(), "final": final.mean(),
                             "final - start": gain[0], "95% CI low": gain[1], "95% CI high": gain[2],
                             "learned": verdicts.learned_word(*gain, start=float(start.mean())),
                             "final, greedy": greedy.mean(),
                             f"paper at {steps:,}": paper.curve_at(self.env, size, method, steps),
                             "paper start": paper.curve_at(self.env, size, method, 0),
                             "paper at 4M": paper.curve_at(self.env, size, method, paper.TOTAL_STEPS)})
            paper_rule = read_paper_table("results").query("env == @self.env and agents == @size")["hand_coded"]
            theirs = float(paper_rule.iloc[0]) if len(paper_rule) else float("nan")  # a flat line in the paper
            rule = self._hand_coded(size)
            rows.append({"n_agents": size, "method": "hand-coded", "start": rule, "final": rule,
                         f"paper at {steps:,}": theirs, "paper start": theirs, "paper at 4M": theirs})
        table = pd.DataFrame(rows)
        # a run of the paper's whole length: its 'same step' column is the 4M one
        return table.drop(columns=f"paper at {steps:,}") if steps == paper.TOTAL_STEPS else table

    def conclusion(self) -> str:
        """The paper's claims on these runs, each with its verdict and the numbers that decided it."""
        sizes, steps = {self.env: list(self.budget.sizes)}, {self.env: self.budget.total_timesteps}
        hand_coded = self.hand_coded.assign(env=self.env)
        tables = [claims.dials_matches_gs(self.finals, self.starts, sizes, steps),
                  claims.untrained_is_worse(self.finals, self.starts, sizes),
                  claims.dials_reaches_hand_coded(self.finals, self.starts, hand_coded, sizes)]
        learning = self._learning_table()
        lines = []
        for size in self.budget.sizes:
            part = learning[(learning["n_agents"] == size) & (learning["method"] != "hand-coded")]
            learned = [m for m, v in zip(part["method"], part["learned"], strict=True) if v == "yes"]
            lines.append(f"{size} agents, {steps[self.env]:,} steps per agent: learned: "
                         f"{', '.join(learned) if learned else 'none'} (final return clearly above the start)")
        for table in tables:
            for _, row in table.iterrows():
                lines.append(f"- {row['claim']} ({row['env']}): {row['verdict'].upper()}. {row['our evidence']}; "
                             f"paper: {row['paper']}. Rule: {row['rule']}")
        return "\n".join(lines)

    def differences(self) -> pd.DataFrame:
        """Differences of final returns between methods, 95% bootstrap intervals over seeds; saved and returned."""
        finals, rows = self.finals, []
        for size in self.budget.sizes:
            last = finals[finals["n_agents"] == size]
            by_sim = {s: last.loc[last["simulator"] == s, "mean_return"].to_numpy() for s in report.METHOD_LABELS}
            for a, b in DIFFERENCES:
                est, lo, hi = bootstrap_ci(by_sim[a], by_sim[b])
                rows.append({"n_agents": size,
                             "comparison": f"{report.METHOD_LABELS[a]} - {report.METHOD_LABELS[b]}",
                             "difference": est, "95% CI low": lo, "95% CI high": hi,
                             "seeds": f"{len(by_sim[a])} vs {len(by_sim[b])}"})
        differences = pd.DataFrame(rows)
        save_table(differences, self._name("differences"))
        return differences

    def start_and_hand_coded(self) -> str:
        """Returns before training and of the hand-coded controller, ours and the paper's, as text."""
        start = report.start_returns(self.metrics)
        paper_start = read_paper_table("results").query("env == @self.env")[
            ["agents", "random_policy_start", "hand_coded"]]
        return "\n".join([
            f"return before training (ours): {start.round(1).to_dict('records')}",
            f"paper: start of training and hand-coded controller: {paper_start.to_dict('records')}",
            f"hand-coded controller here: {self.hand_coded[['n_agents', 'mean_return']].round(1).to_dict('records')}",
        ])

    def domain_metrics(self) -> pd.DataFrame:
        """Curves of the environment's domain metrics per size (figure); the first one's final values per method."""
        domain, sizes = DOMAIN_METRICS[self.env], list(self.budget.sizes)
        fig, axes = plt.subplots(len(sizes), len(domain), figsize=(5 * len(domain), 3.6 * len(sizes)), squeeze=False)
        for row, size in enumerate(sizes):
            for ax, (column, label) in zip(axes[row], domain, strict=True):
                report.plot_curves(ax, report.learning_curves(self.metrics[self.metrics["n_agents"] == size], column))
                ax.axhline(self._hand_coded(size, column), color="k", ls="--", label="hand-coded")
                ax.set(title=f"{size} agents", xlabel="timesteps per agent", ylabel=label)
                report.steps_axis(ax)
        axes[0, 0].legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, self._name("domain_metrics"))
        return report.final_comparison(self.finals, self.env, column=domain[0][0]).drop(
            columns="final (paper, 4M steps)")

    def aip_and_runtime(self) -> pd.DataFrame:
        """AIP cross-entropy over training (figure); runtimes next to the paper's Tables 1-2 (saved, returned)."""
        fig, ax = plt.subplots(figsize=(6, 3.8))
        report.plot_curves(ax, report.learning_curves(self.metrics[self.metrics["simulator"] != "gs"], "aip_ce"))
        ax.set(xlabel="timesteps per agent", ylabel="AIP cross-entropy (nats)",
               title="AIP loss on GS evaluation episodes")
        report.steps_axis(ax)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, self._name("aip_loss"))
        table = runtimes_vs_paper(report.runtime_summary(self.runtimes), self.env)
        table = table.rename(columns=lambda name: name.replace(" (", " per run (", 1) if "(" in name else name)
        save_table(table, self._name("runtimes"))  # each run's own times (mean over seeds), not the plan's total
        return table

    def influence_on_gs(self) -> pd.DataFrame:
        """Per size, for DIALS and untrained-DIALS: every influence source (class) but the idle one, its rate on the
        GS under each run's final policies ("GS") next to the mean probability the run's last AIPs predict for it on
        the same steps ("AIPs"; untrained-DIALS: their initial weights), means over seeds; `budget.eval_episodes`
        GS episodes per run. The gap is the difference between the simulator the agents trained on and the one
        they are evaluated on. Saved and returned."""
        parts = []
        for config in self.configs:
            if config.simulator == "gs":
                continue
            agents = trained_agents(config)
            sim = make_global(self.env, n_agents=config.n_agents, seed=config.seed)
            try:
                data = collect_dataset(sim, PolicyController(agents.actor),
                                       self.budget.eval_episodes * sim.spec.horizon)
            finally:
                close_simulator(sim)
            table = pooled_predicted_vs_empirical(agents.predictor, data, source_names(self.env), idle_class(self.env))
            parts.append(table.assign(n_agents=config.n_agents, method=report.METHOD_LABELS[config.simulator]))
        columns = ["empirical", "predicted"]
        means = pd.concat(parts).groupby(["n_agents", "source", "method"], sort=False)[columns].mean()
        table = means.rename(columns={"empirical": "GS", "predicted": "AIPs"}).unstack("method")
        order = [(what, method) for method in report.METHOD_ORDER for what in ("GS", "AIPs")
                 if (what, method) in table.columns]
        table = table[order]
        table.columns = [f"{method}: {what}" for what, method in order]
        table = table.reset_index()
        save_table(table, self._name("influence_on_gs"))
        return table

    def speedups(self) -> str:
        """GS over DIALS total runtime per size, ours and the paper's, as text."""
        table = runtimes_vs_paper(report.runtime_summary(self.runtimes), self.env)
        lines = []
        for size in self.budget.sizes:
            mine = table[table["n_agents"] == size].set_index("method")
            ours = mine.loc["GS", "total (min)"] / mine.loc["DIALS", "total (min)"]
            theirs = mine.loc["GS", "paper total (h, 4M steps)"] / mine.loc["DIALS", "paper total (h, 4M steps)"]
            lines.append(f"{size} agents: GS / DIALS total runtime: ours {ours:.2f}x on 2 cores, "
                         f"paper {theirs:.2f}x on {paper.CPUS} CPUs")
        return "\n".join(lines)


def _final_bars(ax: plt.Axes, final_table: pd.DataFrame) -> None:
    """Our final returns as bars with SEM, the paper's as black ticks on them."""
    report.plot_bars(ax, final_table.assign(method=final_table["method"].astype(str)), "final (ours)", "SEM (ours)")
    for size_index, size in enumerate(sorted(final_table["n_agents"].unique())):
        rows = final_table[final_table["n_agents"] == size]
        for j, (_, row) in enumerate(rows.iterrows()):
            ax.plot(size_index + (j - 1) * 0.8 / 3, row["final (paper, 4M steps)"], marker="_", ms=18, mew=2,
                    color="k", label="paper, 4M steps" if size_index == 0 and j == 0 else None)
    low = min(final_table["final (ours)"].min(), final_table["final (paper, 4M steps)"].min())
    high = max((final_table["final (ours)"] + final_table["SEM (ours)"].fillna(0.0)).max(),
               final_table["final (paper, 4M steps)"].max())
    # bars start at 0, so that their heights compare as the returns do; the legend sits in a band above the bars
    ax.set(title="final return", xlabel="number of agents", ylabel="average return per agent",
           ylim=(min(0.0, 1.1 * low), 1.4 * max(high, 0.0) if high > 0 else None))
    ax.legend(fontsize=8, loc="upper center", ncol=2)


def runtimes_vs_paper(runtime_table: pd.DataFrame, env: str) -> pd.DataFrame:
    """Our runtime breakdown per size and method with the paper's total hours (DIALS at its main F) next to it."""
    dials = paper.main_dials_label(env)
    paper_rt = read_paper_table("runtimes").query("env == @env")
    paper_rt = paper_rt[paper_rt["simulator"].isin(["GS", dials, "untrained-DIALS"])]
    paper_rt = paper_rt.assign(method=paper_rt["simulator"].str.replace(f" F={paper.MAIN_F[env]}", "", regex=False))
    paper_rt = paper_rt.rename(columns={"agents": "n_agents", "total_h": "paper total (h, 4M steps)"})
    return runtime_table.merge(paper_rt[["n_agents", "method", "paper total (h, 4M steps)"]],
                               on=["n_agents", "method"], how="left")


def describe(preset: str, env: str) -> str:
    """One line on the preset's runs: how many, their budget against the paper's and where they live."""
    budget, configs = get_preset(preset).budget(env), plans.comparison_configs(preset, env)
    f = next(c.retrain_every for c in configs if c.simulator == "dials")
    return (f"preset {preset}: {len(configs)} runs = sizes {budget.sizes} x {budget.n_seeds} seeds x 3 simulators; "
            f"{budget.total_timesteps:,} steps per agent ({budget.total_timesteps / paper.TOTAL_STEPS:.2%} of the "
            f"paper's 4M), F = {f:,} steps, {budget.n_evaluations} evaluations of {budget.eval_episodes} GS "
            f"episodes; runs in {_shown(plans.preset_runs_dir(preset))}/")


def _shown(path: Path) -> Path:
    """`path` relative to the repository when it lies inside it (runs may live elsewhere: DIALS_RUNS_DIR)."""
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


def compare(preset: str, env: str, prefix: str, progress: bool = False) -> Comparison:
    """Train (or read back) the main comparison of `env` on `preset`, and the hand-coded baseline at its sizes."""
    p = get_preset(preset)
    budget = p.budget(env)
    configs = plans.comparison_configs(preset, env)
    metrics = plans.run_experiments(configs, progress=progress)
    hand_coded = report.hand_coded_baseline(env, budget.sizes, episodes=budget.eval_episodes * budget.n_seeds,
                                            seed=p.seed)
    return Comparison(env, prefix, budget, metrics, plans.runtime_frame(configs), hand_coded, configs)


__all__ = ["DIFFERENCES", "DOMAIN_METRICS", "Comparison", "compare", "describe", "runtimes_vs_paper"]

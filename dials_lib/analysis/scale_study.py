"""The paper at scale (notebook 10): Figures 5 and 6 at every size of a preset, next to the paper's, and the claims
only several sizes can test.

The paper's Figures 5 and 6 have three panels: learning curves, the final return at 4, 25, 49 and 100 agents, and
the total runtime at each size. `study(preset)` trains (or reads back) the preset's main comparison in both
environments (`comparison.compare`: learning curves per size, with the greedy policies dotted and the hand-coded
controller dashed) and draws the other two panels across environments:

- `final_vs_agents`: our final return per size (mean and SEM over seeds, at the preset's step count) beside the
  paper's bars after 4M steps (paper/results.csv), bars from 0;
- `runtime_vs_agents`: the training time per run at each size, measured here (the worker CPU hours of each run's
  share of its seed batch: what it costs on a core of its own, whatever else shared the machine), and the paper's
  protocol (4M steps) projected to 128 workers from the timed runs of notebook 07 beside the paper's Tables 1-2
  (paper/runtimes.csv), at every size either has, on log axes of whole decades;
- `claims`: every verdict at scale (`claims` at every size and `scale_claims`), one table.

A preset may take its timed runs and its F ablation from another preset (`Preset.timed_runs_preset`,
`Preset.ablation_preset`): the scale preset uses the quick preset's, which run at 4 agents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from dials_lib import paper
from dials_lib.analysis import claims, comparison, plans, projection, report, scale_claims, scaling
from dials_lib.analysis.comparison import Comparison
from dials_lib.analysis.memory import memory_table
from dials_lib.analysis.published import has_records
from dials_lib.hyperparameters import ENV_NAMES
from dials_lib.paper import read_paper_table
from dials_lib.plots import save_figure, save_table
from dials_lib.presets import get_preset

PREFIX = "10"
"""Start of the names of the figures and tables this study saves."""


def decade_log_axis(ax: plt.Axes, values: np.ndarray) -> None:
    """A log y axis spanning whole decades around `values`, ticks at every decade labelled in plain numbers."""
    finite = values[np.isfinite(values) & (values > 0)]
    low, high = (10.0 ** math.floor(math.log10(finite.min())), 10.0 ** math.ceil(math.log10(finite.max()))) \
        if len(finite) else (1.0, 10.0)
    ax.set_yscale("log")
    ax.set_ylim(low, high if high > low else low * 10)
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())  # matplotlib labels minor ticks on a one-decade axis


def _own_hours(runs: pd.DataFrame, *columns: str) -> float:
    """The hours in `columns` of a batch's runs (`plans.runtime_frame` rows), summed: each row holds its run's share
    of its batch, stacked or trained in parts, so the shares sum to the batch's total. NaN when a run was read from a
    longer run (another preset's: no time of its own) or no column is there."""
    own = "prefix_of" not in runs or bool(runs["prefix_of"].isna().all())
    present = [c for c in columns if c in runs]
    return float(runs[present].to_numpy(float).sum()) / 3600 if own and present else float("nan")


@dataclass
class ScaleStudy:
    """The main comparison of both environments at every size of a preset, the timed runs and the F ablation."""

    preset: str
    """The preset whose runs these are."""
    comparisons: dict[str, Comparison]
    """Per environment: the comparison of notebooks 04 and 05 at this preset's sizes."""
    measured: pd.DataFrame | None
    """The timed runs (`scaling.measurements` of the timed-runs preset), or None when they are not on file."""
    ablation: pd.DataFrame
    """One row per evaluation of the F ablation's runs (the ablation preset's)."""

    @property
    def metrics(self) -> pd.DataFrame:
        """Every evaluation of every run of both environments."""
        return pd.concat([c.metrics for c in self.comparisons.values()], ignore_index=True)

    @property
    def sizes(self) -> dict[str, list[int]]:
        """The sizes of each environment."""
        return {env: list(c.budget.sizes) for env, c in self.comparisons.items()}

    @property
    def steps(self) -> dict[str, int]:
        """Steps per agent of each environment's runs."""
        return {env: c.budget.total_timesteps for env, c in self.comparisons.items()}

    def final_table(self) -> pd.DataFrame:
        """Final return per environment, size and method, ours (mean, SEM, step count) and the paper's at 4M, and
        the hand-coded controller's, at every size either side has."""
        frames = []
        for env, comp in self.comparisons.items():
            ours = report.final_comparison(comp.finals, env).assign(env=env, steps=self.steps[env])
            rule = comp.hand_coded[["n_agents", "mean_return"]].rename(columns={"mean_return": "final (ours)"})
            results = read_paper_table("results").query("env == @env")
            rule = rule.assign(method="hand-coded", env=env, steps=np.nan).merge(
                results[["agents", "hand_coded"]].rename(columns={"agents": "n_agents",
                                                                 "hand_coded": "final (paper, 4M steps)"}),
                on="n_agents", how="outer").assign(method="hand-coded", env=env)
            theirs = paper.final_returns(env).rename(columns={"paper_return": "final (paper, 4M steps)"})
            missing = theirs[~theirs["n_agents"].isin(ours["n_agents"])].assign(env=env)
            frames += [ours.astype({"method": str}), rule, missing]
        table = pd.concat(frames, ignore_index=True)
        columns = ["env", "n_agents", "method", "seeds", "steps", "final (ours)", "SEM (ours)",
                   "final (paper, 4M steps)"]
        return table[columns].sort_values(["env", "n_agents", "method"], kind="stable").reset_index(drop=True)

    def final_vs_agents(self) -> pd.DataFrame:
        """Panel 2: final return against the number of agents, ours beside the paper's bars (saved, returned)."""
        table = self.final_table()
        fig, axes = plt.subplots(1, len(self.comparisons), figsize=(7 * len(self.comparisons), 4), squeeze=False)
        for ax, env in zip(axes[0], self.comparisons, strict=True):
            part = table[(table["env"] == env) & (table["method"] != "hand-coded")]
            sizes = sorted(part["n_agents"].unique())
            methods = [m for m in report.METHOD_ORDER if m in set(part["method"])]
            width = 0.8 / (2 * max(1, len(methods)))
            for i, method in enumerate(methods):
                rows = part[part["method"] == method].set_index("n_agents").reindex(sizes)
                base = np.arange(len(sizes)) + (i - (len(methods) - 1) / 2) * 2 * width
                colour = report.METHOD_COLORS.get(method)
                ax.bar(base - width / 2, rows["final (ours)"], width, yerr=rows["SEM (ours)"].fillna(0), capsize=2,
                       color=colour, label=f"{method}, ours")
                ax.bar(base + width / 2, rows["final (paper, 4M steps)"], width, color=colour, alpha=0.35,
                       hatch="//", edgecolor=colour, label=f"{method}, paper")
            rule = table[(table["env"] == env) & (table["method"] == "hand-coded")].set_index("n_agents")
            for j, size in enumerate(sizes):
                for column, style in (("final (ours)", "-"), ("final (paper, 4M steps)", ":")):
                    if size in rule.index and np.isfinite(rule.loc[size, column]):
                        ax.hlines(rule.loc[size, column], j - 0.45, j + 0.45, colors="k", linestyles=style,
                                  label=("hand-coded, ours" if style == "-" else "hand-coded, paper")
                                  if j == 0 else None)
            ax.set_xticks(np.arange(len(sizes)), [str(s) for s in sizes])
            ax.set(title=f"{env}: ours after {self.steps[env]:,} steps per agent, paper after 4M",
                   xlabel="number of agents", ylabel="final average return per agent", ylim=(0, None))
            ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below the axis label
        fig.tight_layout()
        save_figure(fig, f"{PREFIX}_final_return_vs_agents")
        save_table(table, f"{PREFIX}_final_return_vs_agents")
        return table

    def runtime_table(self) -> pd.DataFrame:
        """Training time per run (hours) per environment, size and method, at every size measured here, projected
        or in the paper: measured here at this budget (the worker CPU hours, the agents' and AIPs' training on a core
        of their own, and the wall hours, the run's share of its seed batch on a shared machine), the paper's 4M-step
        protocol projected to 128 workers from the timed runs, and the paper's Tables 1-2."""
        projected = projection.projections(self.measured, self.preset) if self.measured is not None else None
        if projected is not None:
            projected = projected[(projected["budget"] == "paper protocol") & (projected["workers"] == paper.CPUS)]
        theirs = read_paper_table("runtimes")
        frames = []
        for env, comp in self.comparisons.items():
            runs = report.with_method(comp.runtimes).astype({"method": str})
            runs = report.with_columns(runs, ["worker_cpu_s"])
            ours = runs.groupby(["n_agents", "method"], as_index=False).agg(
                cpu=("worker_cpu_s", "mean"), wall=("total_s", "mean"))
            ours = ours.assign(cpu=ours["cpu"] / 3600, wall=ours["wall"] / 3600)
            # the paper's and the projections' row labels ('DIALS F=1M') to our methods; other F values drop out
            method_of = {paper.main_dials_label(env) if m == "DIALS" else m: m for m in report.METHOD_ORDER}
            paper_rows = theirs[theirs["env"] == env].rename(columns={"agents": "n_agents", "total_h": "paper"})
            paper_rows = paper_rows.assign(method=paper_rows["simulator"].map(method_of))
            parts = [ours, paper_rows.dropna(subset=["method"])[["n_agents", "method", "paper"]]]
            if projected is not None:
                mine = projected[projected["env"] == env]
                parts.append(pd.DataFrame({"n_agents": mine["n_agents"].astype(int),
                                           "method": mine["simulator"].map(method_of),
                                           "projected": mine["total_s"] / 3600}).dropna(subset=["method"]))
            rows = parts[0]
            for part in parts[1:]:
                rows = rows.merge(part, on=["n_agents", "method"], how="outer")
            frames.append(rows.assign(env=env, steps=self.steps[env]))
        table = pd.concat(frames, ignore_index=True).reindex(
            columns=["env", "n_agents", "method", "steps", "cpu", "wall", "projected", "paper"])
        table["method"] = pd.Categorical(table["method"], report.METHOD_ORDER, ordered=True)
        table = table.sort_values(["env", "n_agents", "method"], kind="stable").astype({"method": str})
        return table.rename(columns={
            "cpu": "measured here (worker CPU h per run, this budget)",
            "wall": "measured here (wall h per run, this budget)",
            "projected": "projected, 4M steps, 128 workers (h)",
            "paper": "paper, 4M steps, 128 CPUs (h)"}).reset_index(drop=True)

    def runtime_vs_agents(self) -> pd.DataFrame:
        """Panel 3: training time against the number of agents (saved, returned): left per environment, the worker
        CPU hours per run measured here at this budget; right, the paper's protocol projected to 128 workers beside
        the paper's tables."""
        table = self.runtime_table()
        here_h = "measured here (worker CPU h per run, this budget)"
        projected_h, paper_h = "projected, 4M steps, 128 workers (h)", "paper, 4M steps, 128 CPUs (h)"
        envs = list(self.comparisons)
        fig, axes = plt.subplots(len(envs), 2, figsize=(13, 5 * len(envs)), squeeze=False)
        for k, env in enumerate(envs):
            part = table[table["env"] == env]
            here, protocol = axes[k]
            for method in [m for m in report.METHOD_ORDER if m in set(part["method"])]:
                rows, colour = part[part["method"] == method], report.METHOD_COLORS.get(method)
                for ax, column, style, label in ((here, here_h, "-", method),
                                                 (protocol, projected_h, "-", f"{method}, ours projected"),
                                                 (protocol, paper_h, "--", f"{method}, paper")):
                    points = rows.dropna(subset=[column])
                    if len(points):
                        ax.plot(points["n_agents"], points[column], marker="x" if style == "--" else "o", ls=style,
                                color=colour, label=label)
            decade_log_axis(here, part[here_h].to_numpy(dtype=float))
            decade_log_axis(protocol, part[[projected_h, paper_h]].to_numpy(dtype=float).ravel())
            here.set(title=f"{env}: measured here, {self.steps[env]:,} steps", xlabel="number of agents",
                     ylabel="worker CPU hours per run (log scale)")
            protocol.set(title=f"{env}: 4M steps, 128 workers", xlabel="number of agents",
                         ylabel="wall hours per run (log scale)")
            for ax in (here, protocol):
                ax.set_xticks(sorted(part["n_agents"].unique()))
                ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # keep lines clear
        fig.tight_layout()
        save_figure(fig, f"{PREFIX}_runtime_vs_agents")
        save_table(table, f"{PREFIX}_runtime_vs_agents")
        return table

    def training_time(self, n_processes: int = 2) -> pd.DataFrame:
        """The preset's training time from its runs' records (saved, returned): per environment, size and method
        the wall hours of its seed batch (its parts' summed, when its seeds trained in `plans.stacked_parts`), the
        CPU hours of its worker tasks (the agents' training, simulators included, and the AIPs': what the batch
        costs on a core of its own), the share of a core those tasks got (below 1 when the machine was shared), the
        wall hours of what its main process did outside them, one process at a time (GS evaluations and AIP data
        collection: not in the worker CPU hours, an upper bound on their CPU on a shared machine) and the CPU hours
        notebook 07's timed runs project for the batch on one worker, evaluations and data collection included
        (`projection.training_runs_runtime`; NaN without timed runs). A row sums the batches (the projection over
        the batches trained here, those with worker CPU hours: runs read from a longer run have none), and a last
        row divides the sums by `n_processes`: the plan's hours had its batches packed that many cores perfectly
        side by side."""
        projected: dict[tuple[str, int, str], float] = {}  # per (env, n_agents, method)
        if self.measured is not None:
            for run in projection.training_runs_runtime(self.measured, self.preset, 1).itertuples():
                key = (run.env, int(run.n_agents), report.METHOD_LABELS[run.simulator])
                projected[key] = projected.get(key, 0.0) + run.total_s / 3600
        rows = []
        for env, comp in self.comparisons.items():
            runtimes = report.with_method(comp.runtimes)
            for (n, method), runs in runtimes.groupby(["n_agents", "method"], observed=True):
                busy, cpu = _own_hours(runs, "worker_busy_s"), _own_hours(runs, "worker_cpu_s")
                rows.append({"env": env, "n_agents": int(n), "method": str(method), "seeds": len(runs),
                             "batch wall h": float(runs["total_s"].sum()) / 3600,
                             "worker CPU h": cpu,
                             "worker core share": cpu / busy if busy > 0 else float("nan"),
                             "evaluation + data wall h": _own_hours(runs, "evaluation_s", "data_collection_s"),
                             "projected CPU h": projected.get((env, int(n), str(method)), float("nan"))})
        table = pd.DataFrame(rows)
        trained_here = table["worker CPU h"].notna()
        total = {"batch wall h": table["batch wall h"].sum(), "worker CPU h": table["worker CPU h"].sum(),
                 "evaluation + data wall h": table["evaluation + data wall h"].sum(),
                 "projected CPU h": table.loc[trained_here, "projected CPU h"].sum(min_count=1)}
        table = pd.concat([table, pd.DataFrame([
            {"env": "all", "method": "sum of the batches", **total},
            {"env": "all", "method": f"over {n_processes} processes side by side",
             **{k: v / n_processes for k, v in total.items()}}])], ignore_index=True)
        save_table(table, f"{PREFIX}_training_time")
        return table

    def stability(self) -> pd.DataFrame:
        """Per environment, size and method: drops of the learning curves and spread of the final returns over seeds
        (`scale_claims.stability_table`; saved, returned)."""
        table = report.with_method(scale_claims.stability_table(self.metrics)).drop(columns="simulator")
        save_table(table, f"{PREFIX}_stability")
        return table

    def claims(self, save: bool = True) -> pd.DataFrame:
        """Every verdict at scale, one table (returned, and saved unless `save` is False)."""
        metrics = self.metrics
        finals, starts = plans.final_evaluations(metrics), plans.first_evaluations(metrics)
        hand_coded = pd.concat([c.hand_coded.assign(env=env) for env, c in self.comparisons.items()],
                               ignore_index=True)
        parts = [claims.dials_matches_gs(finals, starts, self.sizes, self.steps),
                 claims.untrained_is_worse(finals, starts, self.sizes),
                 claims.dials_reaches_hand_coded(finals, starts, hand_coded, self.sizes),
                 scale_claims.untrained_gap_grows(finals, starts, self.sizes),
                 scale_claims.gs_less_stable(metrics, self.sizes),
                 scale_claims.gap_larger_in_warehouse(finals, starts, self.sizes)]
        if self.measured is not None:
            sizes = sorted(set(self.measured["n_agents"]))
            parts.append(scale_claims.memory_as_in_table_3(memory_table(self.measured, sizes,
                                                                        read_paper_table("memory"))))
        if not self.ablation.empty:
            parts.append(scale_claims.f_claims_as_stated(plans.final_evaluations(self.ablation),
                                                         plans.first_evaluations(self.ablation)))
        table = pd.concat(parts, ignore_index=True)
        if save:
            save_table(table, f"{PREFIX}_scale_claims")
        return table


def finished(preset: str) -> bool:
    """Whether every run of `preset`'s main comparison can be read back without training (`published.has_records`)."""
    return all(has_records(c) for env in ENV_NAMES for c in plans.comparison_configs(preset, env))


def study(preset: str, measure_missing: bool = True, progress: bool = False) -> ScaleStudy:
    """Train (or read back) the main comparison of both environments on `preset`, and gather its timed runs and F
    ablation (those of the presets it names; timed runs are measured if missing and `measure_missing`)."""
    p = get_preset(preset)
    comparisons = {env: comparison.compare(preset, env, prefix=PREFIX, progress=progress) for env in ENV_NAMES}
    # another preset's timed runs and ablation are read, never made here (they are that preset's notebooks' job)
    timed = p.timed_runs_preset or preset
    try:
        measured = scaling.measurements(timed, measure_missing=measure_missing and timed == preset, verbose=False)
    except FileNotFoundError:
        measured = None
    ablation_preset = p.ablation_preset or preset
    ablation_runs = [c for env in ENV_NAMES for c in plans.ablation_configs(ablation_preset, env)]
    if ablation_preset != preset:
        ablation_runs = [c for c in ablation_runs if has_records(c)]
    ablation = (plans.runs_of(plans.run_experiments(ablation_runs, progress=progress, log=None), ablation_runs)
                if ablation_runs else pd.DataFrame(columns=[*plans.RUN_COLUMNS, "timestep", "mean_return"]))
    return ScaleStudy(preset, comparisons, measured, ablation)


__all__ = ["PREFIX", "ScaleStudy", "decade_log_axis", "finished", "study"]

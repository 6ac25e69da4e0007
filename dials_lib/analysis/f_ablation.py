"""The AIP retraining frequency F (paper Figures 7 and 8, appendix D.2; notebook 06).

DIALS retrains its AIPs every F steps on fresh GS data. The paper compares F = 100K, 500K, 1M and 4M steps: traffic
at 49 agents, the warehouse at 4. `ablation(preset)` trains (or reads back) the preset's ablation runs
(`plans.ablation_configs`: the F values that retrain at different steps within the preset's run) and returns an
`FAblation` whose methods draw and tabulate them:

- `curves()`: return and AIP cross-entropy against wall-clock time, one curve per F (mean and SEM over seeds);
- `table()`: final return, runtime and the share of data collection and AIP training per F, beside the paper's;
- `differences()`: each F's final return minus the main F's, with a bootstrap interval over seeds, and the
  runtime ratio.

Runtimes are a run's share of its seed batch (`plans.runtime_frame`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from dials_lib import paper
from dials_lib.analysis import plans, report
from dials_lib.analysis.stats import bootstrap_ci
from dials_lib.paper import read_paper_table
from dials_lib.plots import save_figure, save_table
from dials_lib.presets import get_preset

PREFIX = "06"
"""Start of the names of the figures and tables saved here."""


def f_text(fraction: float) -> str:
    """'F=1,000,000': F in steps from its fraction of the paper's 4M steps."""
    return f"F={fraction * paper.TOTAL_STEPS:,.0f}"


def _steps_of(label: str) -> float:
    """The steps of an `f_text` label, to order labels by F."""
    return float(label[2:].replace(",", ""))


def curves_against_time(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean and SEM over seeds of `column` per F and evaluation, with the mean wall-clock minutes of each point."""
    grouped = frame.groupby(["F", "timestep"], sort=False)  # F in the frame's order: increasing
    out = grouped[column].agg(mean="mean", sem="sem").reset_index()
    out["minutes"] = grouped["wall_time_s"].mean().to_numpy() / 60
    return out


@dataclass
class FAblation:
    """The F ablation's records in both environments, and what notebook 06 shows of them."""

    envs: tuple[str, ...]
    """The environments, in the series' order."""
    metrics: pd.DataFrame
    """One row per evaluation of every ablation run, with an 'F' label column, sorted by env, F, seed, step."""
    runtime: pd.DataFrame
    """One row per run: its runtime breakdown, with an 'F' label column."""

    @property
    def finals(self) -> pd.DataFrame:
        """The last evaluation of every run."""
        return plans.final_evaluations(self.metrics)

    def curves(self) -> plt.Figure:
        """Return and AIP cross-entropy against wall-clock time per F, one column per environment (saved)."""
        order = sorted(self.metrics["F"].unique(), key=_steps_of)
        palette = dict(zip(order, sns.color_palette("viridis", 4), strict=False))
        fig, axes = plt.subplots(2, len(self.envs), figsize=(6 * len(self.envs), 8), squeeze=False)
        for col, env in enumerate(self.envs):
            part = self.metrics[self.metrics["env"] == env]
            for row, (column, label) in enumerate((("mean_return", "average return per agent"),
                                                   ("aip_ce", "AIP cross-entropy (nats)"))):
                ax = axes[row, col]
                report.plot_curves(ax, curves_against_time(part, column), hue="F", colors=palette, x="minutes")
                ax.set(title=f"{env}, {part['n_agents'].iloc[0]} agents", xlabel="wall-clock time (minutes)",
                       ylabel=label)
            axes[0, col].legend(fontsize=8, title="F")
        fig.tight_layout()
        save_figure(fig, f"{PREFIX}_f_ablation")
        return fig

    def table(self) -> pd.DataFrame:
        """Per environment and F: final return (mean, SEM, seeds), runtime and the data + AIP share of it, beside
        the paper's agents, final return and runtime (saved, returned)."""
        ours = self.finals.groupby(["env", "f_fraction"])["mean_return"].agg(["mean", "sem", "count"]).reset_index()
        times = self.runtime.groupby(["env", "f_fraction"])[["total_s", "data_collection_plus_aip_training_s"]] \
            .mean().reset_index()
        table = ours.merge(times, on=["env", "f_fraction"])
        table["F (paper)"] = table["f_fraction"].map(paper.f_label_of_fraction)
        table["runtime (min)"] = table["total_s"] / 60
        table["data + AIP share"] = table["data_collection_plus_aip_training_s"] / table["total_s"]
        paper_f = read_paper_table("f_ablation").rename(columns={
            "F": "F (paper)", "agents": "paper agents", "final_return": "paper final return",
            "runtime_h": "paper runtime (h)"})
        table = table.merge(paper_f, on=["env", "F (paper)"], how="left")
        table = table.rename(columns={"mean": "final return", "sem": "SEM", "count": "seeds"})
        table = table[["env", "F (paper)", "f_fraction", "seeds", "final return", "SEM", "runtime (min)",
                       "data + AIP share", "paper agents", "paper final return", "paper runtime (h)"]]
        save_table(table, f"{PREFIX}_f_ablation")
        return table

    def main_fraction(self, env: str) -> float:
        """The F every other F is compared with: the paper's middle F (1M) if the ablation ran it, else the
        largest F it ran."""
        ran = set(self.finals.loc[self.finals["env"] == env, "f_fraction"])
        middle = paper.f_fraction(paper.MIDDLE_F)
        return middle if middle in ran else max(ran)

    def differences(self) -> pd.DataFrame:
        """Each F's final return minus the main F's (bootstrap interval over seeds) and its runtime over the main
        F's, per environment (saved, returned)."""
        finals, runtime, rows = self.finals, self.runtime, []
        for env in self.envs:
            main = self.main_fraction(env)
            part = finals[finals["env"] == env]
            base = part.loc[part["f_fraction"] == main, "mean_return"].to_numpy()
            base_time = runtime.loc[(runtime["env"] == env) & (runtime["f_fraction"] == main), "total_s"]
            for fraction, group in part.groupby("f_fraction"):
                if fraction == main:
                    continue
                estimate, low, high = bootstrap_ci(group["mean_return"].to_numpy(), base)
                time = runtime.loc[(runtime["env"] == env) & (runtime["f_fraction"] == fraction), "total_s"]
                rows.append({"env": env, "F": f_text(fraction), "vs": f_text(main), "return difference": estimate,
                             "95% CI low": low, "95% CI high": high, "runtime ratio": time.mean() / base_time.mean()})
        table = pd.DataFrame(rows)
        save_table(table, f"{PREFIX}_f_differences")
        return table


def describe(preset: str, envs: Iterable[str]) -> str:
    """One line per environment: the ablation's agents, seeds, steps and F values (and the paper's labels)."""
    p, lines = get_preset(preset), []
    for env in envs:
        budget = p.budget(env)
        f_values = plans.ablation_f_values(preset, env)
        lines.append(f"{env}: {budget.ablation_size} agents, {budget.ablation_seeds} seeds, "
                     f"{budget.total_timesteps:,} steps; "
                     + ", ".join(f"F={f:,} (paper {paper.f_label_of_fraction(fr) or fr})"
                                 for fr, f in f_values.items()))
    return "\n".join(lines)


def ablation(preset: str, envs: Iterable[str] = ("traffic", "warehouse"), progress: bool = False) -> FAblation:
    """Train (or read back) the preset's F ablation in each environment."""
    envs = tuple(envs)
    frames, runtimes = [], []
    for env in envs:
        configs = plans.ablation_configs(preset, env)
        frames.append(plans.run_experiments(configs, progress=progress))
        runtimes.append(plans.runtime_frame(configs))
    metrics = pd.concat(frames, ignore_index=True).sort_values(["env", "f_fraction", "seed", "timestep"],
                                                                kind="stable")
    runtime = pd.concat(runtimes, ignore_index=True)
    metrics["F"] = metrics["f_fraction"].map(f_text)
    runtime["F"] = runtime["f_fraction"].map(f_text)
    return FAblation(envs, metrics, runtime)


__all__ = ["FAblation", "PREFIX", "ablation", "curves_against_time", "describe", "f_text"]

"""Tables and figures of the training experiments (notebooks 04-06, 09), always next to the paper's numbers.

Every function takes the long frames of `dials_lib.analysis.plans` (one row per evaluation of a run, or one row
per run) and returns either a tidy table or draws on a given matplotlib axis, so the caller decides the layout and
saves the figure itself. Statistics are the paper's: mean and standard error over seeds.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from dials_lib import paper
from dials_lib.analysis.stats import mean_and_sem
from dials_lib.learning.controllers import hand_coded_setup
from dials_lib.plots import SIMULATOR_COLOURS
from dials_lib.training.evaluation import evaluate_controller

METHOD_LABELS: dict[str, str] = {"gs": "GS", "dials": "DIALS", "untrained-dials": "untrained-DIALS"}
"""Display name of each simulator, as in the paper's legends."""
METHOD_COLORS: dict[str, str] = SIMULATOR_COLOURS
"""The paper's colours: GS orange, DIALS green, untrained-DIALS blue (`plots.SIMULATOR_COLOURS`)."""
METHOD_ORDER: tuple[str, ...] = ("GS", "DIALS", "untrained-DIALS")
"""Order of the methods in tables and bar charts."""


def with_method(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with a `method` column: the simulator's display name."""
    out = frame.copy()
    out["method"] = out["simulator"].map(METHOD_LABELS)
    return out


def f_label(steps: int, paper_steps: int) -> str:
    """'F=25.6K (paper 1M)': an F of this budget next to the paper's F it stands for."""
    def short(x: float) -> str:
        return f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}K"

    return f"F={short(steps)} (paper {short(paper_steps)})"


def learning_curves(metrics: pd.DataFrame, column: str = "mean_return", by: Iterable[str] = ("n_agents", "method")
                    ) -> pd.DataFrame:
    """Mean and standard error over seeds of `column` at every evaluation timestep, per group of `by`."""
    frame = metrics if "method" in metrics else with_method(metrics)
    return mean_and_sem(frame, [*by, "timestep"], column)


def plot_curves(ax: plt.Axes, curves: pd.DataFrame, hue: str = "method", colors: dict[str, str] | None = None,
                x: str = "timestep") -> None:
    """Mean lines with a shaded band of one standard error, one per value of `hue`."""
    names = list(dict.fromkeys(curves[hue]))
    names.sort(key=lambda name: METHOD_ORDER.index(name) if name in METHOD_ORDER else len(METHOD_ORDER))
    for name in names:
        group = curves[curves[hue] == name].sort_values(x)
        color = (colors or METHOD_COLORS).get(name)
        ax.plot(group[x], group["mean"], marker="o", ms=3, label=str(name), color=color)
        sem = group["sem"].fillna(0.0)
        ax.fill_between(group[x], group["mean"] - sem, group["mean"] + sem, alpha=0.25, color=color)


def steps_axis(ax: plt.Axes) -> None:
    """Label the x ticks of a timestep axis in thousands ('40k') so long runs stay readable."""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))


def plain_log_axis(ax: plt.Axes) -> None:
    """Log-scale y axis with plain numbers ('1.5', '2') on its major and minor ticks instead of powers of ten."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:.3g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)


def hand_coded_baseline(env: str, sizes: Iterable[int], episodes: int, seed: int) -> pd.DataFrame:
    """The hand-coded controller on the GS: average return and domain metrics per size (the paper's dashed line).
    Where the baseline runs inside the GS (sumo-traffic's actuated lights) the GS is built with its baseline options
    (`controllers.hand_coded_setup`)."""
    rows = []
    for n in sizes:
        controller, sim_options = hand_coded_setup(env)
        row = evaluate_controller(env, controller, n, episodes, seed, sim_options=sim_options)
        rows.append({"n_agents": n, "episodes": episodes, **{k: v for k, v in row.items() if k != "aip_ce"}})
    return pd.DataFrame(rows)


def final_comparison(finals: pd.DataFrame, env: str, column: str = "mean_return") -> pd.DataFrame:
    """Our final return (mean, SEM over seeds) and the first evaluation's, next to the paper's final return."""
    frame = with_method(finals)
    ours = mean_and_sem(frame, ["n_agents", "method"], column)
    ours = ours.rename(columns={"mean": "final (ours)", "sem": "SEM (ours)"})
    table = ours.merge(paper.final_returns(env), on=["n_agents", "method"], how="left")
    table["method"] = pd.Categorical(table["method"], METHOD_ORDER, ordered=True)
    table = table.sort_values(["n_agents", "method"]).rename(columns={"paper_return": "final (paper, 4M steps)"})
    return table[["n_agents", "method", "seeds", "final (ours)", "SEM (ours)", "final (paper, 4M steps)"]]


def start_returns(metrics: pd.DataFrame) -> pd.DataFrame:
    """The return before any training (timestep 0), mean over all runs of each size."""
    first = metrics[metrics["timestep"] == 0]
    return first.groupby("n_agents")["mean_return"].mean().rename("start").reset_index()


def plot_bars(ax: plt.Axes, table: pd.DataFrame, value: str, error: str | None = None, x: str = "n_agents",
              hue: str = "method", order: Iterable[str] = METHOD_ORDER, colors: dict[str, str] | None = None
              ) -> None:
    """Grouped bars of `value` (with `error` bars) per `x`, one colour per `hue` in `order`."""
    hues = [h for h in order if h in set(table[hue])]
    xs = sorted(table[x].unique())
    width = 0.8 / max(1, len(hues))
    for i, name in enumerate(hues):
        part = table[table[hue] == name].set_index(x).reindex(xs)
        positions = np.arange(len(xs)) + (i - (len(hues) - 1) / 2) * width
        yerr = part[error].fillna(0.0).to_numpy() if error else None
        ax.bar(positions, part[value].to_numpy(), width, yerr=yerr, capsize=3, label=name,
               color=(colors or METHOD_COLORS).get(name))
    ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs])


def with_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """`frame` with each of `columns`, those it lacks as NaN: a run read from a longer run has only its total, its
    breakdown and CPU time being the longer run's, so a table of such runs gets NaN there, not a KeyError."""
    return frame.reindex(columns=[*frame.columns, *(c for c in columns if c not in frame.columns)])


def runtime_summary(runtimes: pd.DataFrame) -> pd.DataFrame:
    """Mean runtime breakdown over seeds, in minutes, per size and method."""
    frame = with_method(runtimes)
    parts = {"agents_training_s": "agents training", "data_collection_plus_aip_training_s": "data + AIP training",
             "evaluation_s": "evaluation", "total_s": "total"}
    table = with_columns(frame, parts).groupby(["n_agents", "method"], observed=True)[list(parts)].mean() / 60
    table = table.rename(columns={k: f"{v} (min)" for k, v in parts.items()}).reset_index()
    table["method"] = pd.Categorical(table["method"], METHOD_ORDER, ordered=True)
    return table.sort_values(["n_agents", "method"]).reset_index(drop=True)


__all__ = [
    "METHOD_COLORS",
    "METHOD_LABELS",
    "METHOD_ORDER",
    "f_label",
    "final_comparison",
    "hand_coded_baseline",
    "learning_curves",
    "plain_log_axis",
    "plot_bars",
    "plot_curves",
    "runtime_summary",
    "start_returns",
    "steps_axis",
    "with_columns",
    "with_method",
]

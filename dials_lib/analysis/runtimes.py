"""Runtimes of the timed runs against the paper's Tables 1 and 2 (notebook 07), and the lookups notebook 08 shares.

`scaling` times short runs at each size and `projection` projects them to full budgets; here they become tables
next to the paper's numbers. Every function takes the frame of `scaling.measurements` (one row per timed run) or of
`projection.projections` (one row per size, budget, simulator and worker count) and returns a tidy table. Simulators
of a projection are labelled as in the paper's tables ('GS', 'DIALS F=1M', 'untrained-DIALS').
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dials_lib import paper
from dials_lib.hyperparameters import ENV_NAMES
from dials_lib.plots import SIMULATOR_COLOURS

HOUR = 3600.0
"""Seconds in an hour."""
RUN_LABELS: dict[tuple[str, int], str] = {("gs", 1): "GS", ("dials", 1): "DIALS, 1 worker",
                                          ("dials", 2): "DIALS, 2 workers",
                                          ("untrained-dials", 2): "untrained-DIALS, 2 workers"}
"""Display name of each timed run, by (simulator, worker processes)."""
PAPER_ORDER: list[str] = ["GS", *(f"DIALS F={label}" for label in paper.F_STEPS), "untrained-DIALS"]
"""The row order of the paper's Tables 1 and 2."""


def run_of(frame: pd.DataFrame, env: str, n_agents: int, simulator: str, workers: int) -> pd.Series:
    """The timed run of `simulator` on `workers` processes at one size."""
    rows = frame[(frame["env"] == env) & (frame["n_agents"] == n_agents) & (frame["simulator"] == simulator)
                 & (frame["workers"] == workers)]
    return rows.iloc[0]


def timed_runs_by_size(frame: pd.DataFrame, sizes: Iterable[int]
                       ) -> Iterator[tuple[str, int, pd.Series, pd.Series, pd.Series]]:
    """(env, size, GS run, DIALS on 1 worker, DIALS on 2 workers) for every environment and size, in order."""
    for env in ENV_NAMES:
        for n in sizes:
            yield (env, n, run_of(frame, env, n, "gs", 1), run_of(frame, env, n, "dials", 1),
                   run_of(frame, env, n, "dials", 2))


def worker_memory_fit(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per environment, a 2-worker DIALS worker's peak RSS fitted against its agents: (intercept, slope) in MiB."""
    two_workers = frame[(frame["simulator"] == "dials") & (frame["workers"] == 2)]
    fits = {}
    for env, runs in two_workers.groupby("env"):
        slope, intercept = np.polyfit(runs["agents_per_worker"], runs["max_worker_peak_rss_mib"], 1)
        fits[env] = (intercept, slope)
    return fits


def describe_fit(fits: dict[str, tuple[float, float]]) -> str:
    """The worker-memory fits as text, one line per environment."""
    return "\n".join(f"{env}: worker peak RSS = {intercept:.0f} MiB + {slope:.1f} MiB per agent of its group"
                     for env, (intercept, slope) in fits.items())


def in_paper_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by env, agents and the paper's simulator order."""
    key = table["simulator"].map(PAPER_ORDER.index)
    return table.assign(_key=key).sort_values(["env", "agents", "_key"]).drop(columns="_key").reset_index(drop=True)


def timed_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The timed runs: the runtime breakdown, throughput, core share and load of each."""
    return pd.DataFrame({
        "env": frame["env"], "agents": frame["n_agents"],
        "run": [RUN_LABELS[(s, w)] for s, w in zip(frame["simulator"], frame["workers"], strict=True)],
        "agents training s": frame["agents_training_s"], "data collection s": frame["data_collection_s"],
        "AIP training s": frame["aip_training_s"], "evaluation s": frame["evaluation_s"],
        "total s": frame["total_s"], "agent-steps/s": frame["agent_steps_per_s"],
        "worker core share": frame["worker_core_share"], "load": frame["load_avg"],
    })


def agents_training_speedup(frame: pd.DataFrame, sizes: Iterable[int], table: pd.DataFrame) -> pd.DataFrame:
    """Agents-training throughput of GS and DIALS at each size, and DIALS's speed-up over GS, ours and the paper's.

    `table`: the paper's runtimes (paper/runtimes.csv); its speed-up is GS hours over DIALS agents-training hours.
    """
    rows = []
    for env, n, gs, one, two in timed_runs_by_size(frame, sizes):
        rows.append({
            "env": env, "agents": n,
            "GS agent-steps/s": gs["agent_steps_per_s"], "DIALS 1 worker agent-steps/s": one["agent_steps_per_s"],
            "DIALS 2 workers agent-steps/s": two["agent_steps_per_s"],
            "2 workers over 1 (ours)": one["agents_training_s"] / two["agents_training_s"],
            "DIALS over GS, agents training (ours, 2 workers)": gs["agents_training_s"] / two["agents_training_s"],
            "DIALS over GS, agents training (paper, 128 CPUs)":
                paper.table_value(table, env, n, "GS", "agents_training_h")
                / paper.table_value(table, env, n, "untrained-DIALS", "agents_training_h"),
        })
    return pd.DataFrame(rows)


def runtimes_vs_paper(protocol: pd.DataFrame, table: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Hours of the paper's protocol extrapolated on 2 workers (agents training, influence, total) by the paper's."""
    ours = protocol[protocol["workers"] == 2].copy()
    ours["influence_s"] = ours["data_collection_s"] + ours["aip_training_s"]
    side = pd.DataFrame({
        "env": ours["env"], "agents": ours["n_agents"], "simulator": ours["simulator"],
        "retrainings": ours["retrainings"],
        "ours: agents training h": ours["agents_training_s"] / HOUR, "ours: influence h": ours["influence_s"] / HOUR,
        "ours: total h": ours["total_s"] / HOUR,
    })
    side = side.merge(table.rename(columns={"agents_training_h": "paper: agents training h",
                                            "influence_h": "paper: influence h", "total_h": "paper: total h"}),
                      on=["env", "agents", "simulator"], how="left")
    side.insert(3, "ours", f"extrapolated from {steps:,} timed steps, 2 workers")
    return side


def speedup_vs_paper(protocol: pd.DataFrame, table: pd.DataFrame, workers: tuple[int, ...] = (2, paper.CPUS)
                     ) -> pd.DataFrame:
    """GS total hours over each DIALS variant's, ours on 2 and projected on 128 workers, and the paper's."""
    rows = []
    for p in workers:
        totals = protocol[protocol["workers"] == p].set_index(["env", "n_agents", "simulator"])["total_s"]
        for (env, n, sim), total in totals.items():
            if sim != "GS":
                rows.append({"env": env, "agents": n, "simulator": sim, "workers": p,
                             "speed-up": totals[(env, n, "GS")] / total})
    speedup = pd.DataFrame(rows).pivot_table(index=["env", "agents", "simulator"], columns="workers",
                                             values="speed-up").reset_index()
    speedup.columns = ["env", "agents", "simulator", "ours, 2 workers", "ours, 128 workers (projected)"]
    speedup["paper, 128 CPUs"] = [
        paper.table_value(table, e, n, "GS", "total_h") / paper.table_value(table, e, n, s, "total_h")
        for e, n, s in zip(speedup["env"], speedup["agents"], speedup["simulator"], strict=True)]
    return in_paper_order(speedup)


def projected_wall_time(protocol: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Total hours of the paper's protocol on each worker count for GS, DIALS at the main F and untrained-DIALS."""
    wanted = [sim in {"GS", paper.main_dials_label(env), "untrained-DIALS"}
              for env, sim in zip(protocol["env"], protocol["simulator"], strict=True)]
    wall = protocol[wanted].pivot_table(index=["env", "n_agents", "simulator"], columns="workers",
                                        values="total_s") / HOUR
    wall.columns = [f"{p} worker{'s' if p > 1 else ''} h" for p in wall.columns]
    wall = wall.reset_index().rename(columns={"n_agents": "agents"})
    wall["paper (128 CPUs) h"] = [paper.table_value(table, e, n, s, "total_h")
                                  for e, n, s in zip(wall["env"], wall["agents"], wall["simulator"], strict=True)]
    return in_paper_order(wall)


def preset_wall_time(projected: pd.DataFrame, preset: str) -> pd.DataFrame:
    """Minutes of the preset's own training budget on each worker count, per size and simulator."""
    own = projected[projected["budget"] == preset].pivot_table(index=["env", "n_agents", "simulator"],
                                                               columns="workers", values="total_s") / 60
    own.columns = [f"{p} worker{'s' if p > 1 else ''} min" for p in own.columns]
    return own.reset_index().rename(columns={"n_agents": "agents"})


def plot_runtimes(wall: pd.DataFrame, steps: int) -> plt.Figure:
    """Hours for 4M steps per agent (log scale), ours on 2 workers (solid) by the paper's (hatched), per size.

    `wall`: `projected_wall_time`; GS, DIALS at each environment's main F and untrained-DIALS.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    kinds = [("GS", "GS"), ("DIALS", None), ("untrained-DIALS", "untrained-DIALS")]  # None: the env's main F
    sizes = sorted(set(wall["agents"]))
    width = 0.13
    for ax, env in zip(axes, ENV_NAMES, strict=True):
        x = np.arange(len(sizes))
        for k, (colour_key, label) in enumerate(kinds):
            sim = label or paper.main_dials_label(env)
            sel = wall[(wall["env"] == env) & (wall["simulator"] == sim)].set_index("agents").reindex(sizes)
            colour = SIMULATOR_COLOURS[colour_key]
            ax.bar(x + (2 * k - 2.5) * width, sel["2 workers h"], width, color=colour,
                   label=f"{colour_key}, ours (2 workers)")
            ax.bar(x + (2 * k - 1.5) * width, sel["paper (128 CPUs) h"], width, color=colour, alpha=0.35,
                   hatch="//", edgecolor=colour, label=f"{colour_key}, paper (128 CPUs)")
        ax.set(xticks=x, xticklabels=[str(n) for n in sizes], xlabel="agents", yscale="log",
               title=f"{env} (DIALS: F = {paper.MAIN_F[env]})")
    axes[0].set_ylabel("hours for 4M steps per agent")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(f"Training time: ours extrapolated from {steps:,} timed steps per agent, vs the paper")
    fig.tight_layout()
    return fig


def projection_summary(check: pd.DataFrame) -> str:
    """How close the projection came to the 2-worker timed runs: predicted over measured total and agents-training
    time (`projection.projection_check`), range and median."""
    two = check[check["workers"] == 2]
    return (f"2-worker runs: predicted/measured total time {two['total_s ratio'].min():.2f} to "
            f"{two['total_s ratio'].max():.2f} (median {two['total_s ratio'].median():.2f}); agents training "
            f"{two['agents_training_s ratio'].min():.2f} to {two['agents_training_s ratio'].max():.2f}")


def conclusion(frame: pd.DataFrame, training_speedup: pd.DataFrame, wall: pd.DataFrame, check: pd.DataFrame,
               largest: int, n_cores: int) -> str:
    """Notebook 07's reading, as markdown: per environment at the `largest` size, one process's speed on the GS and
    on DIALS' local simulators against the paper's, and the extrapolated hours for 4M steps; then how far the
    timed 2-worker runs were from the projection's one core per worker (`frame`: the timed runs)."""
    lines = []
    for env in ENV_NAMES:
        ts = training_speedup[(training_speedup["env"] == env) & (training_speedup["agents"] == largest)].iloc[0]
        per_process = ts["GS agent-steps/s"] / ts["DIALS 1 worker agent-steps/s"]
        dials = paper.main_dials_label(env)
        w = wall[(wall["env"] == env) & (wall["agents"] == largest)].set_index("simulator")
        lines.append(
            f"- **{env}, {largest} agents.** One process trains {ts['GS agent-steps/s']:,.0f} agent-steps/s on our "
            f"GS and {ts['DIALS 1 worker agent-steps/s']:,.0f} on DIALS' local simulators: our vectorised GS is "
            + (f"{per_process:.1f}x faster per process than the IALS (which adds an AIP forward pass per step), "
               if per_process >= 1 else f"{1 / per_process:.1f}x slower per process than the IALS, ")
            + f"whereas the paper's GS ({paper.GS_SIMULATOR[env]}, one process for the whole network) was "
            f"{ts['DIALS over GS, agents training (paper, 128 CPUs)']:.0f}x slower than its DIALS agents. "
            f"For 4M steps, extrapolated: GS {w.loc['GS', '2 workers h']:.1f} h, {dials} "
            f"{w.loc[dials, '2 workers h']:.1f} h on 2 workers and {w.loc[dials, '128 workers h']:.1f} h projected "
            f"on 128 (the paper: GS {w.loc['GS', 'paper (128 CPUs) h']:.1f} h, DIALS "
            f"{w.loc[dials, 'paper (128 CPUs) h']:.1f} h)."
        )
    two = check[check["workers"] == 2]
    share, load = two["worker_core_share"].median(), frame["load_avg"].median()
    lines.append(
        f"- **The projection** assumes a core per worker. The 2-worker runs got a median {share:.2f} of a core per "
        f"worker (median load average {load:.1f} on {n_cores} cores) and took "
        f"{1 / two['total_s ratio'].median():.2f}x the projected time"
        + (": the machine was shared with other jobs, so the 2-worker numbers understate what 2 free cores do."
           if share < 0.8 else ".")
    )
    return "\n".join(lines)


def preset_hours(preset_runs: pd.DataFrame, preset: str, workers: int) -> str:
    """What a preset's training runs (`projection.training_runs_runtime`) would take here, one run after another on
    `workers` processes, as markdown (an upper bound: an experiment stacks each run's seeds, which is faster)."""
    known = preset_runs[preset_runs["measured"]]
    missing = sorted(set(preset_runs.loc[~preset_runs["measured"], "n_agents"]))
    by_env = known.groupby("env")["total_s"].sum() / HOUR
    hours = known["total_s"].sum() / HOUR
    text = (f"**{len(known)} of the `{preset}` preset's {len(preset_runs)} training runs** (the sizes measured here) "
            f"would take about **{hours:,.0f} hours = {hours / 24:,.1f} days** on {workers} cores, one run after "
            "another (" + ", ".join(f"{env} {h:,.0f} h" for env, h in by_env.items()) + "). ")
    gs_share = known.loc[known["simulator"] == "gs", "total_s"].sum() / known["total_s"].sum()
    text += f"GS runs are {gs_share:.0%} of that time. "
    if missing:
        text += f"Runs at {', '.join(map(str, missing))} agents are not included: this preset did not time that size."
    return text


__all__ = [
    "HOUR",
    "PAPER_ORDER",
    "RUN_LABELS",
    "agents_training_speedup",
    "conclusion",
    "describe_fit",
    "in_paper_order",
    "plot_runtimes",
    "preset_hours",
    "preset_wall_time",
    "projected_wall_time",
    "projection_summary",
    "run_of",
    "runtimes_vs_paper",
    "speedup_vs_paper",
    "timed_runs",
    "worker_memory_fit",
]

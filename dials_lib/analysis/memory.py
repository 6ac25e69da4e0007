"""Peak memory of the timed runs against the paper's Table 3 (notebook 08).

The paper ran DIALS with one process per agent (about 200 MB each, so 21-23 GB at 100 agents); we run groups of
agents on 2 worker processes. `memory_table` puts each size's peaks (RSS and PSS, per process and all processes
together) next to the paper's, with two estimates of what one process per agent would take here: the largest
worker's peak times N, and a worker's peak fitted against its agents (`runtimes.worker_memory_fit`) read at one
agent, times N.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import pandas as pd

from dials_lib import paper
from dials_lib.analysis.runtimes import timed_runs_by_size, worker_memory_fit
from dials_lib.hyperparameters import ENV_NAMES
from dials_lib.plots import SIMULATOR_COLOURS


def memory_table(frame: pd.DataFrame, sizes: Iterable[int], table: pd.DataFrame) -> pd.DataFrame:
    """Peak memory (MiB) of GS and of DIALS on 2 workers per size, next to the paper's MB (paper/memory.csv)."""
    one_agent_mib = {env: intercept + slope for env, (intercept, slope) in worker_memory_fit(frame).items()}
    rows = []
    for env, n, gs, one, two in timed_runs_by_size(frame, sizes):
        rows.append({
            "env": env, "agents": n,
            "GS RSS": gs["main_peak_rss_mib"], "GS PSS": gs["main_peak_pss_mib"],
            "paper GS MB": paper.table_value(table, env, n, "GS", "total_mb"),
            "DIALS main RSS": two["main_peak_rss_mib"], "DIALS worker RSS": two["max_worker_peak_rss_mib"],
            "DIALS worker PSS": two["max_worker_peak_pss_mib"],
            "paper DIALS per process MB": paper.table_value(table, env, n, "DIALS", "per_process_mb"),
            "DIALS total RSS": two["simultaneous_peak_rss_mib"],
            "DIALS total PSS": two["simultaneous_peak_pss_mib"],
            "DIALS sum of peaks RSS": two["total_peak_rss_mib"],
            "DIALS sum of peaks PSS": two["total_peak_pss_mib"],
            "DIALS 1 worker total RSS": one["total_peak_rss_mib"],
            "one process per agent RSS (worker peak x N)": two["max_worker_peak_rss_mib"] * n,
            "one process per agent RSS (fit x N)": one_agent_mib[env] * n,
            "paper DIALS total MB": paper.table_value(table, env, n, "DIALS", "total_mb"),
        })
    return pd.DataFrame(rows)


def largest_size_summary(memory: pd.DataFrame) -> str:
    """At the largest size of each environment: DIALS's total against the paper's and one process per agent."""
    lines = []
    for env in ENV_NAMES:
        row = memory[memory["env"] == env].iloc[-1]
        lines.append(
            f"{env}, {row['agents']} agents: DIALS on 2 workers peaks at {row['DIALS total PSS'] / 1024:.2f} GiB "
            f"(PSS; {row['DIALS total RSS'] / 1024:.2f} GiB RSS) in total (sum of the processes' own peaks: "
            f"{row['DIALS sum of peaks PSS'] / 1024:.2f} / {row['DIALS sum of peaks RSS'] / 1024:.2f} GiB), "
            f"the paper's one process per agent at {row['paper DIALS total MB'] / 1000:.1f} GB; one process per "
            f"agent would take about {row['one process per agent RSS (fit x N)'] / 1024:.1f} GiB (fit) to "
            f"{row['one process per agent RSS (worker peak x N)'] / 1024:.1f} GiB (worker peak; RSS). "
            f"GS: {row['GS RSS']:.0f} MiB (paper {row['paper GS MB']:.0f} MB)")
    return "\n".join(lines)


def plot_memory(memory: pd.DataFrame, table: pd.DataFrame) -> plt.Figure:
    """Total peak memory against agents (log-log), ours and the paper's, one panel per environment."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    gs_c, dials_c = SIMULATOR_COLOURS["GS"], SIMULATOR_COLOURS["DIALS"]
    for ax, env in zip(axes, ENV_NAMES, strict=True):
        m = memory[memory["env"] == env]
        ax.plot(m["agents"], m["GS RSS"], "o-", color=gs_c, label="GS, ours (RSS)")
        ax.plot(m["agents"], m["DIALS total PSS"], "o-", color=dials_c, label="DIALS 2 workers, ours (PSS)")
        ax.plot(m["agents"], m["DIALS total RSS"], "o--", color=dials_c, label="DIALS 2 workers, ours (RSS)")
        ax.plot(m["agents"], m["one process per agent RSS (worker peak x N)"], "^:", color=dials_c,
                label="one process per agent, ours (worker peak x N, RSS)")
        ax.plot(m["agents"], m["one process per agent RSS (fit x N)"], "v:", color="tab:olive",
                label="one process per agent, ours (fit x N, RSS)")
        p = table[table["env"] == env]
        for sim, colour in (("GS", gs_c), ("DIALS", dials_c)):
            sel = p[p["simulator"] == sim]
            ax.plot(sel["agents"], sel["total_mb"], "s-", color=colour, alpha=0.4, lw=3, label=f"{sim}, paper")
        ax.set(xscale="log", yscale="log", xlabel="agents", title=env)
        ax.set_xticks(sorted(set(p["agents"]) | set(m["agents"])), labels=None)
        ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    axes[0].set_ylabel("total peak memory (MiB; paper: MB)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle("Peak memory: ours (2 workers = 2 processes) vs the paper (one process per agent)")
    fig.tight_layout()
    return fig


__all__ = ["largest_size_summary", "memory_table", "plot_memory"]

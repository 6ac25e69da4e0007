"""Environment statistics of notebook 02, generic over the registry: returns and influence-source statistics.

A controller here is 'random' (uniform actions) or 'hand-coded' (the registry record's
`hand_coded(local_states)`, or the GS's own baseline where it has one: `controllers.hand_coded_setup`), built by
`dials_lib.learning.controllers`. Returns are
undiscounted per-agent episode returns on the GS, the paper's metric; `with_paper_returns` puts the paper's values
for the same controllers next to them (its untrained policy stands for random control) and `plot_returns_by_size`
draws both. Influence statistics describe what an AIP has to learn: how often each source is non-zero, how much
that differs between agents (`rate_map` lays the per-agent rate out on the grid of agents), how persistent a
source is from one step to the next, and how the sources co-vary.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dials_lib.envs import close_simulator, get_env, make_global
from dials_lib.hyperparameters import TRAINABLE_ENVS
from dials_lib.paper import read_paper_table
from dials_lib.validation import check_choice

CONTROLLERS = ("random", "hand-coded")
"""The controllers compared, in the order of every table and plot here."""
PAPER_COLUMNS: dict[str, str] = {"hand-coded": "hand_coded", "random": "random_policy_start"}
"""Column of the paper's results table (paper/results.csv) standing for each controller: SUMO's actuated lights or
the oldest-item-first robots, and the untrained policy at the start of training, which is close to random."""
CONTROLLER_COLOURS: dict[str, str] = {"random": "tab:gray", "hand-coded": "tab:red"}
"""Colour of each controller in `plot_returns_by_size`."""


def run_episodes(env: str, n_agents: int, controller: str, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Run `episodes` GS episodes; returns per-step rewards [E, H, n] and influence sources [E, H, n, S]. The
    hand-coded controller of an environment whose baseline runs inside its GS (sumo-traffic's actuated lights) is
    that GS, built with its baseline options (`controllers.hand_coded_setup`)."""
    # controllers imports the envs package
    from dials_lib.learning.controllers import hand_coded_setup, make_controller, rollout

    check_choice("env", env, TRAINABLE_ENVS)
    check_choice("controller", controller, CONTROLLERS)
    if controller == "hand-coded":
        chosen, sim_options = hand_coded_setup(env)
    else:
        chosen, sim_options = make_controller(controller, env, n_agents, seed), {}
    sim = make_global(env, n_agents=n_agents, seed=seed, **sim_options)
    try:
        return rollout(sim, chosen, episodes)
    finally:
        close_simulator(sim)


def episode_returns(env: str, n_agents: int, controller: str, episodes: int, seed: int = 0) -> np.ndarray:
    """Undiscounted return of every agent in every episode, float64 [episodes, n_agents]."""
    return run_episodes(env, n_agents, controller, episodes, seed)["rewards"].sum(axis=1, dtype=np.float64)


def returns_table(env: str, sizes: Sequence[int], episodes: int, seed: int = 0,
                  controllers: Sequence[str] = CONTROLLERS) -> pd.DataFrame:
    """Average return per agent (mean over agents and episodes) with its standard error over episodes."""
    rows = []
    for n_agents in sizes:
        for controller in controllers:
            per_episode = episode_returns(env, n_agents, controller, episodes, seed).mean(axis=1)
            stderr = per_episode.std(ddof=1) / np.sqrt(episodes) if episodes > 1 else float("nan")
            rows.append({"env": env, "agents": n_agents, "controller": controller,
                         "average return": per_episode.mean(), "stderr": stderr, "episodes": episodes})
    return pd.DataFrame(rows)


def paper_returns(paper_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's return per agent of each controller, one row per environment, size and controller.

    Columns env, agents, controller, paper; read from `paper_results` (the layout of paper/results.csv, read from
    there when None) through `PAPER_COLUMNS`: hand-coded rows first, then random ones.
    """
    table = read_paper_table("results") if paper_results is None else paper_results
    return pd.concat([pd.DataFrame({"env": table["env"], "agents": table["agents"], "controller": controller,
                                    "paper": table[column]})
                      for controller, column in PAPER_COLUMNS.items()], ignore_index=True)


def with_paper_returns(returns: pd.DataFrame, paper_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """`returns` (the frame of `returns_table`) with a column `paper`: the paper's return of the same environment,
    size and controller (`paper_returns`), NaN where the paper has none. Rows and their order are those of
    `returns`."""
    return returns.merge(paper_returns(paper_results), on=["env", "agents", "controller"], how="left")


def plot_returns_by_size(returns: pd.DataFrame, xlabel: str, title: str, y_from_zero: bool = False) -> plt.Figure:
    """Average return per agent against the number of agents (log scale), one colour per controller: ours with the
    standard error as error bars (none for a single episode), the paper's dashed.

    `returns`: the frame of `with_paper_returns`; `y_from_zero` starts the y axis at 0.
    """
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for controller, colour in CONTROLLER_COLOURS.items():
        rows = returns[returns["controller"] == controller]
        ax.errorbar(rows["agents"], rows["average return"], yerr=rows["stderr"].fillna(0), marker="o",
                    color=colour, label=f"{controller} (ours)", capsize=3)
        ax.plot(rows["agents"], rows["paper"], ls="--", marker="x", color=colour, label=f"{controller} (paper)")
    sizes = sorted(int(n) for n in set(returns["agents"]))
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average return per agent")
    if y_from_zero:
        ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    return fig


def source_names(env: str) -> list[str]:
    """Readable names of an environment's influence sources, in the order of `influence_sources()`."""
    return list(get_env(env).source_names)


def idle_class(env: str) -> int:
    """The class of a source meaning "nothing comes in" (0 for traffic, "elsewhere" for the warehouse)."""
    return get_env(env).idle_source_class


def influence_statistics(sources: np.ndarray, names: Sequence[str] | None = None, idle: int = 0) -> pd.DataFrame:
    """One row per influence source of `sources` [episodes, horizon, n_agents, n_sources] (class indices).

    rate: P(u != idle) over agents, steps and episodes (`idle`: see `idle_class`); rate min/max over agents:
    how much regions differ;
    P(same as t-1) against its chance level sum_c p_c^2 (a persistent source is easier to predict);
    lag-1 corr: correlation of the non-zero indicator with itself one step earlier (NaN if constant).
    """
    episodes, horizon, n_agents, n_sources = sources.shape
    names = list(names) if names is not None else [f"u{i}" for i in range(n_sources)]
    rows = []
    for s in range(n_sources):
        u = sources[..., s]
        active = (u != idle).astype(np.float64)
        per_agent = active.mean(axis=(0, 1))
        class_p = np.bincount(u.ravel()) / u.size
        now, before = active[:, 1:].ravel(), active[:, :-1].ravel()
        varies = now.std() > 0 and before.std() > 0
        rows.append({
            "source": names[s],
            "rate": active.mean(),
            "rate min over agents": per_agent.min(),
            "rate max over agents": per_agent.max(),
            "P(same as t-1)": float(np.mean(u[:, 1:] == u[:, :-1])),
            "chance of same": float(np.sum(class_p ** 2)),
            "lag-1 corr": float(np.corrcoef(now, before)[0, 1]) if varies else float("nan"),
        })
    return pd.DataFrame(rows)


def influence_correlation(sources: np.ndarray, idle: int = 0) -> np.ndarray:
    """Correlation matrix [n_sources, n_sources] of the sources' u != idle indicators within a region and step."""
    active = (sources != idle).reshape(-1, sources.shape[-1]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(active, rowvar=False)


def influence_by_controller(env: str, n_agents: int, episodes: int, seed: int = 0,
                            controllers: Sequence[str] = CONTROLLERS) -> dict[str, np.ndarray]:
    """The influence sources [episodes, horizon, n_agents, n_sources] of `episodes` GS episodes under each
    controller, by controller."""
    return {controller: run_episodes(env, n_agents, controller, episodes, seed)["influence_sources"]
            for controller in controllers}


def influence_table(env: str, influence: dict[str, np.ndarray]) -> pd.DataFrame:
    """`influence_statistics` of each controller's sources (`influence_by_controller`), one block of rows per
    controller, with the columns controller and agents added."""
    return pd.concat([influence_statistics(sources, source_names(env), idle=idle_class(env))
                      .assign(controller=controller, agents=sources.shape[2])
                      for controller, sources in influence.items()], ignore_index=True)


def rate_map(sources: np.ndarray, idle: int = 0, columns: slice = slice(None)) -> np.ndarray:
    """How often each agent's sources among `columns` are not `idle`, on the square grid of agents [side, side]
    (row-major agent ids, as the simulators number them); `sources` [episodes, horizon, n_agents, n_sources]."""
    n_agents = sources.shape[2]
    side = int(np.sqrt(n_agents))
    if side * side != n_agents:
        raise ValueError(f"sources must hold a square number of agents (axis 2); got {n_agents}")
    return (sources[..., columns] != idle).mean(axis=(0, 1, 3)).reshape(side, side)


def draw_rate_map(ax: plt.Axes, rates: np.ndarray, title: str, vmin: float | None = None) -> None:
    """Draw a `rate_map` on `ax` with a colour bar, without ticks or grid."""
    image = ax.imshow(rates, cmap="viridis", vmin=vmin)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


def draw_correlation(ax: plt.Axes, correlation: np.ndarray, names: Sequence[str]) -> None:
    """Draw an `influence_correlation` matrix on `ax` (blue negative, red positive, clipped at +-0.5), sources
    named on both axes, with a colour bar."""
    image = ax.imshow(correlation, cmap="RdBu_r", vmin=-0.5, vmax=0.5)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.grid(False)
    ax.set_title("correlation between sources")
    ax.figure.colorbar(image, ax=ax, fraction=0.046)

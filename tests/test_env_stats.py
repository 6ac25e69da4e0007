"""Notebook 02's tables and figures from `dials_lib.analysis.env_stats`, on small synthetic inputs: the paper's
returns next to ours, the returns plot, the influence tables by controller and the per-agent rate maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from dials_lib.analysis import env_stats


def synthetic_paper_results() -> pd.DataFrame:
    """A results table in the layout of paper/results.csv, two environments, with made-up numbers."""
    return pd.DataFrame({"env": ["traffic", "traffic", "warehouse"], "agents": [4, 25, 4],
                         "GS": [1.0, 2.0, 3.0], "hand_coded": [10.0, 11.0, 12.0],
                         "random_policy_start": [5.0, 6.0, 7.0]})


def synthetic_returns(env: str = "traffic") -> pd.DataFrame:
    """Our returns in the layout of `returns_table`: sizes 4 and 9 (the paper has no 9), both controllers."""
    return pd.DataFrame({"env": env, "agents": [4, 4, 9, 9], "controller": ["random", "hand-coded"] * 2,
                         "average return": [4.5, 10.5, 4.0, 9.0], "stderr": [0.1, 0.2, np.nan, 0.3],
                         "episodes": 2})


def test_paper_returns_lists_each_controller_of_each_row() -> None:
    """One row per table row and controller, hand-coded first, from the controller's column of the table."""
    table = env_stats.paper_returns(synthetic_paper_results())
    assert list(table.columns) == ["env", "agents", "controller", "paper"]
    assert list(table["controller"]) == ["hand-coded"] * 3 + ["random"] * 3
    assert list(table["paper"]) == [10.0, 11.0, 12.0, 5.0, 6.0, 7.0]
    assert list(table["env"]) == ["traffic", "traffic", "warehouse"] * 2


def test_our_returns_get_the_paper_value_of_the_same_environment_size_and_controller() -> None:
    """Rows and order of our table are kept; the paper's value joins on env, size and controller, NaN where the
    paper has no such size."""
    returns = synthetic_returns()
    merged = env_stats.with_paper_returns(returns, synthetic_paper_results())
    pd.testing.assert_frame_equal(merged.drop(columns="paper"), returns)
    assert merged["paper"].tolist()[:2] == [5.0, 10.0]
    assert merged["paper"].iloc[2:].isna().all()
    warehouse = env_stats.with_paper_returns(synthetic_returns("warehouse"), synthetic_paper_results())
    assert warehouse["paper"].tolist()[:2] == [7.0, 12.0]  # not traffic's 4-agent values


def test_the_committed_paper_table_gives_traffic_4_agents() -> None:
    """Read from paper/results.csv: SUMO's actuated lights and the untrained policy of the 4-intersection grid."""
    merged = env_stats.with_paper_returns(synthetic_returns())
    assert merged["paper"].tolist()[:2] == [145.0, 176.4]


def test_returns_plot_draws_ours_with_error_bars_and_the_papers_dashed() -> None:
    """Per controller: our mean with its standard error (0 for a single episode) and the paper's line; every size
    a tick; the y axis from 0 on request."""
    returns = env_stats.with_paper_returns(synthetic_returns(), synthetic_paper_results())
    fig = env_stats.plot_returns_by_size(returns, xlabel="agents", title="returns", y_from_zero=True)
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "9"]
        assert ax.get_xscale() == "log" and ax.get_ylim()[0] == 0
        assert (ax.get_xlabel(), ax.get_title()) == ("agents", "returns")
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
            "hand-coded (ours)", "hand-coded (paper)", "random (ours)", "random (paper)"]
        paper_lines = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert [list(line.get_ydata()[:1]) for line in paper_lines] == [[5.0], [10.0]]
        _, _, (bar_lines,) = ax.containers[0].lines  # the random controller's: line, caps, bars
        heights = [segment[1, 1] - segment[0, 1] for segment in bar_lines.get_segments()]
        assert heights == pytest.approx([0.2, 0.0])  # 2 standard errors at 4 agents; none for the NaN at 9
        unbounded = env_stats.plot_returns_by_size(returns, xlabel="agents", title="returns")
        assert unbounded.axes[0].get_ylim()[0] > 0
        plt.close(unbounded)
    finally:
        plt.close(fig)


def test_rate_map_lays_each_agents_rate_out_on_the_grid() -> None:
    """Agent i's share of non-idle sources among the chosen columns, at row i // side, column i % side."""
    sources = np.zeros((2, 3, 4, 2), dtype=np.int64)  # 2 episodes, 3 steps, 4 agents, 2 sources
    sources[0, :, 1, 0] = 2  # agent 1: source 0 active in every step of episode 0
    sources[:, 0, 3, 1] = 1  # agent 3: source 1 active at the first step of both episodes
    np.testing.assert_allclose(env_stats.rate_map(sources), [[0.0, 0.25], [0.0, 2 / 12]])
    np.testing.assert_allclose(env_stats.rate_map(sources, columns=slice(0, 1)), [[0.0, 0.5], [0.0, 0.0]])
    # with 2 as the idle class, agent 1's source 0 is idle in episode 0 and every other source is active
    np.testing.assert_allclose(env_stats.rate_map(sources, idle=2, columns=slice(0, 1)), [[1.0, 0.5], [1.0, 1.0]])
    with pytest.raises(ValueError, match="sources must hold a square number of agents.*got 3"):
        env_stats.rate_map(sources[:, :, :3])


def test_influence_table_has_one_block_per_controller() -> None:
    """The statistics of each controller's sources, in the controllers' order, labelled with controller and size;
    the warehouse's idle class is the one that counts as silent."""
    rng = np.random.default_rng(0)
    idle = env_stats.idle_class("warehouse")
    silent = np.full((2, 5, 4, 4), idle)
    busy = rng.integers(0, idle + 1, size=(2, 5, 4, 4))
    table = env_stats.influence_table("warehouse", {"random": busy, "hand-coded": silent})
    assert list(table["controller"]) == ["random"] * 4 + ["hand-coded"] * 4
    assert (table["agents"] == 4).all()
    assert list(table["source"].iloc[:4]) == env_stats.source_names("warehouse")
    np.testing.assert_allclose(table["rate"].iloc[:4], (busy != idle).mean(axis=(0, 1, 2)))
    assert (table["rate"].iloc[4:] == 0).all()


def test_influence_by_controller_runs_the_episodes_of_each_controller() -> None:
    """The sources of `run_episodes` with the same arguments, for each controller asked for."""
    influence = env_stats.influence_by_controller("traffic", 4, episodes=1, seed=3)
    assert list(influence) == ["random", "hand-coded"]
    for controller, sources in influence.items():
        np.testing.assert_array_equal(
            sources, env_stats.run_episodes("traffic", 4, controller, 1, seed=3)["influence_sources"])
    assert not np.array_equal(influence["random"], influence["hand-coded"])


def test_rate_map_and_correlation_drawings_show_their_values() -> None:
    """The image holds the values drawn, the correlation's colours are clipped at +-0.5 and its sources named,
    and each panel gets a colour bar."""
    fig, (left, right) = plt.subplots(1, 2)
    try:
        rates = np.array([[0.1, 0.2], [0.3, 0.4]])
        env_stats.draw_rate_map(left, rates, "rates", vmin=0)
        np.testing.assert_array_equal(left.images[0].get_array(), rates)
        assert left.images[0].get_clim() == (0, 0.4) and left.get_title() == "rates"
        correlation = np.array([[1.0, -0.2], [-0.2, 1.0]])
        env_stats.draw_correlation(right, correlation, ["a", "b"])
        assert right.images[0].get_clim() == (-0.5, 0.5)
        assert [t.get_text() for t in right.get_yticklabels()] == ["a", "b"]
        assert len(fig.axes) == 4  # two panels and their colour bars
    finally:
        plt.close(fig)

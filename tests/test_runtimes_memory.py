"""Notebooks 07 and 08's tables on real timed runs (a smoke measurement file kept in tests/data): throughput and
speed-ups, projections against the paper's Tables 1-2, the written conclusion, and peak memory against Table 3;
and the runtime table of notebooks 04 and 05 beside the paper's hours."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dials_lib import paper
from dials_lib.analysis import comparison, projection, runtimes
from dials_lib.analysis.memory import largest_size_summary, memory_table
from dials_lib.paper import read_paper_table

TIMED = Path(__file__).parent / "data" / "timed_runs_smoke.json"
SIZES = (4, 25)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The timed runs of a smoke measurement (16 runs: 2 envs x 2 sizes x GS, DIALS on 1 and 2 workers, ...)."""
    return pd.DataFrame(json.loads(TIMED.read_text())["rows"])


@pytest.fixture(scope="module")
def protocol(frame: pd.DataFrame) -> pd.DataFrame:
    projected = projection.projections(frame, "smoke")
    return projected[projected["budget"] == "paper protocol"]


def test_timed_runs_keep_every_run_and_its_breakdown(frame):
    table = runtimes.timed_runs(frame)
    assert len(table) == len(frame) == 16
    assert (table["total s"] >= table["agents training s"]).all()
    assert set(table["run"]) <= set(runtimes.RUN_LABELS.values())


def test_agents_training_speedup_is_ours_and_the_papers(frame):
    table = runtimes.agents_training_speedup(frame, SIZES, read_paper_table("runtimes"))
    assert list(zip(table["env"], table["agents"], strict=True)) == [(e, n) for e in ("traffic", "warehouse")
                                                                     for n in SIZES]
    row = table[(table["env"] == "traffic") & (table["agents"] == 25)].iloc[0]
    gs = runtimes.run_of(frame, "traffic", 25, "gs", 1)
    assert row["GS agent-steps/s"] == gs["agent_steps_per_s"]
    assert row["DIALS over GS, agents training (paper, 128 CPUs)"] == pytest.approx(
        paper.table_value(read_paper_table("runtimes"), "traffic", 25, "GS", "agents_training_h")
        / paper.table_value(read_paper_table("runtimes"), "traffic", 25, "untrained-DIALS", "agents_training_h"))


def test_projected_wall_time_falls_with_workers_for_dials_and_not_for_gs(protocol):
    wall = runtimes.projected_wall_time(protocol, read_paper_table("runtimes"))
    gs = wall[wall["simulator"] == "GS"]
    assert (gs["1 worker h"] == gs["128 workers h"]).all()  # GS is one process whatever the workers
    dials = wall[wall["simulator"] == paper.main_dials_label("traffic")]
    assert (dials["1 worker h"] > dials["2 workers h"]).all()
    assert (dials["2 workers h"] >= dials["128 workers h"]).all()
    assert wall["paper (128 CPUs) h"].notna().all()


def test_the_conclusion_reads_its_numbers_from_the_tables(frame, protocol):
    table = read_paper_table("runtimes")
    training_speedup = runtimes.agents_training_speedup(frame, SIZES, table)
    wall = runtimes.projected_wall_time(protocol, table)
    check = projection.projection_check(frame)
    text = runtimes.conclusion(frame, training_speedup, wall, check, largest=25, n_cores=2)
    assert text.count("- **") == 3 and "**traffic, 25 agents.**" in text and "**warehouse, 25 agents.**" in text
    gs_hours = wall[(wall["env"] == "warehouse") & (wall["agents"] == 25) & (wall["simulator"] == "GS")]
    assert f"GS {gs_hours['2 workers h'].iloc[0]:.1f} h" in text
    summary = runtimes.projection_summary(check)
    two = check[check["workers"] == 2]["total_s ratio"]
    assert f"median {two.median():.2f}" in summary and f"{two.min():.2f} to {two.max():.2f}" in summary


def test_memory_table_beside_table_3(frame):
    table = memory_table(frame, SIZES, read_paper_table("memory"))
    assert list(table["agents"]) == [4, 25, 4, 25]
    row = table.iloc[1]
    worker = runtimes.run_of(frame, "traffic", 25, "dials", 2)["max_worker_peak_rss_mib"]
    assert row["one process per agent RSS (worker peak x N)"] == worker * 25
    assert row["paper GS MB"] == 392.7 and row["paper DIALS total MB"] == 5525.0
    assert "traffic, 25 agents" in largest_size_summary(table)


def test_the_comparison_runtime_table_gets_the_papers_hours():
    ours = pd.DataFrame({"n_agents": [4, 4, 4], "method": ["GS", "DIALS", "untrained-DIALS"],
                         "total (min)": [10.0, 5.0, 4.0]})
    table = comparison.runtimes_vs_paper(ours, "traffic")
    assert table["paper total (h, 4M steps)"].tolist() == [7.24, 1.55, 1.48]  # DIALS at the main F = 1M

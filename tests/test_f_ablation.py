"""The F ablation's tables (notebook 06) on synthetic records: final returns and runtimes per F beside the paper's,
differences from the main F with their intervals, and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dials_lib.analysis import f_ablation

FRACTIONS = (0.025, 0.125, 0.25)  # 100K, 500K, 1M


@pytest.fixture(autouse=True)
def figures(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_FIGURES_DIR", str(tmp_path))
    return tmp_path


def records(final_by_fraction: dict[float, float], seconds_by_fraction: dict[float, float]) -> f_ablation.FAblation:
    """Traffic ablation records: 2 seeds per F (final return +-1 around the given mean), evaluations at 0 and 100."""
    rows, runtimes = [], []
    for fraction, final in final_by_fraction.items():
        for seed in (0, 1):
            for step, value, ce in ((0, 150.0, 0.7), (100, final + (2 * seed - 1), 0.3)):
                rows.append({"env": "traffic", "n_agents": 4, "simulator": "dials", "retrain_every": fraction * 4e6,
                             "f_fraction": fraction, "seed": seed, "timestep": step, "mean_return": value,
                             "aip_ce": ce, "wall_time_s": 60.0 * step / 100})
            runtimes.append({"env": "traffic", "n_agents": 4, "simulator": "dials", "f_fraction": fraction,
                             "seed": seed, "total_s": seconds_by_fraction[fraction],
                             "data_collection_plus_aip_training_s": seconds_by_fraction[fraction] / 4})
    metrics, runtime = pd.DataFrame(rows), pd.DataFrame(runtimes)
    metrics["F"] = metrics["f_fraction"].map(f_ablation.f_text)
    runtime["F"] = runtime["f_fraction"].map(f_ablation.f_text)
    return f_ablation.FAblation(("traffic",), metrics, runtime)


def test_the_table_puts_each_f_beside_the_papers():
    result = records({0.025: 200.0, 0.125: 210.0, 0.25: 212.0}, {0.025: 600.0, 0.125: 300.0, 0.25: 240.0})
    table = result.table().set_index("F (paper)")
    assert list(table.index) == ["100K", "500K", "1M"]
    assert table["final return"].tolist() == [200.0, 210.0, 212.0]
    assert table["seeds"].tolist() == [2, 2, 2]
    assert table["runtime (min)"].tolist() == [10.0, 5.0, 4.0]
    assert table["data + AIP share"].tolist() == [0.25] * 3
    assert table.loc["1M", "paper final return"] == 213 and table.loc["1M", "paper agents"] == 49


def test_differences_are_against_the_middle_f_or_the_largest_f_run():
    result = records({0.025: 200.0, 0.125: 211.5, 0.25: 212.0}, {0.025: 600.0, 0.125: 300.0, 0.25: 240.0})
    assert result.main_fraction("traffic") == 0.25
    diffs = result.differences().set_index("F")
    assert list(diffs.index) == ["F=100,000", "F=500,000"] and set(diffs["vs"]) == {"F=1,000,000"}
    assert diffs.loc["F=100,000", "return difference"] == pytest.approx(-12.0)
    assert diffs.loc["F=100,000", "95% CI high"] < 0 < diffs.loc["F=500,000", "95% CI high"]
    assert diffs["runtime ratio"].tolist() == [2.5, 1.25]
    without_middle = records({0.025: 200.0, 0.125: 210.0}, {0.025: 600.0, 0.125: 300.0})
    assert without_middle.main_fraction("traffic") == 0.125


def test_the_curves_figure_is_saved(figures):
    result = records({0.025: 200.0, 0.25: 212.0}, {0.025: 600.0, 0.25: 240.0})
    fig = result.curves()
    assert (figures / "06_f_ablation.png").exists()
    lines = fig.axes[0].get_lines()
    assert {line.get_label() for line in lines} >= {"F=100,000", "F=1,000,000"}
    assert np.allclose(lines[0].get_xdata(), [0.0, 1.0])  # minutes of wall time

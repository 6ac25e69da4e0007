"""Figures and tables: saved where paths say, byte-identical on a rerun (no churn in committed files)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dials_lib import paths, plots  # noqa: E402


@pytest.fixture
def figures(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.FIGURES_DIR_ENV, str(tmp_path))
    return tmp_path


def draw():
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [1, 0, 2])
    ax.set(xlabel="timesteps", ylabel="average return")
    return fig


def test_figures_are_byte_identical_when_saved_again(figures):
    plots.save_figure(draw(), "demo")
    first = {p.name: p.read_bytes() for p in figures.iterdir()}
    assert set(first) == {"demo.png", "demo.pdf"}
    plots.save_figure(draw(), "demo")
    assert {p.name: p.read_bytes() for p in figures.iterdir()} == first
    assert b"CreationDate" not in first["demo.pdf"]


def test_tables_are_written_as_csv_and_markdown(figures):
    table = pd.DataFrame({"env": ["traffic"], "return": [213.456]})
    plots.save_table(table, "demo")
    assert pd.read_csv(figures / "demo.csv").equals(table)
    assert "| traffic |      213 |" in (figures / "demo.md").read_text()

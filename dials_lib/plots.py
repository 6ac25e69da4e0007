"""Figures and tables: one seaborn style, saved through `dials_lib.paths` with fixed metadata.

Fixed metadata (no software version, no creation date) keeps reruns from churning committed files. In a Jupyter
kernel, `set_style` also makes sure figures are shown in the cell outputs (see `show_figures_inline`).
"""

from __future__ import annotations

import sys

import matplotlib
import matplotlib.pyplot as plt  # headless runs get matplotlib's own fallback backend (Agg)
import pandas as pd
import seaborn as sns

from dials_lib.files import atomic_write, atomic_write_text
from dials_lib.paths import figures_dir

PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
# One colour per simulator, as in the paper's figures (orange GS, blue untrained, green DIALS).
SIMULATOR_COLOURS = {
    "GS": "tab:orange",
    "untrained-DIALS": "tab:blue",
    "DIALS": "tab:green",
    "hand-coded": "tab:red",
    "random": "tab:gray",
}


def set_style() -> None:
    """Apply the series' seaborn theme (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams["figure.dpi"] = 100
    plt.rcParams["savefig.dpi"] = 120
    plt.rcParams["svg.hashsalt"] = "dials"
    show_figures_inline()


def show_figures_inline() -> None:
    """In a Jupyter kernel drawing with Agg, switch to the inline backend; elsewhere do nothing.

    ipykernel draws inline only when `MPLBACKEND` is unset, so a kernel started from a shell with `MPLBACKEND=Agg`
    (papermill or Jupyter run from a headless session) saves its figures but never shows them: a notebook run that
    way had no images at all. The series sets the backend for its kernels (`dials_lib.notebook_kernels`); this
    covers every other way of running a notebook."""
    ipython = sys.modules.get("IPython")  # loaded in every kernel; a script or a test has none to ask
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell" and \
            matplotlib.get_backend().lower() == "agg":
        shell.run_line_magic("matplotlib", "inline")


def picture_axes(ax: plt.Axes | None, size: float) -> plt.Axes:
    """Square axes without ticks or grid for a drawing of a simulator (new `size`-inch axes if ax is None)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax


def save_figure(fig: plt.Figure, name: str, formats: tuple[str, ...] = ("png", "pdf")) -> None:
    """Save `fig` as figures/<name>.png and .pdf with fixed metadata; call after all labels are set."""
    for fmt in formats:
        metadata = PNG_METADATA if fmt == "png" else PDF_METADATA if fmt == "pdf" else None
        target = figures_dir() / f"{name}.{fmt}"
        atomic_write(target, lambda tmp, f=fmt, m=metadata: fig.savefig(tmp, format=f, metadata=m,
                                                                        bbox_inches="tight"))


def save_table(table: pd.DataFrame, name: str, float_format: str = "{:.3g}") -> None:
    """Save `table` as figures/<name>.csv and figures/<name>.md (a markdown table)."""
    csv_path = figures_dir() / f"{name}.csv"
    md_path = figures_dir() / f"{name}.md"
    atomic_write_text(csv_path, table.to_csv(index=False))
    shown = table.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else float_format.format(v))
    atomic_write_text(md_path, shown.to_markdown(index=False) + "\n")

"""Repository paths, computed from the package location so notebooks, papermill and tests agree.

The kernel of a notebook starts in `notebooks/`, papermill's in the caller's directory and pytest's
wherever it was launched; none of that matters here because every path hangs off this file.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR: Path = Path(__file__).resolve().parent
REPO_ROOT: Path = PACKAGE_DIR.parent
PAPER_DIR_ENV = "DIALS_PAPER_DIR"


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _from_env(variable: str, default: Path) -> Path:
    """A folder from an environment variable; relative paths are taken from the repository root, because
    notebook kernels do not start in the caller's working directory."""
    value = os.environ.get(variable)
    return default if not value else REPO_ROOT / Path(value).expanduser()


FIGURES_DIR_ENV = "DIALS_FIGURES_DIR"
_figures_override: Path | None = None


def set_figures_dir(path: str | Path | None) -> None:
    """Send figures and tables to `path` from now on (None: back to the default `figures/`)."""
    global _figures_override
    _figures_override = None if path is None else Path(path)


def preset_figures_dir(preset: str) -> Path:
    """Where a preset's figures go: `figures/` for quick, `figures/full4/` and `figures/scale/` (committed),
    `figures/paper/`, `build/figures/smoke/`."""
    if preset == "quick":
        return REPO_ROOT / "figures"
    if preset in ("full4", "scale", "paper"):
        return REPO_ROOT / "figures" / preset
    return REPO_ROOT / "build" / "figures" / preset


def figures_dir() -> Path:
    """Folder for figures and tables, created on first use.

    Precedence: the `DIALS_FIGURES_DIR` environment variable (tests use it to keep the committed
    figures untouched), then `set_figures_dir` (done by `config.use_preset`), then `figures/`.
    """
    if os.environ.get(FIGURES_DIR_ENV):
        return _ensure(_from_env(FIGURES_DIR_ENV, REPO_ROOT / "figures"))
    return _ensure(_figures_override or REPO_ROOT / "figures")


def runs_dir() -> Path:
    """Folder holding run directories (`runs/`, untracked), created on first use."""
    return _ensure(_from_env("DIALS_RUNS_DIR", REPO_ROOT / "runs"))


RECORDS_DIR_ENV = "DIALS_RECORDS_DIR"


def records_dir() -> Path:
    """Folder of the published run records (`records/`, committed; `DIALS_RECORDS_DIR` for tests): the same layout
    as `runs/`, holding each finished run's config, metrics, runtime and memory files but no checkpoint."""
    return _from_env(RECORDS_DIR_ENV, REPO_ROOT / "records")


def build_dir() -> Path:
    """Untracked build folder (`build/`, or `DIALS_BUILD_DIR`) for executed notebooks and scratch output."""
    return _ensure(_from_env("DIALS_BUILD_DIR", REPO_ROOT / "build"))


def notebooks_dir() -> Path:
    """Folder of the numbered notebook series."""
    return REPO_ROOT / "notebooks"


def benchmarks_dir() -> Path:
    """Folder of the benchmark scripts and their results."""
    return REPO_ROOT / "benchmarks"


def paper_dir() -> Path:
    """Folder of the paper's numbers (`paper/`: CSV tables and hyperparameters), shipped with the repo."""
    return _from_env(PAPER_DIR_ENV, REPO_ROOT / "paper")


def figure_path(name: str) -> Path:
    """Path of a file inside `figures/` (name may contain a suffix such as `.png` or `.csv`)."""
    return figures_dir() / name

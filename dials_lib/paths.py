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


def figures_dir() -> Path:
    """Folder for committed figures and tables (`figures/`), created on first use."""
    return _ensure(REPO_ROOT / "figures")


def runs_dir() -> Path:
    """Folder holding run directories (`runs/`, untracked), created on first use."""
    return _ensure(Path(os.environ.get("DIALS_RUNS_DIR", REPO_ROOT / "runs")))


def build_dir() -> Path:
    """Untracked build folder (`build/`) for executed notebooks and scratch output."""
    return _ensure(REPO_ROOT / "build")


def notebooks_dir() -> Path:
    """Folder of the numbered notebook series."""
    return REPO_ROOT / "notebooks"


def benchmarks_dir() -> Path:
    """Folder of the benchmark scripts and their results."""
    return REPO_ROOT / "benchmarks"


def paper_dir() -> Path:
    """Folder of the paper's numbers (`paper/`: CSV tables and hyperparameters), shipped with the repo."""
    return Path(os.environ.get(PAPER_DIR_ENV, REPO_ROOT / "paper"))


def figure_path(name: str) -> Path:
    """Path of a file inside `figures/` (name may contain a suffix such as `.png` or `.csv`)."""
    return figures_dir() / name

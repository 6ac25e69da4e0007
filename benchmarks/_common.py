"""Shared helpers for the benchmark scripts: timing and writing JSON + a markdown table."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # the per-car/per-robot references live in tests/
    sys.path.insert(0, str(REPO_ROOT))

import pandas as pd  # noqa: E402

from dials_lib.files import atomic_write_json, atomic_write_text, read_json  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def time_calls(fn: Callable[[], Any], min_seconds: float = 1.0, min_calls: int = 3) -> float:
    """Seconds per call of `fn`, averaged over at least `min_calls` calls and `min_seconds`."""
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if calls >= min_calls and elapsed >= min_seconds:
            return elapsed / calls


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os

    import numpy as np
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor(),
    }


def write_results(name: str, rows: list[dict[str, Any]], goals: list[dict[str, Any]], title: str,
                  more: dict[str, list[dict[str, Any]]] | None = None, notes: str | None = None) -> None:
    """Write benchmarks/results/<name>.json and <name>.md (`notes` as a paragraph above the measurements table,
    the table, `more` tables by title, goals). The JSON also keeps the title and each table's column order (its
    keys are stored sorted), so that `read_results` gives the tables back as they were written."""
    more = more or {}
    columns = {"rows": _columns(rows), "more": {heading: _columns(table) for heading, table in more.items()}}
    atomic_write_json(RESULTS_DIR / f"{name}.json",
                      {"title": title, "machine": machine_info(), "rows": rows, "goals": goals, "columns": columns,
                       **({"more": more} if more else {})})
    parts = [f"# {title}", "", f"Measured on: {machine_info()}", ""]
    parts += [notes, ""] if notes else []
    parts += ["## Measurements", ""]
    parts.append(_markdown(rows))
    for heading, table in more.items():
        parts += ["", f"## {heading}", "", _markdown(table)]
    if goals:
        parts += ["", "## Goals", "", _markdown(goals)]
    atomic_write_text(RESULTS_DIR / f"{name}.md", "\n".join(parts) + "\n")


def read_results(name: str) -> dict[str, Any]:
    """The stored benchmarks/results/<name>.json: title, rows, goals and `more` tables (empty if none), every row's
    columns in the order they were written."""
    stored = read_json(RESULTS_DIR / f"{name}.json")
    columns = stored.get("columns", {"rows": [], "more": {}})
    more = stored.get("more", {})
    return {"title": stored["title"], "goals": stored["goals"],
            "rows": _in_order(stored["rows"], columns["rows"]),
            "more": {heading: _in_order(table, columns["more"].get(heading, [])) for heading, table in more.items()}}


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column of the rows, in the order they first appear (the markdown table's order)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def _in_order(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    return [{key: row[key] for key in columns if key in row} | {k: v for k, v in row.items() if k not in columns}
            for row in rows]


def _markdown(rows: list[dict[str, Any]]) -> str:
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if pd.api.types.is_float_dtype(frame[col]):
            frame[col] = frame[col].map(lambda v: f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}")
    return frame.to_markdown(index=False)

"""The package root: its entry points resolve to the library's objects, and importing it stays light."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

import dials_lib


def test_entry_points_are_the_library_objects() -> None:
    from dials_lib.envs import make_global, make_local
    from dials_lib.training.run_config import RunConfig, config_from_preset
    from dials_lib.training.runner import train

    assert dials_lib.RunConfig is RunConfig and dials_lib.config_from_preset is config_from_preset
    assert dials_lib.train is train and dials_lib.make_global is make_global and dials_lib.make_local is make_local
    assert set(dials_lib.__all__) <= set(dir(dials_lib))
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        dials_lib.trian  # noqa: B018


def loaded_after_import(modules: str, watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` a fresh interpreter holds after `import <modules>` (a comma-separated list)."""
    code = f"import sys, {modules}; print(sorted(m for m in {watched!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out.strip())


def test_importing_the_package_does_not_import_torch() -> None:
    assert loaded_after_import("dials_lib, dials_lib.paths", ("torch",)) == []


@pytest.mark.parametrize("modules", ["dials_lib.paper", "dials_lib.analysis.scaling, dials_lib.training.group_tasks"])
def test_what_timed_runs_and_workers_load_leaves_out_the_plotting_stack(modules: str) -> None:
    """A timed run's processes import `scaling` (the fresh process runs `measure_in_this_process`, each loky worker
    unpickles `_warm_up`), and reading the paper's numbers is not plotting: neither may pull in matplotlib or
    seaborn, which no training worker loads. Through `paper` -> `plots` they once did, and every timed process's
    memory peak carried about 30 MiB that a real run's workers do not hold."""
    assert loaded_after_import(modules, ("matplotlib", "seaborn")) == []


def test_make_bench_runs_every_benchmark_that_writes_results() -> None:
    # Each benchmark script writes results/<name>.json; simulators.py's parts (sim_traffic, sim_warehouse, sim_ials)
    # are run by it and write nothing of their own.
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = re.search(r"^BENCH_ALL := (.+)$", (root / "Makefile").read_text(), re.MULTILINE).group(1).split()
    writers = sorted(path.stem for path in (root / "benchmarks").glob("*.py")
                     if not path.stem.startswith("_") and "results" in path.read_text())
    assert sorted(listed) == writers

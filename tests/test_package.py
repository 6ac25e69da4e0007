"""The package root: its entry points resolve to the library's objects, and importing it stays light."""

from __future__ import annotations

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


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, dials_lib, dials_lib.paths; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


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

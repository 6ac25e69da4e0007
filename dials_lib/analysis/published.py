"""Published run records: what the analysis reads of finished runs, kept in git so that every figure and table
redraws on a fresh clone without training again.

A run directory under `runs/` holds the run's checkpoint (large, untracked) and its records: config.json,
metrics.csv, runtime.json and memory.json (`dials_lib.training.run_records`). `publish` copies the records of
finished runs to `records/`, in the same layout (`runs/scale/traffic_n25_gs_T576000_seed0/` ->
`records/scale/traffic_n25_gs_T576000_seed0/`); `records/` is committed. Where a run's own directory is missing
or unfinished, `read_records` reads its published copy, verified against the run's config: the stored config must
equal it (up to the fields a resume may change), and metrics.csv must hold exactly the evaluations the run's
schedule makes, in order. A copy that fails a check is refused with one line saying what differs and what to do.

A run is also a prefix of any longer run of the same settings (`dials_lib.presets`): the first 576K steps of a
1,056K-step run are those of a 576K-step run, bit for bit. `longer_run` finds such a finished run (under any preset
in `runs/` or `records/`), and `read_records` then reads its evaluations up to the shorter run's last step, with
the wall time at that step as the run's total time, and the longer run's worker seconds in proportion to it (they
are not recorded per evaluation); the other parts of the longer run's time are not split by step.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from dials_lib.files import atomic_write, read_json
from dials_lib.paths import records_dir, runs_dir
from dials_lib.training.run_config import RunConfig, config_differences
from dials_lib.training.run_records import load_run
from dials_lib.training.runner import is_finished

RECORD_FILES: tuple[str, ...] = ("config.json", "metrics.csv", "runtime.json", "memory.json")
"""The files of a run directory that are published (everything but the checkpoints and the lock)."""


def published_path(config: RunConfig) -> Path | None:
    """Where the run's records are published: its run directory's place under `runs/`, under `records/` instead
    (None for a run directory outside `runs/`)."""
    try:
        relative = config.directory().resolve().relative_to(runs_dir().resolve())
    except ValueError:
        return None
    return records_dir() / relative


def evaluation_steps(config: RunConfig) -> list[int]:
    """The steps per agent at which the run evaluates (its schedule's evaluation boundaries)."""
    schedule = config.schedule()
    return [step for step, evaluate in zip(schedule.starts, schedule.evaluate, strict=True) if evaluate]


def finished_here(config: RunConfig) -> bool:
    """Whether the run is finished in its own run directory (never creating that directory)."""
    return config.directory().is_dir() and is_finished(config)


def publish(configs: list[RunConfig]) -> list[Path]:
    """Copy the records of every finished run of `configs` to `records/`; returns the folders written (unfinished
    runs are skipped). Each file is written atomically, config.json last, so a copy cut short is never taken for a
    complete one (its config check fails or its metrics are short)."""
    written = []
    for config in configs:
        target = published_path(config)
        if target is None or not finished_here(config):
            continue
        for name in (*RECORD_FILES[1:], RECORD_FILES[0]):
            source = config.directory() / name
            atomic_write(target / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
        written.append(target)
    return written


def _check_metrics(metrics: pd.DataFrame, expected: list[int], where: Path) -> None:
    """One line naming the copy when its evaluations are not those of the run's schedule."""
    steps = metrics["timestep"].astype(int).tolist()
    if steps != expected:
        raise ValueError(f"{where} holds evaluations at steps {steps[:3]}...{steps[-1:]} ({len(steps)} rows), not "
                         f"the run's {len(expected)} ending at {expected[-1]}: publish the run again or delete "
                         "the copy")


def _verified(folder: Path, config: RunConfig, up_to: int | None = None) -> dict[str, Any]:
    """The records in `folder`, checked against `config` (`up_to`: only the evaluations up to that step, for a
    longer run read as a prefix; its total_timesteps may then differ)."""
    records = load_run(folder)
    stored, current = records["config"], config.record()
    if up_to is not None:
        stored, current = dict(stored, total_timesteps=None), dict(current, total_timesteps=None)
    diffs = config_differences(stored, current)
    if diffs:
        raise ValueError(f"{folder} holds a run with a different config ({'; '.join(diffs)}): publish the run again "
                         "or delete the copy")
    metrics = records["metrics"]
    if metrics is None:
        raise ValueError(f"{folder} has no metrics.csv: publish the run again or delete the copy")
    expected = evaluation_steps(config)
    if up_to is not None:
        metrics = metrics[metrics["timestep"] <= up_to].reset_index(drop=True)
        at_end = float(metrics["wall_time_s"].iloc[-1]) if len(metrics) else float("nan")
        longer = records["runtime"]
        # the longer run's worker seconds are not recorded per evaluation: its share of them by wall time
        fraction = at_end / longer["total_s"] if longer.get("total_s") else float("nan")
        records["runtime"] = {"total_s": at_end, "stacked_runs": longer.get("stacked_runs", 1),
                              "prefix_of": folder.name,
                              **{k: longer[k] * fraction for k in ("worker_busy_s", "worker_cpu_s") if k in longer}}
    _check_metrics(metrics, expected, folder)
    records["metrics"] = metrics
    return records


def longer_run(config: RunConfig) -> Path | None:
    """A finished run of the same settings as `config` but longer (its first steps are exactly `config`'s run), in
    `runs/` or `records/` under any preset; None if there is none. Run directories in `runs/` are preferred."""
    stem, tail = config.name().split(f"_T{config.total_timesteps}_")
    for root in (runs_dir(), records_dir()):
        if not root.is_dir():
            continue
        for folder in sorted(root.glob(f"*/{stem}_T*_{tail}")):
            total = int(folder.name[len(stem) + 2:].split("_")[0])
            if total <= int(config.total_timesteps or 0) or not (folder / "config.json").exists():
                continue
            # a run in runs/ that is still training serves once its evaluations reach this run's last step
            finished = root == records_dir() or (folder / "metrics.csv").exists() and \
                _reaches(folder, int(config.total_timesteps or 0))
            if finished and config_differences(dict(read_json(folder / "config.json"), total_timesteps=None),
                                               dict(config.record(), total_timesteps=None)) == []:
                return folder
    return None


def _reaches(folder: Path, step: int) -> bool:
    """Whether a run directory's metrics reach `step`."""
    metrics = pd.read_csv(folder / "metrics.csv")
    return len(metrics) > 0 and int(metrics["timestep"].iloc[-1]) >= step


def _published_copy(config: RunConfig) -> Path | None:
    """The run's published folder if it holds a copy (config.json is written last), else None."""
    path = published_path(config)
    return path if path is not None and (path / "config.json").exists() else None


def has_records(config: RunConfig) -> bool:
    """Whether the run's records can be read without training: finished here, published, or a longer run's."""
    return finished_here(config) or _published_copy(config) is not None or longer_run(config) is not None


def read_records(config: RunConfig) -> dict[str, Any]:
    """The run's records (config, metrics, runtime, memory): from its run directory when finished there, else from
    its published copy, else as the prefix of a longer finished run (each verified, see the module docstring)."""
    if finished_here(config):
        return load_run(config.directory())
    copy = _published_copy(config)
    if copy is not None:
        return _verified(copy, config)
    longer = longer_run(config)
    if longer is not None:
        return _verified(longer, config, up_to=config.total_timesteps)
    raise FileNotFoundError(f"run {config.name()} is neither finished in {config.directory()} nor published: train "
                            "it first (python -m dials_lib.series --preset <preset> --train-only)")


__all__ = ["RECORD_FILES", "evaluation_steps", "finished_here", "has_records", "longer_run", "publish",
           "published_path", "read_records"]

"""A preset's whole plan of training runs: what `make train` trains and `make publish-records` publishes.

The runs of notebooks 04-06 on a preset (both environments' comparisons and F ablations, `analysis.plans`) and, on
the presets of `untrained_gap.GAP_PRESETS`, notebook 04's untrained-DIALS gap experiment. The series trains them
all at once before the notebooks run (`dials_lib.series`), so that their seed batches share the cores and the
notebooks only read them back. `plan_status` says where each run stands (`make status`), also while they train.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from dials_lib.analysis import plans, projection, scaling, untrained_positions
from dials_lib.analysis.published import longer_run, publish, published_path
from dials_lib.analysis.scaling import publish_measurements
from dials_lib.analysis.sumo_study import sumo_configs
from dials_lib.analysis.untrained_gap import GAP_PRESETS, gap_configs
from dials_lib.files import read_json
from dials_lib.presets import get_preset
from dials_lib.training.checkpoints import previous_path, read_header
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import AIP_SNAPSHOTS, CHECKPOINT, LOCK, PARTIAL_AIPS, SPILL


def training_plan(preset: str) -> list[RunConfig]:
    """Every training run of the notebooks 04-06 on `preset` (both environments' comparisons and F ablations), once
    each (the ablation shares its main-F runs with the comparison); on the presets of `untrained_gap.GAP_PRESETS`
    also notebook 04's untrained-DIALS gap experiment (`untrained_gap.gap_configs`)."""
    configs: dict[Path, RunConfig] = {}
    for env in ("traffic", "warehouse"):
        for config in plans.comparison_configs(preset, env) + plans.ablation_configs(preset, env):
            configs.setdefault(config.directory(), config)
    for config in gap_configs(preset) if preset in GAP_PRESETS else []:
        configs.setdefault(config.directory(), config)
    return list(configs.values())


def train_plan(preset: str, log: Callable[[str], None] | None = print, n_processes: int | None = None) -> None:
    """Train (or resume) every run of `training_plan(preset)` at once, so that the seed batches of all notebooks share
    the cores (the notebooks then read them back); finished runs are left as they are."""
    plans.run_experiments(training_plan(preset), progress=False, log=log, n_processes=n_processes)


def publish_records(preset: str) -> list[Path]:
    """Copy the records of every finished run of `preset`'s plan and of its sumo-traffic runs (`make train-sumo`,
    notebook 11), its timed runs' measurements and its untrained-DIALS positions experiment (notebook 10), to
    `records/` (committed: figures redraw from them on a fresh clone); returns what was written."""
    written = publish(training_plan(preset) + sumo_configs(preset))
    measured = [publish_measurements(preset), untrained_positions.publish(preset)]
    return written + [path for path in measured if path is not None]


def aip_training_status(run_dir: Path) -> str:
    """' (training its AIPs[: ...])' while the run in `run_dir` (re)trains its AIPs, else '': the epochs of each
    training group's last snapshot and how many groups are done, from the files' headers (a batch stacked over
    seeds keeps its snapshots in its first run's directory, so only that run shows their epochs)."""
    snapshots = sorted(run_dir.glob(AIP_SNAPSHOTS.format(first="*", last="*")))
    # a retraining spills the PPO states first; the first AIP training (before any PPO) has only its snapshots
    if not ((run_dir / SPILL).exists() or (run_dir / PARTIAL_AIPS).exists() or snapshots):
        return ""
    saved = [header["progress"] for path in snapshots
             if (header := read_header(path)) is not None and "progress" in header]
    done = (read_header(run_dir / PARTIAL_AIPS) or {}).get("progress", {}).get("groups done", 0)
    totals = {p["epochs"] for p in saved}  # one count per group's snapshot, of a total all groups share
    parts = ([f"{', '.join(str(p['epochs done']) for p in saved)} of {totals.pop()} epochs saved"] if len(totals) == 1
             else [f"{p['epochs done']} of {p['epochs']} epochs saved" for p in saved])
    parts += [f"{done} group{'s' if done > 1 else ''} done"] if done else []
    return f" (training its AIPs: {', '.join(parts)})" if parts else " (training its AIPs)"


def _run_status(config: RunConfig) -> dict[str, object]:
    """One row of `plan_status`: where the run is, read from its files without locking or loading it (only its
    checkpoint's header, unverified: what a training checks before it resumes is not needed to say how far it is)."""
    total, here, schedule = int(config.total_timesteps or 0), config.directory(), config.schedule()
    row: dict[str, object] = {"run": config.name(), "status": "not started", "steps done": 0, "steps total": total,
                              "last evaluation": float("nan"), "worker CPU h": float("nan")}
    headers = [read_header(path) for path in (here / CHECKPOINT, previous_path(here / CHECKPOINT))]
    boundary = max((int(header["boundary"]) for header in headers if header is not None), default=None)
    copy, records, evaluations = published_path(config), None, None  # CPU from `records`, returns from `evaluations`
    if boundary == schedule.n_chunks:
        row.update({"status": "finished", "steps done": total})
        records = here
    elif copy is not None and (copy / "config.json").exists():
        row.update({"status": "published", "steps done": total})
        records = copy
    elif (longer := longer_run(config)) is not None:  # its CPU is the longer run's, not split by step
        row.update({"status": f"read from {longer.name}", "steps done": total})
        evaluations = longer
    elif boundary is not None:
        row.update({"status": "training" + aip_training_status(here), "steps done": schedule.starts[boundary]})
        records = here
    elif (here / LOCK).exists():  # a training took the run (a batch's other runs only get their config.json)
        row["status"] = "started, no checkpoint yet" + aip_training_status(here)
        records = here
    evaluations = records if records is not None else evaluations
    if evaluations is not None and (evaluations / "metrics.csv").exists():
        metrics = pd.read_csv(evaluations / "metrics.csv")
        metrics = metrics[metrics["timestep"] <= int(row["steps done"])]  # type: ignore[call-overload]
        if len(metrics):
            row["last evaluation"] = float(metrics["mean_return"].iloc[-1])
    if records is not None and (records / "runtime.json").exists():
        runtime = read_json(records / "runtime.json")
        row["worker CPU h"] = runtime.get("worker_cpu_s", 0.0) / runtime.get("stacked_runs", 1) / 3600
    return row


def status_summary(status: pd.DataFrame, n_processes: int = 2) -> str:
    """One line over `plan_status`'s rows: runs finished (here, published or read from longer runs), training and
    not started, the worker CPU hours their records hold so far, and the CPU hours still to train by notebook 07's
    projection (each unfinished run's projected hours times the share of its steps still to run, so the time of a
    DIALS run's AIP training counts as spread over its steps), also over `n_processes` cores side by side; and how
    the runs finished here compare with their projection."""
    finished = status["steps done"] == status["steps total"]
    training = ~finished & (status["status"] != "not started")
    line = (f"{int(finished.sum())} of {len(status)} runs finished, {int(training.sum())} training, "
            f"{int((status['status'] == 'not started').sum())} not started; worker CPU so far "
            f"{status['worker CPU h'].sum():.2f} h (runs read from longer runs not counted)")
    to_run = status[~finished]
    left = to_run["projected CPU h"] * (1 - to_run["steps done"] / to_run["steps total"])
    if len(to_run) and left.notna().any():
        unknown = int(left.isna().sum())
        line += (f"; about {left.sum():.1f} CPU h still to train by notebook 07's projection, "
                 f"{left.sum() / n_processes:.1f} h on {n_processes} cores"
                 + (f" ({unknown} run{'s' if unknown > 1 else ''} without a projection)" if unknown else ""))
    timed = status[finished & status["worker CPU h"].notna() & status["projected CPU h"].notna()]
    if len(timed):  # how far to trust the projection: what the runs trained here took against theirs
        took, projected = timed["worker CPU h"].sum(), timed["projected CPU h"].sum()
        line += (f"; the {len(timed)} run{'s' if len(timed) > 1 else ''} finished here took {took:.1f} CPU h against "
                 f"{projected:.1f} projected (x{took / projected:.2f})")
    return line


def plan_status(preset: str) -> pd.DataFrame:
    """Where every run of `training_plan(preset)` stands, one row per run, read from its files (a training may be
    running meanwhile; nothing is locked, created or loaded). `status`: finished (here), published (in `records/`),
    read from <a longer finished run>, training (its last checkpoint's step is `steps done`), started, no checkpoint
    yet (before its first, e.g. while its AIPs first train), or not started; the return of its last evaluation; and
    its share of its seed batch's worker CPU hours so far (not for a run read from a longer one); and the CPU hours
    notebook 07's timed runs project for it on one worker (NaN without them)."""
    status = pd.DataFrame([_run_status(config) for config in training_plan(preset)])
    return status.assign(**{"projected CPU h": status["run"].map(_projected_cpu_hours(preset)).astype(float)})


def _projected_cpu_hours(preset: str) -> dict[str, float]:
    """Per run name: the CPU hours notebook 07's timed runs (the preset's own, or those of
    `Preset.timed_runs_preset`) project for the run alone on one worker; empty when they are not on file."""
    measured = scaling.stored_measurements(get_preset(preset).timed_runs_preset or preset)
    if measured is None:
        return {}
    runs = projection.training_runs_runtime(measured, preset, 1)
    return dict(zip(runs["run"], runs["total_s"] / 3600, strict=True))


__all__ = ["plan_status", "publish_records", "status_summary", "train_plan", "training_plan"]

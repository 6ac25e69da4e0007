"""A preset's whole plan of training runs: what `make train` trains and `make publish-records` publishes.

The runs of notebooks 04-06 on a preset (both environments' comparisons and F ablations, `analysis.plans`) and, on
the presets of `untrained_gap.GAP_PRESETS`, notebook 04's untrained-DIALS gap experiment. The series trains them
all at once before the notebooks run (`dials_lib.series`), so that their seed batches share the cores and the
notebooks only read them back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dials_lib.analysis import plans
from dials_lib.analysis.published import publish
from dials_lib.analysis.scaling import publish_measurements
from dials_lib.analysis.sumo_study import sumo_configs
from dials_lib.analysis.untrained_gap import GAP_PRESETS, gap_configs
from dials_lib.training.run_config import RunConfig


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
    notebook 11), and its timed runs' measurements, to `records/` (committed: figures redraw from them on a fresh
    clone); returns what was written."""
    written = publish(training_plan(preset) + sumo_configs(preset))
    measurements = publish_measurements(preset)
    return written + ([measurements] if measurements is not None else [])


__all__ = ["publish_records", "train_plan", "training_plan"]

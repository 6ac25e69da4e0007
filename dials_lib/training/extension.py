"""Extending a run to a longer budget: the same command with a larger `total_timesteps` (`--steps`) carries on.

A run is a prefix of any longer run of the same config (`dials_lib.training.run_config`: the learning rate and clip
decay over `anneal_timesteps`, F is in steps), as long as its chunk boundaries are the first boundaries of the
longer run, that is when the shorter budget ends on a chunk boundary of the longer one (a multiple of
`chunk_steps`). Then training on from its last checkpoint gives exactly the numbers of the longer run trained from
the start. Only the boundary where the shorter run ended differs: a run never retrains at its end and always
evaluates there, where the longer run retrains if its F says so and evaluates if its `eval_every` does. So the
extension drops the shorter run's final evaluation and does that boundary again as the longer run does.

`extend_in_place` turns a run directory of the shorter run into one of the longer run (its checkpoint re-saved
under the longer run's identity, then its config.json); `RunDirectory` calls it when a directory holds a prefix of
the run asked for. `shorter_sibling` finds, for a run in its default directory (`runs/<name>`, whose name holds
the budget), the longest shorter run of the same config beside it, which `copy_run` copies as the new run's start
(the shorter run stays as it is).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

from dials_lib.files import atomic_write_json, read_json
from dials_lib.training.checkpoints import read_checkpoint, record_identity, write_checkpoint
from dials_lib.training.run_config import RunConfig, config_differences
from dials_lib.training.run_state import RunState

BUDGET_FIELD = "total_timesteps"
COPIED_FILES = ("config.json", "checkpoint.pt", "metrics.csv", "runtime.json", "memory.json")
"""What a new run directory takes from the shorter run it starts from (not its lock or previous checkpoint)."""


def prefix_problem(stored: dict[str, Any], config: RunConfig) -> str | None:
    """Why the run recorded as `stored` (its config.json) cannot be extended to `config`, or None if it can: the
    two may differ only in their budget, the stored one shorter, ending on one of `config`'s chunk boundaries."""
    others = [d for d in config_differences({**stored, BUDGET_FIELD: None}, {**config.record(), BUDGET_FIELD: None})]
    if others:
        return f"it differs in more than its budget ({'; '.join(others)})"
    shorter = stored[BUDGET_FIELD]
    if not isinstance(shorter, int) or shorter >= config.total_timesteps:
        return (f"its budget ({shorter:,} steps per agent) is not shorter than {config.total_timesteps:,}: a run can "
                "be extended, not shortened")
    starts = config.schedule().starts
    ends = dataclasses.replace(config, total_timesteps=shorter).schedule().starts
    if starts[:len(ends)] != ends:
        return (f"its budget ({shorter:,} steps per agent) does not end on a chunk boundary of the longer run "
                f"(chunks of {config.chunk_steps:,} steps), so it is not that run's prefix")
    return None


def reopened(state: RunState, shorter_budget: int, config: RunConfig) -> RunState:
    """A checkpointed state of the shorter run (of `shorter_budget` steps) as a state of the longer run `config`: if
    it is the shorter run's end, its final evaluation is dropped and its boundary is to be done again (retraining
    and evaluating as the longer run's schedule says)."""
    shorter = dataclasses.replace(config, total_timesteps=shorter_budget).schedule()
    if state.boundary != shorter.n_chunks or not state.prepared:
        return state  # an interrupted shorter run: its past is the longer run's past
    rows = [row for row in state.rows if row["timestep"] != shorter.starts[-1]]
    return dataclasses.replace(state, rows=rows, prepared=False, retrained=False)


def extend_in_place(path: Path, stored: dict[str, Any], config: RunConfig) -> RunState | None:
    """Turn the run directory `path`, holding the shorter run `stored` (a prefix of `config`, see `prefix_problem`),
    into `config`'s: its checkpoint re-saved for the longer run, then its config.json. Returns the new state (None
    when the shorter run had no checkpoint yet). Crash-safe: until config.json changes, a restart finds the
    shorter run's checkpoint as the previous one and extends again."""
    checkpoint = path / "checkpoint.pt"
    saved, _ = read_checkpoint(checkpoint, record_identity(stored))
    state = None if saved is None else reopened(RunState.from_checkpoint(saved), stored[BUDGET_FIELD], config)
    if state is not None:
        write_checkpoint(checkpoint, state.to_checkpoint(), record_identity(config.record()))
    atomic_write_json(path / "config.json", config.record())
    return state


def budget_free_name(config: RunConfig) -> re.Pattern[str]:
    """The names of `config`'s default run directory with any budget (`..._T<steps>_seed<seed>`)."""
    name = config.name()
    budget = f"_T{config.total_timesteps}_"
    head, tail = name.split(budget, 1)
    return re.compile(re.escape(head) + r"_T(\d+)_" + re.escape(tail))


def shorter_sibling(config: RunConfig, any_eval_every: bool = False) -> tuple[Path, RunConfig] | None:
    """For a run in its default directory that does not exist yet: the directory of the longest shorter run of the
    same config beside it that it can start from, and the config to extend it to (`config`, with the shorter
    run's evaluation interval if `any_eval_every`: the default interval is a twentieth of the budget); or None."""
    if config.run_dir is not None or config.directory().exists() or not config.directory().parent.is_dir():
        return None
    pattern, found = budget_free_name(config), []
    for candidate in config.directory().parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and (candidate / "checkpoint.pt").exists() and (candidate / "config.json").exists():
            try:
                stored = read_json(candidate / "config.json")
                longer = dataclasses.replace(config, eval_every=stored["eval_every"]) if any_eval_every else config
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if prefix_problem(stored, longer) is None:
                found.append((int(match.group(1)), candidate.name, candidate, longer))
    return max(found)[2:] if found else None


def copy_run(source: Path, target: Path) -> None:
    """Copy the records and newest checkpoint of the run in `source` into the new directory `target` (a folder
    filled beside it, then renamed: a kill leaves no half-copied run)."""
    filling = target.with_name(f".{target.name}.copy.tmp")
    shutil.rmtree(filling, ignore_errors=True)  # left by a kill during an earlier copy
    filling.mkdir(parents=True)
    for name in COPIED_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, filling / name)
    filling.rename(target)


__all__ = ["copy_run", "extend_in_place", "prefix_problem", "reopened", "shorter_sibling"]

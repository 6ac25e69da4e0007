"""How runtime and memory grow with the number of agents: short timed runs at each size.

The paper's Tables 1 and 2 give the hours to train for 4M steps per agent on a 128-CPU machine, Table 3 the peak
memory. We cannot run 4M steps at every size here, so we time a short run, and `projection` extrapolates it.

`measure(env, n_agents, simulator, workers, preset)` runs one short training run in a fresh Python process (so
memory readings start clean; the smoke preset, whose numbers mean nothing, saves the interpreter start-ups and runs
them in the calling process): the preset's `scaling_steps` steps per agent in `MEASURED_CHUNKS` chunks; for DIALS an
AIP retraining at the start of each chunk on a GS data set of the preset's `aip_dataset_steps` (the paper's 1e4, fewer
only under smoke) trained for `scaling_aip_epochs` epochs; a one-episode evaluation on the GS at every boundary.
`measurements(preset)` does this for both environments, the preset's `scaling_sizes` and the runs of
`MEASURED_RUNS`, and keeps the results in `runs_dir()/<preset>/scaling/measurements.json`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from dials_lib.envs import check_n_agents, get_spec
from dials_lib.files import atomic_write_json, copy_json, read_json, stored_with_settings
from dials_lib.hyperparameters import ENV_NAMES, paper_hyperparameters
from dials_lib.paths import records_dir, runs_dir
from dials_lib.presets import get_preset
from dials_lib.training.run_config import SIMULATORS, RunConfig
from dials_lib.validation import check_choice, with_fields

MEASURED_RUNS: tuple[tuple[str, int], ...] = (("gs", 1), ("dials", 1), ("dials", 2), ("untrained-dials", 2))
"""(simulator, worker processes) of each timed run: GS is one process; DIALS with 1 and 2 workers."""
CACHE_FORMAT = 4
"""Version of the measurements file (2: workers warmed up with an optimiser step; 3: the simultaneous memory peak
of all processes; 4: two chunks per run, the main process one of the workers); another version is not read."""
MEASURED_CHUNKS = 2
"""Chunks of each timed run. Two, so that a DIALS run retrains its AIPs once more after its agents have trained: the
main process then holds every agent's Adam moments, and the run's memory peaks as it does in a long run."""


def agents_per_worker(n_agents: int) -> int:
    """Agents per worker task in the timed DIALS runs: one grid row, sqrt(N) (4 -> 2, 25 -> 5, 100 -> 10)."""
    # A row of the grid gives groups of equal size, so the 1- and 2-worker runs do exactly the same work and an
    # even number of groups (N = 4, 100) splits evenly over 2 workers; odd N (25, 49) cannot be split evenly at
    # all. Small groups also keep each task's AIP data and networks small, so a worker's memory stays modest.
    return check_n_agents(n_agents)  # the grid side


def collected_steps(config: RunConfig) -> int:
    """GS steps in one AIP data set of `config` (whole episodes of at least `dataset_steps` steps)."""
    horizon = get_spec(config.env).horizon
    return math.ceil(config.hp.aip.dataset_steps / horizon) * horizon


def check_workers(workers: int) -> None:
    """A timed run's or a projection's number of worker processes: a plain int >= 1 (not a bool), else one line."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")


def _check_run(env: str, n_agents: int, simulator: str, workers: int) -> None:
    check_choice("env", env, ENV_NAMES)
    check_choice("simulator", simulator, SIMULATORS)
    check_n_agents(n_agents)
    check_workers(workers)
    if simulator == "gs" and workers != 1:
        raise ValueError(f"workers must be 1 for simulator 'gs' (the GS trains in one process); got {workers}")


def measured_config(env: str, n_agents: int, simulator: str, workers: int, steps: int, aip_epochs: int,
                    dataset_steps: int, run_dir: str | None = None) -> RunConfig:
    """The RunConfig of one timed run: `steps` per agent in `MEASURED_CHUNKS` chunks, a retraining (DIALS) and an
    evaluation at every boundary."""
    hp = paper_hyperparameters(env)
    hp = with_fields(hp, aip=with_fields(hp.aip, epochs=aip_epochs, dataset_steps=dataset_steps))
    chunk = steps // MEASURED_CHUNKS
    return RunConfig(env, n_agents=n_agents, simulator=simulator, total_timesteps=steps, chunk_steps=chunk,
                     retrain_every=chunk, eval_every=chunk, eval_episodes=1, n_workers=workers,
                     agents_per_worker=agents_per_worker(n_agents), hyperparameters=hp, run_dir=run_dir)


def measurement_settings(preset: str) -> dict[str, Any]:
    """What every timed run of `preset` shares: steps per agent, AIP epochs, data set size, fresh process or not."""
    p = get_preset(preset)
    # smoke times its runs in the calling process: its numbers mean nothing anyway, and 16 fresh interpreters
    # (each importing torch, half of them starting worker processes) would take minutes instead of seconds
    return {"format": CACHE_FORMAT, "steps_per_agent": p.scaling_steps, "aip_epochs": p.scaling_aip_epochs,
            "dataset_steps": p.aip_dataset_steps, "fresh_process": preset != "smoke"}


def _warm_up() -> int:
    """Import the worker code and run torch's lazily initialised parts once (seconds in a new process)."""
    import torch

    import dials_lib.training.group_tasks  # noqa: F401 - the import is most of the warm-up
    from dials_lib.learning.adam import Adam

    torch.set_num_threads(1)
    weights = torch.nn.init.orthogonal_(torch.empty(8, 8)).requires_grad_()
    optimiser = Adam([weights], lr=1e-3)
    torch.bmm(weights[None], weights[None]).sum().backward()
    optimiser.step()
    return os.getpid()


def measure_in_this_process(env: str, n_agents: int, simulator: str, workers: int, steps: int, aip_epochs: int,
                            dataset_steps: int) -> dict[str, Any]:
    """One timed run in this process (`measure` calls it in a fresh one); returns its measurements."""
    import torch

    from dials_lib.training.parallel import loky_executor
    from dials_lib.training.runner import train

    torch.set_num_threads(1)
    _warm_up()
    if simulator != "gs" and workers > 1:  # start the worker processes before timing: their imports take seconds
        executor = loky_executor(workers - 1)  # this process is the other worker
        for future in [executor.submit(_warm_up) for _ in range(workers - 1)]:
            future.result()
    with tempfile.TemporaryDirectory() as tmp:
        config = measured_config(env, n_agents, simulator, workers, steps, aip_epochs, dataset_steps, tmp + "/run")
        start = time.perf_counter()
        result = train(config, progress=False)
        wall = time.perf_counter() - start
    rt, mem, schedule = result.runtime, result.memory, config.schedule()
    row: dict[str, Any] = {
        "env": env, "n_agents": n_agents, "simulator": simulator, "workers": workers,
        "agents_per_worker": config.agents_per_worker, "steps_per_agent": schedule.steps_per_agent,
        "aip_epochs": aip_epochs, "dataset_steps": dataset_steps, "collected_steps": collected_steps(config),
        "retrainings": sum(schedule.retrain), "evaluations": sum(schedule.evaluate),
        "eval_episodes": config.eval_episodes, "chunks": schedule.n_chunks, "wall_s": wall,
    }
    for part in ("agents_training_s", "data_collection_s", "aip_training_s", "evaluation_s", "total_s"):
        row[part] = rt[part]
    row["agent_steps_per_s"] = n_agents * schedule.steps_per_agent / rt["agents_training_s"]
    row["worker_core_share"] = rt["worker_cpu_s"] / rt["worker_busy_s"] if rt["worker_busy_s"] else math.nan
    for kind in ("rss", "pss"):
        for where in ("main", "max_worker", "total", "simultaneous"):
            row[f"{where}_peak_{kind}_mib"] = mem.get(f"{where}_peak_{kind}_mb", math.nan)
    row["load_avg"] = os.getloadavg()[0]
    return row


def measure(env: str, n_agents: int, simulator: str, workers: int, preset: str, *, steps: int | None = None,
            aip_epochs: int | None = None, dataset_steps: int | None = None, fresh_process: bool = True
            ) -> dict[str, Any]:
    """One timed run on `preset`'s scaling budget in a fresh Python process (keywords override the budget).

    `fresh_process=False` runs it in this process instead: quicker, but memory readings include whatever this
    process already holds."""
    _check_run(env, n_agents, simulator, workers)
    settings = measurement_settings(preset)
    spec = {"env": env, "n_agents": n_agents, "simulator": simulator, "workers": workers,
            "steps": settings["steps_per_agent"] if steps is None else steps,
            "aip_epochs": settings["aip_epochs"] if aip_epochs is None else aip_epochs,
            "dataset_steps": settings["dataset_steps"] if dataset_steps is None else dataset_steps}
    if not fresh_process:
        return measure_in_this_process(**spec)
    code = ("import json, sys; from dials_lib.analysis.scaling import measure_in_this_process as m; "
            "print(json.dumps(m(**json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"timed run {spec} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measurements_path(preset: str) -> Path:
    """The measurements file of `preset`: runs_dir()/<preset>/scaling/measurements.json."""
    get_preset(preset)
    return runs_dir() / preset / "scaling" / "measurements.json"


def published_measurements_path(preset: str) -> Path:
    """Where `publish_measurements` puts the measurements file of `preset`: records/<preset>/scaling/."""
    get_preset(preset)
    return records_dir() / preset / "scaling" / "measurements.json"


def publish_measurements(preset: str) -> Path | None:
    """Copy the measurements file of `preset` to `records/` (None when there is none yet)."""
    return copy_json(measurements_path(preset), published_measurements_path(preset))


def stored_measurements(preset: str) -> pd.DataFrame | None:
    """The timed runs of `preset` as they are on file (runs/, else the published copy) with the current settings,
    read only (nothing is created or measured); None when neither file holds them."""
    stored = stored_with_settings((measurements_path(preset), published_measurements_path(preset)),
                                  measurement_settings(preset))
    return None if stored is None else pd.DataFrame(stored["rows"])


def measurements(preset: str, measure_missing: bool = True, verbose: bool = True) -> pd.DataFrame:
    """Every timed run of `preset` (both envs, `scaling_sizes`, `MEASURED_RUNS`), measured only if not yet on file.

    Rows are saved (atomically) after each run, so an interrupted call resumes where it stopped. Without a file in
    `runs/`, the published one (`publish_measurements`) is the start. A file made with
    other settings (steps, epochs, data set size) is never overwritten: it raises an error naming the differences.
    """
    path, settings = measurements_path(preset), measurement_settings(preset)
    rows: list[dict[str, Any]] = []
    if not path.exists():  # a fresh clone: start from the published measurements (if any)
        copy_json(published_measurements_path(preset), path)
    if path.exists():
        stored = read_json(path)
        if stored.get("settings") != settings:
            raise ValueError(f"{path} holds measurements made with other settings (stored {stored.get('settings')}, "
                             f"now {settings}); it is left untouched: move or delete it to measure again")
        rows = stored["rows"]
    done = {(r["env"], r["n_agents"], r["simulator"], r["workers"]) for r in rows}
    wanted = [(env, n, sim, w) for env in ENV_NAMES for n in get_preset(preset).scaling_sizes
              for sim, w in MEASURED_RUNS]
    missing = [key for key in wanted if key not in done]
    if missing and not measure_missing:
        raise FileNotFoundError(f"{path} lacks {len(missing)} measurements (e.g. {missing[0]}); run notebook "
                                "07_runtimes (or scaling.measurements) to make them")
    for env, n, sim, w in missing:
        start = time.perf_counter()
        rows.append(measure(env, n, sim, w, preset, fresh_process=settings["fresh_process"]))
        atomic_write_json(path, {"settings": settings, "rows": rows})
        if verbose:
            print(f"measured {env} N={n} {sim} ({w} worker{'s' if w > 1 else ''}) in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    keep = frame.apply(lambda r: (r["env"], r["n_agents"], r["simulator"], r["workers"]) in wanted, axis=1)
    key = ["env", "n_agents", "simulator", "workers"]
    frame = frame.loc[keep, key + sorted(set(frame.columns) - set(key))]  # the same order measured or read back
    return frame.sort_values(key).reset_index(drop=True)


__all__ = ["MEASURED_RUNS", "agents_per_worker", "check_workers", "collected_steps", "measure", "measured_config",
           "measurements", "publish_measurements", "published_measurements_path", "stored_measurements"]

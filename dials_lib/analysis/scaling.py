"""How runtime and memory grow with the number of agents: short timed runs, and their extrapolation.

The paper's Tables 1 and 2 give the hours to train for 4M steps per agent on a 128-CPU machine, Table 3 the peak
memory. We cannot run 4M steps at every size here, so we time a short run and extrapolate.

Measuring: `measure(env, n_agents, simulator, workers, preset)` runs one short training run in a fresh Python
process (so memory readings start clean; the smoke preset, whose numbers mean nothing, saves the interpreter
start-ups and runs them in the calling process): the preset's `scaling_steps` steps per agent in one chunk; for DIALS
one AIP retraining on a GS data set of the preset's `aip_dataset_steps` (the paper's 1e4, fewer only under
smoke) trained for `scaling_aip_epochs` epochs; a one-episode evaluation on the GS at the start and at the end.
`measurements(preset)` does this for both environments, the preset's `scaling_sizes` and the runs of
`MEASURED_RUNS`, and keeps the results in `runs_dir()/<preset>/scaling/measurements.json`.

Extrapolating: a measured run gives costs per unit of work (`StepCosts`): agents training per agent-step on one
worker, data collection per GS step, AIP training per agent, epoch and data-set step, evaluation per episode,
and the rest (checkpoints, records) per chunk boundary. `extrapolate(costs, config, workers)` multiplies them by
the work of any `RunConfig` (its schedule says how many retrainings, evaluations and chunks it has), with the
parallel parts (agents training, AIP training) spread over `workers` processes in whole worker tasks, and the
serial parts (GS data collection, evaluation, GS training) in the main process whatever the number of workers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dials_lib import paper
from dials_lib.envs import check_n_agents, get_spec
from dials_lib.files import atomic_write_json, read_json
from dials_lib.hyperparameters import ENV_NAMES, paper_hyperparameters
from dials_lib.paths import records_dir, runs_dir
from dials_lib.presets import PRESETS, get_preset
from dials_lib.training.run_config import SIMULATORS, RunConfig, config_from_preset
from dials_lib.validation import check_choice, with_fields

MEASURED_RUNS: tuple[tuple[str, int], ...] = (("gs", 1), ("dials", 1), ("dials", 2), ("untrained-dials", 2))
"""(simulator, worker processes) of each timed run: GS is one process; DIALS with 1 and 2 workers."""
PROJECTION_WORKERS: tuple[int, ...] = (1, 2, 16, 128)
"""Worker counts of the wall-time projection (this machine has 2 cores, the paper's had 128)."""
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


def makespan(group_sizes: list[int], workers: int) -> int:
    """Agents on the busiest of `workers` processes when whole groups go to the least-loaded one, largest first."""
    loads = [0] * min(workers, len(group_sizes))
    for size in sorted(group_sizes, reverse=True):
        loads[loads.index(min(loads))] += size
    return max(loads)


def collected_steps(config: RunConfig) -> int:
    """GS steps in one AIP data set of `config` (whole episodes of at least `dataset_steps` steps)."""
    horizon = get_spec(config.env).horizon
    return math.ceil(config.hp.aip.dataset_steps / horizon) * horizon


# ---- measuring ------------------------------------------------------------------------------------------------
def _check_run(env: str, n_agents: int, simulator: str, workers: int) -> None:
    check_choice("env", env, ENV_NAMES)
    check_choice("simulator", simulator, SIMULATORS)
    check_n_agents(n_agents)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
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
    source = measurements_path(preset)
    if not source.exists():
        return None
    return atomic_write_json(published_measurements_path(preset), read_json(source))


def stored_measurements(preset: str) -> pd.DataFrame | None:
    """The timed runs of `preset` as they are on file (runs/, else the published copy) with the current settings,
    read only (nothing is created or measured); None when neither file holds them."""
    for path in (measurements_path(preset), published_measurements_path(preset)):
        if path.exists() and (stored := read_json(path)).get("settings") == measurement_settings(preset):
            return pd.DataFrame(stored["rows"])
    return None


def measurements(preset: str, measure_missing: bool = True, verbose: bool = True) -> pd.DataFrame:
    """Every timed run of `preset` (both envs, `scaling_sizes`, `MEASURED_RUNS`), measured only if not yet on file.

    Rows are saved (atomically) after each run, so an interrupted call resumes where it stopped. Without a file in
    `runs/`, the published one (`publish_measurements`) is the start. A file made with
    other settings (steps, epochs, data set size) is never overwritten: it raises an error naming the differences.
    """
    path, settings = measurements_path(preset), measurement_settings(preset)
    rows: list[dict[str, Any]] = []
    copy = published_measurements_path(preset)
    if not path.exists() and copy.exists():  # a fresh clone: start from the published measurements
        atomic_write_json(path, read_json(copy))
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


# ---- extrapolating --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCosts:
    """Seconds per unit of work, from one timed run; NaN where that run did not do the work."""

    env: str
    """Environment of the timed run."""
    n_agents: int
    """Number of agents of the timed run."""
    gs: bool
    """Whether the run trained on the GS (its training cost is then the whole GS, in one process)."""
    train_s_per_agent_step: float
    """Agents training per agent-step of one process (GS: of the GS run, whose one process holds all agents)."""
    data_s_per_gs_step: float
    """GS data collection per GS step (all agents), in the main process."""
    aip_s_per_agent_epoch_step: float
    """AIP training per agent, per epoch and per data-set GS step, in one worker process."""
    eval_s_per_episode: float
    """GS evaluation per episode, in the main process."""
    other_s_per_boundary: float
    """Everything else (checkpoints, records) per chunk boundary, in the main process."""


def step_costs(row: dict[str, Any] | pd.Series) -> StepCosts:
    """The per-unit costs of one measured run (a row of `measurements`)."""
    n, steps, gs = int(row["n_agents"]), int(row["steps_per_agent"]), row["simulator"] == "gs"
    groups = [int(row["agents_per_worker"])] * (n // int(row["agents_per_worker"]))
    load = n if gs else makespan(groups, int(row["workers"]))  # agents on the busiest process
    retrainings = int(row["retrainings"])
    per_retraining_step = retrainings * int(row["collected_steps"]) if retrainings else math.nan
    parts = sum(row[p] for p in ("agents_training_s", "data_collection_s", "aip_training_s", "evaluation_s"))
    return StepCosts(
        env=row["env"], n_agents=n, gs=gs,
        train_s_per_agent_step=row["agents_training_s"] / (steps * load),
        data_s_per_gs_step=row["data_collection_s"] / per_retraining_step,
        aip_s_per_agent_epoch_step=row["aip_training_s"] / (per_retraining_step * load * int(row["aip_epochs"])),
        eval_s_per_episode=row["evaluation_s"] / (int(row["evaluations"]) * int(row["eval_episodes"])),
        other_s_per_boundary=max(0.0, row["total_s"] - parts) / (int(row["chunks"]) + 1),
    )


def extrapolate(costs: StepCosts, config: RunConfig, workers: int) -> dict[str, float]:
    """Wall time of run `config` on `workers` processes from measured per-unit costs, by part (seconds)."""
    if (costs.env, costs.n_agents) != (config.env, config.n_agents):
        raise ValueError(f"costs of {costs.env} N={costs.n_agents} cannot extrapolate {config.env} "
                         f"N={config.n_agents}")
    if costs.gs != (config.simulator == "gs"):
        raise ValueError(f"costs measured on {'the GS' if costs.gs else 'DIALS'} cannot extrapolate simulator "
                         f"{config.simulator!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
    schedule = config.schedule()
    retrainings = sum(schedule.retrain)
    if retrainings and math.isnan(costs.data_s_per_gs_step):
        raise ValueError("these costs come from a run without AIP retraining; a DIALS run needs a DIALS measurement")
    load = config.n_agents if costs.gs else makespan([len(g) for g in config.groups()], workers)
    gs_steps = collected_steps(config)
    parts = {
        "agents_training_s": costs.train_s_per_agent_step * schedule.steps_per_agent * load,
        "data_collection_s": retrainings * costs.data_s_per_gs_step * gs_steps if retrainings else 0.0,
        "aip_training_s": (retrainings * costs.aip_s_per_agent_epoch_step * load * config.hp.aip.epochs * gs_steps
                           if retrainings else 0.0),
        "evaluation_s": sum(schedule.evaluate) * config.eval_episodes * costs.eval_s_per_episode,
        "other_s": (schedule.n_chunks + 1) * costs.other_s_per_boundary,
    }
    parts["total_s"] = sum(parts.values())
    return {**parts, "retrainings": retrainings, "evaluations": sum(schedule.evaluate),
            "steps_per_agent": schedule.steps_per_agent}


def paper_protocol_configs(env: str, n_agents: int) -> dict[str, RunConfig]:
    """The runs of the paper's Tables 1 and 2 (4M steps, F = 100K..4M, GS, untrained-DIALS), labelled as there."""
    budget = PRESETS["paper"].budget(env)
    common = dict(n_agents=n_agents, total_timesteps=paper_hyperparameters(env).total_timesteps,
                  eval_every=budget.eval_every, eval_episodes=budget.eval_episodes,
                  agents_per_worker=agents_per_worker(n_agents))
    configs = {"GS": RunConfig(env, simulator="gs", **common)}
    configs.update({f"DIALS F={label}": RunConfig(env, simulator="dials", retrain_every=f, **common)
                    for label, f in paper.F_STEPS.items()})
    configs["untrained-DIALS"] = RunConfig(env, simulator="untrained-dials", **common)
    return configs


def preset_configs(preset: str, env: str, n_agents: int) -> dict[str, RunConfig]:
    """The runs of `preset`'s own training budget at `n_agents` (its F), labelled like the paper's tables."""
    f = paper_hyperparameters(env).retrain_every
    return {"GS": config_from_preset(preset, env, "gs", n_agents=n_agents),
            f"DIALS F={f:,}": config_from_preset(preset, env, "dials", n_agents=n_agents),
            "untrained-DIALS": config_from_preset(preset, env, "untrained-dials", n_agents=n_agents)}


def _costs_by_run(frame: pd.DataFrame) -> dict[tuple[str, int, str], StepCosts]:
    # the GS run for GS, the 1-worker DIALS run (one process's throughput) for DIALS and untrained-DIALS
    out = {}
    for _, row in frame.iterrows():
        if row["simulator"] == "gs" or (row["simulator"] == "dials" and row["workers"] == 1):
            out[(row["env"], int(row["n_agents"]), "gs" if row["simulator"] == "gs" else "dials")] = step_costs(row)
    return out


def projections(frame: pd.DataFrame, preset: str, workers: tuple[int, ...] = PROJECTION_WORKERS) -> pd.DataFrame:
    """Projected wall time of the full budgets (the preset's and the paper's protocol) on each worker count."""
    costs, rows = _costs_by_run(frame), []
    for env, n in sorted({(e, int(k)) for e, k in zip(frame["env"], frame["n_agents"], strict=True)}):
        for budget, configs in ((preset, preset_configs(preset, env, n)),
                                ("paper protocol", paper_protocol_configs(env, n))):
            for label, config in configs.items():
                kind = "gs" if config.simulator == "gs" else "dials"
                if (env, n, kind) not in costs:
                    continue
                for p in workers:
                    part = extrapolate(costs[(env, n, kind)], config, p)
                    rows.append({"env": env, "n_agents": n, "budget": budget, "simulator": label, "workers": p,
                                 **part, "measured_steps": int(frame["steps_per_agent"].iloc[0])})
    return pd.DataFrame(rows)


def training_runs_runtime(frame: pd.DataFrame, preset: str, workers: int) -> pd.DataFrame:
    """Projected wall time of every training run of `preset` (notebooks 04-06) on `workers` processes.

    NaN for runs whose size was not measured (`measured` False)."""
    from dials_lib.analysis.plans import ablation_configs, comparison_configs

    costs, configs = _costs_by_run(frame), {}
    for env in ENV_NAMES:
        for config in comparison_configs(preset, env) + ablation_configs(preset, env):
            configs[config.name()] = config  # the ablation reuses the comparison's DIALS runs at the paper's F
    rows = []
    for name, config in configs.items():
        key = (config.env, config.n_agents, "gs" if config.simulator == "gs" else "dials")
        total = extrapolate(costs[key], config, workers)["total_s"] if key in costs else math.nan
        rows.append({"run": name, "env": config.env, "n_agents": config.n_agents, "simulator": config.simulator,
                     "measured": key in costs, "total_s": total})
    return pd.DataFrame(rows)


def projection_check(frame: pd.DataFrame) -> pd.DataFrame:
    """Each timed DIALS run against its projection from the 1-worker run's costs (ratio predicted/measured)."""
    costs, rows = _costs_by_run(frame), []
    for _, row in frame[frame["simulator"] != "gs"].iterrows():
        key = (row["env"], int(row["n_agents"]), "dials")
        if key not in costs:
            continue
        config = measured_config(row["env"], int(row["n_agents"]), row["simulator"], int(row["workers"]),
                                 int(row["steps_per_agent"]), int(row["aip_epochs"]), int(row["dataset_steps"]))
        predicted = extrapolate(costs[key], config, int(row["workers"]))
        out = {"env": row["env"], "n_agents": int(row["n_agents"]), "simulator": row["simulator"],
               "workers": int(row["workers"]), "worker_core_share": row["worker_core_share"]}
        for part in ("agents_training_s", "aip_training_s", "total_s"):
            out[f"{part} measured"] = row[part]
            out[f"{part} predicted"] = predicted[part]
            out[f"{part} ratio"] = predicted[part] / row[part] if row[part] > 0 else math.nan
        rows.append(out)
    return pd.DataFrame(rows)


__all__ = ["MEASURED_RUNS", "PROJECTION_WORKERS", "StepCosts", "agents_per_worker", "extrapolate",
           "makespan", "measure", "measurements", "paper_protocol_configs", "preset_configs", "projection_check",
           "projections", "publish_measurements", "published_measurements_path", "step_costs",
           "stored_measurements", "training_runs_runtime"]

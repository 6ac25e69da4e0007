"""The paper's training experiments on a preset's budget: which runs, running them, and reading their records.

The notebooks 04-06 and 09 share these runs. `comparison_configs` is the main experiment of the paper's Figures 5
and 6 (GS, DIALS and untrained-DIALS for each size and seed); `ablation_configs` is the F ablation of Figures 7
and 8 (DIALS with the paper's F = 100K, 500K, 1M and 4M steps, those that retrain at different steps within the
preset's run). Run directories live under `runs/<preset>/`, so a notebook that finds a finished run reads it back
instead of training again (and a run interrupted half-way resumes from its last checkpoint).

Running a plan (`run_experiments`): runs that differ only in seed train as one stacked seed batch
(`dials_lib.training.runner.train_batch`), and the batches that are not finished yet are spread over the machine's
cores with joblib (`parallel.map_tasks`: loky, this process and one worker process per further core, each running
its batch's worker calls itself, torch single-threaded; or the Dask cluster of `parallel_config`). Every run's
numbers are those it gets alone, so they depend neither on the batching nor on the schedule; the records are read
back from the run directories in the plan's order. Run times of runs trained this way are the shared wall time of
their batch, with other batches running beside it (`runtime_frame` divides by the batch size); the timing
experiments (`dials_lib.analysis.scaling`) run one run at a time.

The records come back as long frames: one row per evaluation of a run (`run_experiments`) or one row per run
(`runtime_frame`, `final_evaluations`), each starting with the RUN_COLUMNS that say which run it is.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import cpu_count

from dials_lib import paper
from dials_lib.analysis.published import has_records, read_records
from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.paths import runs_dir
from dials_lib.presets import get_preset
from dials_lib.training.parallel import calls_here, map_tasks
from dials_lib.training.process_tree import end_with_parent
from dials_lib.training.run_config import SIMULATORS, RunConfig, config_from_preset, default_groups
from dials_lib.training.runner import train_batch
from dials_lib.validation import check_choice, check_int

RUN_COLUMNS: tuple[str, ...] = ("env", "n_agents", "simulator", "retrain_every", "f_fraction", "seed")
"""Columns that identify a run in the frames below (F in steps and as a fraction of the paper's 4M steps)."""


def preset_runs_dir(preset: str) -> Path:
    """Folder of the run directories of one preset: `runs/<preset>/`."""
    get_preset(preset)
    return runs_dir() / preset


def _config(preset: str, env: str, simulator: str, n_agents: int, seed: int, **changes: object) -> RunConfig:
    """The preset's run of `simulator` at one size and seed, with its run directory under `runs/<preset>/`."""
    config = config_from_preset(preset, env, simulator, n_agents=n_agents, seed=seed, **changes)
    return dataclasses.replace(config, run_dir=str(preset_runs_dir(preset) / config.name()))


def run_seeds(preset: str, env: str, n_seeds: int | None = None) -> list[int]:
    """Seeds of a preset's runs: preset.seed, preset.seed + 1, ... (`n_seeds` of them, default the budget's)."""
    p = get_preset(preset)
    count = p.budget(env).n_seeds if n_seeds is None else n_seeds
    return [p.seed + i for i in range(count)]


def comparison_configs(preset: str, env: str, simulators: Iterable[str] = SIMULATORS) -> list[RunConfig]:
    """The paper's main comparison (Figures 5, 6): every size, simulator and seed of the preset's budget."""
    simulators = list(simulators)
    for simulator in simulators:
        check_choice("simulator", simulator, SIMULATORS)
    budget = get_preset(preset).budget(env)
    return [_config(preset, env, simulator, n, seed)
            for n in budget.sizes for seed in run_seeds(preset, env) for simulator in simulators]


def ablation_f_values(preset: str, env: str) -> dict[float, int]:
    """F in steps per agent for each fraction (of the paper's 4M steps) of the preset's F ablation."""
    return get_preset(preset).budget(env).ablation_f(paper_hyperparameters(env).total_timesteps)


def ablation_configs(preset: str, env: str) -> list[RunConfig]:
    """The F ablation (Figures 7, 8): DIALS at the ablation size for each F and the first seeds."""
    budget = get_preset(preset).budget(env)
    seeds = run_seeds(preset, env, budget.ablation_seeds)
    return [_config(preset, env, "dials", budget.ablation_size, seed, retrain_every=f)
            for f in ablation_f_values(preset, env).values() for seed in seeds]


def run_identity(config: RunConfig) -> dict[str, object]:
    """The RUN_COLUMNS of one run (F is NaN for the simulators that never retrain an AIP; `f_fraction` is F as a
    fraction of the paper's 4M steps, as the paper labels it)."""
    dials = config.simulator == "dials"
    paper_total = paper_hyperparameters(config.env).total_timesteps
    return {"env": config.env, "n_agents": config.n_agents, "simulator": config.simulator,
            "retrain_every": config.retrain_every if dials else np.nan,
            "f_fraction": round(config.retrain_every / paper_total, 3) if dials and config.retrain_every else np.nan,
            "seed": config.seed}


RELATIVE_COST = {"gs": 1.0, "untrained-dials": 1.5, "dials": 2.5}
"""Rough cost of an agent-step by simulator at 4 agents on 2 cores (an IALS step adds an AIP forward pass; DIALS also
collects data and trains AIPs), to start the costliest batches first."""


MAX_STACKED_AGENTS = 32
"""The most agents `run_experiments` stacks into the one PPO group of a seed batch trained in one process; a batch
with more trains in parts of whole seeds (`stacked_parts`), side by side. Stacking saves Python overhead per call: 3
or 8 seeds of 4 agents (groups of 12 and 32) train faster per agent-step than one (`benchmarks/results/
training_experiment.md`). But the group's tensors grow with it: 3 seeds of 25 or 100 agents stacked cost 6% to 29%
more CPU per agent-step than each seed alone in 7 of 8 cases (traffic GS at 25 agents saves 6%;
`benchmarks/results/stacked_groups.md`), and parts of a batch can train on more than one core."""


def dials_agents_per_worker(n_agents: int, n_seeds: int, n_workers: int) -> int | None:
    """Agents per seed in each worker task of a DIALS seed batch of `n_seeds` stacked seeds of `n_agents` agents: of
    the run's default split over `n_workers` groups (None) and the splits into equal groups of at least two agents
    and at least `n_workers` tasks, the one whose tasks' stacked agents come nearest `MAX_STACKED_AGENTS` (by ratio;
    on a tie the default, then the larger groups). A task's agents train in one batched PPO loop on their IALS and
    their AIPs in one stacked training: 3 seeds of 100 agents in 10 tasks of 30 take x0.78 the CPU per agent-step of 2
    tasks of 150, and a whole batch x0.83 (traffic) and x0.79 (warehouse) its worker CPU, the cheapest of the splits
    measured (`benchmarks/results/dials_groups.md`). The grouping does not change the numbers (`RunConfig.groups`)."""
    default = len(default_groups(n_agents, n_workers)[0])
    # the default first and the divisors from the largest down: min keeps the first of equally near sizes
    sizes = [default, *(d for d in range(n_agents // max(1, n_workers), 1, -1) if n_agents % d == 0)]
    best = min(sizes, key=lambda size: abs(float(np.log(n_seeds * size / MAX_STACKED_AGENTS))))
    return None if best == default else best


def seed_batches(configs: Iterable[RunConfig]) -> list[list[RunConfig]]:
    """The runs grouped into batches that differ only in seed (in order of first appearance)."""
    batches: dict[RunConfig, list[RunConfig]] = {}
    for config in configs:
        batches.setdefault(dataclasses.replace(config, seed=0, run_dir=None), []).append(config)
    return list(batches.values())


def stacked_parts(batch: list[RunConfig]) -> list[list[RunConfig]]:
    """A seed batch in as few parts of consecutive seeds as keep every part's stacked agents within
    `MAX_STACKED_AGENTS` (a part holds at least one seed), their sizes as even as can be; one part when it fits."""
    per_part = max(1, MAX_STACKED_AGENTS // batch[0].n_agents)
    n_parts = -(-len(batch) // per_part)
    ends = [round(len(batch) * (i + 1) / n_parts) for i in range(n_parts)]
    return [batch[start:end] for start, end in zip([0, *ends], ends, strict=False)]


def _still_to_train(batch: list[RunConfig]) -> list[RunConfig]:
    """The runs of a batch that still need training when its turn comes: a run planned for training may have become
    readable meanwhile (finished by another process, or a longer run of the same settings, whose prefix it is, has
    finished), and is then read, not trained again."""
    return [config for config in batch if not has_records(config)]


def _train_batch_here(batch: list[RunConfig], progress: bool | None = False) -> list[str]:
    """The runs of a seed batch still to train (`_still_to_train`), trained in this process; their run directories
    (none when every run has become readable)."""
    batch = _still_to_train(batch)
    return [str(result.run_dir) for result in train_batch(batch, progress=progress)] if batch else []


def _train_batch_quietly(batch: list[RunConfig]) -> list[str]:
    """One seed batch in a worker process of `run_experiments`: its calls run here, no progress bar."""
    with calls_here():
        return _train_batch_here(batch)


def _spreads_over_workers(batch: list[RunConfig]) -> bool:
    """Whether the runs of a batch spread their groups of agents over worker processes themselves: DIALS, whose AIP
    retraining is the longest part of a run and splits well over the cores."""
    config = batch[0]
    return config.simulator == "dials" and config.n_workers > 1 and len(config.groups()) > 1


def _in_dials_groups(batch: list[RunConfig]) -> list[RunConfig]:
    """A DIALS batch that spreads over the workers, its agents split as `dials_agents_per_worker` says (unless the
    runs set their own `agents_per_worker`)."""
    config = batch[0]
    if config.agents_per_worker is not None:
        return batch
    size = dials_agents_per_worker(config.n_agents, len(batch), config.n_workers)
    return batch if size is None else [dataclasses.replace(c, agents_per_worker=size) for c in batch]


def _as_one_group(batch: list[RunConfig]) -> list[RunConfig]:
    """The batch with each run's agents in one group (one worker), for a batch trained in one process: the most
    agents per stacked call, and the same numbers (the grouping does not change them; see `RunConfig.groups`)."""
    if batch[0].agents_per_worker is not None:
        return batch
    return [dataclasses.replace(config, n_workers=1) for config in batch]


def _train_side_by_side(todo: list[list[RunConfig]], n_processes: int, log: Callable[[str], None] | None) -> None:
    """The batches `todo` on `n_processes` cores (see `run_experiments`).

    The batches trained as one group wait in one queue. `n_processes - 1` pool processes take them one at a time,
    and so does this process once its DIALS batches are done, so that no core idles while the queue holds work."""
    def report(batch: list[RunConfig], run_dirs: list[str], seconds: float, where: str) -> None:
        if log is None:
            return
        if run_dirs:
            log(f"trained {', '.join(Path(d).name for d in run_dirs)} in {seconds:.0f} s ({where})")
        else:
            log(f"{', '.join(c.name() for c in batch)}: read, not trained (finished elsewhere meanwhile, or a "
                "longer run's prefix)")

    def train(how: Callable[[list[RunConfig]], list[str]], batch: list[RunConfig], where: str) -> None:
        start = time.perf_counter()
        report(batch, how(batch), time.perf_counter() - start, where)

    spreading = [batch for batch in todo if _spreads_over_workers(batch)]
    queued = deque(_as_one_group(batch) for batch in todo if not _spreads_over_workers(batch))
    if not spreading:  # this process trains batches too, beside n_processes - 1 loky workers
        batches = list(queued)  # map_tasks lets go of its own list's entries as it hands them out
        for i, task in map_tasks(_train_batch_quietly, list(batches), n_processes):
            report(batches[i], task.value, task.seconds,
                   "this process" if task.pid == os.getpid() else "a worker process")
        return
    from joblib.externals.loky import ProcessPoolExecutor

    lock, stop, errors = threading.Lock(), threading.Event(), []

    def take() -> list[RunConfig] | None:
        with lock:
            return None if stop.is_set() or not queued else queued.popleft()

    def feed(pool: Any) -> None:  # one pool slot: hands it the next queued batch until none is left
        try:
            while (batch := take()) is not None:
                train(lambda b: pool.submit(_train_batch_quietly, b).result(), batch, "a pool process")
        except BaseException as err:  # noqa: BLE001 - handed to this process's main thread, which raises it
            errors.append(err)
            stop.set()

    # a pool of its own: loky's reusable executor is the one the DIALS batches here hand their tasks to; its
    # processes end with this one, however this one ends
    n_slots = min(max(1, n_processes - 1), len(queued))
    pool = ProcessPoolExecutor(max_workers=n_slots, initializer=end_with_parent, initargs=(os.getpid(),)) \
        if queued else None
    feeders = [threading.Thread(target=feed, args=(pool,), daemon=True, name="dials-feed") for _ in range(n_slots)]
    finished = False
    try:
        for feeder in feeders:
            feeder.start()
        for batch in spreading:
            train(_train_batch_here, batch, "this process and its workers")
        while (batch := take()) is not None:  # the DIALS batches are done: this process joins the pool's
            train(_train_batch_quietly, batch, "this process")
        for feeder in feeders:
            while feeder.is_alive():  # short waits: Ctrl-C reaches this thread between them
                feeder.join(timeout=0.5)
        if errors:
            raise errors[0]
        finished = True
    finally:
        stop.set()  # on an error or Ctrl-C: no further batch starts, and the pool's stop at once (they resume)
        if pool is not None:
            pool.shutdown(wait=finished, kill_workers=not finished)


def run_experiments(configs: Iterable[RunConfig], progress: bool | None = None,
                    log: Callable[[str], None] | None = print, n_processes: int | None = None) -> pd.DataFrame:
    """Train (or read back) every run; one row per evaluation of every run, with the RUN_COLUMNS in front.

    Seed batches that are not finished train side by side on `n_processes` processes (default: one per core):
    DIALS batches with several groups train here, one after another, spreading their groups (and so their AIP
    retraining) over worker processes, in groups of `dials_agents_per_worker` agents per seed, while the others (GS
    and untrained-DIALS) train in `n_processes - 1` further processes, each batch as one group of all its runs'
    agents (or in `stacked_parts`, when they are more than `MAX_STACKED_AGENTS`), so that no core idles while a long
    DIALS batch finishes; once the DIALS batches are done, this process takes the other batches still waiting too.
    With one process, or one batch to train, every batch trains here, one after another, with a progress bar. A
    batch's runs that have become readable by its turn (`_still_to_train`: e.g. a longer run of the same settings
    finished meanwhile, in this plan or another) are read, not trained."""
    configs = list(configs)
    todo = [part for batch in seed_batches(configs)
            for part in ([_in_dials_groups(batch)] if _spreads_over_workers(batch) else stacked_parts(batch))
            if _still_to_train(part)]
    # the costliest batches first, so that the last to finish are short ones
    todo.sort(key=lambda b: -len(b) * b[0].n_agents * (b[0].total_timesteps or 0) * RELATIVE_COST[b[0].simulator])
    n_processes = cpu_count() if n_processes is None else check_int("n_processes", n_processes, 1)
    if n_processes < 2 or len(todo) < 2:
        for batch in todo:
            _train_batch_here(batch, progress)
    else:
        _train_side_by_side(todo, n_processes, log)
    frames = []
    for config in configs:
        records = read_records(config)
        frame = records["metrics"].copy()
        for key, value in reversed(run_identity(config).items()):
            frame.insert(0, key, value)
        frame["run_dir"] = str(config.directory())
        frames.append(frame)
        if log is not None:
            last, total = frame.iloc[-1], records["runtime"]["total_s"]
            log(f"{config.name()}: final return {last['mean_return']:.2f} after {total:.0f} s")
    return pd.concat(frames, ignore_index=True)


def runtime_frame(configs: Iterable[RunConfig]) -> pd.DataFrame:
    """Runtime breakdown (seconds) and peak memory (MiB) of finished runs, one row per run. A run of a seed batch
    is given its share of the batch's seconds (divided by `stacked_runs`, the number of runs in the batch)."""
    rows = []
    for config in configs:
        records = read_records(config)
        memory = {k: v for k, v in records["memory"].items() if isinstance(v, int | float)}
        runtime = dict(records["runtime"])
        share = runtime.get("stacked_runs", 1)
        runtime = {k: v / share if k.endswith("_s") else v for k, v in runtime.items()}
        rows.append({**run_identity(config), **runtime, **memory})
    return pd.DataFrame(rows)


def final_evaluations(metrics: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of every run (one row per run)."""
    keys = list(RUN_COLUMNS)
    last = metrics.groupby(keys, dropna=False)["timestep"].transform("max")
    return metrics[metrics["timestep"] == last].reset_index(drop=True)


def first_evaluations(metrics: pd.DataFrame) -> pd.DataFrame:
    """The evaluation before training of every run (one row per run)."""
    return metrics[metrics["timestep"] == 0].reset_index(drop=True)


def runs_of(frame: pd.DataFrame, configs: Iterable[RunConfig]) -> pd.DataFrame:
    """The rows of `frame` that belong to one of `configs` (matched on the RUN_COLUMNS other than F in steps)."""
    keys = ["env", "n_agents", "simulator", "f_fraction", "seed"]
    wanted = {tuple(run_identity(c)[k] for k in keys) for c in configs}
    mask = [any(_same_run(row, w) for w in wanted) for row in frame[keys].itertuples(index=False)]
    return frame[mask]


def _same_run(row: tuple, wanted: tuple) -> bool:
    """Whether two run keys are equal, NaN (no F) equal to NaN."""
    return all(a == b or (pd.isna(a) and pd.isna(b)) for a, b in zip(row, wanted, strict=True))


def seed_returns(metrics: pd.DataFrame, env: str, simulator: str, n_agents: int, first: bool) -> np.ndarray:
    """Per seed (in seed order), the mean return of the first (step 0) or last evaluation of `env`'s `simulator` runs
    at `n_agents` agents in `metrics` (DIALS at the paper's F only: a frame may hold the F ablation's runs too)."""
    if metrics.empty:
        return np.zeros(0)
    runs = metrics[(metrics["env"] == env) & (metrics["simulator"] == simulator) & (metrics["n_agents"] == n_agents)]
    if simulator == "dials":
        runs = runs[runs["retrain_every"] == paper_hyperparameters(env).retrain_every]
    if runs.empty:
        return np.zeros(0)
    pick = first_evaluations(runs) if first else final_evaluations(runs)
    return pick.sort_values("seed")["mean_return"].to_numpy(dtype=float)


def main_comparison_runs(finals: pd.DataFrame) -> pd.DataFrame:
    """The runs of the main comparison: every GS and untrained-DIALS run, and DIALS at the paper's main F only."""
    main_f = finals["env"].map(paper.main_f_fraction)
    return finals[(finals["simulator"] != "dials") | (finals["f_fraction"] == main_f)]


__all__ = [
    "RUN_COLUMNS",
    "ablation_configs",
    "ablation_f_values",
    "comparison_configs",
    "dials_agents_per_worker",
    "final_evaluations",
    "first_evaluations",
    "main_comparison_runs",
    "preset_runs_dir",
    "run_experiments",
    "run_identity",
    "run_seeds",
    "seed_returns",
    "runs_of",
    "runtime_frame",
    "seed_batches",
]

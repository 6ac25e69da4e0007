"""The paper's training experiments on a preset's budget: which runs, running them, and the paper's statistics.

The notebooks 04-06 and 09 share these runs. `comparison_configs` is the main experiment of the paper's Figures 5
and 6 (GS, DIALS and untrained-DIALS for each size and seed); `ablation_configs` is the F ablation of Figures 7
and 8 (DIALS with F = 2.5%, 12.5%, 25% and 100% of the run, the paper's 100K, 500K, 1M and 4M of 4M steps). Run
directories live under `runs/<preset>/`, so a notebook that finds a finished run reads it back instead of training
again (and a run interrupted half-way resumes from its last checkpoint).

Statistics follow the paper: the mean and standard error over seeds of the average return per agent. For the
claims, `bootstrap_ci` gives a percentile bootstrap confidence interval over seeds (seeds resampled with
replacement, each group on its own), with a fixed random stream so the same runs always give the same interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from dials_lib.config import check_choice, get_preset, paper_hyperparameters
from dials_lib.paths import runs_dir
from dials_lib.run_config import SIMULATORS, RunConfig, config_from_preset
from dials_lib.runner import load_run, train

RUN_COLUMNS: tuple[str, ...] = ("env", "n_agents", "simulator", "retrain_every", "f_fraction", "seed")
"""Columns that identify a run in the frames below (F is given in steps and as a fraction of the run)."""


def preset_runs_dir(preset: str) -> Path:
    """Folder of the run directories of one preset: `runs/<preset>/`."""
    get_preset(preset)
    return runs_dir() / preset


def _config(preset: str, env: str, simulator: str, n_agents: int, seed: int, **changes: object) -> RunConfig:
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
    """F in steps per agent for each fraction of the F ablation, on the preset's budget."""
    budget = get_preset(preset).budget(env)
    paper_total = paper_hyperparameters(env).total_timesteps
    return {fraction: budget.retrain_every(round(fraction * paper_total), paper_total)
            for fraction in budget.f_fractions}


def ablation_configs(preset: str, env: str) -> list[RunConfig]:
    """The F ablation (Figures 7, 8): DIALS at the ablation size for each F fraction and the first seeds."""
    budget = get_preset(preset).budget(env)
    seeds = run_seeds(preset, env, budget.ablation_seeds)
    return [_config(preset, env, "dials", budget.ablation_size, seed, retrain_every=f)
            for f in ablation_f_values(preset, env).values() for seed in seeds]


def run_identity(config: RunConfig) -> dict[str, object]:
    """The RUN_COLUMNS of one run (F is NaN for the simulators that never retrain an AIP)."""
    dials = config.simulator == "dials"
    total = config.total_timesteps or 1
    return {"env": config.env, "n_agents": config.n_agents, "simulator": config.simulator,
            "retrain_every": config.retrain_every if dials else np.nan,
            "f_fraction": round(config.retrain_every / total, 3) if dials and config.retrain_every else np.nan,
            "seed": config.seed}


def run_experiments(configs: Iterable[RunConfig], progress: bool | None = None,
                    log: Callable[[str], None] | None = print) -> pd.DataFrame:
    """Train (or read back) every run; one row per evaluation of every run, with the RUN_COLUMNS in front."""
    frames = []
    for config in configs:
        result = train(config, progress)
        frame = result.metrics.copy()
        for key, value in reversed(run_identity(config).items()):
            frame.insert(0, key, value)
        frame["run_dir"] = str(result.run_dir)
        frames.append(frame)
        if log is not None:
            last = frame.iloc[-1]
            log(f"{config.name()}: final return {last['mean_return']:.2f} after {result.runtime['total_s']:.0f} s")
    return pd.concat(frames, ignore_index=True)


def runtime_frame(configs: Iterable[RunConfig]) -> pd.DataFrame:
    """Runtime breakdown (seconds) and peak memory (MiB) of finished runs, one row per run."""
    rows = []
    for config in configs:
        records = load_run(config.directory())
        memory = {k: v for k, v in records["memory"].items() if isinstance(v, int | float)}
        rows.append({**run_identity(config), **records["runtime"], **memory})
    return pd.DataFrame(rows)


def final_evaluations(metrics: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of every run (one row per run)."""
    keys = list(RUN_COLUMNS)
    last = metrics.groupby(keys, dropna=False)["timestep"].transform("max")
    return metrics[metrics["timestep"] == last].reset_index(drop=True)


def mean_and_sem(frame: pd.DataFrame, by: list[str], column: str = "mean_return") -> pd.DataFrame:
    """Mean, standard error (ddof 1) and number of seeds of `column` in each group of `by`."""
    grouped = frame.groupby(by, dropna=False)[column]
    out = grouped.agg(mean="mean", sem="sem", seeds="count").reset_index()
    return out


def _resampled_means(groups: list[np.ndarray], confidence: float, n_resamples: int, seed: int, what: str
                     ) -> list[np.ndarray]:
    """Bootstrap means of each group, resampled with replacement on its own, in order from one fixed stream."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if any(g.size == 0 for g in groups):
        raise ValueError(f"{what} needs at least one sample in each group")
    rng = np.random.default_rng(seed)
    return [rng.choice(g, size=(n_resamples, g.size)).mean(axis=1) for g in groups]


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    samples: Iterable[float] | np.ndarray,
    baseline: Iterable[float] | np.ndarray | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of `samples` (minus the mean of `baseline`, if given) and its percentile bootstrap interval.

    Each group is resampled with replacement on its own (seeds are independent runs); the random stream is fixed
    by `seed`, so the same numbers always give the same interval. Returns (estimate, low, high).
    """
    groups = [np.asarray(list(samples), dtype=float)]
    if baseline is not None:
        groups.append(np.asarray(list(baseline), dtype=float))
    means = _resampled_means(groups, confidence, n_resamples, seed, "bootstrap_ci")
    if baseline is None:
        return (float(groups[0].mean()), *_percentile_interval(means[0], confidence))
    estimate = groups[0].mean() - groups[1].mean()
    return (float(estimate), *_percentile_interval(means[0] - means[1], confidence))


def bootstrap_ratio_ci(
    samples: Iterable[float] | np.ndarray,
    baseline: Iterable[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio of means (samples over baseline) with a percentile bootstrap interval, groups resampled apart."""
    a, b = np.asarray(list(samples), dtype=float), np.asarray(list(baseline), dtype=float)
    means = _resampled_means([a, b], confidence, n_resamples, seed, "bootstrap_ratio_ci")
    return (float(a.mean() / b.mean()), *_percentile_interval(means[0] / means[1], confidence))


__all__ = [
    "RUN_COLUMNS",
    "ablation_configs",
    "ablation_f_values",
    "bootstrap_ci",
    "bootstrap_ratio_ci",
    "comparison_configs",
    "final_evaluations",
    "mean_and_sem",
    "preset_runs_dir",
    "run_experiments",
    "run_identity",
    "run_seeds",
    "runtime_frame",
]

"""Extrapolating the timed runs of `scaling` to whole training runs: the wall time of any budget on any number of
worker processes.

A measured run gives costs per unit of work (`StepCosts`): agents training per agent-step on one worker, data
collection per GS step, AIP training per agent, epoch and data-set step, evaluation per episode, and the rest
(checkpoints, records) per chunk boundary. `extrapolate(costs, config, workers)` multiplies them by the work of any
`RunConfig` (its schedule says how many retrainings, evaluations and chunks it has), with the parallel parts (agents
training, AIP training) spread over `workers` processes in whole worker tasks, and the serial parts (GS data
collection, evaluation, GS training) in the main process whatever the number of workers.

`projections` does this for the preset's own budget and for the paper's protocol (Tables 1 and 2: 4M steps, each F),
`training_runs_runtime` for every training run of a preset, and `projection_check` tests the model on the timed runs
themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dials_lib import paper
from dials_lib.analysis.scaling import agents_per_worker, check_workers, collected_steps, measured_config
from dials_lib.hyperparameters import ENV_NAMES, paper_hyperparameters
from dials_lib.presets import PRESETS
from dials_lib.training.run_config import RunConfig, config_from_preset

PROJECTION_WORKERS: tuple[int, ...] = (1, 2, 16, 128)
"""Worker counts of the wall-time projection (this machine has 2 cores, the paper's had 128)."""


def makespan(group_sizes: list[int], workers: int) -> int:
    """Agents on the busiest of `workers` processes when whole groups go to the least-loaded one, largest first."""
    loads = [0] * min(workers, len(group_sizes))
    for size in sorted(group_sizes, reverse=True):
        loads[loads.index(min(loads))] += size
    return max(loads)


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
    check_workers(workers)
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


__all__ = ["PROJECTION_WORKERS", "StepCosts", "extrapolate", "makespan", "paper_protocol_configs",
           "preset_configs", "projection_check", "projections", "step_costs", "training_runs_runtime"]

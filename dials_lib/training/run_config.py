"""What one training run does: `RunConfig` (validated, with defaults from the paper) and its derived `Schedule`.

A run trains `n_agents` agents of one environment for `total_timesteps` steps each, on one of three simulators:
'gs' (all agents together on the global simulator), 'dials' (each agent on its influence-augmented local
simulator, AIPs retrained on fresh GS data every F = `retrain_every` steps) or 'untrained-dials' (the same with
AIPs that are never trained).

Everything is scheduled in chunks. A chunk is `chunk_steps` steps per agent, the unit of work one worker call
runs and the unit of checkpointing; it must be a multiple of PPO's `buffer_size`, so a chunk always ends right
after a PPO update (the rollout buffer is empty at every chunk boundary). The default chunk is the smallest
multiple of both the horizon and `buffer_size` that is at least 10,000 steps (traffic 19,200, warehouse 12,800).
Episodes start afresh at every chunk boundary; if `chunk_steps` is not a multiple of the horizon, the episode in
progress at a chunk's end is cut there and treated as a truncation (bootstrapped from the value of the next
observation, not terminal). The last chunk is the remainder of `total_timesteps`, rounded up to whole PPO buffers
(so `Schedule.steps_per_agent` may exceed `total_timesteps` by less than one buffer).

A shorter run is a prefix of the paper's run: its learning rate and clip decay over `anneal_timesteps` (default the
paper's 4M steps) and its F is in steps, so with the paper's F a 1M-step run trains exactly like the first quarter
of a 4M-step run.

Rounding of F and the evaluation interval: both take effect at chunk boundaries. The AIPs are retrained at the
start (boundary 0) and at the first boundary at or after every multiple of F; evaluations happen at boundary 0,
at the first boundary at or after every multiple of `eval_every`, and at the end. With F and `eval_every`
multiples of `chunk_steps`, nothing is rounded.

Agents are split into groups of consecutive agent ids, one group per worker task: `agents_per_worker` agents per
group (it must divide `n_agents`; 1 is the paper's one-process-per-agent layout), or, if None, the agents split as
evenly as possible over `n_workers` groups of at least two agents. Results depend neither on the groups (as long as
each holds at least two agents: docs/design.md, "Randomness", says why) nor on how many worker processes run them,
so a run may resume with another `n_workers`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dials_lib.envs import check_n_agents, get_spec
from dials_lib.hyperparameters import TRAINABLE_ENVS, EnvHyperparameters, paper_hyperparameters
from dials_lib.presets import get_preset
from dials_lib.seeding import derived_seed  # re-exported: its home is dials_lib.seeding
from dials_lib.validation import check_choice, check_int

SIMULATORS: tuple[str, ...] = ("gs", "dials", "untrained-dials")
MAX_STEPS = 1_000_000_000
"""Most steps per agent a run (or its F, chunk or evaluation interval) may take: 250 times the paper's 4M."""
MAX_AGENTS = 2_500
"""Most agents a run may train (a 50 x 50 grid, 25 times the paper's largest); a run holds every agent's networks."""
MAX_WORKERS = 256
"""Most worker processes a run may start (each holds a share of the agents; more than the groups do nothing)."""
MAX_SEED = 2**63 - 1
"""Largest run seed (seeds are hashed into 64-bit per-agent streams)."""
MAX_EVALUATION_BYTES = 4 * 2**30
"""Most memory an evaluation's GS episodes may take (they are held at once, with every agent's d-sets)."""
MIN_DEFAULT_CHUNK = 10_000
"""A default chunk has at least this many steps per agent, so each worker call outweighs its overhead."""
RESUMABLE_FIELDS: tuple[str, ...] = ("n_workers", "run_dir")
"""Fields that may differ when a run is resumed (they do not change the results)."""
GROUPING_FIELDS: tuple[str, ...] = ("agents_per_worker", "groups")
"""Fields of the grouping of agents, which may differ on resume if every group holds at least two agents."""


@dataclass(frozen=True)
class RunConfig:
    """One training run: environment, number of agents, simulator, budget, schedule, parallel layout, seed."""

    env: str
    """Environment, one of 'traffic' or 'warehouse' (or a variant of `hyperparameters.ENV_VARIANTS`)."""
    n_agents: int = 4
    """Number of learning agents (a square number: 4, 25, 49, 100, ...)."""
    simulator: str = "dials"
    """What the agents train on: 'gs', 'dials' or 'untrained-dials'."""
    total_timesteps: int | None = None
    """Training steps per agent (None: the paper's 4M from the hyperparameters)."""
    anneal_timesteps: int | None = None
    """Steps per agent over which PPO's learning rate and clip decay linearly to 0 (None: the paper's 4M, so that a
    shorter run trains exactly like the first steps of the paper's run; total_timesteps squeezes the whole decay into
    the run)."""
    retrain_every: int | None = None
    """F: steps per agent between AIP retrainings, DIALS only (None: the paper's F for this env)."""
    eval_every: int | None = None
    """Steps per agent between evaluations on the GS (None: a twentieth of the run, at least one chunk)."""
    eval_episodes: int = 5
    """GS episodes per evaluation."""
    seed: int = 0
    """Run seed; every agent's random streams are spawned from it and the agent id."""
    n_workers: int = 2
    """Parallel joblib workers (the backend comes from `joblib.parallel_config`)."""
    agents_per_worker: int | None = None
    """Agents per worker task (must divide n_agents; 1 = one process per agent; None: split over n_workers groups of
    at least two agents)."""
    chunk_steps: int | None = None
    """Steps per agent in one worker call, a multiple of PPO's buffer_size (None: see the module docstring)."""
    hyperparameters: EnvHyperparameters | None = None
    """AIP, policy and PPO settings (None: `paper_hyperparameters(env)`)."""
    run_dir: str | None = None
    """Run directory (None: `runs/<run_name>` under `dials_lib.paths.runs_dir()`)."""

    def __post_init__(self) -> None:
        check_choice("env", self.env, TRAINABLE_ENVS)
        check_choice("simulator", self.simulator, SIMULATORS)
        check_n_agents(self.n_agents)
        check_int("n_agents", self.n_agents, 1, maximum=MAX_AGENTS,
                  why="a 50 x 50 grid; a run holds every agent's networks and simulator state")
        hp = self.hyperparameters if self.hyperparameters is not None else paper_hyperparameters(self.env)
        if not isinstance(hp, EnvHyperparameters) or hp.env != self.env:
            raise ValueError(f"hyperparameters must be an EnvHyperparameters for env {self.env!r}; got "
                             f"{getattr(hp, 'env', type(hp).__name__)!r}")
        object.__setattr__(self, "hyperparameters", hp)
        buffer = hp.ppo.buffer_size
        steps_limit = dict(maximum=MAX_STEPS, why="250 times the paper's 4M steps")
        total = check_int("total_timesteps", hp.total_timesteps if self.total_timesteps is None
                          else self.total_timesteps, buffer, **steps_limit)
        anneal = check_int("anneal_timesteps", hp.total_timesteps if self.anneal_timesteps is None
                           else self.anneal_timesteps, buffer, **steps_limit)
        chunk = default_chunk_steps(self.env, buffer) if self.chunk_steps is None else self.chunk_steps
        chunk = check_int("chunk_steps", chunk, 1, **steps_limit)
        if chunk % buffer:
            raise ValueError(f"chunk_steps must be a positive multiple of PPO's buffer_size ({buffer}); got {chunk}")
        f = hp.retrain_every if self.retrain_every is None else self.retrain_every
        f = check_int("retrain_every (F)", f, 1, **steps_limit)
        eval_every = max(chunk, total // 20) if self.eval_every is None else self.eval_every
        eval_every = check_int("eval_every", eval_every, 1, **steps_limit)
        spec = get_spec(self.env)
        episode_bytes = spec.horizon * self.n_agents * (4 * spec.dset_dim + 8 * spec.n_sources + 12)
        check_int("eval_episodes", self.eval_episodes, 1, maximum=max(1, MAX_EVALUATION_BYTES // episode_bytes),
                  why=f"an evaluation holds its episodes at once, {episode_bytes / 2**20:.2f} MiB each at "
                      f"{self.n_agents} agents, at most {MAX_EVALUATION_BYTES / 2**30:g} GiB")
        check_int("seed", self.seed, 0, maximum=MAX_SEED, why="seeds are hashed into 64-bit streams")
        check_int("n_workers", self.n_workers, 1, maximum=MAX_WORKERS,
                  why="more processes than groups of agents do nothing")
        if self.agents_per_worker is not None:
            apw = check_int("agents_per_worker", self.agents_per_worker, 1)
            if self.n_agents % apw:
                divisors = [d for d in range(1, self.n_agents + 1) if self.n_agents % d == 0]
                raise ValueError(f"agents_per_worker must divide n_agents={self.n_agents}; got {apw}; allowed "
                                 f"values: {divisors} or None (split evenly over n_workers)")
        for name, value in (("total_timesteps", total), ("anneal_timesteps", anneal), ("chunk_steps", chunk),
                            ("retrain_every", f), ("eval_every", eval_every)):
            object.__setattr__(self, name, value)

    @property
    def hp(self) -> EnvHyperparameters:
        """The resolved hyperparameters."""
        assert self.hyperparameters is not None
        return self.hyperparameters

    def groups(self) -> list[list[int]]:
        """Agent ids of each worker group (consecutive ids)."""
        if self.agents_per_worker is not None:
            size = self.agents_per_worker
            return [list(range(lo, lo + size)) for lo in range(0, self.n_agents, size)]
        return default_groups(self.n_agents, self.n_workers)

    def schedule(self) -> Schedule:
        """The chunks, evaluation points and retraining points of this run."""
        return Schedule.of(self)

    def name(self) -> str:
        """A run name from the settings that distinguish runs: env, size, simulator, F, seed."""
        f = f"_F{self.retrain_every}" if self.simulator == "dials" else ""
        return f"{self.env}_n{self.n_agents}_{self.simulator}{f}_T{self.total_timesteps}_seed{self.seed}"

    def directory(self) -> Path:
        """The run directory."""
        from dials_lib.paths import runs_dir

        return Path(self.run_dir) if self.run_dir is not None else runs_dir() / self.name()

    def record(self) -> dict[str, Any]:
        """The config as JSON-ready data (what config.json holds), with the resolved worker groups."""
        data = json.loads(json.dumps(dataclasses.asdict(self), default=str))
        data["groups"] = [len(g) for g in self.groups()]
        return data


def seed_configs(config: RunConfig, seeds: Sequence[int]) -> list[RunConfig]:
    """`config` once per seed of `seeds` (distinct, each a valid seed): the runs of a seed batch. An explicit
    `run_dir` must then hold the text "{seed}", which each run's seed replaces."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    for seed in seeds:
        check_int("seed", seed, 0, maximum=MAX_SEED, why="seeds are hashed into 64-bit streams")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct; got {seeds}")
    if len(seeds) > 1 and config.run_dir is not None and "{seed}" not in str(config.run_dir):
        raise ValueError(f"run_dir must contain {{seed}} when training several seeds (one directory per seed); got "
                         f"{config.run_dir}")
    def run_dir(seed: int) -> str | None:
        return None if config.run_dir is None else str(config.run_dir).replace("{seed}", str(seed))

    return [dataclasses.replace(config, seed=seed, run_dir=run_dir(seed)) for seed in seeds]


def config_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Readable differences between two `RunConfig.record()`s, ignoring the fields a resume may change (the
    grouping too, while every group on both sides holds at least two agents)."""
    def in_pairs(record: dict[str, Any]) -> bool:
        return all(size >= 2 for size in record.get("groups", [1]))

    resumable = RESUMABLE_FIELDS + (GROUPING_FIELDS if in_pairs(stored) and in_pairs(current) else ())
    diffs = []
    for key in sorted(set(stored) | set(current)):
        if key in resumable:
            continue
        a, b = stored.get(key, "<missing>"), current.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{key}.{d}" for d in config_differences(a, b)]
        elif a != b:
            diffs.append(f"{key}: stored {a!r}, now {b!r}")
    return diffs


@dataclass(frozen=True)
class Schedule:
    """Chunk boundaries of a run, in steps per agent, and what happens at each boundary."""

    starts: tuple[int, ...]
    """Step (per agent) at each boundary: starts[c] is where chunk c begins; the last entry is the end."""
    evaluate: tuple[bool, ...]
    """evaluate[c]: evaluate on the GS at boundary c (before chunk c runs)."""
    retrain: tuple[bool, ...]
    """retrain[c]: collect GS data and retrain the AIPs at boundary c (DIALS only; never at the end)."""

    @classmethod
    def of(cls, config: RunConfig) -> Schedule:
        """The schedule of `config` (see the module docstring for the rounding rules)."""
        chunk, total, buffer = config.chunk_steps, config.total_timesteps, config.hp.ppo.buffer_size
        assert chunk is not None and total is not None
        n_full, rest = divmod(total, chunk)
        lengths = [chunk] * n_full + ([buffer * math.ceil(rest / buffer)] if rest else [])
        starts = tuple(int(s) for s in np.cumsum([0, *lengths]))

        def crossings(period: int) -> list[bool]:
            return [c == 0 or starts[c] // period > starts[c - 1] // period for c in range(len(starts))]

        evaluate = crossings(config.eval_every)  # type: ignore[arg-type]
        evaluate[-1] = True
        retrain = crossings(config.retrain_every) if config.simulator == "dials" else [False] * len(starts)  # type: ignore[arg-type]
        retrain[-1] = False
        return cls(starts, tuple(evaluate), tuple(retrain))

    @property
    def n_chunks(self) -> int:
        """Number of chunks."""
        return len(self.starts) - 1

    @property
    def steps_per_agent(self) -> int:
        """Steps per agent actually run (total_timesteps rounded up to whole PPO buffers)."""
        return self.starts[-1]

    def chunk_length(self, c: int) -> int:
        """Steps per agent of chunk c."""
        return self.starts[c + 1] - self.starts[c]


def default_groups(n_agents: int, n_workers: int) -> list[list[int]]:
    """The agent ids of each group of a run that does not set `agents_per_worker`: consecutive ids, split as evenly
    as can be over `n_workers` groups of at least two agents (one group for fewer than four agents)."""
    # at least two agents per group: then the grouping does not change the numbers (see the module docstring)
    n_groups = max(1, min(n_workers, n_agents // 2))
    return [part.tolist() for part in np.array_split(np.arange(n_agents), n_groups)]


def default_chunk_steps(env: str, buffer_size: int) -> int:
    """The smallest multiple of both the horizon and the PPO buffer with at least MIN_DEFAULT_CHUNK steps."""
    period = math.lcm(get_spec(env).horizon, buffer_size)
    return period * math.ceil(MIN_DEFAULT_CHUNK / period)


def config_from_preset(
    preset: str, env: str, simulator: str, n_agents: int | None = None, seed: int = 0, **changes: Any
) -> RunConfig:
    """A RunConfig on a preset's budget ('smoke', 'quick', 'paper'): steps, evaluation interval and episodes.

    The run is a prefix of the paper's run (see `dials_lib.presets`): F and the learning-rate decay are the
    paper's, in steps. The chunk is at most the evaluation interval, rounded to PPO buffers; the AIP data set and
    epochs come from the preset (`aip_dataset_steps`, `aip_epoch_fraction`). Any RunConfig field can be overridden
    through `changes`.
    """
    p = get_preset(preset)
    budget = p.budget(env)
    hp = p.hyperparameters(env)  # the preset's AIP data set and epoch budget
    buffer = hp.ppo.buffer_size
    chunk = min(buffer * max(1, budget.eval_every // buffer), default_chunk_steps(env, buffer))
    values: dict[str, Any] = dict(
        env=env,
        n_agents=budget.sizes[0] if n_agents is None else n_agents,
        simulator=simulator,
        total_timesteps=budget.total_timesteps,
        retrain_every=hp.retrain_every,
        eval_every=budget.eval_every,
        eval_episodes=budget.eval_episodes,
        seed=seed,
        n_workers=p.n_workers,
        chunk_steps=chunk,
        hyperparameters=hp,
    )
    values.update(changes)
    return RunConfig(**values)


__all__ = ["SIMULATORS", "RunConfig", "Schedule", "config_differences", "config_from_preset", "default_groups",
           "derived_seed", "seed_configs"]

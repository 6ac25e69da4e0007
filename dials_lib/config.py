"""Hyperparameters (the paper's Tables 4-6) and run presets, as typed dataclasses.

Every field carries a one-line docstring (the string right below it), which `describe()` and the
overview notebook render. Defaults are the paper's table values; where the authors' released code
used something else, `PAPER_REFERENCE` records both and the overview notebook flags the difference.
Derived values (number of PPO updates, AIP retraining count, F in steps) are computed in one place:
the properties of `RunBudget`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, TypeVar

ENV_NAMES: tuple[str, ...] = ("traffic", "warehouse")
PRESET_NAMES: tuple[str, ...] = ("smoke", "quick", "paper")

T = TypeVar("T")


@dataclass(frozen=True)
class AIPConfig:
    """Approximate influence predictor: network, data set and training schedule (paper Table 4)."""

    architecture: str
    """'fnn' (traffic: the d-set is one step of history) or 'gru' (warehouse: whole-episode history)."""
    hidden_layers: int
    """Number of hidden layers (the paper's table says 2; the authors' code used 1)."""
    hidden_size: int
    """Neurons per hidden layer (128 traffic, 64 warehouse)."""
    learning_rate: float = 1e-4
    """Adam learning rate of the AIP."""
    dataset_steps: int = 10_000
    """GS timesteps collected per retraining (Algorithm 2)."""
    heldout_fraction: float = 0.1
    """Fraction of the collected episodes held out to measure the AIP's cross-entropy."""
    batch_size: int = 128
    """Minibatch size: samples (FNN) or whole-episode sequences (GRU)."""
    epochs: int = 100
    """Passes over the data set at each retraining."""
    warm_start: bool = True
    """Carry the weights over between retrainings instead of re-initialising."""


@dataclass(frozen=True)
class PolicyConfig:
    """Actor-critic network of one agent (paper Table 5)."""

    architecture: str
    """'fnn' (traffic) or 'gru' (warehouse: item ages are hidden, so the policy needs memory)."""
    hidden_sizes: tuple[int, ...] = (256, 128)
    """Layer widths: two ReLU layers (FNN) or a 256 linear layer then a 128 GRU (GRU)."""
    sequence_length: int = 1
    """Truncated-BPTT length in steps (8 for the GRU policy; 1 means no recurrence)."""


@dataclass(frozen=True)
class PPOConfig:
    """Independent PPO, as the authors ran it (paper Table 6 plus what their code did)."""

    rollout_steps: int
    """Steps per rollout segment T, the value-bootstrap horizon (16 traffic, 8 warehouse)."""
    learning_rate: float = 2.5e-4
    """Adam learning rate at the start; decayed linearly to 0 over the run."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    buffer_size: int = 128
    """Transitions per agent collected before each update (the paper's 'memory size')."""
    minibatch_size: int = 32
    """Transitions (FNN) per minibatch; for the GRU, sequence_length-step chunks adding up to this many."""
    epochs: int = 3
    """Passes over the buffer per update."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    clip_eps: float = 0.1
    """PPO ratio clip at the start; decayed linearly to 0 like the learning rate."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    clip_value: bool = True
    """Clip the value loss with the same epsilon, as the authors' code did."""
    anneal: bool = True
    """Decay learning rate and clip epsilon linearly to 0 over the run."""
    max_grad_norm: float | None = None
    """Gradient-norm clip; None as in the authors' code."""


@dataclass(frozen=True)
class EnvHyperparameters:
    """Everything one environment trains with: AIP, policy, PPO and the AIP retraining period."""

    env: str
    """Environment name, one of ENV_NAMES."""
    aip: AIPConfig
    """Approximate influence predictor settings."""
    policy: PolicyConfig
    """Policy network settings."""
    ppo: PPOConfig
    """PPO settings."""
    total_timesteps: int = 4_000_000
    """Training length per agent in the paper."""
    retrain_every: int = 1_000_000
    """F: GS timesteps between AIP retrainings in the paper's main figures (1M traffic, 4M warehouse)."""


def paper_hyperparameters(env: str) -> EnvHyperparameters:
    """The paper's hyperparameters (Tables 4-6) for `env` ('traffic' or 'warehouse')."""
    check_choice("env", env, ENV_NAMES)
    if env == "traffic":
        return EnvHyperparameters(
            env="traffic",
            aip=AIPConfig(architecture="fnn", hidden_layers=2, hidden_size=128, batch_size=128, epochs=100),
            policy=PolicyConfig(architecture="fnn", hidden_sizes=(256, 128), sequence_length=1),
            ppo=PPOConfig(rollout_steps=16),
            retrain_every=1_000_000,
        )
    return EnvHyperparameters(
        env="warehouse",
        aip=AIPConfig(architecture="gru", hidden_layers=2, hidden_size=64, batch_size=32, epochs=300),
        policy=PolicyConfig(architecture="gru", hidden_sizes=(256, 128), sequence_length=8),
        ppo=PPOConfig(rollout_steps=8),
        retrain_every=4_000_000,
    )


# The paper's values (Tables 4-6) and, where it differs, what the authors' released code did.
# Rows: (env or 'both', dotted field path in EnvHyperparameters, paper table value, authors' code value).
PAPER_REFERENCE: tuple[tuple[str, str, Any, Any], ...] = (
    ("traffic", "aip.architecture", "fnn", "fnn"),
    ("traffic", "aip.hidden_layers", 2, 1),
    ("traffic", "aip.hidden_size", 128, 128),
    ("traffic", "aip.batch_size", 128, 120),
    ("traffic", "aip.epochs", 100, 100),
    ("warehouse", "aip.architecture", "gru", "gru"),
    ("warehouse", "aip.hidden_layers", 2, 1),
    ("warehouse", "aip.hidden_size", 64, 64),
    ("warehouse", "aip.batch_size", 32, 32),
    ("warehouse", "aip.epochs", 300, 300),
    ("both", "aip.learning_rate", 1e-4, 1e-4),
    ("both", "aip.dataset_steps", 10_000, 10_000),
    ("both", "aip.heldout_fraction", 0.1, 0.1),
    ("both", "aip.warm_start", True, True),
    ("traffic", "policy.architecture", "fnn", "fnn"),
    ("warehouse", "policy.architecture", "gru", "gru"),
    ("both", "policy.hidden_sizes", (256, 128), (256, 128)),
    ("warehouse", "policy.sequence_length", 8, 8),
    ("traffic", "ppo.rollout_steps", 16, 16),
    ("warehouse", "ppo.rollout_steps", 8, 8),
    ("both", "ppo.learning_rate", 2.5e-4, 2.5e-4),
    ("both", "ppo.gamma", 0.99, 0.99),
    ("both", "ppo.gae_lambda", 0.95, 0.95),
    ("both", "ppo.buffer_size", 128, 128),
    ("both", "ppo.minibatch_size", 32, 32),
    ("both", "ppo.epochs", 3, 3),
    ("both", "ppo.entropy_coef", 0.01, 0.01),
    ("both", "ppo.clip_eps", 0.1, 0.1),
    ("both", "ppo.value_coef", 1.0, 1.0),
    ("both", "ppo.clip_value", None, True),
    ("both", "ppo.anneal", None, True),
    ("both", "ppo.max_grad_norm", None, None),
    ("both", "total_timesteps", 4_000_000, 4_000_000),
    ("traffic", "retrain_every", 1_000_000, 1_000_000),
    ("warehouse", "retrain_every", 4_000_000, 4_000_000),
)


@dataclass(frozen=True)
class RunBudget:
    """How much of the paper's protocol a preset runs: sizes, seeds and the per-agent step budget."""

    sizes: tuple[int, ...]
    """Numbers of agents trained (square numbers; the paper used 4, 25, 49, 100)."""
    n_seeds: int
    """Independent runs per configuration (mean and standard error are over these)."""
    total_timesteps: int
    """Training steps per agent (the paper: 4M)."""
    eval_every: int
    """Steps per agent between evaluations on the GS."""
    eval_episodes: int
    """GS episodes per evaluation."""
    f_fractions: tuple[float, ...] = (0.025, 0.125, 0.25, 1.0)
    """AIP retraining periods of the F ablation as fractions of the run (paper: 100K, 500K, 1M, 4M of 4M)."""
    ablation_size: int = 4
    """Number of agents in the F ablation (the paper: 49 for traffic, 4 for the warehouse)."""
    ablation_seeds: int = 2
    """Seeds per F value in the F ablation (the first seeds of the main comparison, whose runs are reused)."""

    @property
    def n_evaluations(self) -> int:
        """Evaluations per run, including the one before training."""
        return self.total_timesteps // self.eval_every + 1

    def scaled_f(self, paper_f: int, paper_total: int = 4_000_000) -> int:
        """F scaled to this budget: the same fraction of the run as `paper_f` is of the paper's 4M steps."""
        if paper_f <= 0:
            raise ValueError(f"F must be a positive number of timesteps, got {paper_f}")
        return max(1, round(self.total_timesteps * paper_f / paper_total))


@dataclass(frozen=True)
class Preset:
    """A named budget for the whole notebook series: smoke (CI), quick (the main job), paper (full)."""

    name: str
    """Preset name, one of PRESET_NAMES."""
    description: str
    """What the preset is for and how long it takes on 2 cores."""
    traffic: RunBudget
    """Training budget for the traffic experiments."""
    warehouse: RunBudget
    """Training budget for the warehouse experiments."""
    env_episodes: int
    """GS episodes per size and controller in the environments notebook."""
    n_workers: int = 2
    """Parallel joblib workers (this machine has 2 cores)."""
    seed: int = 0
    """Base seed; run seeds are seed, seed+1, ..."""
    env_sizes: tuple[int, ...] = field(default=(4, 25, 49, 100))
    """Numbers of agents shown in the environments notebook."""
    theory_models: int = 20
    """Random tiny models (or IALM pairs per eps) in each check of the theory notebook."""
    theory_mc_samples: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    """GS episode counts of the Monte Carlo influence estimates in the theory notebook (Lemma 1)."""
    aip_agents: int = 9
    """Agents in the influence-predictor notebook's grid (9: it has corner, edge and centre agents)."""
    aip_dataset_steps: int = 10_000
    """GS steps per AIP data set in the influence-predictor notebook and in DIALS runs (the paper: 1e4)."""
    aip_epoch_fraction: float = 1.0
    """Fraction of the paper's AIP training epochs run in the influence-predictor notebook and in DIALS runs."""
    scaling_sizes: tuple[int, ...] = (4, 25, 49, 100)
    """Numbers of agents whose runtime and memory are measured (runtimes and memory notebooks)."""
    scaling_steps: int = 2_560
    """Steps per agent of each timed training run; longer budgets are extrapolated from it."""
    scaling_aip_epochs: int = 5
    """AIP epochs in each timed retraining; the paper's epoch count is extrapolated linearly from it."""

    def budget(self, env: str) -> RunBudget:
        """The training budget of `env` ('traffic' or 'warehouse')."""
        check_choice("env", env, ENV_NAMES)
        return self.traffic if env == "traffic" else self.warehouse


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        description="CI: every code path on a tiny budget, seconds per notebook; numbers are not meaningful.",
        # Two F values only: on 2 chunks every F below half the run retrains at the same boundaries.
        traffic=RunBudget(sizes=(4,), n_seeds=2, total_timesteps=2_048, eval_every=1_024, eval_episodes=1,
                          f_fractions=(0.25, 1.0)),
        warehouse=RunBudget(sizes=(4,), n_seeds=2, total_timesteps=2_048, eval_every=1_024, eval_episodes=1,
                            f_fractions=(0.25, 1.0)),
        env_episodes=1,
        scaling_sizes=(4, 25),
        scaling_steps=256,
        scaling_aip_epochs=1,
        env_sizes=(4, 25),
        theory_models=3,
        theory_mc_samples=(100, 1_000, 10_000),
        aip_dataset_steps=1_200,
        aip_epoch_fraction=0.05,
    ),
    "quick": Preset(
        name="quick",
        description="The main job: the whole series in at most 90 minutes on 2 cores, 4-agent variants, "
        "several seeds, showing the paper's trends.",
        # The F ablation keeps the F values that fit the 90 minutes: each warehouse AIP retraining (300 GRU
        # epochs) costs about a minute, so its most frequent F values would take half an hour per seed.
        traffic=RunBudget(sizes=(4,), n_seeds=3, total_timesteps=153_600, eval_every=15_360, eval_episodes=4,
                          f_fractions=(0.025, 0.25, 1.0)),
        warehouse=RunBudget(sizes=(4,), n_seeds=3, total_timesteps=81_920, eval_every=10_240, eval_episodes=10,
                            f_fractions=(0.25, 1.0)),
        env_episodes=10,
        theory_models=20,
        theory_mc_samples=(100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000),
        scaling_steps=1_280,  # the fixed cost (10K GS data steps, AIP training) dominates the timed runs anyway
    ),
    "paper": Preset(
        name="paper",
        description="The authors' protocol: 4M steps per agent, 4 to 100 agents (days on 2 cores).",
        traffic=RunBudget(
            sizes=(4, 25, 49, 100), n_seeds=3, total_timesteps=4_000_000, eval_every=100_000, eval_episodes=5,
            ablation_size=49, ablation_seeds=3,
        ),
        warehouse=RunBudget(
            sizes=(4, 25, 49, 100), n_seeds=3, total_timesteps=4_000_000, eval_every=100_000, eval_episodes=10,
            ablation_seeds=3,
        ),
        env_episodes=50,
        theory_models=100,
        theory_mc_samples=(100, 1_000, 10_000, 100_000, 1_000_000),
        aip_agents=25,
        scaling_steps=19_200,
        scaling_aip_epochs=100,
    ),
}


def check_choice(parameter: str, value: Any, allowed: tuple[Any, ...] | list[Any]) -> None:
    """Raise ValueError naming `parameter` and the allowed values if `value` is not one of them."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"unknown {parameter} {value!r}; allowed values: {choices}")


def get_preset(name: str) -> Preset:
    """The preset called `name` ('smoke', 'quick' or 'paper')."""
    check_choice("preset", name, PRESET_NAMES)
    return PRESETS[name]


def use_preset(name: str) -> Preset:
    """The preset `name`, also sending figures and tables to its folder (`figures/` for quick)."""
    from dials_lib import paths

    preset = get_preset(name)
    paths.set_figures_dir(paths.preset_figures_dir(name))
    return preset


def with_fields(config: T, **changes: Any) -> T:
    """A copy of a config dataclass with some fields changed; unknown field names raise a clear error."""
    names = [f.name for f in dataclasses.fields(config)]  # type: ignore[arg-type]
    for key in changes:
        check_choice(f"field of {type(config).__name__}", key, names)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def get_field(config: Any, dotted: str) -> Any:
    """Value at a dotted path such as 'ppo.clip_eps'; an unknown segment raises a clear error."""
    value = config
    for part in dotted.split("."):
        names = [f.name for f in dataclasses.fields(value)]
        check_choice(f"field of {type(value).__name__}", part, names)
        value = getattr(value, part)
    return value


def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings of a dataclass's fields, read from its source."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = nxt.value.value.strip()
    return docs


def field_doc(config: Any, dotted: str) -> str:
    """The docstring of the field at a dotted path of a (nested) config dataclass."""
    *parents, last = dotted.split(".")
    owner = get_field(config, ".".join(parents)) if parents else config
    return field_docs(type(owner)).get(last, "")


def hyperparameter_table(env: str) -> list[dict[str, Any]]:
    """Rows comparing our default for `env` with the paper's table and the authors' code, deviations flagged."""
    ours = paper_hyperparameters(env)
    rows = []
    for scope, path, paper_value, code_value in PAPER_REFERENCE:
        if scope not in ("both", env):
            continue
        value = get_field(ours, path)
        notes = []
        if paper_value is not None and value != paper_value:
            notes.append("differs from the paper's table")
        if paper_value is None:
            notes.append("not in the paper's table; taken from the authors' code")
        elif code_value != paper_value:
            notes.append("the authors' code differs from the paper's table")
        rows.append(
            {
                "parameter": path,
                "ours": value,
                "paper table": "-" if paper_value is None else paper_value,
                "authors' code": code_value,
                "note": "; ".join(notes),
                "meaning": field_doc(ours, path),
            }
        )
    return rows

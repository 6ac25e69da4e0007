"""The paper's hyperparameters (Tables 4-6) as typed dataclasses, and how ours compare with the paper's.

Every field carries a one-line docstring (the string right below it), which the overview notebook renders.
Defaults are the paper's table values; where the authors' released code used something else, `PAPER_REFERENCE`
records both and `hyperparameter_table` flags the difference. `EnvHyperparameters.retrain_every` is the paper's F
for the environment (steps per agent between AIP retrainings); a run's own F is `RunConfig.retrain_every`. A
preset's shorter run keeps the paper's F in steps, as it keeps the paper's learning-rate decay: it is a prefix of the
paper's run (see `dials_lib.presets`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dials_lib.validation import check_choice, field_doc, get_field

ENV_NAMES: tuple[str, ...] = ("traffic", "warehouse")
"""The paper's environments by name: the one list of them. `dials_lib.envs.registry.ENVS` attaches a record (spec,
simulators, controllers, metrics) to each name, in this order, and refuses a name without a record on import."""
ENV_VARIANTS: dict[str, str] = {"traffic-open-exits": "traffic", "sumo-traffic": "traffic"}
"""Variants the runner trains beside ENV_NAMES, each with the hyperparameters and preset budgets of the environment
it varies: traffic with the paper's 4 influence sources only (`dials_lib.envs.traffic_open_exits`; the AIP's output
follows the variant's spec), and the paper's traffic grid in SUMO (`dials_lib.envs.sumo_traffic`, the `sumo` extra;
the paper's traffic hyperparameters are those of this very simulator). `dials_lib.envs.registry.EXTRA_ENVS` attaches a
record to each name, in this order."""
TRAINABLE_ENVS: tuple[str, ...] = (*ENV_NAMES, *ENV_VARIANTS)
"""Every environment a run may train: the paper's two, then the variants."""


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
    """Environment name, one of TRAINABLE_ENVS."""
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
    """The paper's hyperparameters (Tables 4-6) for `env` ('traffic' or 'warehouse'; a variant of ENV_VARIANTS gets
    those of the environment it varies, under its own name)."""
    check_choice("env", env, TRAINABLE_ENVS)
    if env in ENV_VARIANTS:
        return dataclasses.replace(paper_hyperparameters(ENV_VARIANTS[env]), env=env)
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


__all__ = ["ENV_NAMES", "ENV_VARIANTS", "PAPER_REFERENCE", "TRAINABLE_ENVS", "AIPConfig", "EnvHyperparameters",
           "PPOConfig", "PolicyConfig", "hyperparameter_table", "paper_hyperparameters"]

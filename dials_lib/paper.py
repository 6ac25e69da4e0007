"""Every number the series takes from the paper, in one place.

Suau et al., "Distributed Influence-Augmented Local Simulators for Parallel MARL in Large Networked Systems"
(NeurIPS 2022). The paper's tables live as CSV files in `paper/` (`results`, `runtimes`, `memory`, `f_ablation`,
`curves`; see paper/README.md) and are read from there; the few numbers that have no table of their own are written
down here once, each with the table or figure it comes from. The hyperparameters of its appendix I stay in
`dials_lib.hyperparameters`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dials_lib.hyperparameters import ENV_NAMES, paper_hyperparameters
from dials_lib.paths import paper_dir
from dials_lib.validation import check_choice

TOTAL_STEPS = 4_000_000
"""Training steps per agent of every run in the paper (Section 5; '4M' in its tables)."""
F_STEPS: dict[str, int] = {"100K": 100_000, "500K": 500_000, "1M": 1_000_000, "4M": 4_000_000}
"""The AIP retraining periods F of the paper's Tables 1 and 2 and of its F ablation (Figures 7, 8), by label."""
MAIN_F: dict[str, str] = {"traffic": "1M", "warehouse": "4M"}
"""F of the paper's main comparison, Figures 5 (traffic) and 6 (warehouse), as labelled in its tables."""
MIDDLE_F = "1M"
"""The F the F ablation compares the others against (Figures 7, 8: too often below it, too rarely above it)."""
CPUS = 128
"""Cores of the machine the paper timed its runs on (appendix G: a 128-CPU AMD EPYC 7452)."""
GS_SIMULATOR: dict[str, str] = {"traffic": "SUMO", "warehouse": "the authors' pure-Python simulator"}
"""What the paper's global simulator was in each environment (Section 5)."""
RESULT_COLUMNS: dict[str, str] = {"GS": "GS", "DIALS": "DIALS", "untrained-DIALS": "untrained_DIALS"}
"""Column of paper/results.csv holding each method's final return, by the method's display name."""


def read_paper_table(name: str) -> pd.DataFrame:
    """One of the paper's CSV tables in paper/ ('results', 'runtimes', 'memory', 'f_ablation', 'curves')."""
    check_choice("paper table", name, ("results", "runtimes", "memory", "f_ablation", "curves"))
    return pd.read_csv(paper_dir() / f"{name}.csv", comment="#")


@dataclass(frozen=True)
class AIPLoss:
    """The AIP cross-entropy (nats) before and after the first AIP training, as ranges read off a figure."""

    before: tuple[float, float]
    """Lowest and highest value before training (equal when the figure shows one value)."""
    after: tuple[float, float]
    """Lowest and highest value after the first training."""
    decimals: int
    """Decimals the values can be read to."""

    def text(self) -> str:
        """'0.70 -> 0.24-0.26': both ranges at the precision they were read to."""
        return f"{self._range(self.before)} -> {self._range(self.after)}"

    def _range(self, values: tuple[float, float]) -> str:
        low, high = (f"{v:.{self.decimals}f}" for v in values)
        return low if low == high else f"{low}-{high}"


AIP_LOSS: dict[str, AIPLoss] = {
    "traffic": AIPLoss(before=(0.70, 0.70), after=(0.24, 0.26), decimals=2),
    "warehouse": AIPLoss(before=(1.4, 1.5), after=(0.2, 0.3), decimals=1),
}
"""AIP loss on GS trajectories before and after the first training, read off the paper's Figures 7 and 8."""


def f_fraction(label: str) -> float:
    """F of one of the paper's labels ('1M') as a fraction of its 4M-step run (0.25)."""
    check_choice("paper F", label, tuple(F_STEPS))
    return F_STEPS[label] / TOTAL_STEPS


def f_label_of_fraction(fraction: float) -> str | None:
    """The paper's label of an F given as a fraction of its 4M steps (0.25 -> '1M'); None if the paper has no such F."""
    return next((label for label in F_STEPS if f_fraction(label) == fraction), None)


def main_f_fraction(env: str) -> float:
    """F of the paper's main comparison in `env` as a fraction of its 4M steps (traffic 0.25, warehouse 1.0)."""
    check_choice("env", env, ENV_NAMES)
    return f_fraction(MAIN_F[env])


def main_dials_label(env: str) -> str:
    """The row label of DIALS at the main F in the paper's Tables 1 and 2 ('DIALS F=1M')."""
    check_choice("env", env, ENV_NAMES)
    return f"DIALS F={MAIN_F[env]}"


def final_returns(env: str) -> pd.DataFrame:
    """The paper's final returns after 4M steps (paper/results.csv), one row per size and method.

    Columns: n_agents, method, paper_return, paper_hand_coded (the hand-coded controller's return) and
    paper_start (the return before training).
    """
    check_choice("env", env, ENV_NAMES)
    table = read_paper_table("results")
    table = table[table["env"] == env]
    rows = [{"n_agents": int(r["agents"]), "method": method, "paper_return": float(r[column]),
             "paper_hand_coded": float(r["hand_coded"]), "paper_start": float(r["random_policy_start"])}
            for _, r in table.iterrows() for method, column in RESULT_COLUMNS.items()]
    return pd.DataFrame(rows)


def final_returns_table(env: str) -> pd.DataFrame:
    """The paper's returns of `env` as one row per size (paper/results.csv): before training (`start`), the
    hand-coded controller and each method after 4M steps."""
    long = final_returns(env)
    methods = long.pivot(index="n_agents", columns="method", values="paper_return")[list(RESULT_COLUMNS)]
    baselines = long.groupby("n_agents")[["paper_start", "paper_hand_coded"]].first()
    table = pd.concat([baselines.rename(columns={"paper_start": "start", "paper_hand_coded": "hand-coded"}), methods],
                      axis=1)
    return table.rename_axis(columns=None).reset_index().rename(columns={"n_agents": "agents"})


def f_ablation_table(env: str) -> pd.DataFrame:
    """The paper's F ablation of `env` (paper/f_ablation.csv, appendix D.2): per F, the final return and the hours to
    finish 4M steps, at the size the paper ran it (traffic 49 agents, the warehouse 4)."""
    check_choice("env", env, ENV_NAMES)
    table = read_paper_table("f_ablation")
    return table[table["env"] == env].drop(columns="env").reset_index(drop=True)


def aip_reference() -> pd.DataFrame:
    """Per environment, the paper's AIP (appendix I, Table 4) and its cross-entropy on GS data before and after the
    first training (Figures 7 and 8, `AIP_LOSS`)."""
    rows = []
    for env in ENV_NAMES:
        aip = paper_hyperparameters(env).aip
        rows.append({"env": env, "architecture": aip.architecture.upper(), "hidden layers": aip.hidden_layers,
                     "hidden size": aip.hidden_size, "learning rate": aip.learning_rate, "epochs": aip.epochs,
                     "GS steps per data set": aip.dataset_steps, "paper's loss (nats)": AIP_LOSS[env].text()})
    return pd.DataFrame(rows)


def curve(env: str, n_agents: int, method: str) -> pd.DataFrame:
    """The paper's learning curve of `method` ('GS', 'DIALS', 'untrained-DIALS') at a few steps (paper/curves.csv:
    step and return); empty where the paper's figures give none (every size but 4)."""
    table = read_paper_table("curves")
    rows = table[(table["env"] == env) & (table["agents"] == n_agents) & (table["method"] == method)]
    return rows[["step", "return"]].sort_values("step").reset_index(drop=True)


def curve_at(env: str, n_agents: int, method: str, step: float) -> float:
    """The paper's return of `method` at `step`, linearly between the points of `curve`; NaN where it has none."""
    points = curve(env, n_agents, method)
    if points.empty or not points["step"].min() <= step <= points["step"].max():
        return float("nan")
    return float(np.interp(step, points["step"], points["return"]))


def table_value(table: pd.DataFrame, env: str, n_agents: int, simulator: str, column: str) -> float:
    """One number of a paper table with env, agents and simulator columns (runtimes, memory); NaN if absent."""
    rows = table[(table["env"] == env) & (table["agents"] == n_agents) & (table["simulator"] == simulator)]
    return float(rows[column].iloc[0]) if len(rows) else float("nan")


__all__ = [
    "AIP_LOSS",
    "CPUS",
    "F_STEPS",
    "GS_SIMULATOR",
    "MAIN_F",
    "MIDDLE_F",
    "RESULT_COLUMNS",
    "TOTAL_STEPS",
    "AIPLoss",
    "aip_reference",
    "curve",
    "curve_at",
    "f_ablation_table",
    "f_fraction",
    "f_label_of_fraction",
    "final_returns",
    "final_returns_table",
    "main_dials_label",
    "main_f_fraction",
    "read_paper_table",
    "table_value",
]

"""dials_lib: a reference implementation of DIALS (Distributed Influence-Augmented Local Simulators).

The entry points are importable from here:

    from dials_lib import RunConfig, config_from_preset, train, make_global, make_local
    result = train(config_from_preset("quick", "traffic", "dials", seed=0))

Modules, bottom-up (each imports only from the layers above it in this list):
- `envs`: traffic grid and warehouse, each a global simulator and batched local simulators (`make_global`,
  `make_local`), plus PettingZoo/Gymnasium adapters and statistics;
- `seeding`: every random stream and run-level purpose of a run, counter-based uniforms, the inverse-CDF sampler;
- `networks`, `adam`, `ppo_core`, `ppo`, `policy_actor`: independent PPO for groups of agents with stacked
  per-agent weights, its training loop, and the acting part of the policies;
- `influence`, `ials`, `influence_eval`, `controllers`, `metrics`: influence predictors and GS data sets
  (Algorithm 2), influence-augmented local simulators (Algorithm 3), their evaluation, controllers, GS evaluation;
- `dials` (Algorithm 1), `group_tasks`, `parallel`, `run_records`, `run_config`, `runner`, `memory`: training
  runs of GS, DIALS and untrained-DIALS over worker processes, with run directories, checkpoints and records
  (`python -m dials_lib train`);
- `analysis`, `paper`, `scaling`: run plans, statistics, figures and the paper's claims with their evidence; the
  paper's numbers; timed runs extrapolated to full budgets;
- `theory`, `theory_checks`: the appendix's Lemma 1, Proposition 1, Lemma 2 and Theorem 1 on exact tiny models;
- `hyperparameters`, `presets`, `validation`, `paths`, `io`, `plots`, `series`: the paper's hyperparameters,
  budgets, input checks, repository paths, atomic writes, figures and tables, and the notebook pipeline
  (`python -m dials_lib.series`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_ENTRY_POINTS = {
    "RunConfig": "dials_lib.training.run_config",
    "config_from_preset": "dials_lib.training.run_config",
    "train": "dials_lib.training.runner",
    "train_gs": "dials_lib.training.runner",
    "train_dials": "dials_lib.training.runner",
    "load_run": "dials_lib.training.runner",
    "make_global": "dials_lib.envs",
    "make_local": "dials_lib.envs",
    "paper_hyperparameters": "dials_lib.hyperparameters",
}
"""Names importable from the package root, and the module each lives in (imported on first use: torch and the
simulators load only when one of them is asked for)."""


def __getattr__(name: str) -> Any:
    """The entry point `name` from its module (PEP 562)."""
    if name in _ENTRY_POINTS:
        return getattr(import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'dials_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The package's attributes and its entry points."""
    return sorted([*globals(), *_ENTRY_POINTS])


__all__ = sorted(_ENTRY_POINTS)

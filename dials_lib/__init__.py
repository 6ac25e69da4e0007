"""dials_lib: a reference implementation of DIALS (Distributed Influence-Augmented Local Simulators).

The entry points are importable from here:

    from dials_lib import RunConfig, config_from_preset, train, make_global, make_local
    result = train(config_from_preset("quick", "traffic", "dials", seed=0))

Layers, bottom-up (each imports only from the layers before it in this list; `tests/test_layers.py` checks it):
- the foundation modules here: `paths`, `files` (atomic writes), `validation` (input checks), `hyperparameters`
  (the paper's Tables 4-6), `presets` (smoke / quick / paper budgets), `paper` (its numbers), `plots`, `seeding`
  (every random stream and run-level purpose);
- `envs`: traffic grid and warehouse, each a global simulator and batched local simulators, with their contract
  (Protocols, registry, the local-form checker) and PettingZoo/Gymnasium adapters; `theory`: the appendix's
  Lemma 1, Proposition 1, Lemma 2 and Theorem 1 on exact tiny models;
- `learning`: stacked per-agent networks, independent PPO and its training loop, the acting part of the
  policies, influence predictors and GS data sets (Algorithm 2), influence-augmented local simulators
  (Algorithm 3), controllers;
- `training`: Algorithm 1 (`training.dials`) over worker processes, run configs, directories, checkpoints and
  records, GS evaluation (`python -m dials_lib train`);
- `analysis`: run plans, statistics, figures, timed runs extrapolated to full budgets, and the paper's claims
  with their evidence;
- `series`: the notebook pipeline (`python -m dials_lib.series`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_ENTRY_POINTS = {
    "RunConfig": "dials_lib.training.run_config",
    "config_from_preset": "dials_lib.training.run_config",
    "train": "dials_lib.training.runner",
    "train_seeds": "dials_lib.training.runner",
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

"""dials_lib: a reference implementation of DIALS (Distributed Influence-Augmented Local Simulators).

Modules, one concept each:
- `envs`: traffic grid and warehouse, each a global simulator and batched local simulators (`make_global`,
  `make_local`), plus PettingZoo/Gymnasium adapters and statistics;
- `seeding`: every random stream and run-level purpose of a run, counter-based uniforms, the inverse-CDF sampler;
- `networks`, `ppo_core`, `ppo`: independent PPO for groups of agents with stacked per-agent weights;
- `influence`, `ials`, `influence_eval`: influence predictors, GS data sets (Algorithm 2), influence-augmented
  local simulators (Algorithm 3) and their evaluation;
- `controllers`: random, hand-coded and policy controllers;
- `run_config`, `runner`, `workers`, `memory`, `metrics`: GS, DIALS and untrained-DIALS training runs on joblib
  workers, with run directories, checkpoints, memory records and GS evaluation (`python -m dials_lib train`);
- `scaling`: timed short runs of GS and DIALS in fresh processes, extrapolated to full budgets and worker counts
  (runtime and memory against the number of agents);
- `theory`, `theory_checks`: the appendix's Lemma 1, Proposition 1, Lemma 2 and Theorem 1 on exact tiny models;
- `config`, `paths`, `io`, `plots`, `series`: hyperparameters and presets, repository paths, atomic writes,
  figures and tables, and the notebook pipeline (`python -m dials_lib.series`).
"""

__version__ = "0.1.0"

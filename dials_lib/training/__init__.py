"""Training runs: Algorithm 1 (`dials`) over worker processes, with run directories, checkpoints and records.

- `dials`: the loop of Algorithm 1, for DIALS, untrained-DIALS and GS training;
- `group_tasks`: what a worker does for one group of agents; `parallel`: tasks spread over processes;
- `run_config`: what a run does (`RunConfig`, its chunk `Schedule`, `config_from_preset`);
- `run_records`: the run directory, checkpoint and resume, the records; `memory`: peak memory;
- `evaluation`: GS evaluation (average return, domain metrics, AIP cross-entropy);
- `runner`: the entry points `train`, `train_gs`, `train_dials`, `load_run`;
- `trained_agents`: a run's agents read back from its checkpoint (policies, and the AIPs they trained on last).

Imports the foundation modules, `dials_lib.envs` and `dials_lib.learning`.
"""

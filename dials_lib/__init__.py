"""dials_lib: a reference implementation of DIALS (Distributed Influence-Augmented Local Simulators).

Modules, one concept each: `envs` (global and local simulators), `config` (the paper's hyperparameters and the
run presets), `paths`, `io`, `plots` and `series` (the notebook pipeline).
"""

__version__ = "0.1.0"

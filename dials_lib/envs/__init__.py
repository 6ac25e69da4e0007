"""Environments: the registry (`make_global`, `make_local`, `get_spec`, `get_env`), the contract, the checker.

Each environment module (`traffic`, `warehouse`) provides a global simulator (all agents, one batched state)
and a local simulator (K independent copies of one agent's region) with the core API of docs/design.md ("Core API"):
leading axis = agent (GS) or region (LS), no per-agent Python objects. The API is declared as the Protocols
`GlobalSimulator` and `LocalSimulator` (`contract`); `registry.ENVS` holds one `EnvRecord` per environment;
`check_local_form` checks that an environment's LS, fed the GS's influence sources, reproduces the GS.
"""

from __future__ import annotations

from dials_lib.envs.contract import (
    EnvRecord,
    EnvSpec,
    GlobalSimulator,
    LocalSimulator,
    LocalStates,
    Metric,
    MetricTracker,
    check_n_agents,
    check_n_regions,
    close_simulator,
)
from dials_lib.envs.local_form import LocalFormError, LocalFormSummary, check_local_form
from dials_lib.envs.registry import ENVS, get_env, get_spec, make_global, make_local

__all__ = [
    "ENVS", "EnvRecord", "EnvSpec", "GlobalSimulator", "LocalFormError", "LocalFormSummary", "LocalSimulator",
    "LocalStates", "Metric", "MetricTracker", "check_local_form", "check_n_agents", "check_n_regions",
    "close_simulator", "get_env", "get_spec", "make_global", "make_local",
]

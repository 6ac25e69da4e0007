"""The environment registry: one `EnvRecord` per environment, and the constructors that go through it.

`ENVS` maps an environment's name to its record (spec, simulators, hand-coded controller, influence-source names,
domain metrics and their tracker, picture function); the names come from `dials_lib.hyperparameters.ENV_NAMES`, the
one list of environments. Everything else in the library that needs an environment-specific part looks it up here
with `get_env(name)`.
"""

from __future__ import annotations

from typing import Any

from dials_lib.envs import (
    sumo_traffic,
    sumo_traffic_metrics,
    traffic,
    traffic_metrics,
    traffic_open_exits,
    warehouse,
    warehouse_metrics,
)
from dials_lib.envs.contract import (
    EnvRecord,
    EnvSpec,
    GlobalSimulator,
    LocalSimulator,
    Seeds,
    check_n_agents,
    check_n_regions,
)
from dials_lib.hyperparameters import ENV_NAMES, ENV_VARIANTS
from dials_lib.validation import check_choice

PAPER_RECORDS: tuple[EnvRecord, ...] = (
    EnvRecord(
        spec=traffic.SPEC,
        global_simulator=traffic.GlobalSimulator,
        local_simulator=traffic.LocalSimulator,
        hand_coded=traffic.hand_coded_actions,
        source_names=traffic.SOURCE_NAMES,
        idle_source_class=0,
        metrics=traffic_metrics.METRICS,
        tracker=traffic_metrics.TrafficMetrics,
        render=traffic.render,
    ),
    EnvRecord(
        spec=warehouse.SPEC,
        global_simulator=warehouse.GlobalSimulator,
        local_simulator=warehouse.LocalSimulator,
        hand_coded=warehouse.hand_coded_actions,
        source_names=warehouse.SOURCE_NAMES,
        idle_source_class=warehouse.IDLE_SOURCE_CLASS,
        metrics=warehouse_metrics.METRICS,
        tracker=warehouse_metrics.WarehouseMetrics,
        render=warehouse.render,
    ),
)
"""The records of the paper's two environments, each named by its spec (`EnvRecord.name`)."""


def records_by_name(names: tuple[str, ...], records: tuple[EnvRecord, ...]) -> dict[str, EnvRecord]:
    """`records` keyed by their names, in the order of `names`; a ValueError names any name without a record and
    any record whose name is not in `names`, so the two cannot drift apart."""
    found = {record.name: record for record in records}
    missing, unlisted = [n for n in names if n not in found], [n for n in found if n not in names]
    if missing or unlisted or len(found) != len(records):
        raise ValueError(f"environment names {list(names)} and records {[r.name for r in records]} differ: "
                         f"no record for {missing}, not listed {unlisted} (one record per name)")
    return {name: found[name] for name in names}


ENVS: dict[str, EnvRecord] = records_by_name(ENV_NAMES, PAPER_RECORDS)
"""Every environment of the paper, by name. The names and their order are `dials_lib.hyperparameters.ENV_NAMES`,
the one list of them (the foundation modules need the names without the simulators); this only attaches each
name's record and refuses, on import, a name without a record or a record without a name."""

VARIANT_RECORDS: tuple[EnvRecord, ...] = (
    EnvRecord(
        spec=traffic_open_exits.SPEC,
        global_simulator=traffic_open_exits.GlobalSimulator,
        local_simulator=traffic_open_exits.LocalSimulator,
        hand_coded=traffic.hand_coded_actions,
        source_names=traffic_open_exits.SOURCE_NAMES,
        idle_source_class=0,
        metrics=traffic_metrics.METRICS,
        tracker=traffic_metrics.TrafficMetrics,
        render=traffic.render,
        exact_local_form=False,
    ),
    EnvRecord(
        spec=sumo_traffic.SPEC,
        global_simulator=sumo_traffic.GlobalSimulator,
        local_simulator=sumo_traffic.LocalSimulator,
        hand_coded=None,
        source_names=sumo_traffic.SOURCE_NAMES,
        idle_source_class=0,
        metrics=sumo_traffic_metrics.METRICS,
        tracker=sumo_traffic_metrics.SumoTrafficMetrics,
        render=sumo_traffic.render,
        baseline_options={"lights": "actuated"},
        exact_local_form=False,
    ),
)
"""The records of the variants the runner trains beside the paper's environments, each named by its spec."""

EXTRA_ENVS: dict[str, EnvRecord] = records_by_name(tuple(ENV_VARIANTS), VARIANT_RECORDS)
"""Environments built through the same contract beyond the paper's two: traffic with the paper's 4 influence sources
only (a variant the runner trains with traffic's hyperparameters, `hyperparameters.ENV_VARIANTS`; its LS never
blocks an exit, so it follows the GS only approximately and `traffic_open_exits.local_gap` measures how well), and
the paper's traffic grid in SUMO, also trained with traffic's hyperparameters (needs the `sumo` extra; its LS follows
the GS only approximately, `sumo_local_gap` measures how well; its baseline is the GS's own actuated lights). Their
names and order are those of `dials_lib.hyperparameters.ENV_VARIANTS`, as `ENVS` takes its from `ENV_NAMES`."""


def get_env(name: str) -> EnvRecord:
    """The registry record of environment `name`; a ValueError lists the known names for any other."""
    check_choice("env", name, (*ENV_NAMES, *EXTRA_ENVS))
    return ENVS[name] if name in ENVS else EXTRA_ENVS[name]


def make_global(name: str, n_agents: int = 4, seed: Seeds = None, **kwargs: Any) -> GlobalSimulator:
    """The global simulator of environment `name` with `n_agents` learning agents (a square number).

    `seed` is an int or None for one world, or a sequence of B seeds for B independent copies of it stepped
    together (`contract.check_seeds`): every per-agent array then has B * n_agents rows, copy-major, and copy b
    is exactly the single simulator seeded with `seed[b]`.
    """
    check_n_agents(n_agents)
    return get_env(name).global_simulator(n_agents=n_agents, seed=seed, **kwargs)


def make_local(name: str, n_regions: int = 1, seed: int | None = None, **kwargs: Any) -> LocalSimulator:
    """A batch of `n_regions` independent local simulators of environment `name`."""
    check_n_regions(n_regions)
    return get_env(name).local_simulator(n_regions=n_regions, seed=seed, **kwargs)


def get_spec(name: str) -> EnvSpec:
    """The spec of environment `name` without building a simulator."""
    return get_env(name).spec


__all__ = ["ENVS", "EXTRA_ENVS", "get_env", "get_spec", "make_global", "make_local"]

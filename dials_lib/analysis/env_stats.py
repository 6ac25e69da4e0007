"""Environment statistics for the notebooks, generic over the registry: returns and influence-source statistics.

A controller here is 'random' (uniform actions) or 'hand-coded' (the registry record's
`hand_coded(local_states)`), built by `dials_lib.learning.controllers.make_controller`. Returns are
undiscounted per-agent episode returns on the GS, the paper's metric. Influence statistics describe what an
AIP has to learn: how often each source is non-zero, how much that differs between agents, how persistent a
source is from one step to the next, and how the sources co-vary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dials_lib.envs import get_env, make_global
from dials_lib.hyperparameters import ENV_NAMES
from dials_lib.validation import check_choice

CONTROLLERS = ("random", "hand-coded")


def run_episodes(env: str, n_agents: int, controller: str, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Run `episodes` GS episodes; returns per-step rewards [E, H, n] and influence sources [E, H, n, S]."""
    from dials_lib.learning.controllers import make_controller, rollout  # controllers imports the envs package

    check_choice("env", env, ENV_NAMES)
    check_choice("controller", controller, CONTROLLERS)
    sim = make_global(env, n_agents=n_agents, seed=seed)
    return rollout(sim, make_controller(controller, env, n_agents, seed), episodes)


def episode_returns(env: str, n_agents: int, controller: str, episodes: int, seed: int = 0) -> np.ndarray:
    """Undiscounted return of every agent in every episode, float64 [episodes, n_agents]."""
    return run_episodes(env, n_agents, controller, episodes, seed)["rewards"].sum(axis=1, dtype=np.float64)


def returns_table(env: str, sizes: Sequence[int], episodes: int, seed: int = 0,
                  controllers: Sequence[str] = CONTROLLERS) -> pd.DataFrame:
    """Average return per agent (mean over agents and episodes) with its standard error over episodes."""
    rows = []
    for n_agents in sizes:
        for controller in controllers:
            per_episode = episode_returns(env, n_agents, controller, episodes, seed).mean(axis=1)
            stderr = per_episode.std(ddof=1) / np.sqrt(episodes) if episodes > 1 else float("nan")
            rows.append({"env": env, "agents": n_agents, "controller": controller,
                         "average return": per_episode.mean(), "stderr": stderr, "episodes": episodes})
    return pd.DataFrame(rows)


def source_names(env: str) -> list[str]:
    """Readable names of an environment's influence sources, in the order of `influence_sources()`."""
    return list(get_env(env).source_names)


def idle_class(env: str) -> int:
    """The class of a source meaning "nothing comes in" (0 for traffic, "elsewhere" for the warehouse)."""
    return get_env(env).idle_source_class


def influence_statistics(sources: np.ndarray, names: Sequence[str] | None = None, idle: int = 0) -> pd.DataFrame:
    """One row per influence source of `sources` [episodes, horizon, n_agents, n_sources] (class indices).

    rate: P(u != idle) over agents, steps and episodes (`idle`: see `idle_class`); rate min/max over agents:
    how much regions differ;
    P(same as t-1) against its chance level sum_c p_c^2 (a persistent source is easier to predict);
    lag-1 corr: correlation of the non-zero indicator with itself one step earlier (NaN if constant).
    """
    episodes, horizon, n_agents, n_sources = sources.shape
    names = list(names) if names is not None else [f"u{i}" for i in range(n_sources)]
    rows = []
    for s in range(n_sources):
        u = sources[..., s]
        active = (u != idle).astype(np.float64)
        per_agent = active.mean(axis=(0, 1))
        class_p = np.bincount(u.ravel()) / u.size
        now, before = active[:, 1:].ravel(), active[:, :-1].ravel()
        varies = now.std() > 0 and before.std() > 0
        rows.append({
            "source": names[s],
            "rate": active.mean(),
            "rate min over agents": per_agent.min(),
            "rate max over agents": per_agent.max(),
            "P(same as t-1)": float(np.mean(u[:, 1:] == u[:, :-1])),
            "chance of same": float(np.sum(class_p ** 2)),
            "lag-1 corr": float(np.corrcoef(now, before)[0, 1]) if varies else float("nan"),
        })
    return pd.DataFrame(rows)


def influence_correlation(sources: np.ndarray, idle: int = 0) -> np.ndarray:
    """Correlation matrix [n_sources, n_sources] of the sources' u != idle indicators within a region and step."""
    active = (sources != idle).reshape(-1, sources.shape[-1]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(active, rowvar=False)

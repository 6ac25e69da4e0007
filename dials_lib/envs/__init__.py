"""Environment registry: `make_global(name, ...)` and `make_local(name, ...)`, plus the shared spec type.

Each environment module (`traffic`, `warehouse`) provides a `GlobalSimulator` class (all agents, one
batched state) and a `LocalSimulator` class (K independent copies of one agent's region), both with the
core API described in DESIGN.md: leading axis = agent (GS) or region (LS), no per-agent Python objects.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from dials_lib.hyperparameters import ENV_NAMES
from dials_lib.validation import check_choice


@dataclass(frozen=True)
class EnvSpec:
    """Sizes every learner and predictor needs to know about an environment."""

    name: str
    """Environment name ('traffic' or 'warehouse')."""
    obs_dim: int
    """Length of one agent's observation vector."""
    n_actions: int
    """Number of discrete actions per agent."""
    source_sizes: tuple[int, ...]
    """Number of classes of each influence source u_i (2 for a binary source)."""
    dset_dim: int
    """Length of the d-separating-set vector the AIP conditions on at one step."""
    horizon: int
    """Episode length in steps."""

    @property
    def n_sources(self) -> int:
        """Number of influence sources per agent."""
        return len(self.source_sizes)


def check_n_agents(n_agents: Any) -> int:
    """Validate a number of agents (a positive perfect square) and return its grid side."""
    if isinstance(n_agents, bool) or not isinstance(n_agents, int) or n_agents < 1:
        raise ValueError(f"n_agents must be a positive square integer such as 4, 25, 49 or 100; got {n_agents!r}")
    side = math.isqrt(n_agents)
    if side * side != n_agents:
        raise ValueError(
            f"n_agents must be a square number (the agents form a square grid), e.g. 4, 25, 49 or 100; "
            f"got {n_agents}"
        )
    return side


def check_n_regions(n_regions: Any) -> int:
    """Validate a number of local regions (a positive integer)."""
    if isinstance(n_regions, bool) or not isinstance(n_regions, int) or n_regions < 1:
        raise ValueError(f"n_regions must be a positive integer; got {n_regions!r}")
    return n_regions


def _module(name: str) -> Any:
    check_choice("env", name, ENV_NAMES)
    return importlib.import_module(f"dials_lib.envs.{name}")


def make_global(name: str, n_agents: int = 4, seed: int | None = None, **kwargs: Any) -> Any:
    """The global simulator of environment `name` with `n_agents` learning agents (a square number)."""
    check_n_agents(n_agents)
    return _module(name).GlobalSimulator(n_agents=n_agents, seed=seed, **kwargs)


def make_local(name: str, n_regions: int = 1, seed: int | None = None, **kwargs: Any) -> Any:
    """A batch of `n_regions` independent local simulators of environment `name`."""
    check_n_regions(n_regions)
    return _module(name).LocalSimulator(n_regions=n_regions, seed=seed, **kwargs)


def get_spec(name: str) -> EnvSpec:
    """The spec of environment `name` without building a simulator."""
    return _module(name).SPEC


__all__ = ["EnvSpec", "check_n_agents", "check_n_regions", "get_spec", "make_global", "make_local"]

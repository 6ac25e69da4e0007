"""The environment contract: what an environment of the registry provides and what the library relies on.

- `EnvSpec`: the sizes every learner and predictor needs (observation, actions, influence sources, d-set, horizon).
- `GlobalSimulator` / `LocalSimulator`: the core API of the two simulators as `typing.Protocol`s, exactly the
  methods and attributes the library calls. Arrays have a leading axis of agents (GS) or regions (LS batch);
  there are no per-agent Python objects. A GS built with a sequence of B seeds holds B independent copies of
  the world (`check_seeds`): its per-agent arrays then have B * n_agents rows, copy-major.
- `Metric` / `MetricTracker`: a domain metric (column name, label, unit) and the object that accumulates an
  environment's domain metrics over GS episodes (`dials_lib.training.evaluation.evaluate` drives it).
- `EnvRecord`: one registry record per environment (`dials_lib.envs.registry.ENVS`) tying all of these together
  with the hand-coded controller, the names of the influence sources and the picture function.

The property that makes a local simulator a faithful piece of the global one (the local form, docs/design.md,
"The local-form contract") is checked by `dials_lib.envs.check_local_form`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

LocalStates = dict[str, np.ndarray]
"""All of each region's local state: a dict of arrays whose leading axis is the agent (GS) or region (LS)."""

Seeds = int | Sequence[int] | np.ndarray | None
"""The `seed` of a global simulator: an int or None (one world), or a sequence of B ints (B independent copies)."""


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


def check_seeds(seed: Any, name: str = "seed") -> list[Any]:
    """The seeds of the independent copies of the world a global simulator holds, one per copy.

    A sequence (list, tuple, range, 1-d array) of B non-negative integers gives B copies (copy b seeded with
    entry b); anything else (an int, None) is one copy and is passed on as is, so a single-copy simulator seeds
    exactly as before. An empty sequence or one with an entry that is not a non-negative integer raises a
    ValueError naming `name`.
    """
    is_array = isinstance(seed, np.ndarray) and seed.ndim > 0
    if not is_array and (not isinstance(seed, Sequence) or isinstance(seed, str | bytes)):
        return [seed]
    if isinstance(seed, np.ndarray) and seed.ndim != 1:
        raise ValueError(f"{name} must be an int, None or a 1-d sequence of ints (one per copy); got an array of "
                         f"shape {seed.shape}")
    if len(seed) == 0:
        raise ValueError(f"{name} must hold at least one seed (one per copy of the world); got an empty sequence")
    # bools are ints to Python, but a list of flags is surely not what was meant
    bad = [s for s in seed if isinstance(s, bool | np.bool_) or not isinstance(s, int | np.integer) or s < 0]
    if bad:
        raise ValueError(f"{name} must be a sequence of non-negative integers (one per copy of the world); got "
                         f"{bad[0]!r} in {list(seed)!r}")
    return [int(s) for s in seed]


@runtime_checkable
class GlobalSimulator(Protocol):
    """The whole system: every agent's region stepped together (built by `make_global(name, n_agents, seed)`)."""

    spec: EnvSpec
    n_agents: int
    t: int
    """Time step of the episode (the number of steps taken since the last reset)."""

    def reset(self, seed: Seeds = None) -> np.ndarray:
        """Start an episode (a new random stream if `seed` is given, one seed per copy of the world when the GS
        holds several); observations float32 [n_agents, obs_dim] (B * n_agents rows for B copies, copy-major)."""
        ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Step with int actions [n_agents]: observations, rewards float32 [n_agents], done (horizon reached).

        With B copies every per-agent array, actions included, has B * n_agents rows; `done` is shared."""
        ...

    def influence_sources(self) -> np.ndarray:
        """u_t realised by the step just taken, int64 [n_agents, n_sources] (class indices)."""
        ...

    def dsets(self) -> np.ndarray:
        """The d-separating set at the current t, float32 [n_agents, dset_dim]."""
        ...

    def local_states(self) -> LocalStates:
        """Copies of every agent region's local state (the format `LocalSimulator.load_states` takes)."""
        ...

    def last_noise(self) -> np.ndarray | None:
        """The local random draws of the step just taken, per region; None if the local rules draw none."""
        ...


@runtime_checkable
class LocalSimulator(Protocol):
    """K independent copies of one region; the rest of the world enters only through u (`make_local`)."""

    spec: EnvSpec
    n_regions: int
    t: int
    """Time step of the episode, shared by all K regions."""

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode in every region; observations float32 [K, obs_dim]."""
        ...

    def step(self, actions: np.ndarray, u: np.ndarray, noise: np.ndarray | None = None) -> tuple[
        np.ndarray, np.ndarray, bool
    ]:
        """Step with actions [K], influence sources u int [K, n_sources] and the local random draws `noise`
        (None: the simulator draws its own); returns observations, rewards float32 [K], done."""
        ...

    def load_states(self, states: LocalStates) -> np.ndarray:
        """Put the K regions into the given local states (e.g. a GS's `local_states()`); returns their
        observations float32 [K, obs_dim], as `reset` does."""
        ...

    def local_states(self) -> LocalStates:
        """Copies of the K regions' local states, in the format of `GlobalSimulator.local_states()`."""
        ...

    def influence_sources(self) -> np.ndarray:
        """The u the step just taken received, int64 [K, n_sources]."""
        ...

    def dsets(self) -> np.ndarray:
        """The d-separating set at the current t, float32 [K, dset_dim]."""
        ...

    def last_noise(self) -> np.ndarray | None:
        """The local random draws used by the step just taken; None if the local rules draw none."""
        ...


@runtime_checkable
class AgentSimulator(Protocol):
    """What agents act and learn in: the GS, or an influence-augmented local simulator (`learning.ials.IALS`),
    which steps its regions with influence sources sampled from its AIPs. The learning layer (PPO's training
    loop, the controllers, data collection) takes either through these methods only."""

    spec: EnvSpec
    n_agents: int

    def reset(self) -> np.ndarray:
        """Start an episode; observations float32 [n_agents, obs_dim]."""
        ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Step with int actions [n_agents]: observations, rewards float32 [n_agents], done."""
        ...

    def dsets(self) -> np.ndarray:
        """The d-separating set at the current t, float32 [n_agents, dset_dim]."""
        ...

    def influence_sources(self) -> np.ndarray:
        """The influence sources of the step just taken, int64 [n_agents, n_sources]."""
        ...

    def local_states(self) -> LocalStates:
        """Copies of every agent region's local state."""
        ...

    def last_noise(self) -> np.ndarray | None:
        """The local random draws of the step just taken; None if the local rules draw none."""
        ...


@dataclass(frozen=True)
class Metric:
    """One domain metric: its column in `metrics.csv`, a readable label and its unit."""

    name: str
    label: str
    unit: str

    @property
    def axis_label(self) -> str:
        """'label (unit)', for a plot axis or a table header."""
        return f"{self.label} ({self.unit})"


class MetricTracker(Protocol):
    """Accumulates an environment's domain metrics over GS episodes (`learning.influence.collect_dataset`)."""

    def step(self, before: LocalStates, rewards: np.ndarray, sim: GlobalSimulator) -> None:
        """Record one GS step from the local states before it, its rewards and the simulator after it."""
        ...

    def end_episode(self, sim: GlobalSimulator) -> None:
        """Close an episode."""
        ...

    def summary(self) -> dict[str, float]:
        """The metrics over all recorded episodes, keyed by `Metric.name`."""
        ...


@dataclass(frozen=True)
class EnvRecord:
    """Everything the library needs of one environment; `dials_lib.envs.registry.ENVS` holds one per name."""

    spec: EnvSpec
    global_simulator: Callable[..., GlobalSimulator]
    """The GS class, called as `global_simulator(n_agents=..., seed=..., **options)`."""
    local_simulator: Callable[..., LocalSimulator]
    """The LS class, called as `local_simulator(n_regions=..., seed=..., **options)`."""
    hand_coded: Callable[[LocalStates], np.ndarray] | None
    """The hand-coded controller: int64 actions [n] from local states (the 'hand-coded' baseline); None when the
    baseline runs inside the simulator instead (`baseline_options`)."""
    source_names: tuple[str, ...]
    """Readable names of the influence sources, in the order of `influence_sources()`."""
    idle_source_class: int
    """The class of a source meaning "nothing comes in" (what `stats` counts a source as inactive in)."""
    metrics: tuple[Metric, ...]
    """The domain metrics, in the column order of `metrics.csv`."""
    tracker: Callable[[int], MetricTracker]
    """The domain-metric tracker class, called with the number of agents."""
    render: Callable[..., Any]
    """`render(sim, ax=None, region=...)`: a picture of a GS or of one LS region on matplotlib axes."""
    baseline_options: dict[str, Any] | None = None
    """Options of `global_simulator` under which it runs the hand-coded baseline itself, ignoring the actions it is
    given (SUMO's actuated lights); None when `hand_coded` computes the baseline's actions."""
    exact_local_form: bool = True
    """Whether the LS, fed the GS's u and noise, replays the GS bit for bit (`check_local_form` applies); False
    when it follows the GS only approximately and the gap is measured instead (sumo-traffic)."""

    def __post_init__(self) -> None:
        """Check that the names of the sources and the metrics fit the spec and the tracker."""
        if len(self.source_names) != self.spec.n_sources:
            raise ValueError(f"{self.spec.name}: {len(self.source_names)} source names for "
                             f"{self.spec.n_sources} influence sources")
        if (self.hand_coded is None) == (self.baseline_options is None):
            raise ValueError(f"{self.spec.name}: give exactly one of hand_coded (a controller) and baseline_options "
                             f"(the simulator runs the baseline)")
        if not 0 <= self.idle_source_class < min(self.spec.source_sizes):
            raise ValueError(f"{self.spec.name}: idle_source_class {self.idle_source_class} is not a class of "
                             f"every source")

    @property
    def name(self) -> str:
        """The environment's name (its registry key)."""
        return self.spec.name

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The domain metric columns, in the order of `metrics.csv`."""
        return tuple(m.name for m in self.metrics)


def close_simulator(sim: object) -> None:
    """Close a simulator that holds an outside resource (a SUMO simulation, whose libsumo is one per process); a
    no-op for the others. Done as soon as a simulator is no longer needed, so that the next one gets libsumo."""
    close = getattr(sim, "close", None)
    if callable(close):
        close()


__all__ = [
    "AgentSimulator", "EnvRecord", "EnvSpec", "GlobalSimulator", "LocalSimulator", "LocalStates", "Metric",
    "MetricTracker", "Seeds", "check_n_agents", "check_n_regions", "check_seeds", "close_simulator",
]

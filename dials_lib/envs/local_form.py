"""`check_local_form`: the executable local-form property of an environment (docs/design.md, "The local-form contract").

Take the global simulator's local states, load them into a local simulator with one region per agent, and
step that LS with the GS's actions, realised influence sources `influence_sources()` and local random draws
`last_noise()`: its observations, rewards, end of episode, local states, influence sources, d-sets and noise
must equal the GS's, bit for bit (values, dtypes and shapes), for every agent and every step of whole
episodes. This is what makes an LS a faithful piece of the GS: an AIP can then be wrong about u, never about
the local rules. Like Gymnasium's `check_env`, the checker raises on the first disagreement, with a message
naming the episode, the step, the agent and the quantity, and otherwise returns a short summary.

With `copies=B` the GS holds B independent copies of the world (a sequence of seeds) and the LS batch one
region per agent of every copy (B * n_agents regions, copy-major): the batched layout obeys the same property.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dials_lib.envs.contract import EnvSpec, GlobalSimulator, LocalSimulator, check_n_agents
from dials_lib.envs.registry import get_env
from dials_lib.validation import check_choice

CONTROLLERS = ("random", "hand-coded")
"""Who acts during the check: uniformly random actions or the environment's hand-coded controller."""

GAP_MEASURES = {"sumo-traffic": "dials_lib.envs.sumo_local_gap.local_gap",
                "traffic-open-exits": "dials_lib.envs.traffic_open_exits.local_gap"}
"""Where the gap of each environment with an approximate local simulator is measured instead."""

STEP_QUANTITIES = ("observations", "rewards", "done", "local_states", "influence_sources", "dsets", "last_noise")
"""What is compared after every step (`local_states` key by key)."""


class LocalFormError(AssertionError):
    """The local simulator disagreed with the global one; `quantity`, `agent`, `episode`, `step` say where."""

    def __init__(self, message: str, quantity: str, agent: int | None, episode: int, step: int) -> None:
        """An error about `quantity` of `agent` (None: not one agent's) after GS step `step` of `episode`."""
        super().__init__(message)
        self.quantity = quantity
        self.agent = agent
        self.episode = episode
        self.step = step


@dataclass(frozen=True)
class LocalFormSummary:
    """What a successful `check_local_form` covered."""

    env: str
    n_agents: int
    episodes: int
    controller: str
    steps: int
    """GS steps replayed (episodes x horizon); after each one every quantity of `STEP_QUANTITIES` was equal."""
    source_activity: tuple[float, ...]
    """Per influence source: the fraction of agent-steps in which it was not idle (how much u was exercised)."""
    rewarded: float
    """The fraction of agent-steps with a positive reward."""
    copies: int = 1
    """Independent copies of the world the GS held (each of `n_agents` agents)."""

    def __str__(self) -> str:
        """One line for a notebook."""
        active = ", ".join(f"{a:.3f}" for a in self.source_activity)
        copies = f" in each of {self.copies} copies" if self.copies > 1 else ""
        return (f"{self.env}: local form holds for {self.n_agents} agents{copies} over {self.episodes} episode(s) "
                f"({self.steps} GS steps, {self.controller} actions); rewarded agent-steps {self.rewarded:.3f}; "
                f"non-idle rate per source [{active}]")


class _Where:
    """The position of the check, for error messages."""

    def __init__(self, env: str, n_agents: int, copies: int) -> None:
        """At the start of episode 0 of environment `env` (`copies` copies of `n_agents` agents)."""
        self.env, self.episode, self.step = env, 0, 0
        self.n_agents, self.copies = n_agents, copies

    def fail(self, quantity: str, agent: int | None, detail: str) -> LocalFormError:
        """The error (to raise) for `quantity` of `agent` (a row of the copy-major agent axis; None: not one
        agent's) at the current position."""
        who = "all agents" if agent is None else f"agent {agent}"
        if agent is not None and self.copies > 1:
            who += f" (agent {agent % self.n_agents} of copy {agent // self.n_agents})"
        when = "after load_states" if self.step == 0 else f"after step {self.step}"
        message = (f"{self.env}: the local simulator disagrees with the global one: {quantity} of {who}, "
                   f"{when} (episode {self.episode}): {detail}")
        return LocalFormError(message, quantity, agent, self.episode, self.step)


def _show(row: np.ndarray) -> str:
    return np.array2string(np.asarray(row), threshold=20, edgeitems=5, max_line_width=200)


def _check_contract(quantity: str, value: Any, dtype: type, shape: tuple[int, ...], where: _Where) -> None:
    """A GS output against the core API's dtype and shape (docs/design.md, "Core API")."""
    value = np.asarray(value)
    if value.dtype != dtype or value.shape != shape:
        raise where.fail(quantity, None, f"the global simulator returned {value.dtype} {value.shape}; the core API "
                                         f"says {np.dtype(dtype)} {shape}")


def _compare(quantity: str, gs_value: Any, ls_value: Any, where: _Where) -> None:
    """Raise a LocalFormError unless the two values are equal, bit for bit, with the same dtype and shape."""
    if gs_value is None or ls_value is None:
        if gs_value is not ls_value:
            raise where.fail(quantity, None, f"GS {'None' if gs_value is None else 'an array'}, "
                                             f"LS {'None' if ls_value is None else 'an array'}")
        return
    gs_array, ls_array = np.asarray(gs_value), np.asarray(ls_value)
    if gs_array.shape != ls_array.shape:
        raise where.fail(quantity, None, f"shape GS {gs_array.shape}, LS {ls_array.shape}")
    if gs_array.dtype != ls_array.dtype:
        raise where.fail(quantity, None, f"dtype GS {gs_array.dtype}, LS {ls_array.dtype}")
    if np.array_equal(gs_array, ls_array):
        return
    if gs_array.ndim == 0:
        raise where.fail(quantity, None, f"GS {gs_array}, LS {ls_array}")
    differs = (gs_array != ls_array).reshape(len(gs_array), -1).any(axis=1)
    agent = int(np.flatnonzero(differs)[0])
    raise where.fail(quantity, agent, f"GS {_show(gs_array[agent])}, LS {_show(ls_array[agent])} "
                                      f"({int(differs.sum())} agent(s) differ)")


def _compare_states(gs: GlobalSimulator, ls: LocalSimulator, where: _Where) -> None:
    """Local states key by key, then the d-sets."""
    gs_states, ls_states = gs.local_states(), ls.local_states()
    if gs_states.keys() != ls_states.keys():
        raise where.fail("local_states", None, f"keys GS {sorted(gs_states)}, LS {sorted(ls_states)}")
    for key in gs_states:
        _compare(f"local_states[{key!r}]", gs_states[key], ls_states[key], where)
    _compare("dsets", gs.dsets(), ls.dsets(), where)


def _check_step_outputs(spec: EnvSpec, n: int, obs: Any, rewards: Any, gs: GlobalSimulator, where: _Where) -> None:
    _check_contract("observations", obs, np.float32, (n, spec.obs_dim), where)
    _check_contract("rewards", rewards, np.float32, (n,), where)
    _check_contract("influence_sources", gs.influence_sources(), np.int64, (n, spec.n_sources), where)
    _check_contract("dsets", gs.dsets(), np.float32, (n, spec.dset_dim), where)


def check_local_form(
    name: str,
    n_agents: int = 4,
    episodes: int = 1,
    *,
    controller: str = "random",
    seed: int = 0,
    local_simulator: Callable[..., LocalSimulator] | None = None,
    copies: int = 1,
) -> LocalFormSummary:
    """Check the local-form property of environment `name` on `episodes` whole GS episodes of `n_agents` agents.

    The GS (seeded with `seed`) is driven by `controller` ('random': uniform actions from `seed`; 'hand-coded':
    the environment's rule). At every episode start the GS's local states are loaded into one LS batch with a
    region per agent (built by `local_simulator`, by default the registry's LS class, with another seed, so an
    LS that drew its own randomness would be caught); the LS is then stepped with the GS's actions, u and
    noise, and never reloaded. With `copies` > 1 the GS holds that many independent copies of the world, seeded
    `seed`, `seed + 1000`, `seed + 2000`, ..., and the LS batch one region per agent of every copy.
    Raises `LocalFormError` at the first difference; returns a `LocalFormSummary`.
    """
    record = get_env(name)
    if not record.exact_local_form:
        raise ValueError(f"{name}'s local simulator follows the global one only approximately (exact_local_form is "
                         f"False), so there is no bit-for-bit property to check; measure the gap instead "
                         f"({GAP_MEASURES.get(name, 'its own gap measure')})")
    check_n_agents(n_agents)
    check_choice("controller", controller, CONTROLLERS)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be a positive integer; got {copies!r}")
    spec = record.spec
    # one copy keeps the int seed, so the single-copy check replays exactly what it always did
    gs_seed: int | list[int] = seed if copies == 1 else [seed + 1000 * c for c in range(copies)]
    gs = record.global_simulator(n_agents=n_agents, seed=gs_seed)
    n_rows = copies * n_agents
    ls = (local_simulator or record.local_simulator)(n_regions=n_rows, seed=seed + 1)
    rng = np.random.default_rng(seed)
    where = _Where(name, n_agents, copies)
    active = np.zeros(spec.n_sources, dtype=np.int64)
    rewarded = 0
    for episode in range(episodes):
        where.episode, where.step = episode, 0
        obs = gs.reset()
        ls.reset()
        _compare("observations", obs, ls.load_states(gs.local_states()), where)
        _compare_states(gs, ls, where)
        for t in range(1, spec.horizon + 1):
            if controller == "random":
                actions = rng.integers(0, spec.n_actions, size=n_rows)
            else:
                actions = record.hand_coded(gs.local_states())
            obs, rewards, done = gs.step(actions)
            u, noise = gs.influence_sources(), gs.last_noise()
            ls_obs, ls_rewards, ls_done = ls.step(actions, u, noise=noise)
            where.step = t
            _check_step_outputs(spec, n_rows, obs, rewards, gs, where)
            if bool(done) != (t == spec.horizon):
                raise where.fail("done", None, f"the global simulator returned done={done} after {t} of "
                                               f"{spec.horizon} steps")
            _compare("observations", obs, ls_obs, where)
            _compare("rewards", rewards, ls_rewards, where)
            _compare("done", np.bool_(done), np.bool_(ls_done), where)
            _compare_states(gs, ls, where)
            _compare("influence_sources", u, ls.influence_sources(), where)
            _compare("last_noise", noise, ls.last_noise(), where)
            active += np.count_nonzero(u != record.idle_source_class, axis=0)
            rewarded += int(np.count_nonzero(rewards > 0))
    agent_steps = episodes * spec.horizon * n_rows
    return LocalFormSummary(
        env=name, n_agents=n_agents, episodes=episodes, controller=controller, steps=episodes * spec.horizon,
        source_activity=tuple(float(a) / agent_steps for a in active), rewarded=rewarded / agent_steps,
        copies=copies,
    )


__all__ = ["CONTROLLERS", "GAP_MEASURES", "LocalFormError", "LocalFormSummary", "STEP_QUANTITIES", "check_local_form"]

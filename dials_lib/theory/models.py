"""Tiny local-form fPOSGs and their exact influence distributions, IALMs and Q-values (paper appendix A).

The model. N agents sit on a ring. Agent i has a local state x_i in {0..S-1}, actions a_i in {0..A-1} and
observations o_i in {0..O-1}. The only coupling is one influence source per agent,
u_i^t = source_map[i, x_j^t] in {0..K-1}, read off the local state of its neighbour j = i+1 (mod N).
The global transition factorises into local ones, T(s'|s, a) = prod_i T_i(x_i' | x_i, a_i, u_i), and
O_i(o_i | x_i), R_i(x_i, a_i) and the initial distribution p0_i(x_i) are local as well. One step t = 0..H-1:
observe o^t ~ O(x^t), act a^t ~ pi(h^t), collect R(x^t, a^t), read u^t off s^t, move x^{t+1} ~ T(x^t, a^t, u^t).

Histories. The influence conditions on the action-local-state history (ALSH) l_t = (x_0, a_0, ..., x_t), as
in the paper's Algorithm 2; policies condition on the action-observation history (AOH) h_t = (o_0, a_0, ...,
o_t). A history at t is stored as one integer, `actions_code * base**(t+1) + elements_code`, where both
codes are mixed-radix numbers (oldest first) and base is S for an ALSH and O for an AOH, so arrays indexed
by history have A**t * base**(t+1) rows and the last element of a history is `code % base`.

Influence. I_i(u_i^t | l_t) = P(u_i^t | l_t) under the joint policy, for t = 0..H-1. It is computed exactly
along two routes that sum in different orders: `influence_by_enumeration` builds the full joint
distribution over global histories (every agent's ALSH and AOH) and conditions at the end;
`influence_by_filtering` runs a forward filter that keeps only agent i's ALSH and the other agents' current
local states and AOHs, summing out the past at every step (agent i's own observations and policy are never
modelled, because given l_t they only contribute a common factor). Monte Carlo estimates come from
`sample_rollouts` of the global simulator.

Influence-augmented local models (IALMs) built from these influences are in `dials_lib.theory.ialm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dials_lib.seeding import inverse_cdf

Influence = list[np.ndarray]
"""One array per t = 0..H-1 of shape [A**t * S**(t+1), K]: I(u | l_t), rows indexed by ALSH code."""
JointPolicy = list[np.ndarray]
"""One array per t = 0..H-1 of shape [N, A**t * O**(t+1), A]: every agent's pi_i(a | h_t)."""


@dataclass(frozen=True)
class TinyFPOSG:
    """A local-form fPOSG small enough for exact enumeration (see the module docstring)."""

    p0: np.ndarray
    """[N, S] initial distribution of each agent's local state (independent across agents)."""
    trans: np.ndarray
    """[N, S, A, K, S] local transitions T_i(x' | x, a, u)."""
    obs: np.ndarray
    """[N, S, O] local observation functions O_i(o | x)."""
    reward: np.ndarray
    """[N, S, A] local rewards R_i(x, a)."""
    source_map: np.ndarray
    """[N, S] int: u_i = source_map[i, x_{i+1 mod N}]."""
    horizon: int
    """H: number of decisions per episode."""

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """(N agents, S local states, A actions, O observations, K source values)."""
        n, s, a, k, _ = self.trans.shape
        return n, s, a, self.obs.shape[2], k

    @property
    def neighbour(self) -> np.ndarray:
        """[N] the agent whose local state is each agent's influence source."""
        return (np.arange(self.trans.shape[0]) + 1) % self.trans.shape[0]


def n_histories(n_actions: int, base: int, t: int) -> int:
    """Number of histories at step t: A**t * base**(t+1) (base S for ALSHs, O for AOHs)."""
    return n_actions**t * base ** (t + 1)


def extend_history(code: np.ndarray, t: int, action: np.ndarray, element: np.ndarray, n_actions: int,
                   base: int) -> np.ndarray:
    """Codes at t+1 of the histories `code` at t followed by `action` and the new `element`."""
    actions_code, elements_code = np.divmod(code, base ** (t + 1))
    return (actions_code * n_actions + action) * base ** (t + 2) + elements_code * base + element


def _dirichlet(rng: np.random.Generator, shape: tuple[int, ...], size: int, concentration: float) -> np.ndarray:
    """Independent Dirichlet(concentration) distributions over `size` values, one per index of `shape`."""
    draws = rng.gamma(concentration, size=(*shape, size)) + 1e-12
    return draws / draws.sum(-1, keepdims=True)


def random_model(n_agents: int = 2, n_states: int = 3, n_actions: int = 2, n_obs: int = 2, n_sources: int = 2,
                 horizon: int = 3, seed: int = 0, concentration: float = 1.0, observe_state: bool = False,
                 independent_of_others: int | None = None) -> TinyFPOSG:
    """A random tiny fPOSG; `independent_of_others=i` makes agent i transition-independent (eq. 12).

    Transition independence for agent i means the other agents' actions have no effect on u_i: here every
    other agent's local transition ignores its action, so no policy of theirs can change agent i's influence.
    `observe_state=True` makes every agent observe its local state exactly (O = S, AOH = ALSH).
    """
    for name, value, low in (("n_agents", n_agents, 2), ("n_states", n_states, 2), ("n_actions", n_actions, 1),
                             ("n_obs", n_obs, 1), ("n_sources", n_sources, 1), ("horizon", horizon, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    if n_sources > n_states:
        raise ValueError(f"n_sources must be at most n_states={n_states}, got {n_sources}")
    if observe_state and n_obs != n_states:
        raise ValueError(f"observe_state needs n_obs == n_states ({n_states}), got n_obs={n_obs}")
    if independent_of_others is not None and independent_of_others not in range(n_agents):
        raise ValueError(f"independent_of_others must be None or an agent in 0..{n_agents - 1}, "
                         f"got {independent_of_others}")
    rng = np.random.default_rng(seed)
    trans = _dirichlet(rng, (n_agents, n_states, n_actions, n_sources), n_states, concentration)
    if independent_of_others is not None:
        others = np.arange(n_agents) != independent_of_others
        trans[others] = trans[others][:, :, :1]  # broadcast action 0's transition to every action
    if observe_state:
        obs = np.broadcast_to(np.eye(n_states), (n_agents, n_states, n_states)).copy()
    else:
        obs = _dirichlet(rng, (n_agents, n_states), n_obs, concentration)
    # Every source value is produced by some neighbour state, so no value of u is impossible by design.
    source_map = np.stack([rng.permutation(np.arange(n_states) % n_sources) for _ in range(n_agents)])
    return TinyFPOSG(p0=_dirichlet(rng, (n_agents,), n_states, concentration), trans=trans, obs=obs,
                     reward=rng.uniform(-1.0, 1.0, size=(n_agents, n_states, n_actions)),
                     source_map=source_map, horizon=horizon)


def random_joint_policy(model: TinyFPOSG, seed: int, deterministic: bool = False,
                        concentration: float = 1.0) -> JointPolicy:
    """A random joint policy on AOHs: stochastic (Dirichlet rows) or deterministic (one-hot rows)."""
    n, _, a, o, _ = model.shape
    rng = np.random.default_rng(seed)
    policy = []
    for t in range(model.horizon):
        rows = (n, n_histories(a, o, t))
        if deterministic:
            policy.append(np.eye(a)[rng.integers(a, size=rows)])
        else:
            policy.append(_dirichlet(rng, rows, a, concentration))
    return policy


@dataclass
class RowTable:
    """A discrete distribution stored row by row: one integer column per variable plus a probability."""

    columns: dict[str, np.ndarray]
    """Variable name -> one integer value per row."""
    prob: np.ndarray
    """Probability (or weight) of each row."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Variable name -> number of values it can take (needed to sum variables out)."""

    def expand(self, name: str, cond: np.ndarray) -> RowTable:
        """Add variable `name` with conditional probabilities cond[row, value]; drops zero-probability rows."""
        n_rows, n_values = cond.shape
        prob = (self.prob[:, None] * cond).ravel()
        keep = prob > 0
        columns = {k: np.repeat(v, n_values)[keep] for k, v in self.columns.items()}
        columns[name] = np.tile(np.arange(n_values), n_rows)[keep]
        return RowTable(columns, prob[keep], {**self.sizes, name: n_values})

    def marginal(self, keys: list[str]) -> RowTable:
        """The distribution of the variables `keys`, the others summed out."""
        flat = np.ravel_multi_index(tuple(self.columns[k] for k in keys), tuple(self.sizes[k] for k in keys))
        unique, inverse = np.unique(flat, return_inverse=True)
        prob = np.bincount(inverse, weights=self.prob, minlength=len(unique))
        values = np.unravel_index(unique, tuple(self.sizes[k] for k in keys))
        return RowTable(dict(zip(keys, values, strict=True)), prob, {k: self.sizes[k] for k in keys})


@dataclass(frozen=True)
class ExactInfluence:
    """Agent i's influence I(u | l_t) per t and the weight of each ALSH l_t under the route that made it."""

    dist: Influence
    """Per t, [n_ALSH, K]; NaN rows for ALSHs that have weight 0."""
    weight: list[np.ndarray]
    """Per t, [n_ALSH]: P(l_t) (enumeration) or P(l_t) with agent i acting uniformly at random (filtering)."""


def _read_influence(table: RowTable, l_key: str, u_values: np.ndarray, n_alsh: int,
                    n_sources: int) -> tuple[np.ndarray, np.ndarray]:
    """I(u | l) and P(l) from the rows of `table` (column `l_key`) and each row's source value."""
    joint = np.bincount(table.columns[l_key] * n_sources + u_values, weights=table.prob,
                        minlength=n_alsh * n_sources).reshape(n_alsh, n_sources)
    weight = joint.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return joint / weight[:, None], weight


def _initial_table(model: TinyFPOSG, with_history: list[int], observed: list[int]) -> RowTable:
    """Rows over the initial local states and observations: ALSH column `l{k}` for agents in `with_history`,
    current-state column `x{k}` for the others, AOH column `h{k}` for agents in `observed`."""
    n, s, _, o, _ = model.shape
    table = RowTable({}, np.ones(1))
    for k in range(n):
        name = f"l{k}" if k in with_history else f"x{k}"
        table = table.expand(name, np.repeat(model.p0[k][None], len(table.prob), 0))
        if k in observed:
            table = table.expand(f"h{k}", model.obs[k, table.columns[name]])
    return table


def _current_states(table: RowTable, model: TinyFPOSG) -> np.ndarray:
    """[rows, N] every agent's current local state, from its `x{k}` column or the end of its ALSH."""
    s = model.shape[1]
    cols = table.columns
    return np.stack([cols[f"x{k}"] if f"x{k}" in cols else cols[f"l{k}"] % s
                     for k in range(model.shape[0])], axis=1)


def _sources(table: RowTable, model: TinyFPOSG) -> np.ndarray:
    """[rows, N] every agent's influence source u_k = source_map[k, x_{neighbour(k)}]."""
    x = _current_states(table, model)
    return model.source_map[np.arange(model.shape[0]), x[:, model.neighbour]]


def _advance(table: RowTable, model: TinyFPOSG, policy: JointPolicy, t: int, observed: list[int],
             uniform_agent: int | None = None) -> RowTable:
    """One global step t -> t+1 on a row table: actions, local transitions, observations, new codes."""
    n, s, a, o, _ = model.shape
    for j in range(n):
        rows = len(table.prob)
        cond = np.full((rows, a), 1.0 / a) if j == uniform_agent else policy[t][j, table.columns[f"h{j}"]]
        table = table.expand(f"a{j}", cond)
    for j in range(n):  # states and sources are recomputed because every expansion repeats rows
        x, u = _current_states(table, model)[:, j], _sources(table, model)[:, j]
        table = table.expand(f"y{j}", model.trans[j, x, table.columns[f"a{j}"], u])
    for j in observed:
        table = table.expand(f"o{j}", model.obs[j, table.columns[f"y{j}"]])
    cols, sizes = table.columns, table.sizes
    for j in range(n):
        act, nxt = cols.pop(f"a{j}"), cols.pop(f"y{j}")
        if f"l{j}" in cols:
            cols[f"l{j}"] = extend_history(cols[f"l{j}"], t, act, nxt, a, s)
            sizes[f"l{j}"] = n_histories(a, s, t + 1)
        else:
            cols[f"x{j}"] = nxt
        if j in observed:
            cols[f"h{j}"] = extend_history(cols[f"h{j}"], t, act, cols.pop(f"o{j}"), a, o)
            sizes[f"h{j}"] = n_histories(a, o, t + 1)
    return table


def influence_by_enumeration(model: TinyFPOSG, policy: JointPolicy) -> list[ExactInfluence]:
    """Every agent's influence, from the full joint distribution over global histories (route 1).

    Rows are complete global histories (every agent's ALSH and AOH); nothing is summed out until
    I(u | l_t) is read off at each t.
    """
    n, s, a, _, k = model.shape
    everyone = list(range(n))
    table = _initial_table(model, with_history=everyone, observed=everyone)
    result: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in everyone]
    for t in range(model.horizon):
        u = _sources(table, model)
        for i in everyone:
            dist, weight = _read_influence(table, f"l{i}", u[:, i], n_histories(a, s, t), k)
            result[i][0].append(dist)
            result[i][1].append(weight)
        if t < model.horizon - 1:
            table = _advance(table, model, policy, t, observed=everyone)
    return [ExactInfluence(dist, weight) for dist, weight in result]


def influence_by_filtering(model: TinyFPOSG, policy: JointPolicy, agent: int) -> ExactInfluence:
    """Agent `agent`'s influence from a forward filter over (l_t, others' current states and AOHs) (route 2).

    After every step the other agents' past local states are summed out; agent i's own policy and
    observations are not modelled (it acts uniformly at random here), since given l_t they cancel in I.
    """
    n, s, a, _, k = model.shape
    if agent not in range(n):
        raise ValueError(f"agent must be in 0..{n - 1}, got {agent}")
    others = [j for j in range(n) if j != agent]
    keys = [f"l{agent}"] + [f"x{j}" for j in others] + [f"h{j}" for j in others]
    table = _initial_table(model, with_history=[agent], observed=others)
    dists, weights = [], []
    for t in range(model.horizon):
        table = table.marginal(keys)
        dist, weight = _read_influence(table, f"l{agent}", _sources(table, model)[:, agent],
                                       n_histories(a, s, t), k)
        dists.append(dist)
        weights.append(weight)
        if t < model.horizon - 1:
            table = _advance(table, model, policy, t, observed=others, uniform_agent=agent)
    return ExactInfluence(dists, weights)


def _sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per leading index from the distributions in the last axis of `probs` (inverse CDF)."""
    return inverse_cdf(np.cumsum(probs, -1)[..., :-1], rng.random(probs.shape[:-1]))


def sample_rollouts(model: TinyFPOSG, policy: JointPolicy, n_episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Global-simulator episodes under `policy`: ALSH codes 'l' and sources 'u', each [H, n_episodes, N]."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    n, s, a, o, _ = model.shape
    rng = np.random.default_rng(seed)
    agents = np.arange(n)
    x = _sample_categorical(np.broadcast_to(model.p0, (n_episodes, n, s)), rng)
    obs = _sample_categorical(model.obs[agents, x], rng)
    alsh, aoh = x.copy(), obs.copy()
    record = {"l": np.empty((model.horizon, n_episodes, n), np.int64), "u": np.empty((model.horizon, n_episodes, n),
                                                                                    np.int64)}
    for t in range(model.horizon):
        u = model.source_map[agents, x[:, model.neighbour]]
        record["l"][t], record["u"][t] = alsh, u
        if t == model.horizon - 1:
            break
        act = _sample_categorical(policy[t][agents, aoh], rng)
        x = _sample_categorical(model.trans[agents, x, act, u], rng)
        obs = _sample_categorical(model.obs[agents, x], rng)
        alsh = extend_history(alsh, t, act, x, a, s)
        aoh = extend_history(aoh, t, act, obs, a, o)
    return record


def influence_by_counting(model: TinyFPOSG, rollouts: dict[str, np.ndarray], agent: int) -> Influence:
    """Monte Carlo estimate of agent `agent`'s influence from rollouts; NaN rows for unseen ALSHs."""
    _, s, a, _, k = model.shape
    estimate = []
    for t in range(model.horizon):
        size = n_histories(a, s, t)
        counts = np.bincount(rollouts["l"][t, :, agent] * k + rollouts["u"][t, :, agent],
                             minlength=size * k).reshape(size, k).astype(float)
        with np.errstate(invalid="ignore"):
            estimate.append(counts / counts.sum(1, keepdims=True))
    return estimate


def weighted_tv(estimate: Influence, exact: ExactInfluence) -> float:
    """Mean over t of sum_l P(l_t) TV(estimate(.|l_t), I(.|l_t)); unseen ALSHs count as uniform guesses."""
    errors = []
    for est, dist, weight in zip(estimate, exact.dist, exact.weight, strict=True):
        est = np.where(np.isnan(est), 1.0 / est.shape[1], est)
        tv = 0.5 * np.abs(est - np.nan_to_num(dist)).sum(1)
        errors.append(float((weight * tv).sum() / weight.sum()))
    return float(np.mean(errors))

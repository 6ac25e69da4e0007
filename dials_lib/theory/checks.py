"""Numerical checks of appendix A (Lemma 1, Proposition 1, Lemma 2, Theorem 1) on tiny exact fPOSGs.

Each check returns a pandas table whose rows are the evidence; the notebook `01_theory_checks` plots them and
derives its verdicts from them. Bounds and conditions are passed in as functions so that a deliberately wrong
constant can be shown to fail (the checks are able to fail). The models come from `dials_lib.theory.models`.
Conventions: total variation between influences is the paper's sum_u |I1(u|l) - I2(u|l)| (an L1 distance,
up to 2), R = max |R(x, a)|, and t = 0..H-1 counts decisions already taken, so Q at t sums H-t rewards.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd

from dials_lib.theory.ialm import IALM, deterministic_policies, greedy_policy, ialm_q_values, make_ialm
from dials_lib.theory.models import (
    Influence,
    TinyFPOSG,
    influence_by_counting,
    influence_by_enumeration,
    influence_by_filtering,
    n_histories,
    random_joint_policy,
    random_model,
    sample_rollouts,
    weighted_tv,
)

Bound = Callable[[int, int, float, float], float]
"""bound(H, t, R, eps): the largest |Q1 - Q2| allowed at step t."""

# Model sizes (agents, local states, actions, observations, source values, horizon) used by the checks.
LEMMA1_SHAPES = ((2, 3, 2, 2, 2, 3), (3, 2, 2, 2, 2, 2))
PROPOSITION1_SHAPES = ((2, 3, 2, 2, 2, 2), (2, 2, 2, 1, 2, 3), (3, 2, 2, 1, 2, 2))


def paper_bound(horizon: int, t: int, reward_bound: float, eps: float) -> float:
    """Lemma 2 as stated: R (H-t)(H-t+1)/2 * eps."""
    return reward_bound * (horizon - t) * (horizon - t + 1) / 2 * eps


def tight_bound(horizon: int, t: int, reward_bound: float, eps: float) -> float:
    """The simulation-lemma bound for rewards at t..H-1 on observed local states: R (H-t-1)(H-t)/2 * eps."""
    return reward_bound * (horizon - t - 1) * (horizon - t) / 2 * eps


def linear_bound(horizon: int, t: int, reward_bound: float, eps: float) -> float:
    """A deliberately wrong constant, R (H-t) * eps, that the adversarial pairs must break."""
    return reward_bound * (horizon - t) * eps


def check_lemma1_routes(n_models: int, seed: int) -> pd.DataFrame:
    """Per random model and agent: the largest gap between the two exact routes and the normalisation error."""
    rows = []
    for index in range(n_models):
        n, s, a, o, k, h = LEMMA1_SHAPES[index % len(LEMMA1_SHAPES)]
        model = random_model(n, s, a, o, k, h, seed=seed + index)
        policy = random_joint_policy(model, seed=seed + 1000 + index)
        enumerated = influence_by_enumeration(model, policy)
        for agent in range(n):
            filtered = influence_by_filtering(model, policy, agent)
            gap = max(float(np.nanmax(np.abs(e - f))) for e, f in zip(enumerated[agent].dist, filtered.dist,
                                                                        strict=True))
            norm = max(float(np.nanmax(np.abs(d.sum(1) - 1))) for d in enumerated[agent].dist)
            rows.append({"model": index, "agents": n, "states": s, "horizon": h, "agent": agent,
                         "ALSHs": sum(n_histories(a, s, t) for t in range(h)), "max |route1 - route2|": gap,
                         "max |sum_u I - 1|": norm})
    return pd.DataFrame(rows)


def check_lemma1_monte_carlo(sample_sizes: tuple[int, ...], n_repeats: int, seed: int) -> pd.DataFrame:
    """Weighted total variation between counted and exact influences, per sample size and repeat."""
    n, s, a, o, k, h = LEMMA1_SHAPES[0]
    model = random_model(n, s, a, o, k, h, seed=seed)
    policy = random_joint_policy(model, seed=seed + 1000)
    exact = influence_by_enumeration(model, policy)
    rows = []
    for size, repeat in itertools.product(sample_sizes, range(n_repeats)):
        rollouts = sample_rollouts(model, policy, size, seed=seed + 7919 * repeat + size)
        for agent in range(n):
            error = weighted_tv(influence_by_counting(model, rollouts, agent), exact[agent])
            rows.append({"episodes": size, "repeat": repeat, "agent": agent, "weighted TV": error})
    return pd.DataFrame(rows)


def convergence_slope(table: pd.DataFrame) -> float:
    """Slope of log(mean weighted TV) against log(episodes): about -1/2 for Monte Carlo."""
    mean = table.groupby("episodes")["weighted TV"].mean()
    return float(np.polyfit(np.log(mean.index.to_numpy(float)), np.log(mean.to_numpy()), 1)[0])


def _influence_key(dist: Influence) -> bytes:
    """A hashable fingerprint of an influence, equal for influences that agree to 1e-9."""
    return np.round(np.nan_to_num(np.concatenate([d.ravel() for d in dist]), nan=-1.0), 9).tobytes()


def count_influences(model: TinyFPOSG) -> tuple[pd.DataFrame, int, int]:
    """Distinct influences over all deterministic joint policies: per-agent rows, |Pi| and |Psi| (joint)."""
    n, _, a, o, _ = model.shape
    policies = deterministic_policies(a, o, model.horizon)
    uniform = [np.full((n_histories(a, o, t), a), 1.0 / a) for t in range(model.horizon)]
    ids = []
    rows = []
    for agent in range(n):
        others = [j for j in range(n) if j != agent]
        keys: dict[bytes, int] = {}
        agent_ids = np.empty((len(policies),) * (n - 1), np.int64)
        for combo in itertools.product(range(len(policies)), repeat=n - 1):
            chosen = dict(zip(others, combo, strict=True))
            joint = [np.stack([policies[chosen[j]][t] if j in chosen else uniform[t] for j in range(n)])
                     for t in range(model.horizon)]
            key = _influence_key(influence_by_filtering(model, joint, agent).dist)
            agent_ids[combo] = keys.setdefault(key, len(keys))
        # u^t is read off the state at t, so decisions at t = H-1 cannot reach any influence.
        early = a ** sum(n_histories(a, o, t) for t in range(model.horizon - 1))
        rows.append({"agent": agent, "policies of agent": len(policies), "policies of the others":
                     len(policies) ** (n - 1), "their distinct behaviours before H-1": early ** (n - 1),
                     "distinct influences": len(keys)})
        ids.append(np.expand_dims(agent_ids, agent))  # I_i does not depend on pi_i: broadcast over its axis
    grid = np.stack([np.broadcast_to(x, (len(policies),) * n).ravel() for x in ids], axis=1)
    return pd.DataFrame(rows), len(policies) ** n, len(np.unique(grid, axis=0))


def check_proposition1(n_models: int, seed: int) -> pd.DataFrame:
    """Counts of joint policies and induced influences for generic and transition-independent models."""
    rows = []
    for index in range(n_models):
        n, s, a, o, k, h = PROPOSITION1_SHAPES[index % len(PROPOSITION1_SHAPES)]
        for kind, independent in (("generic", None), ("transition-independent agent 0", 0)):
            model = random_model(n, s, a, o, k, h, seed=seed + index, independent_of_others=independent)
            per_agent, joint_policies, joint_influences = count_influences(model)
            for row in per_agent.to_dict("records"):
                rows.append({"model": index, "kind": kind, "agents": n, "observations": o, "horizon": h, **row,
                             "joint policies |Pi|": joint_policies, "joint influences |Psi|": joint_influences})
    return pd.DataFrame(rows)


def perturbed_influence(influence: Influence, eps: float, rng: np.random.Generator) -> Influence:
    """An influence within L1 distance eps of `influence` for every ALSH, moved towards random corners."""
    if eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    result = []
    for dist in influence:
        corner = np.eye(dist.shape[1])[rng.integers(dist.shape[1], size=dist.shape[0])]
        distance = np.abs(corner - dist).sum(1, keepdims=True)
        step = np.minimum(1.0, eps / np.maximum(distance, 1e-300))
        result.append(dist + step * (corner - dist))
    return result


def random_ialm_pair(seed: int, eps: float, horizon: int = 4, n_states: int = 3) -> tuple[IALM, IALM]:
    """Two IALMs of one random local model (local state observed) whose influences differ by at most eps."""
    rng = np.random.default_rng(seed)
    model = random_model(2, n_states, 2, n_states, 2, horizon, seed=seed, observe_state=True)
    base = [rng.dirichlet(np.ones(2), size=n_histories(2, n_states, t)) for t in range(horizon)]
    return make_ialm(model, 0, base), make_ialm(model, 0, perturbed_influence(base, eps, rng))


def adversarial_ialm_pair(eps: float, horizon: int) -> tuple[IALM, IALM]:
    """A pair close to the worst case: u = 1 lifts the agent from a -1 state into an absorbing +1 state.

    M1 never sends u = 1; M2 sends it with probability eps/2 (L1 distance eps), so every step of the
    horizon adds eps-sized probability of the +1 state to every later reward.
    """
    trans = np.zeros((2, 1, 2, 2))
    trans[0, 0, 0, 0] = trans[0, 0, 1, 1] = trans[1, 0, :, 1] = 1.0
    shape = [(n_histories(1, 2, t), 1) for t in range(horizon)]
    one = [np.tile([[1.0, 0.0]], (rows, 1)) for rows, _ in shape]
    two = [np.tile([[1 - eps / 2, eps / 2]], (rows, 1)) for rows, _ in shape]
    common = dict(p0=np.array([1.0, 0.0]), trans=trans, obs=np.eye(2), reward=np.array([[-1.0], [1.0]]))
    return IALM(**common, influence=one), IALM(**common, influence=two)


def q_gap_per_step(pair: tuple[IALM, IALM], policy: list[np.ndarray] | None = None) -> list[float]:
    """max over reachable AOHs and actions of |Q1 - Q2| at each t (Q* when `policy` is None)."""
    (q1, m1), (q2, m2) = (ialm_q_values(m, policy) for m in pair)
    return [float(np.abs(a - b)[x & y].max(initial=0.0)) for a, b, x, y in zip(q1, q2, m1, m2, strict=True)]


def influence_distance(pair: tuple[IALM, IALM]) -> float:
    """max over t and ALSHs of sum_u |I1(u|l) - I2(u|l)|."""
    return max(float(np.abs(a - b).sum(1).max()) for a, b in zip(pair[0].influence, pair[1].influence, strict=True))


def check_lemma2(n_pairs: int, eps_values: tuple[float, ...], seed: int, bound: Bound = paper_bound,
                 horizon: int = 4) -> pd.DataFrame:
    """Observed max |Q1 - Q2| against `bound` per eps and t, for random and adversarial IALM pairs."""
    rows = []
    for eps in eps_values:
        cases = [("random", random_ialm_pair(seed + index, eps, horizon)) for index in range(n_pairs)]
        cases.append(("adversarial", adversarial_ialm_pair(eps, horizon)))
        for kind, pair in cases:
            if influence_distance(pair) > eps + 1e-12:
                raise AssertionError(f"pair built for eps={eps} is {influence_distance(pair)} apart")
            rng = np.random.default_rng(seed)
            a, o = pair[0].trans.shape[1], pair[0].obs.shape[1]
            policy = [rng.dirichlet(np.ones(a), size=n_histories(a, o, t)) for t in range(horizon)]
            for q_kind, gaps in (("Q*", q_gap_per_step(pair)), ("Q^pi", q_gap_per_step(pair, policy))):
                for t, gap in enumerate(gaps):
                    limit = bound(horizon, t, pair[0].reward_bound, eps)
                    rows.append({"pairs": kind, "Q": q_kind, "eps": eps, "t": t, "observed": gap,
                                 "bound / R": limit / pair[0].reward_bound,
                                 "observed / bound": gap / limit if limit > 0 else np.nan,
                                 "holds": gap <= limit + 1e-12})
    # Each pair has its own R, so ratios and verdicts are taken per pair before the maximum over pairs.
    return pd.DataFrame(rows).groupby(["pairs", "Q", "eps", "t"], as_index=False).agg(
        {"observed": "max", "bound / R": "first", "observed / bound": "max", "holds": "all"})


def noisy_observation_pair(eps: float, false_alarm: float) -> tuple[IALM, IALM]:
    """The adversarial pair of H = 2 with a noisy observation of the +1 state (outside Lemma 2's check).

    In the -1 state the agent still sees the '+1' signal with probability `false_alarm`; after that signal
    M1 knows it is in the -1 state, while M2's posterior on +1 is (eps/2) / (eps/2 + false_alarm).
    """
    first, second = adversarial_ialm_pair(eps, 2)
    obs = np.array([[1 - false_alarm, false_alarm], [0.0, 1.0]])
    return (IALM(first.p0, first.trans, obs, first.reward, first.influence),
            IALM(second.p0, second.trans, obs, second.reward, second.influence))


def gap_report(pair: tuple[IALM, IALM]) -> dict[str, float | bool]:
    """M1's smallest optimality margin, max |Q*_1 - Q*_2| and whether the greedy policies agree (reachable AOHs)."""
    (q1, m1), (q2, m2) = (ialm_q_values(m) for m in pair)
    margins, deltas = [], []
    for a, b, x, y in zip(q1, q2, m1, m2, strict=True):
        top_two = np.sort(a[x], axis=1)[:, -2:] if a.shape[1] > 1 else np.full((int(x.sum()), 2), np.inf)
        margins.append(float((top_two[:, 1] - top_two[:, 0]).min(initial=np.inf)))
        deltas.append(float(np.abs(a - b)[x & y].max(initial=0.0)))
    same = all(np.array_equal(g1[x & y], g2[x & y]) for g1, g2, x, y in
               zip(greedy_policy(q1, m1), greedy_policy(q2, m2), m1, m2, strict=True))
    return {"margin": min(margins), "delta": max(deltas), "same policy": same}


def check_theorem1(n_pairs: int, eps_values: tuple[float, ...], seed: int, factor: float = 2.0,
                   horizon: int = 3) -> pd.DataFrame:
    """Random IALM pairs: is the gap condition met, and do pairs that meet it share the optimal policy?

    The condition 'margin > factor * Delta and |Q1 - Q2| < Delta for some Delta' holds exactly when
    max |Q1 - Q2| < margin / factor; the theorem's factor is 2.
    """
    rows = []
    for eps, index in itertools.product(eps_values, range(n_pairs)):
        report = gap_report(random_ialm_pair(seed + index, eps, horizon))
        condition = report["delta"] < report["margin"] / factor
        rows.append({"eps": eps, "pair": index, **report, "gap condition": condition,
                     "consistent": (not condition) or bool(report["same policy"])})
    return pd.DataFrame(rows)


def constructed_theorem1_pair(p1: float, p2: float) -> tuple[IALM, IALM]:
    """H = 2 pair where action a at t = 0 reaches the rewarding state iff u = a; P(u = 1) is p1 vs p2.

    Reward 1 in the good state plus 0.5 for action 0, so Q1(a=0) - Q1(a=1) = 1.5 - 2 p1 at t = 0 and the
    last step always has margin 0.5.
    """
    trans = np.zeros((2, 2, 2, 2))
    for a, u in itertools.product(range(2), range(2)):
        trans[:, a, u, int(a == u)] = 1.0
    reward = np.array([[0.5, 0.0], [1.5, 1.0]])
    common = dict(p0=np.array([1.0, 0.0]), trans=trans, obs=np.eye(2), reward=reward)
    pair = []
    for p in (p1, p2):
        influence = [np.tile([[1 - p, p]], (n_histories(2, 2, t), 1)) for t in range(2)]
        pair.append(IALM(**common, influence=influence))
    return pair[0], pair[1]


def check_theorem1_constructed(factor: float = 2.0) -> pd.DataFrame:
    """Three constructed pairs: gap condition met; violated with a policy change; violated without one."""
    rows = []
    for label, p1, p2 in (("condition met", 0.7, 0.72), ("violated, policies differ", 0.7, 0.78),
                          ("violated, same policy", 0.7, 0.6)):
        report = gap_report(constructed_theorem1_pair(p1, p2))
        condition = report["delta"] < report["margin"] / factor
        rows.append({"case": label, "P1(u=1)": p1, "P2(u=1)": p2, **report, "gap condition": condition,
                     "consistent": (not condition) or bool(report["same policy"])})
    return pd.DataFrame(rows)


def check_many_influences(n_models: int, n_influences: int, seed: int, horizon: int = 3) -> pd.DataFrame:
    """Per random local model, many random influences: how many distinct optimal policies do they induce?"""
    rows = []
    for index in range(n_models):
        rng = np.random.default_rng(seed + index)
        model = random_model(2, 3, 2, 3, 2, horizon, seed=seed + index, observe_state=True)
        groups: dict[bytes, list[IALM]] = {}
        for _ in range(n_influences):
            influence = [rng.dirichlet(np.ones(2), size=n_histories(2, 3, t)) for t in range(horizon)]
            ialm = make_ialm(model, 0, influence)
            groups.setdefault(np.concatenate(greedy_policy(*ialm_q_values(ialm))).tobytes(), []).append(ialm)
        largest = max(groups.values(), key=len)
        spread = max((influence_distance(pair) for pair in itertools.combinations(largest, 2)), default=0.0)
        rows.append({"model": index, "influences": n_influences, "distinct optimal policies": len(groups),
                     "influences sharing the commonest policy": len(largest),
                     "largest L1 distance within that group": spread})
    return pd.DataFrame(rows)


def adversarial_tightness(horizons: tuple[int, ...], eps: float = 1e-3) -> pd.DataFrame:
    """observed / bound at t = 0 for the adversarial pair as the horizon grows (paper and tight constants)."""
    rows = []
    for horizon in horizons:
        gap = q_gap_per_step(adversarial_ialm_pair(eps, horizon))[0]
        rows.append({"H": horizon, "observed at t=0": gap,
                     "observed / paper bound": gap / paper_bound(horizon, 0, 1.0, eps),
                     "observed / tight bound": gap / tight_bound(horizon, 0, 1.0, eps) if horizon > 1 else np.nan})
    return pd.DataFrame(rows)

"""Influence-augmented local models (IALMs) of the tiny fPOSGs of `dials_lib.theory.models`, solved exactly.

Agent i's local model with the rest of the system replaced by an influence distribution is a POMDP whose hidden
state is the ALSH. `ialm_q_values` computes Q^pi or Q* over AOHs by backward induction, with the exact joint
distribution of (AOH, ALSH) as beliefs; rows of unreachable AOHs are 0 and masked. `ialm_expected_return` and
`initial_value` give a policy's value; `deterministic_policies` enumerates every deterministic policy of a tiny
model (Theorem 1's checks compare them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dials_lib.theory.models import Influence, RowTable, TinyFPOSG, extend_history, n_histories


@dataclass(frozen=True)
class IALM:
    """Influence-augmented local model of one agent: its local POMDP with u ~ I(u | l_t)."""

    p0: np.ndarray
    """[S] initial local state distribution."""
    trans: np.ndarray
    """[S, A, K, S] local transitions T_i(x' | x, a, u)."""
    obs: np.ndarray
    """[S, O] observation function."""
    reward: np.ndarray
    """[S, A] reward R_i(x, a)."""
    influence: Influence
    """Per t, [A**t * S**(t+1), K] the influence distribution."""

    @property
    def horizon(self) -> int:
        """H: number of decisions per episode."""
        return len(self.influence)

    @property
    def reward_bound(self) -> float:
        """R = max |R(x, a)|, the constant of Lemma 2."""
        return float(np.abs(self.reward).max())


def make_ialm(model: TinyFPOSG, agent: int, influence: Influence) -> IALM:
    """Agent `agent`'s IALM with `influence`; NaN rows (ALSHs that never occur) become uniform."""
    _, s, a, _, k = model.shape
    checked = []
    for t, dist in enumerate(influence):
        if dist.shape != (n_histories(a, s, t), k):
            raise ValueError(f"influence at t={t} must have shape {(n_histories(a, s, t), k)}, got {dist.shape}")
        checked.append(np.where(np.isnan(dist), 1.0 / k, dist))
    return IALM(model.p0[agent], model.trans[agent], model.obs[agent], model.reward[agent], checked)


def ialm_joint_tables(ialm: IALM) -> list[np.ndarray]:
    """Per t, P(o_0..o_t, x_0..x_t | a_0..a_{t-1}) as an array [A**t, O**(t+1), S**(t+1)]."""
    s, a, k, _ = ialm.trans.shape
    joint = (ialm.p0[:, None] * ialm.obs).T[None]  # [1, O, S]
    tables = [joint]
    for t in range(ialm.horizon - 1):
        x_last = np.arange(s ** (t + 1)) % s
        dist = ialm.influence[t].reshape(a**t, s ** (t + 1), k)
        step = np.einsum("nlk,lbkx->nlbx", dist, ialm.trans[x_last])  # P(x' | l_t, a_t)
        joint = np.einsum("nol,nlbx,xp->nboplx", joint, step, ialm.obs)
        joint = joint.reshape(a ** (t + 1), joint.shape[2] * joint.shape[3], -1)
        tables.append(joint)
    return tables


def ialm_q_values(ialm: IALM, policy: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Q over AOHs by backward induction: Q^pi for `policy` (per t [n_AOH, A]) or Q* when it is None.

    Returns (Q per t as [A**t * O**(t+1), A], reachable-AOH mask per t); unreachable rows are 0.
    """
    s, a, _, _ = ialm.trans.shape
    o = ialm.obs.shape[1]
    tables = ialm_joint_tables(ialm)
    q_values: list[np.ndarray] = [np.empty(0)] * ialm.horizon
    masks: list[np.ndarray] = [np.empty(0)] * ialm.horizon
    value_next = None
    for t in reversed(range(ialm.horizon)):
        joint = tables[t]
        total = joint.sum(2)  # P(h_t) / P(actions)
        numerator = np.einsum("nol,lb->nob", joint, ialm.reward[np.arange(s ** (t + 1)) % s])
        if value_next is not None:
            nxt = tables[t + 1].reshape(a**t, a, o ** (t + 1), o, -1).sum(-1)  # [n, b, o, o']
            numerator += np.einsum("nbop,nbop->nob", nxt, value_next.reshape(a**t, a, o ** (t + 1), o))
        reachable = total > 0
        q = np.where(reachable[..., None], numerator / np.where(reachable, total, 1.0)[..., None], 0.0)
        q_values[t], masks[t] = q.reshape(-1, a), reachable.reshape(-1)
        if policy is None:
            value_next = q_values[t].max(1)
        else:
            value_next = (policy[t] * q_values[t]).sum(1)
    return q_values, masks


def greedy_policy(q_values: list[np.ndarray], masks: list[np.ndarray]) -> list[np.ndarray]:
    """Per t, the greedy action of every AOH (lowest index on ties), -1 for unreachable AOHs."""
    return [np.where(mask, q.argmax(1), -1) for q, mask in zip(q_values, masks, strict=True)]


def ialm_expected_return(ialm: IALM, policy: list[np.ndarray]) -> float:
    """Expected return of `policy` (per t [n_AOH, A]) by forward enumeration of whole IALM episodes."""
    s, a, k, _ = ialm.trans.shape
    o = ialm.obs.shape[1]
    table = RowTable({}, np.ones(1)).expand("l", ialm.p0[None])
    table = table.expand("h", ialm.obs[table.columns["l"]])
    expected = 0.0
    for t in range(ialm.horizon):
        table = table.expand("a", policy[t][table.columns["h"]])
        cols = table.columns
        expected += float(table.prob @ ialm.reward[cols["l"] % s, cols["a"]])
        if t == ialm.horizon - 1:
            break
        table = table.expand("u", ialm.influence[t][table.columns["l"]])
        cols = table.columns
        table = table.expand("x", ialm.trans[cols["l"] % s, cols["a"], cols["u"]])
        table = table.expand("o", ialm.obs[table.columns["x"]])
        cols = table.columns
        act, new_x, new_o = cols.pop("a"), cols.pop("x"), cols.pop("o")
        cols.pop("u")
        cols["l"] = extend_history(cols["l"], t, act, new_x, a, s)
        cols["h"] = extend_history(cols["h"], t, act, new_o, a, o)
    return expected


def initial_value(ialm: IALM, q_values: list[np.ndarray], policy: list[np.ndarray] | None = None) -> float:
    """Expected return from Q at t = 0: sum_o P(o_0) V(o_0), with V = max Q or the policy's average."""
    p_obs = ialm.p0 @ ialm.obs
    values = q_values[0].max(1) if policy is None else (policy[0] * q_values[0]).sum(1)
    return float(p_obs @ values)


def deterministic_policies(n_actions: int, n_obs: int, horizon: int) -> list[list[np.ndarray]]:
    """Every deterministic single-agent policy on AOHs (one-hot rows per t): A ** (number of AOHs) of them."""
    sizes = [n_histories(n_actions, n_obs, t) for t in range(horizon)]
    total = n_actions ** sum(sizes)
    if total > 1 << 16:
        raise ValueError(f"{total} deterministic policies are too many to enumerate; use a smaller model")
    choices = np.array(np.unravel_index(np.arange(total), (n_actions,) * sum(sizes))).T  # [policies, AOHs]
    eye = np.eye(n_actions)
    bounds = np.cumsum([0, *sizes])
    return [[eye[row[bounds[t]:bounds[t + 1]]] for t in range(horizon)] for row in choices]

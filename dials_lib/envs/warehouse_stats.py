"""Warehouse statistics for the environments notebook: episode returns and influence-source statistics.

Both run whole GS episodes under a simple controller ('random' or 'hand-coded', oldest item first). Returns
are undiscounted per-agent episode returns, the paper's metric. The influence statistics say what an AIP has
to predict: how often each neighbour stands on each of the 3 shared cells, how uncertain that is (entropy),
and how much one step of history removes (entropy given the previous step's u), which is why the warehouse
AIP is a GRU over the history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dials_lib.config import check_choice
from dials_lib.envs import make_global
from dials_lib.envs.warehouse import NO_NEIGHBOUR_ON_SIDE, SPEC, hand_coded_actions

CONTROLLERS = ("random", "hand-coded")
SIDES = ("N", "S", "W", "E")


def _episodes(n_agents: int, controller: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rewards [episodes, horizon, n] and influence sources [episodes, horizon, n, 4] of GS episodes."""
    check_choice("controller", controller, CONTROLLERS)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    gs = make_global("warehouse", n_agents=n_agents, seed=seed)
    rng = np.random.default_rng(seed + 1)
    rewards = np.zeros((episodes, SPEC.horizon, n_agents), dtype=np.float32)
    sources = np.zeros((episodes, SPEC.horizon, n_agents, 4), dtype=np.int64)
    for episode in range(episodes):
        gs.reset()
        for t in range(SPEC.horizon):
            if controller == "random":
                actions = rng.integers(0, SPEC.n_actions, n_agents)
            else:
                actions = hand_coded_actions(gs.local_states())
            _, rewards[episode, t], _ = gs.step(actions)
            sources[episode, t] = gs.influence_sources()
    return rewards, sources


def episode_returns(n_agents: int, controller: str, episodes: int, seed: int = 0) -> np.ndarray:
    """float64 [episodes, n_agents]: each learner's undiscounted return per GS episode under `controller`."""
    rewards, _ = _episodes(n_agents, controller, episodes, seed)
    return rewards.sum(axis=1, dtype=np.float64)


def returns_table(sizes: tuple[int, ...], episodes: int, seed: int = 0) -> pd.DataFrame:
    """Mean return per agent and episode (with standard error over episodes) for every size and controller."""
    rows = []
    for n in sizes:
        for controller in CONTROLLERS:
            per_episode = episode_returns(n, controller, episodes, seed).mean(axis=1)
            sem = per_episode.std(ddof=1) / np.sqrt(episodes) if episodes > 1 else float("nan")
            rows.append({"agents": n, "controller": controller, "episodes": episodes,
                         "mean return": per_episode.mean(), "standard error": sem})
    return pd.DataFrame(rows)


def _entropy(counts: np.ndarray) -> float:
    """Entropy (nats) of the empirical distribution with these counts."""
    p = counts / counts.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def influence_statistics(n_agents: int, controller: str, episodes: int, seed: int = 0) -> pd.DataFrame:
    """Per neighbour side: class frequencies, entropy of u_t and of u_t given u_{t-1} (agents, steps t >= 1)."""
    _, sources = _episodes(n_agents, controller, episodes, seed)
    n_classes = NO_NEIGHBOUR_ON_SIDE + 1
    rows = []
    for side, name in enumerate(SIDES):
        u = sources[..., side]  # [episodes, horizon, n]
        counts = np.bincount(u[:, 1:].ravel(), minlength=n_classes)  # the same steps as the pairs below
        pairs = np.zeros((n_classes, n_classes))
        np.add.at(pairs, (u[:, :-1].ravel(), u[:, 1:].ravel()), 1)
        conditional = sum(pairs[c].sum() / pairs.sum() * _entropy(pairs[c]) for c in range(n_classes) if pairs[c].any())
        row = {"neighbour": name}
        row.update({f"P(cell {k})": counts[k] / counts.sum() for k in range(NO_NEIGHBOUR_ON_SIDE)})
        row["P(elsewhere)"] = counts[NO_NEIGHBOUR_ON_SIDE] / counts.sum()
        row["H(u_t) nats"] = _entropy(counts)
        row["H(u_t | u_t-1) nats"] = conditional
        rows.append(row)
    return pd.DataFrame(rows)

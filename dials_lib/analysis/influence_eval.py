"""How good are the AIPs? Calibration, predicted vs empirical influence, and IALS-vs-GS statistics.

These are the measurements of notebook 03: whether a trained AIP's probabilities mean what they say
(reliability), whether it gets each agent's influence right (predicted vs empirical rate per source and
class), and whether an IALS driven by it behaves like the GS under the same fixed policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from dials_lib.envs.contract import AgentSimulator
from dials_lib.learning.controllers import Controller, rollout
from dials_lib.learning.influence import InfluenceData, StackedPredictor, as_tensors, source_probabilities


def predicted_probabilities(model: StackedPredictor, data: InfluenceData) -> list[np.ndarray]:
    """Per source, the AIP's predicted class probabilities at every step: list of [K, E, H, size]."""
    x, _ = as_tensors(data, model.recurrent)
    with torch.no_grad():
        logits = model.sequences(x)
    k, e, h = data.sources.shape[:3]
    return [p.numpy().reshape(k, e, h, -1) for p in source_probabilities(logits, model.source_sizes)]


def _class_label(name: str, size: int, c: int) -> str:
    """A source class as tables name it: the source's name for a binary source (class 1), else 'name=c'."""
    return name if size == 2 else f"{name}={c}"


def _reported_classes(size: int) -> range:
    # class 0 of a binary source mirrors class 1, so only class 1 is reported
    return range(1, 2) if size == 2 else range(size)


def one_vs_rest(model: StackedPredictor, data: InfluenceData) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (predicted probability, outcome) pairs of every class of every source (class 0 of a binary
    source is left out: it mirrors class 1)."""
    probs, outcomes = [], []
    for j, p in enumerate(predicted_probabilities(model, data)):
        for c in _reported_classes(p.shape[-1]):
            probs.append(p[..., c].ravel())
            outcomes.append((data.sources[..., j] == c).ravel())
    return np.concatenate(probs), np.concatenate(outcomes).astype(np.float64)


def reliability(model: StackedPredictor, data: InfluenceData, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table: per probability bin, the mean predicted probability, observed frequency and count."""
    p, y = one_vs_rest(model, data)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            rows.append({"bin": b, "predicted": p[mask].mean(), "observed": y[mask].mean(), "count": int(mask.sum())})
    return pd.DataFrame(rows)


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Count-weighted mean |predicted - observed| over the bins of a reliability table."""
    return float(np.average(np.abs(table["predicted"] - table["observed"]), weights=table["count"]))


def predicted_vs_empirical(
    model: StackedPredictor, data: InfluenceData, agents: dict[str, int], source_names: list[str]
) -> pd.DataFrame:
    """For the named agents, each source's mean predicted probability of each class next to its frequency."""
    probs = predicted_probabilities(model, data)
    rows = []
    for label, agent in agents.items():
        for j, p in enumerate(probs):
            for c in _reported_classes(p.shape[-1]):
                rows.append({
                    "agent": label,
                    "source": _class_label(source_names[j], p.shape[-1], c),
                    "predicted": float(p[agent, ..., c].mean()),
                    "empirical": float((data.sources[agent, ..., j] == c).mean()),
                })
    return pd.DataFrame(rows)


def pooled_predicted_vs_empirical(model: StackedPredictor, data: InfluenceData, source_names: list[str],
                                  idle: int) -> pd.DataFrame:
    """Every class of every source but the idle one ("nothing comes in"), pooled over agents and steps: its rate in
    `data` (empirical) and the mean probability the AIPs predict for it on the same steps (predicted)."""
    rows = []
    for j, p in enumerate(predicted_probabilities(model, data)):
        for c in (c for c in range(p.shape[-1]) if c != idle):
            rows.append({"source": _class_label(source_names[j], p.shape[-1], c),
                         "empirical": float((data.sources[..., j] == c).mean()), "predicted": float(p[..., c].mean())})
    return pd.DataFrame(rows)


def simulator_statistics(sim: AgentSimulator, controller: Controller, episodes: int) -> dict[str, Any]:
    """Run whole episodes; returns the influence sources seen ([T, K, n_sources]) and the mean reward per step."""
    run = rollout(sim, controller, episodes)
    sources = run["influence_sources"]
    return {"sources": sources.reshape(-1, *sources.shape[2:]), "mean_reward": float(run["rewards"].mean())}


def class_rates(sources: np.ndarray, source_sizes: tuple[int, ...]) -> np.ndarray:
    """Frequency of every class of every source, pooled over steps and agents, in source order."""
    return np.concatenate([[(sources[..., j] == c).mean() for c in range(size)]
                           for j, size in enumerate(source_sizes)])


def uniform_cross_entropy(source_sizes: tuple[int, ...]) -> float:
    """The cross-entropy (nats, mean over the sources, as `learning.influence.cross_entropy` reports it) of a
    predictor that gives every class of every source the same probability: ln 2 for traffic's binary sources,
    ln 4 for the warehouse's 4-way ones. A trained AIP must do better."""
    return float(np.mean(np.log(np.asarray(source_sizes, dtype=np.float64))))

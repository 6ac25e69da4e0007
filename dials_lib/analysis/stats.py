"""The paper's statistics over seeds, and the bootstrap intervals the claims rest on.

The paper reports the mean and standard error over seeds of the average return per agent (`mean_and_sem`). For
the claims, `bootstrap_ci` gives a percentile bootstrap confidence interval over seeds: each group of seeds is
resampled with replacement on its own (seeds are independent runs), from a fixed random stream, so the same runs
always give the same interval. `bootstrap_ratio_ci` does the same for a ratio of means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd


def mean_and_sem(frame: pd.DataFrame, by: list[str], column: str = "mean_return") -> pd.DataFrame:
    """Mean, standard error (ddof 1) and number of seeds of `column` in each group of `by`."""
    grouped = frame.groupby(by, dropna=False)[column]
    return grouped.agg(mean="mean", sem="sem", seeds="count").reset_index()


def _resampled_means(groups: list[np.ndarray], confidence: float, n_resamples: int, seed: int, what: str
                     ) -> list[np.ndarray]:
    """Bootstrap means of each group, resampled with replacement on its own, in order from one fixed stream."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if any(g.size == 0 for g in groups):
        raise ValueError(f"{what} needs at least one sample in each group")
    rng = np.random.default_rng(seed)
    return [rng.choice(g, size=(n_resamples, g.size)).mean(axis=1) for g in groups]


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` share of `values`: its lower and upper percentiles."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    samples: Iterable[float] | np.ndarray,
    baseline: Iterable[float] | np.ndarray | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of `samples` (minus the mean of `baseline`, if given) and its percentile bootstrap interval.

    Each group is resampled with replacement on its own (seeds are independent runs); the random stream is fixed
    by `seed`, so the same numbers always give the same interval. Returns (estimate, low, high).
    """
    groups = [np.asarray(list(samples), dtype=float)]
    if baseline is not None:
        groups.append(np.asarray(list(baseline), dtype=float))
    means = _resampled_means(groups, confidence, n_resamples, seed, "bootstrap_ci")
    if baseline is None:
        return (float(groups[0].mean()), *_percentile_interval(means[0], confidence))
    estimate = groups[0].mean() - groups[1].mean()
    return (float(estimate), *_percentile_interval(means[0] - means[1], confidence))


def bootstrap_ratio_ci(
    samples: Iterable[float] | np.ndarray,
    baseline: Iterable[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio of means (samples over baseline) with a percentile bootstrap interval, groups resampled apart."""
    a, b = np.asarray(list(samples), dtype=float), np.asarray(list(baseline), dtype=float)
    means = _resampled_means([a, b], confidence, n_resamples, seed, "bootstrap_ratio_ci")
    return (float(a.mean() / b.mean()), *_percentile_interval(means[0] / means[1], confidence))


def bootstrap_statistic(
    groups: Iterable[Iterable[float] | np.ndarray],
    statistic: Callable[[list[np.ndarray]], np.ndarray],
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Any function of several groups' means (e.g. a difference of differences) with a percentile bootstrap
    interval: `statistic` takes one array of means per group (the groups' own means, then every resample's) and
    returns the value for each. Groups are resampled apart, from one fixed stream. Returns (estimate, low, high)."""
    arrays = [np.asarray(list(g), dtype=float) for g in groups]
    means = _resampled_means(arrays, confidence, n_resamples, seed, "bootstrap_statistic")
    estimate = float(np.asarray(statistic([np.array([a.mean()]) for a in arrays]))[0])
    return (estimate, *_percentile_interval(np.asarray(statistic(means)), confidence))


__all__ = ["bootstrap_ci", "bootstrap_ratio_ci", "bootstrap_statistic", "mean_and_sem"]

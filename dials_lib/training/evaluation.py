"""Evaluation on the global simulator: the paper's average return, the domain metrics, and the AIPs' cross-entropy.

`evaluate` runs a joint policy for whole GS episodes and reports:
- `mean_return`: each agent's undiscounted episode return averaged over agents and episodes, with actions sampled
  from the policy: the paper's y-axis, as the authors' code computes it (`Experiment.evaluate` samples from the
  policy's categorical distribution on the global simulator and logs the mean episodic return over agents and
  episodes); `sem_return`: its standard error over episodes (NaN with a single episode);
- `greedy_return`: the same with each agent's most likely action (a secondary line; the paper does not report it);
  a run's `train_return` (`dials_lib.training.run_records`) is the same statistic over its training episodes (sampled
  actions, on the simulator it trains on: the IALS for DIALS), so the gap between the two shows how far the
  training simulator is from the GS;
- the domain metrics of the environment (see below), computed from local states, rewards and influence sources;
- `aip_ce`: the mean cross-entropy (nats per source and step) of the given AIPs on the (d-set, u) pairs of these
  very episodes, logged exactly as Algorithm 2 logs them (NaN when no AIPs are given, e.g. for GS training).

The domain metrics, their labels and units are part of each environment's registry record
(`dials_lib.envs.get_env(env).metrics`), measured by its tracker: `TrafficMetrics` (delay per car, queue length,
throughput; `dials_lib.envs.traffic_metrics`) and `WarehouseMetrics` (items collected, item wait;
`dials_lib.envs.warehouse_metrics`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dials_lib.envs import ENVS, close_simulator, get_env, make_global
from dials_lib.envs.registry import EXTRA_ENVS
from dials_lib.learning.controllers import Controller, PolicyController
from dials_lib.learning.influence import StackedPredictor, collect_dataset, cross_entropy
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo import PPOGroup

DOMAIN_METRICS: dict[str, tuple[str, ...]] = {
    name: record.metric_names for name, record in {**ENVS, **EXTRA_ENVS}.items()
}
"""The domain metric columns of each environment, in the order of `metrics.csv` (from the registry)."""


def evaluate(
    env: str, group: PolicyActor | PPOGroup, episodes: int, seed: int, predictor: StackedPredictor | None = None
) -> dict[str, float]:
    """Run the policies of `group` (a `PolicyActor` or a learner holding all agents of the GS; stochastic, from
    their evaluation streams) for `episodes` GS episodes; see module docstring. Also `greedy_return`: the mean
    return of the greedy policies (each agent's most likely action) on the same episodes' start and GS draws."""
    row = evaluate_controller(env, PolicyController(group), group.n_agents, episodes, seed, predictor)
    greedy = evaluate_controller(env, PolicyController(group, greedy=True), group.n_agents, episodes, seed)
    return {**row, "greedy_return": greedy["mean_return"]}


def evaluate_controller(
    env: str, controller: Controller, n_agents: int, episodes: int, seed: int,
    predictor: StackedPredictor | None = None, sim_options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The evaluation of `evaluate` for any joint controller (e.g. the hand-coded one) of `n_agents` agents;
    `sim_options` are further keyword arguments of the GS (`make_global`), e.g. a baseline that runs inside it
    (`controllers.hand_coded_setup`)."""
    sim = make_global(env, n_agents=n_agents, seed=seed, **(sim_options or {}))
    tracker = get_env(env).tracker(n_agents)
    try:
        data = collect_dataset(sim, controller, episodes * sim.spec.horizon, tracker=tracker)
    finally:
        close_simulator(sim)
    per_episode = data.rewards.sum(axis=2, dtype=np.float64).mean(axis=0)  # mean over agents of each episode's return
    sem = per_episode.std(ddof=1) / math.sqrt(episodes) if episodes > 1 else math.nan
    ce = math.nan
    if predictor is not None:
        ce = float(cross_entropy(predictor, data).mean())
    return {"mean_return": float(per_episode.mean()), "sem_return": float(sem), "aip_ce": ce, **tracker.summary()}


__all__ = ["DOMAIN_METRICS", "evaluate", "evaluate_controller"]

"""Why untrained-DIALS's gap to DIALS shrinks with the number of agents on our traffic grid, decided by experiment.

At 4 traffic agents untrained-DIALS ends far below DIALS (notebook 04: trained on an IALS whose untrained AIPs block
each exit half the time, its lights hardly ever switch); at 100 agents it keeps its start return, so the gap
shrinks with the agents where the paper's grows (notebook 10). Two readings:

- (a) other policies: at 100 agents untrained-DIALS learns something less harmful than at 4;
- (b) the same policies, another average: what a light that never switches costs depends on where it sits. Cars
  drive straight through the grid, so the lights at the edges hold back the cross traffic that enters there, and
  the intersections behind them see little of it: their cars move. At 4 agents every intersection is a corner; at
  100, 64 are interior.

The experiment (`measure`) evaluates each seed's policies of both methods, trained at the smallest and the largest
size of the preset, on the GS per grid position (`grid_positions`: corner, edge, interior), and transplants them
(a policy is a function of its own intersection's observation, so it acts anywhere): the largest grid's policies
from the positions that stretch onto the smallest grid (for 2x2: its 4 corners) act on the smallest grid, and the
smallest grid's policies act on the largest, each agent taking the policy of the small-grid agent whose block it
is in (`stretched`, `tiled`). The rule (`explanation`): (b) when untrained-DIALS's transplanted policies score, in
both directions, nearer to the host grid's own untrained-DIALS return than to that of the grid they come from
(means over seeds); (a) when both are nearer to their source grid's; otherwise "undecided". "Not measured" until
both sizes' runs have checkpoints, and when untrained-DIALS's own returns at the two sizes do not clearly differ
(nothing to explain: e.g. the smoke preset, where nothing learns).

The measurement needs the runs' checkpoints (`runs/`, not in git), so `study` keeps what it measured in
`runs/<preset>/untrained_positions.json` and `publish` copies it to `records/`, from where a fresh clone reads it.
A run read as the prefix of a longer run (the scale preset's 4-agent runs) is evaluated with that run's policies
at its end: checkpoints keep only the last step; the table names the step.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dials_lib.analysis import plans, report, verdicts
from dials_lib.analysis.published import longer_run
from dials_lib.analysis.stats import bootstrap_ci
from dials_lib.envs import close_simulator, get_env, get_spec, make_global
from dials_lib.files import atomic_write_json, copy_json, read_json, stored_with_settings
from dials_lib.hyperparameters import PolicyConfig
from dials_lib.learning.controllers import PolicyController
from dials_lib.learning.influence import collect_dataset
from dials_lib.learning.networks import empty_policy
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.paths import records_dir, runs_dir
from dials_lib.plots import save_figure, save_table
from dials_lib.presets import get_preset
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import CHECKPOINT
from dials_lib.training.trained_agents import trained_agents

ENV = "traffic"
"""The environment of the experiment (its action 1 asks the light to switch)."""
POSITIONS: tuple[str, ...] = ("corner", "edge", "interior")
"""Where an agent sits on its square grid."""
METHODS: tuple[str, ...] = ("dials", "untrained-dials")
"""The simulators whose policies are evaluated."""
FILE = "untrained_positions.json"
"""Name of the measurement file under runs/<preset>/ and records/<preset>/."""


def grid_positions(n_agents: int) -> np.ndarray:
    """'corner', 'edge' or 'interior' for each agent of a square grid (agent i at row i // side, column i % side)."""
    side = math.isqrt(n_agents)
    if side * side != n_agents or side < 2:
        raise ValueError(f"n_agents must be a square number of at least 4; got {n_agents}")
    row, col = np.divmod(np.arange(n_agents), side)
    outer_row, outer_col = np.isin(row, (0, side - 1)), np.isin(col, (0, side - 1))
    return np.where(outer_row & outer_col, "corner", np.where(outer_row | outer_col, "edge", "interior")).astype(object)


def stretched(small: int, large: int) -> list[int]:
    """For each agent of the small grid, the agent of the large grid at the same place with the grid stretched
    (corners onto corners, edges onto edges): the large grid's policies that act on the small one."""
    s, big = math.isqrt(small), math.isqrt(large)
    spot = [round(k * (big - 1) / (s - 1)) for k in range(s)]
    return [spot[i // s] * big + spot[i % s] for i in range(small)]


def tiled(small: int, large: int) -> list[int]:
    """For each agent of the large grid, the agent of the small grid whose block of the large grid it sits in: the
    small grid's policies that act on the large one."""
    s, big = math.isqrt(small), math.isqrt(large)
    blocks = [(row * s // big, col * s // big) for row, col in (divmod(i, big) for i in range(large))]
    return [block_row * s + block_col for block_row, block_col in blocks]


def transplanted(actor: PolicyActor, agent_ids: list[int], policy: PolicyConfig) -> PolicyActor:
    """The policies of `actor`'s agents `agent_ids` (repeats allowed; architecture `policy`) as agents 0..len-1 of a
    new actor, sampling from the same seed's evaluation streams."""
    spec = get_spec(ENV)
    index = [actor.agent_ids.index(a) for a in agent_ids]
    stacked = empty_policy(policy, len(index), spec.obs_dim, spec.n_actions)
    stacked.load_state_dict({k: v[index].clone() for k, v in actor.policy.state_dict().items()}, assign=True)
    return PolicyActor(stacked, spec.obs_dim, actor.seed, list(range(len(index))))


def evaluate_by_position(actor: PolicyActor, episodes: int, seed: int) -> dict[str, float]:
    """`actor`'s agents on a GS of as many agents for `episodes` episodes (sampled actions, from the evaluation
    streams): the mean return per agent, its mean per grid position, the share of steps on which the policies ask
    to switch, and the domain metrics."""
    n = actor.n_agents
    sim = make_global(ENV, n_agents=n, seed=seed)
    tracker = get_env(ENV).tracker(n)
    try:
        data = collect_dataset(sim, PolicyController(actor), episodes * sim.spec.horizon, tracker=tracker)
    finally:
        close_simulator(sim)
    returns = data.rewards.sum(axis=2, dtype=np.float64).mean(axis=1)  # per agent, over episodes
    where = grid_positions(n)
    by_position = {p: float(returns[where == p].mean()) if (where == p).any() else math.nan for p in POSITIONS}
    return {"return": float(returns.mean()), **by_position, "switch share": float((data.actions == 1).mean()),
            **tracker.summary()}


def _checkpointed(config: RunConfig) -> RunConfig | None:
    """`config`, or the longer run it is read from, whichever has a checkpoint in runs/; None if neither."""
    if (config.directory() / CHECKPOINT).exists():
        return config
    folder = longer_run(config)
    if folder is not None and folder.parent.parent != runs_dir():
        folder = runs_dir() / folder.parent.name / folder.name
    if folder is None or not (folder / CHECKPOINT).exists():
        return None
    total = int(read_json(folder / "config.json")["total_timesteps"])
    return dataclasses.replace(config, total_timesteps=total, run_dir=str(folder))


def settings(preset: str) -> dict[str, object]:
    """What a measurement of `preset` depends on: the sizes, seeds, steps and evaluation episodes."""
    budget = get_preset(preset).budget(ENV)
    return {"sizes": [min(budget.sizes), max(budget.sizes)], "seeds": list(plans.run_seeds(preset, ENV)),
            "steps": budget.total_timesteps, "episodes": budget.eval_episodes}


def measure(preset: str) -> pd.DataFrame | None:
    """Evaluate every seed's DIALS and untrained-DIALS policies of the smallest and largest traffic size of `preset`
    on their own grids and transplanted (see the module docstring); None when a run has no checkpoint."""
    config = settings(preset)
    small, large = config["sizes"]
    if small == large:
        return None
    runs = {(c.simulator, c.n_agents, c.seed): _checkpointed(c) for c in plans.comparison_configs(preset, ENV, METHODS)
            if c.n_agents in (small, large)}
    if any(run is None for run in runs.values()):
        return None
    rows = []
    for (method, n, seed), run in sorted(runs.items()):
        agents = trained_agents(run)
        other, moved = (small, stretched(small, large)) if n == large else (large, tiled(small, large))
        placements = {"own grid": (n, list(range(n))), f"on the {other}-agent grid": (other, moved)}
        for placement, (grid, ids) in placements.items():
            actor = agents.actor if placement == "own grid" else transplanted(agents.actor, ids, run.hp.policy)
            rows.append({"method": method, "seed": seed, "trained at": n, "policies after steps": agents.timestep,
                         "placement": placement, "grid": grid,
                         **evaluate_by_position(actor, int(config["episodes"]), seed)})  # type: ignore[arg-type]
    return pd.DataFrame(rows)


def measurement_path(preset: str, published: bool = False) -> Path:
    """runs/<preset>/untrained_positions.json, or its published copy under records/."""
    get_preset(preset)
    return (records_dir() if published else runs_dir()) / preset / FILE


def study(preset: str, measure_missing: bool = True) -> pd.DataFrame | None:
    """The experiment's rows for `preset`: read back (runs/, else records/) when made with the current settings,
    else measured (when `measure_missing` and every run has a checkpoint) and kept; None when neither."""
    wanted = settings(preset)
    stored = stored_with_settings((measurement_path(preset), measurement_path(preset, published=True)), wanted)
    if stored is not None:
        return pd.DataFrame(stored["rows"], columns=stored["columns"])  # JSON sorts the keys: the order back
    rows = measure(preset) if measure_missing else None
    if rows is not None:
        plain = rows.astype(object).where(rows.notna(), None)  # a position a grid lacks: null, not NaN (strict JSON)
        atomic_write_json(measurement_path(preset), {"settings": wanted, "columns": list(rows.columns),
                                                     "rows": plain.to_dict("records")})
    return rows


def publish(preset: str) -> Path | None:
    """Copy the measurement of `preset` to records/ (None when there is none)."""
    return copy_json(measurement_path(preset), measurement_path(preset, published=True))


def summary(rows: pd.DataFrame, save: bool = False) -> pd.DataFrame:
    """Means over seeds per method, size trained at and placement: return, per position, switch share and
    throughput (saved as `10_untrained_positions` when `save`)."""
    columns = ["return", *POSITIONS, "switch share", "throughput"]
    keys = ["method", "trained at", "placement", "grid"]
    table = rows.groupby(keys, sort=False)[columns].mean().reset_index()
    table = table.assign(seeds=rows.groupby(keys, sort=False).size().to_numpy())
    if save:
        save_table(table, "10_untrained_positions")
    return table


def gap_by_position(rows: pd.DataFrame) -> pd.DataFrame:
    """DIALS minus untrained-DIALS, each on its own grid, per size and grid position (means over seeds): the gap
    where the positions match, against the gap of the grid's average (column 'return')."""
    own = summary(rows[rows["placement"] == "own grid"]).set_index(["method", "trained at"])
    columns = ["return", *POSITIONS]
    gap = own.loc["dials", columns] - own.loc["untrained-dials", columns]
    return gap.rename_axis("agents").reset_index()


def position_figure(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean return per agent by grid position on each grid size: each method's own policies and untrained-DIALS's
    transplanted ones (bars from 0, seed means with their standard error; saved as `10_untrained_positions`)."""
    grids = sorted(rows["grid"].unique())
    series = [("dials", "own grid", "DIALS"), ("untrained-dials", "own grid", "untrained-DIALS"),
              ("untrained-dials", "transplanted", "untrained-DIALS, trained at the other size")]
    fig, axes = plt.subplots(1, len(grids), figsize=(6 * len(grids), 4), squeeze=False)
    for ax, grid in zip(axes[0], grids, strict=True):
        here = rows[rows["grid"] == grid]
        kinds = [p for p in POSITIONS if here[p].notna().any()]
        width = 0.8 / len(series)
        for k, (method, placement, label) in enumerate(series):
            pick = here[(here["method"] == method) & ((here["placement"] == "own grid") == (placement == "own grid"))]
            means, errors = pick[kinds].mean(), pick[kinds].sem().fillna(0.0)
            colour = report.METHOD_COLORS.get("DIALS" if method == "dials" else "untrained-DIALS")
            ax.bar(np.arange(len(kinds)) + (k - 1) * width, means, width, yerr=errors, capsize=3, label=label,
                   color=colour, alpha=0.45 if placement == "transplanted" else 1.0,
                   hatch="//" if placement == "transplanted" else None)
        counts = {p: int((grid_positions(grid) == p).sum()) for p in kinds}
        ax.set_xticks(np.arange(len(kinds)), [f"{p} ({counts[p]} agents)" for p in kinds])
        ax.set(title=f"{ENV} GS with {grid} agents", xlabel="grid position", ylabel="average return per agent",
               ylim=(0, None))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    fig.tight_layout()
    save_figure(fig, "10_untrained_positions")
    return summary(rows, save=True)


def explanation(rows: pd.DataFrame | None) -> tuple[str, str]:
    """('(a)' | '(b)' | 'undecided' | 'not measured', the evidence): the rule of the module docstring on
    untrained-DIALS's mean returns over seeds. "Not measured" without a measurement, and when untrained-DIALS's
    own returns at the two sizes do not clearly differ (the 95% bootstrap interval of the difference, seeds
    resampled, not wholly beyond `verdicts.LEARNING_MARGIN` of the smaller size's |return| on one side): there is
    then no size effect to explain."""
    if rows is None or rows.empty:
        return "not measured", "the runs of both sizes need checkpoints (train them first)"
    untrained = rows[rows["method"] == "untrained-dials"]
    small, large = sorted(untrained["trained at"].unique())
    returns = {(n, grid): part["return"].to_numpy(dtype=float)
               for (n, grid), part in untrained.groupby(["trained at", "grid"])}
    own = {n: float(returns[(n, n)].mean()) for n in (small, large)}
    moved = {key: float(returns[key].mean()) for key in ((large, small), (small, large))}
    evidence = "; ".join(f"policies trained at {source} on the {grid}-agent grid: {v:.1f} (the {grid}-agent grid's "
                         f"own {own[grid]:.1f}, the {source}-agent grid's own {own[source]:.1f})"
                         for (source, grid), v in moved.items())
    _, low, high = bootstrap_ci(returns[(large, large)], returns[(small, small)])
    margin = verdicts.LEARNING_MARGIN * abs(own[small])
    if not (low > margin or high < -margin):
        return "not measured", (f"untrained-DIALS's own returns at {small} and {large} agents do not clearly differ "
                                f"(difference [95% CI {low:+.3g}, {high:+.3g}]); {evidence}")
    nearer_host = [abs(v - own[grid]) < abs(v - own[source]) for (source, grid), v in moved.items()]
    verdict = "(b)" if all(nearer_host) else "(a)" if not any(nearer_host) else "undecided"
    return verdict, evidence


__all__ = ["ENV", "FILE", "METHODS", "POSITIONS", "evaluate_by_position", "explanation", "gap_by_position",
           "grid_positions", "measure", "measurement_path", "position_figure", "publish", "settings", "stretched",
           "study", "summary", "tiled", "transplanted"]

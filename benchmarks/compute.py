"""How close training runs to the machine's limit: FLOPs per agent-step against one core's matrix-multiply peak.

Adds compute columns to every row of the training grid (benchmarks/results/training.json and .md), of the
stacked-seeds table of the whole-experiment benchmark (training_experiment.json and .md), each file with two more
tables: the matrix-multiply rates of one core and the PPO update timed alone, and of the PPO benchmark (ppo.json and
.md, whose rows time their updates themselves). The columns' meaning is in `COMPUTE_NOTES`, `STACKED_NOTES` and
`PPO_NOTES`, printed above the tables. `benchmarks/training.py` and `benchmarks/ppo.py` add them to the tables they
measure, and

    .venv/bin/python benchmarks/compute.py   # about a minute

adds them to the stored tables of all three, measuring the peak and the updates afresh and keeping the stored rows'
own measurements (times, memory) as they are.

The peak is measured here, not taken from a data sheet: float32 matrix products on one torch thread, large squares
(the best of them is "the peak") and the stacked shapes the networks multiply in the update (`torch.bmm` over the
agents of a group). FLOPs per agent-step come from the hyperparameters (`dials_lib.learning.flops`: matrix
products only, 2 FLOPs per multiply-add). The peak and the update are timed in CPU seconds of the thread that
computes (everything runs on it at one torch thread), so that the time slices other processes on a shared machine
take do not count as slowness; "CPU share" (CPU over wall time) says how much of the time the thread ran.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import read_results, write_results  # noqa: E402

from dials_lib.envs import get_spec  # noqa: E402
from dials_lib.hyperparameters import paper_hyperparameters  # noqa: E402
from dials_lib.learning.flops import agent_step_flops  # noqa: E402
from dials_lib.learning.ppo import PPOGroup  # noqa: E402
from dials_lib.training.parallel import single_threaded  # noqa: E402

SQUARE_SIZES = (512, 1024, 2048)
"""Sides of the square products whose best rate is the peak."""
REPEATS = 3
"""Timings per product and per update; the fastest counts (the least disturbed by other work on the machine)."""
RATES_TITLE = "Matrix-multiply rates of one core (float32, one thread; the peak is the best square)"
UPDATES_TITLE = "The PPO update alone: one group, one thread"
STACKED_TITLE = "Stacked seeds: agent-steps/s of one process at N = 4 per seed"
"""The title of the stacked-seeds table of training_experiment.md (`benchmarks/training.py --experiment`)."""


def paragraph(parts: tuple[str, ...]) -> str:
    """The parts as one markdown paragraph, wrapped at 116 characters."""
    return textwrap.fill(" ".join(" ".join(parts).split()), width=116)


FLOPS_HOW = """\
"MFLOP per agent-step": the networks' matrix products per agent and step, 2 FLOPs per multiply-add
(`dials_lib.learning.flops`): the policy's forward pass to act, the PPO update (3 epochs of forward and backward
passes over the 128-step buffer) amortised per step and, on the IALS, the AIP's forward pass; elementwise work
(biases, activations, gates, losses, Adam) is not counted."""
PEAK_HOW = """\
The peak is timed in CPU seconds of the computing thread: it was measured beside a niced background training run
(nice 10) and other work (the load averages are in the tables), whose time slices would otherwise count as
slowness; the "CPU share" columns say how much of the wall time the thread ran."""
TRAINING_HOW = """\
"update GFLOP/s": the PPO update of one group of that size, timed alone on one thread like the peak (its
matrix-product FLOPs over its whole time, elementwise work and Adam included); "update share of peak": that over
the peak. "training GFLOP/s per core": the row's throughput per core times its FLOPs per agent-step; "training share
of peak": that over the peak (the simulator, acting's small products and the Python around them count as time not
spent multiplying). The other columns of a row come from the run that measured its throughput (with its load
average, where the row has one)."""
COMPUTE_NOTES = paragraph((
    "Compute columns (benchmarks/compute.py, measured beside one core's matrix-multiply peak: see the two tables "
    "after the measurements). \"agents per group\": the stacked PPO group that trains together (all N agents on the "
    "GS; one grid row, sqrt(N), per DIALS worker task); a row's throughput per core is its agents-training "
    "throughput over its workers.", FLOPS_HOW, TRAINING_HOW, PEAK_HOW))
"""The markdown paragraph of training.md on the compute columns of its rows."""
STACKED_NOTES = paragraph((
    "Compute columns of the stacked-seeds table (benchmarks/compute.py, measured beside one core's matrix-multiply "
    "peak: see the two tables after it): a process trains one stacked group of all its agents.",
    FLOPS_HOW, TRAINING_HOW, PEAK_HOW))
"""The markdown paragraph of training_experiment.md on the compute columns of its stacked-seeds table."""
PPO_NOTES = paragraph((
    "Compute columns (benchmarks/compute.py; one core's matrix-multiply peak is in the table after the "
    "measurements).", FLOPS_HOW,
    "\"update GFLOP/s per core\": the FLOPs of the row's PPO updates over their time in its cycles (seconds per "
    "cycle times update share), per torch thread; \"cycle GFLOP/s per core\": the row's agent-steps/s times its "
    "FLOPs per agent-step, per thread; each \"share of peak\" is that over the peak. These times are the rows' own "
    "(wall-clock, with the load average of their run).", PEAK_HOW))
"""The markdown paragraph of ppo.md on the compute columns of its rows."""


def cpu_seconds(fn: Callable[[], Any], min_seconds: float) -> float:
    """CPU seconds of this thread per call of `fn` after a warm-up call: the fastest of REPEATS timings of at least
    2 calls and `min_seconds` each."""
    fn()
    best = float("inf")
    for _ in range(REPEATS):
        calls, start = 0, time.thread_time()
        while calls < 2 or time.thread_time() - start < min_seconds:
            fn()
            calls += 1
        best = min(best, (time.thread_time() - start) / calls)
    return best


def square_rate(n: int, min_seconds: float) -> float:
    """GFLOP/s (per CPU second) of one torch thread multiplying two float32 n x n matrices (2 n^3 FLOPs)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, n, generator=gen), torch.rand(n, n, generator=gen)
    out = torch.empty(n, n)
    return 2 * n**3 / cpu_seconds(lambda: torch.mm(a, b, out=out), min_seconds) / 1e9


def stacked_rate(n_agents: int, rows: int, inputs: int, outputs: int, min_seconds: float) -> float:
    """GFLOP/s of `torch.bmm` over `n_agents` products [rows, inputs] @ [inputs, outputs] (a stacked layer)."""
    gen = torch.Generator().manual_seed(0)
    x, w = torch.rand(n_agents, rows, inputs, generator=gen), torch.rand(n_agents, inputs, outputs, generator=gen)
    out = torch.empty(n_agents, rows, outputs)
    return 2 * n_agents * rows * inputs * outputs / cpu_seconds(lambda: torch.bmm(x, w, out=out), min_seconds) / 1e9


def matmul_rates(min_seconds: float = 0.5) -> tuple[float, list[dict[str, Any]]]:
    """The peak (the best square product's GFLOP/s) and a table of the rates of squares and network shapes."""
    load, start_cpu, start_wall = os.getloadavg()[0], time.thread_time(), time.perf_counter()
    table = [{"product": f"square {n} x {n} @ {n} x {n}", "GFLOP/s": square_rate(n, min_seconds)}
             for n in SQUARE_SIZES]
    peak = max(row["GFLOP/s"] for row in table)
    shapes = (  # (what, rows per agent, inputs, outputs): the update's minibatch of 32 transitions per agent
        ("traffic policy layer 1 (update)", 32, 40, 256), ("traffic policy layer 2 (update)", 32, 256, 128),
        ("warehouse GRU input gates (update)", 32, 256, 384), ("warehouse GRU recurrent step (update)", 4, 128, 384),
    )
    for n_agents in (10, 100):
        for what, rows, inputs, outputs in shapes:
            table.append({"product": f"{what}: {n_agents} x [{rows} x {inputs}] @ [{inputs} x {outputs}]",
                          "GFLOP/s": stacked_rate(n_agents, rows, inputs, outputs, min_seconds)})
    cpu_share = (time.thread_time() - start_cpu) / (time.perf_counter() - start_wall)
    load = max(load, os.getloadavg()[0])
    for row in table:
        row.update({"share of peak": row["GFLOP/s"] / peak, "CPU share": cpu_share, "load average": load})
    return peak, table


def update_seconds(env: str, n_agents: int) -> tuple[float, float]:
    """CPU seconds of one PPO update of a group of `n_agents` with the paper's networks (fastest of REPEATS, after a
    warm-up), its buffer filled with random observations and rewards before each (not timed), and the CPU share of
    the timed updates (their CPU over their wall time)."""
    hp, spec = paper_hyperparameters(env), get_spec(env)
    group = PPOGroup(n_agents, spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, hp.total_timesteps, 0)
    rng = np.random.default_rng(0)
    best, cpu, wall = float("inf"), 0.0, 0.0
    for repeat in range(REPEATS + 1):
        for t in range(hp.ppo.buffer_size):
            group.act(rng.random((n_agents, spec.obs_dim), dtype=np.float32))
            group.observe(rng.random(n_agents, dtype=np.float32), (t + 1) % spec.horizon == 0)
        next_obs = rng.random((n_agents, spec.obs_dim), dtype=np.float32)
        start_cpu, start_wall = time.thread_time(), time.perf_counter()
        group.update(next_obs)
        if repeat:  # the first update is the warm-up
            seconds = time.thread_time() - start_cpu
            best, cpu, wall = min(best, seconds), cpu + seconds, wall + time.perf_counter() - start_wall
    return best, cpu / wall


class ComputeMeter:
    """One core's matrix-multiply peak (measured when made) and the PPO update's rate by environment and group size
    (each measured once, when first asked for), all single-threaded as every training process runs; and from them
    the compute columns of a training row."""

    def __init__(self) -> None:
        with single_threaded():
            self.peak, self.rates = matmul_rates()
        self.updates: dict[tuple[str, int], dict[str, Any]] = {}

    def update(self, env: str, n_agents: int) -> dict[str, Any]:
        """The PPO update of one group of `n_agents` of `env`, timed alone: its GFLOP/s and share of the peak."""
        if (env, n_agents) not in self.updates:
            hp = paper_hyperparameters(env)
            flops = n_agents * hp.ppo.buffer_size * agent_step_flops(hp, get_spec(env), on_ials=False).update
            load = os.getloadavg()[0]
            with single_threaded():
                seconds, cpu_share = update_seconds(env, n_agents)
            rate = flops / seconds / 1e9
            self.updates[env, n_agents] = {
                "env": env, "agents per group": n_agents, "CPU seconds per update": seconds, "update GFLOP/s": rate,
                "update share of peak": rate / self.peak, "CPU share": cpu_share,
                "load average": max(load, os.getloadavg()[0])}
            print(self.updates[env, n_agents], flush=True)
        return self.updates[env, n_agents]

    def columns(self, env: str, on_ials: bool, n_agents: int, agent_steps_per_core_s: float) -> dict[str, Any]:
        """The compute columns of a training row of `env` on the GS or an IALS, whose PPO groups have `n_agents`
        and which trained `agent_steps_per_core_s` agent-steps per second and core."""
        step = agent_step_flops(paper_hyperparameters(env), get_spec(env), on_ials)
        update = self.update(env, n_agents)
        training = step.total * agent_steps_per_core_s / 1e9
        return {"MFLOP per agent-step": step.total / 1e6,
                "update GFLOP/s": update["update GFLOP/s"], "update share of peak": update["update share of peak"],
                "training GFLOP/s per core": training, "training share of peak": training / self.peak}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """The matrix-multiply rates and the updates measured so far, by title."""
        updates = [self.updates[key] for key in sorted(self.updates)]
        return {RATES_TITLE: self.rates, **({UPDATES_TITLE: updates} if updates else {})}


def add_grid_columns(rows: list[dict[str, Any]], meter: ComputeMeter) -> None:
    """Add the compute columns to the rows of the training grid (in place): a GS row trains one group of all its
    agents, a DIALS row a grid row of agents per worker task; its throughput is spread over its workers."""
    for row in rows:
        on_ials = row["simulator"] != "gs"
        n_agents = math.isqrt(row["agents"]) if on_ials else row["agents"]
        row["agents per group"] = n_agents
        row.update(meter.columns(row["env"], on_ials, n_agents, row["agent-steps/s (training)"] / row["workers"]))


def add_stacked_columns(rows: list[dict[str, Any]], meter: ComputeMeter) -> None:
    """Add the compute columns to the rows of the stacked-seeds table (one process, one group of all its agents)."""
    for row in rows:
        row.update(meter.columns(row["env"], row["simulator"] == "ials", row["agents in the group"],
                                 row["agent-steps/s per core"]))


def add_ppo_columns(rows: list[dict[str, Any]], meter: ComputeMeter) -> None:
    """Add the compute columns to the rows of the PPO benchmark (in place), from each row's own update time and
    throughput (all agents of a row on the GS, in one stacked group or a loop of single-agent groups)."""
    for row in rows:
        hp = paper_hyperparameters(row["env"])
        step = agent_step_flops(hp, get_spec(row["env"]), on_ials=False)
        update_s = row["seconds per cycle"] * row["update share"]
        update = row["agents"] * hp.ppo.buffer_size * step.update / update_s / row["threads"] / 1e9
        cycle = step.total * row["agent-steps/s"] / row["threads"] / 1e9
        row.update({"MFLOP per agent-step": step.total / 1e6, "update GFLOP/s per core": update,
                    "update share of peak": update / meter.peak, "cycle GFLOP/s per core": cycle,
                    "cycle share of peak": cycle / meter.peak})


def main() -> None:
    """Add the compute columns and tables to the stored training benchmarks (the grid and the stacked seeds) and
    the PPO benchmark."""
    meter = ComputeMeter()
    ppo = read_results("ppo")
    add_ppo_columns(ppo["rows"], meter)
    write_results("ppo", ppo["rows"], ppo["goals"], ppo["title"], {**ppo["more"], RATES_TITLE: meter.rates},
                  notes=PPO_NOTES)
    grid = read_results("training")
    add_grid_columns(grid["rows"], meter)
    experiment = read_results("training_experiment")
    add_stacked_columns(experiment["more"][STACKED_TITLE], meter)
    write_results("training", grid["rows"], grid["goals"], grid["title"], {**grid["more"], **meter.tables()},
                  notes=COMPUTE_NOTES)
    write_results("training_experiment", experiment["rows"], experiment["goals"], experiment["title"],
                  {**experiment["more"], **meter.tables()}, notes=STACKED_NOTES)


if __name__ == "__main__":
    main()

"""Seed batches: runs that differ only in seed, trained as one stacked batch, are exactly the runs trained alone.

Bit-equality is the promise (`dials_lib.training.runner.train_seeds`): for GS and DIALS training on both
environments, each run of a 3-seed batch has the metrics (every column but wall time) and the final checkpoint
(every agent's weights, Adam moments, counters, AIPs) of the same seed trained alone. Also: the batch resumes
like a single run, and the numbers do not depend on torch's thread setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.learning.ppo import PPOGroup, concat_states, slice_state
from dials_lib.learning.ppo_loop import run_ppo, train_steps
from dials_lib.training import dials, runner
from dials_lib.training.checkpoints import verified_state
from dials_lib.training.run_config import RunConfig, seed_configs
from dials_lib.training.run_records import CHECKPOINT
from dials_lib.training.run_stack import RunStack
from dials_lib.training.runner import train, train_seeds
from dials_lib.validation import with_fields
from tests.conftest import results_only, tiny_config
from tests.faults import interrupt_when, still_running

SEEDS = (3, 0, 11)


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Two checkpoints hold the same learning state: equal tensors, arrays and values (not the clock)."""
    if isinstance(a, dict):
        keys = set(a) - {"runtime", "memory", "sessions"}
        assert keys == set(b) - {"runtime", "memory", "sessions"}, where
        for key in keys:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    elif where.endswith("['wall_time_s']"):
        return
    else:
        assert a == b, where


def checkpoint(run_dir: Path | str) -> dict[str, Any]:
    return verified_state(Path(run_dir) / CHECKPOINT)


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
@pytest.mark.parametrize("simulator", ["gs", "dials"])
def test_a_seed_batch_equals_the_runs_trained_alone(tmp_path, env, simulator):
    batch = train_seeds(tiny_config(tmp_path / "batch_{seed}", env, simulator), SEEDS, progress=False)
    for seed, result in zip(SEEDS, batch, strict=True):
        alone = train(tiny_config(tmp_path / f"alone_{seed}", env, simulator, seed=seed), progress=False)
        assert result.config.seed == seed and len(result.metrics) == 4
        pd.testing.assert_frame_equal(results_only(result.metrics), results_only(alone.metrics))
        assert_same_state(checkpoint(result.run_dir), checkpoint(alone.run_dir))
        assert result.runtime["stacked_runs"] == 3 and alone.runtime["stacked_runs"] == 1
    # the runs differ from each other: the batch did not train one seed three times
    assert not batch[0].metrics["mean_return"].equals(batch[2].metrics["mean_return"])


def test_a_batch_resumes_runs_at_different_boundaries_and_reads_back_finished_ones(tmp_path):
    config = tiny_config(tmp_path / "b_{seed}", "traffic", "dials")
    reference = train_seeds(config, SEEDS, progress=False)
    # seed 0 finished, seed 3 back at boundary 1, seed 11 never started: one call completes all three
    directories = [Path(str(tmp_path / "b_{seed}").replace("{seed}", str(s))) for s in SEEDS]
    again = [tmp_path / f"again_{s}" for s in SEEDS]
    short = train(tiny_config(again[0], "traffic", "dials", seed=3, total_timesteps=768), progress=False)
    state = checkpoint(short.run_dir)
    assert state["boundary"] == 3
    half = train_seeds(tiny_config(tmp_path / "again_{seed}", "traffic", "dials"), [3], progress=False)
    assert half[0].run_dir == short.run_dir
    results = train_seeds(tiny_config(tmp_path / "again_{seed}", "traffic", "dials"), SEEDS, progress=False)
    for result, ref, directory in zip(results, reference, directories, strict=True):
        pd.testing.assert_frame_equal(results_only(result.metrics), results_only(ref.metrics))
        assert_same_state(checkpoint(result.run_dir), checkpoint(directory))


@pytest.mark.parametrize("env", ["traffic", "warehouse"])
@pytest.mark.parametrize("simulator", ["dials", "untrained-dials"])
def test_the_grouping_of_agents_does_not_change_a_run(tmp_path, env, simulator):
    """Groups of 1, 2 or 4 agents (one worker task each): the same metrics and every agent's same learning state."""
    runs = []
    for size in (4, 2):
        result = train(tiny_config(tmp_path / f"groups_of_{size}", env, simulator, agents_per_worker=size),
                       progress=False)
        groups = checkpoint(result.run_dir)["groups"]
        assert len(groups) == 4 // size
        aips = [g["aip"] for g in groups if g["aip"] is not None]
        runs.append((results_only(result.metrics), concat_states([g["ppo"] for g in groups]),
                     {name: torch.cat([a[name] for a in aips]) for name in aips[0]} if aips else None))
    for metrics, ppo, aip in runs[1:]:
        pd.testing.assert_frame_equal(metrics, runs[0][0])
        assert_same_state(ppo, runs[0][1])
        assert_same_state(aip, runs[0][2])


def test_a_run_resumes_with_another_number_of_workers(tmp_path, monkeypatch):
    """Interrupted with one group of 4 agents (n_workers=1) and resumed with two groups (n_workers=2): the metrics
    and the final learning state of the run trained without a break."""
    reference = train(tiny_config(tmp_path / "reference", "warehouse", "dials", n_workers=1, agents_per_worker=None),
                      progress=False)
    train_chunk = dials.Run.train_chunk

    def stop_before_chunk_1(run: dials.Run, c: int) -> None:
        if c == 1:
            raise KeyboardInterrupt
        train_chunk(run, c)

    config = tiny_config(tmp_path / "resumed", "warehouse", "dials", n_workers=1, agents_per_worker=None)
    monkeypatch.setattr(dials.Run, "train_chunk", stop_before_chunk_1)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.undo()
    assert len(checkpoint(config.directory())["groups"]) == 1
    resumed = train(with_fields(config, n_workers=2), progress=False)
    groups = checkpoint(resumed.run_dir)["groups"]
    assert [len(g["ppo"]["agent_ids"]) for g in groups] == [2, 2]
    pd.testing.assert_frame_equal(results_only(resumed.metrics), results_only(reference.metrics))
    assert_same_state(concat_states([g["ppo"] for g in groups]), checkpoint(reference.run_dir)["groups"][0]["ppo"])
    assert RunConfig("traffic", n_agents=4, n_workers=8).groups() == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="groups"):  # groups of one agent round differently: not the same run
        train(with_fields(config, agents_per_worker=1), progress=False)


def test_the_thread_setting_does_not_change_a_run(tmp_path):
    """The runner trains torch single-threaded whatever the caller set; the caller's setting is restored."""
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(train(tiny_config(tmp_path / f"threads_{threads}", "traffic", "gs"), progress=False))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(previous)
    pd.testing.assert_frame_equal(results_only(results[0].metrics), results_only(results[1].metrics))
    assert_same_state(checkpoint(results[0].run_dir), checkpoint(results[1].run_dir))


def test_seed_lists_are_checked(tmp_path):
    config = tiny_config(tmp_path / "r", "traffic", "dials")
    for seeds, message in (([], "seeds must hold at least one seed"), ([1, 1], "seeds must be distinct"),
                           ([1, -2], "seed must be an integer >= 0")):
        with pytest.raises(ValueError, match=message):
            seed_configs(config, seeds)
    with pytest.raises(ValueError, match=r"run_dir must contain \{seed\}"):
        seed_configs(config, [1, 2])
    assert [c.run_dir for c in seed_configs(tiny_config(tmp_path / "r{seed}", "traffic", "dials"), [4, 5])] == [
        str(tmp_path / "r4"), str(tmp_path / "r5")]


def test_a_stacked_ppo_group_trains_each_run_like_a_group_of_its_own():
    """Runs of 4 agents stacked 1, 3 and 8 deep: each run's weights after 4 updates are bit-equal to its group alone
    (per-run Adam blocks: the fused kernel rounds a tensor's tail differently from its body)."""
    hp = paper_hyperparameters("warehouse")
    obs_dim, n_actions = 37, 4

    class Bandit:
        """Observations and rewards from a per-copy generator, so every run sees its own data."""

        def __init__(self, seeds: list[int]) -> None:
            self.rngs = [np.random.default_rng(s) for s in seeds]

        def reset(self) -> np.ndarray:
            return np.concatenate([(rng.random((4, obs_dim)) < 0.3).astype(np.float32) for rng in self.rngs])

        def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
            rewards = (actions == 1).astype(np.float32)
            return self.reset(), rewards, False

    def train_runs(seeds: list[int]) -> tuple[PPOGroup, list[dict[str, float]]]:
        ids = [a for _ in seeds for a in range(4)]
        group = PPOGroup(len(ids), obs_dim, n_actions, hp.policy, hp.ppo, 100_000,
                         [s for s in seeds for _ in range(4)] if len(seeds) > 1 else seeds[0], agent_ids=ids)
        trace = run_ppo(group, Bandit(seeds), 4 * hp.ppo.buffer_size)
        return group, RunStack(tuple(seeds)).summaries(trace, 4)

    for depth in (3, 8):
        seeds = list(range(10, 10 + depth))
        stacked, metrics = train_runs(seeds)
        state = stacked.state_dict()
        for r in (0, depth - 1):
            alone, alone_metrics = train_runs([seeds[r]])
            assert_same_state(slice_state(state, 4 * r, 4 * r + 4), alone.state_dict())
            assert_same_state(metrics[r], alone_metrics[0])
    # joining runs' states and cutting them again gives each run's state back, seed included
    single = [train_runs([s])[0].state_dict() for s in (1, 2)]
    joined = concat_states(single)
    assert joined["seed"] == [1] * 4 + [2] * 4
    assert slice_state(joined, 4, 8)["seed"] == 2
    assert_same_state(slice_state(joined, 4, 8), single[1])
    group, _ = train_runs([5])
    assert train_steps(group, Bandit([5]), hp.ppo.buffer_size).keys() == {"policy_loss", "value_loss", "entropy",
                                                                           "train_return", "episode_returns"}


def test_train_seeds_is_reexported_and_documented():
    import dials_lib

    assert dials_lib.train_seeds is runner.train_seeds
    assert "seed" in runner.train_seeds.__doc__


def test_an_experiment_plan_gives_the_same_numbers_on_one_process_or_two(tmp_path):
    """Seed batches spread over 2 processes, or trained one after another here: the same records, in plan order.
    (Over 2 processes, the DIALS batch trains here on its 2 workers while the untrained-DIALS batch, the longest,
    trains in a pool process; this process then takes the GS batch, which waited, instead of idling.)"""
    from dials_lib.analysis import plans

    def plan(folder: str) -> list[RunConfig]:
        return [tiny_config(tmp_path / folder / f"{simulator}_{seed}", "traffic", simulator, seed=seed,
                            n_workers=2 if simulator == "dials" else 1,
                            total_timesteps=8 * 768 if simulator == "untrained-dials" else 768)
                for simulator in ("gs", "dials", "untrained-dials") for seed in (5, 6)]

    assert [[c.seed for c in batch] for batch in plans.seed_batches(plan("one"))] == [[5, 6], [5, 6], [5, 6]]
    lines: list[str] = []
    one = plans.run_experiments(plan("one"), progress=False, log=None, n_processes=1)
    two = plans.run_experiments(plan("two"), progress=False, log=lines.append, n_processes=2)
    trained = {line.split(" in ")[0]: line.rsplit("(", 1)[1] for line in lines if line.startswith("trained ")}
    assert trained == {"trained dials_5, dials_6": "this process and its workers)",
                       "trained untrained-dials_5, untrained-dials_6": "a pool process)",
                       "trained gs_5, gs_6": "this process)"}, lines
    drop = ["wall_time_s", "run_dir"]
    pd.testing.assert_frame_equal(one.drop(columns=drop), two.drop(columns=drop))
    assert list(one["simulator"].unique()) == ["gs", "dials", "untrained-dials"]
    assert list(one["seed"].unique()) == [5, 6]
    again = plans.run_experiments(plan("two"), progress=False, log=None)  # finished: read back
    pd.testing.assert_frame_equal(again, two)
    shares = plans.runtime_frame(plan("two"))
    records = train(plan("two")[0], progress=False).runtime
    assert shares["stacked_runs"].tolist() == [2] * 6
    assert shares.loc[0, "total_s"] == pytest.approx(records["total_s"] / 2)


INTERRUPTED_PLAN = """
import signal, sys
sys.path.insert(0, {repository!r})  # whatever the working directory
from pathlib import Path
from tests.conftest import tiny_config
from dials_lib.analysis import plans

signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (see the CLI's Ctrl-C test)
root = Path({root!r})
plan = [tiny_config(root / simulator, "traffic", simulator, seed=5, n_workers=2 if simulator == "dials" else 1,
                    total_timesteps=200 * 256) for simulator in ("dials", "untrained-dials")]
try:
    plans.run_experiments(plan, progress=False, log=None, n_processes=2)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    raise SystemExit(130)
"""


def test_an_interrupted_experiment_plan_stops_its_pool_process_at_once(tmp_path):
    """SIGINT to this process alone (as Jupyter's interrupt sends it) while a DIALS batch trains here and an
    untrained-DIALS batch in a pool process: the plan stops within seconds instead of waiting for the pool's batch
    to finish, and no process of it is left training."""
    import subprocess
    import sys
    import time

    script = INTERRUPTED_PLAN.format(repository=str(Path(__file__).parents[1]), root=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    children = interrupt_when(
        process, lambda: all((tmp_path / name / CHECKPOINT).exists() for name in ("dials", "untrained-dials")))
    started = time.monotonic()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and out.strip() == "interrupted", err[-2000:]
    assert time.monotonic() - started < 15
    time.sleep(2.0)
    assert not still_running(children)
    rows = len(pd.read_csv(tmp_path / "untrained-dials" / "metrics.csv"))
    time.sleep(2.0)
    assert len(pd.read_csv(tmp_path / "untrained-dials" / "metrics.csv")) == rows  # nothing trains it any more
    assert rows < 200


def test_stacked_parts_keep_each_group_within_the_cap(monkeypatch):
    """Seeds stack while their agents fit `MAX_STACKED_AGENTS`; a bigger batch splits into the fewest parts of
    consecutive seeds, as even as can be, and a run bigger than the cap trains alone."""
    from dials_lib.analysis import plans

    def parts(n_agents: int, n_seeds: int) -> list[list[int]]:
        batch = [RunConfig(env="traffic", n_agents=n_agents, simulator="gs", seed=s) for s in range(n_seeds)]
        return [[c.seed for c in part] for part in plans.stacked_parts(batch)]

    monkeypatch.setattr(plans, "MAX_STACKED_AGENTS", 32)
    assert parts(4, 3) == [[0, 1, 2]]
    assert parts(4, 8) == [list(range(8))]
    assert parts(4, 9) == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    assert parts(25, 3) == [[0], [1], [2]]
    assert parts(100, 2) == [[0], [1]]
    monkeypatch.setattr(plans, "MAX_STACKED_AGENTS", 100)
    assert parts(25, 3) == [[0, 1, 2]]
    assert parts(25, 5) == [[0, 1], [2, 3, 4]]


def test_a_batch_over_the_stacking_cap_trains_in_parts_with_the_same_numbers(tmp_path, monkeypatch):
    """With a cap of 4 agents, 2 seeds of 4 agents train as two parts side by side (each run's runtime records one
    stacked run), and every run's metrics are those of the two seeds stacked."""
    from dials_lib.analysis import plans

    def plan(folder: str) -> list[RunConfig]:
        return [tiny_config(tmp_path / folder / f"{simulator}_{seed}", "warehouse", simulator, seed=seed)
                for simulator in ("gs", "untrained-dials") for seed in (5, 6)]

    stacked = plans.run_experiments(plan("stacked"), progress=False, log=None, n_processes=1)
    monkeypatch.setattr(plans, "MAX_STACKED_AGENTS", 4)
    lines: list[str] = []
    parts = plans.run_experiments(plan("parts"), progress=False, log=lines.append, n_processes=2)
    assert sorted(line.split(" in ")[0] for line in lines if line.startswith("trained ")) == [
        "trained gs_5", "trained gs_6", "trained untrained-dials_5", "trained untrained-dials_6"], lines
    drop = ["wall_time_s", "run_dir"]
    pd.testing.assert_frame_equal(stacked.drop(columns=drop), parts.drop(columns=drop))
    assert plans.runtime_frame(plan("stacked"))["stacked_runs"].tolist() == [2] * 4
    assert plans.runtime_frame(plan("parts"))["stacked_runs"].tolist() == [1] * 4


def test_dials_tasks_hold_about_max_stacked_agents():
    """A DIALS batch's worker tasks are split so that their stacked agents come nearest `MAX_STACKED_AGENTS`: 3
    seeds of 100 agents in 10 tasks of 30, not the default 2 of 150; the 4- and 25-agent batches keep the default
    split over the workers. Every split holds at least two agents per group and gives every worker a task."""
    from dials_lib.analysis import plans

    assert plans.MAX_STACKED_AGENTS == 32
    assert plans.dials_agents_per_worker(100, 3, 2) == 10
    assert plans.dials_agents_per_worker(49, 3, 2) == 7
    assert plans.dials_agents_per_worker(25, 3, 2) is None  # 13 + 12 per seed (39 and 36) beat 5 (15)
    assert plans.dials_agents_per_worker(4, 3, 2) is None
    assert plans.dials_agents_per_worker(100, 1, 2) == 25
    for n_agents in (4, 9, 16, 25, 36, 49, 64, 100):
        for n_seeds in (1, 2, 3, 8):
            for n_workers in (2, 3, 4):
                size = plans.dials_agents_per_worker(n_agents, n_seeds, n_workers)
                if size is not None:
                    assert n_agents % size == 0 and size >= 2 and n_agents // size >= n_workers


def test_a_dials_batch_in_smaller_tasks_gives_the_same_numbers(tmp_path, monkeypatch):
    """With a cap of 6 stacked agents, a DIALS batch of 2 seeds of 9 agents trains in 3 tasks of 3 agents per seed
    (6 stacked) instead of the default 2 of 5 and 4: every run's metrics are those of the default split, and its
    config.json records the group sizes it trained in."""
    import json

    from dials_lib.analysis import plans

    def plan(folder: str) -> list[RunConfig]:
        return [tiny_config(tmp_path / folder / f"dials_{seed}", "warehouse", "dials", seed=seed, n_agents=9,
                            n_workers=2, agents_per_worker=None, chunks=2) for seed in (5, 6)]

    default = plans.run_experiments(plan("default"), progress=False, log=None, n_processes=1)
    monkeypatch.setattr(plans, "MAX_STACKED_AGENTS", 6)
    assert plans.dials_agents_per_worker(9, 2, 2) == 3
    split = plans.run_experiments(plan("split"), progress=False, log=None, n_processes=1)
    drop = ["wall_time_s", "run_dir"]
    pd.testing.assert_frame_equal(default.drop(columns=drop), split.drop(columns=drop))
    groups = {folder: json.loads((tmp_path / folder / "dials_5" / "config.json").read_text())["groups"]
              for folder in ("default", "split")}
    assert groups == {"default": [5, 4], "split": [3, 3, 3]}  # the group sizes

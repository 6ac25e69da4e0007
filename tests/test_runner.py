"""Training runner: config validation, schedule rounding, determinism over workers and backends, resume after a
worker death, run directories, domain metrics, the command line, and DIALS against untrained-DIALS."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib.__main__ import main as cli_main
from dials_lib.envs import make_global
from dials_lib.envs.traffic import hand_coded_actions
from dials_lib.envs.traffic_metrics import TrafficMetrics
from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.seeding import Purpose, derived_seed
from dials_lib.training import dials, group_tasks, run_session, runner
from dials_lib.training.checkpoints import verified_state
from dials_lib.training.run_config import RunConfig, config_from_preset
from dials_lib.training.runner import WorkerDiedError, train, train_dials, train_gs
from dials_lib.validation import with_fields
from tests.conftest import results_only, runner_config, tiny_hp
from tests.faults import DieInWorker, register_by_value
from tests.reference_traffic import ReferenceTraffic

torch.set_num_threads(1)


def final_policy(run_dir: Path) -> dict[str, torch.Tensor]:
    """All agents' policy parameters in the run's checkpoint, concatenated over groups."""
    state = verified_state(Path(run_dir) / runner.CHECKPOINT)
    groups = [g["ppo"]["policy"] for g in state["groups"]]
    return {name: torch.cat([g[name] for g in groups]) for name in groups[0]}


def call_within(seconds: float, function: Callable[[], object]) -> object:
    """function()'s result (or its exception, raised here); the test fails if the call has not ended in time."""
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["result"] = function()
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = err

    thread = threading.Thread(target=call, daemon=True)  # a hung call cannot keep the test session alive
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the call has not returned after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The tiny DIALS run with one worker, uninterrupted."""
    return train(runner_config(tmp_path_factory.mktemp("runs") / "one_worker"), progress=False)


# ---- configuration ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": "city"}, "unknown env 'city'; allowed values: 'traffic', 'warehouse'"),
        ({"simulator": "ls"}, "unknown simulator 'ls'; allowed values: 'gs', 'dials', 'untrained-dials'"),
        ({"n_agents": 5}, "n_agents must be a square number"),
        ({"retrain_every": 0}, "retrain_every (F) must be an integer >= 1"),
        ({"eval_every": -5}, "eval_every must be an integer >= 1"),
        ({"eval_episodes": 0}, "eval_episodes must be an integer >= 1"),
        ({"agents_per_worker": 3}, "agents_per_worker must divide n_agents=4; got 3; allowed values: [1, 2, 4]"),
        ({"chunk_steps": 100}, "chunk_steps must be a positive multiple of PPO's buffer_size (128); got 100"),
        ({"chunk_steps": 0}, "chunk_steps must be an integer >= 1"),
        ({"total_timesteps": 64}, "total_timesteps must be an integer >= 128"),
        ({"n_workers": 0}, "n_workers must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"hyperparameters": paper_hyperparameters("warehouse")},
         "hyperparameters must be an EnvHyperparameters for env 'traffic'"),
    ],
)
def test_bad_configs_are_refused_with_clear_messages(tmp_path, changes, message):
    with pytest.raises(ValueError) as err:
        runner_config(tmp_path, **changes)
    assert message in str(err.value)


def test_defaults_and_schedule_rounding():
    config = RunConfig("traffic", n_agents=4, simulator="dials")
    assert (config.total_timesteps, config.retrain_every, config.chunk_steps) == (4_000_000, 1_000_000, 19_200)
    assert RunConfig("warehouse").chunk_steps == 12_800
    schedule = RunConfig("traffic", total_timesteps=1000, chunk_steps=256, retrain_every=300,
                         eval_every=512).schedule()
    assert schedule.starts == (0, 256, 512, 768, 1024)  # the remainder 232 rounds up to whole buffers
    assert schedule.steps_per_agent == 1024
    assert schedule.retrain == (True, False, True, True, False)  # first boundaries at or after 300, 600, 900
    assert schedule.evaluate == (True, False, True, False, True)
    assert not any(RunConfig("traffic", simulator="untrained-dials", total_timesteps=1024,
                             chunk_steps=256).schedule().retrain)
    assert RunConfig("traffic", n_agents=25, n_workers=2).groups()[1] == list(range(13, 25))
    assert [len(g) for g in RunConfig("traffic", n_agents=4, agents_per_worker=1).groups()] == [1, 1, 1, 1]


def test_config_from_preset_takes_the_budget_and_keeps_the_papers_f():
    config = config_from_preset("smoke", "traffic", "dials", seed=3)
    assert (config.total_timesteps, config.eval_every, config.seed, config.n_agents) == (2048, 1024, 3, 4)
    assert config.retrain_every == 1_000_000 and config.anneal_timesteps == 4_000_000
    assert config.chunk_steps == 1024


def test_train_functions_check_the_simulator(tmp_path):
    with pytest.raises(ValueError, match="train_gs needs simulator='gs'"):
        train_gs(runner_config(tmp_path))
    with pytest.raises(ValueError, match="train_dials needs simulator 'dials' or 'untrained-dials'"):
        train_dials(runner_config(tmp_path, simulator="gs"))


# ---- determinism ----------------------------------------------------------------------------------------------
def test_one_and_two_workers_give_identical_results(reference_run, tmp_path):
    two = train(runner_config(tmp_path / "two", n_workers=2), progress=False)
    pd.testing.assert_frame_equal(results_only(two.metrics), results_only(reference_run.metrics))
    for name, tensor in final_policy(reference_run.run_dir).items():
        assert torch.equal(final_policy(two.run_dir)[name], tensor), name
    assert len(reference_run.metrics) == 3 and reference_run.metrics["aip_ce"].notna().all()
    # loky: this process runs tasks too, so 2 workers are this process and one worker process
    assert len(two.memory["worker_peak_rss_mb"]) == 1
    assert two.memory["total_peak_pss_mb"] > two.memory["main_peak_pss_mb"]
    # the workers are loky children of this process: the sampled total holds more than the main process alone
    assert two.memory["simultaneous_peak_rss_mb"] > two.memory["main_peak_rss_mb"]


def test_tree_memory_sampler_adds_the_memory_of_child_processes():
    """A child process holding 200 MB raises the sampled simultaneous total by about 200 MB."""
    import subprocess
    import sys

    from dials_lib.training.memory import MB, TreeMemorySampler

    code = "import time; block = bytearray(200 * 2**20); print('ready', flush=True); time.sleep(30)"
    with TreeMemorySampler(interval=0.02) as alone:
        time.sleep(0.1)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with TreeMemorySampler(interval=0.02) as together:
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait()
    assert 190 < (together.peak_rss - alone.peak_rss) / MB < 260
    assert 190 < (together.peak_pss - alone.peak_pss) / MB < 260


def test_other_groupings_agree_to_rounding(reference_run, tmp_path):
    for agents_per_worker in (1, 4):
        other = train(runner_config(tmp_path / str(agents_per_worker), agents_per_worker=agents_per_worker),
                      progress=False)
        np.testing.assert_allclose(results_only(other.metrics).to_numpy(float),
                                   results_only(reference_run.metrics).to_numpy(float), rtol=1e-5, atol=1e-6)


def test_dask_backend_runs_a_tiny_job(reference_run, tmp_path):
    from dask.distributed import Client, LocalCluster
    from joblib import parallel_config

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster), parallel_config(backend="dask"):
        result = train(runner_config(tmp_path / "dask", n_workers=2), progress=False)
    pd.testing.assert_frame_equal(results_only(result.metrics), results_only(reference_run.metrics))


# ---- run directories, resume, worker death --------------------------------------------------------------------
def dying_chunk_1(config: RunConfig, record: Path, agent: int | None = None) -> DieInWorker:
    """The agents' task wrapper whose worker process dies in chunk 1 (from step 640 per agent) if it holds
    `agent` (None: whatever it holds; under loky a task may run in this process, which must not die)."""
    register_by_value()
    chunk_seed = derived_seed(config.seed, Purpose.IALS, 1)
    return DieInWorker(group_tasks.train_agents, chunk_seed, os.getpid(), str(record), agent)


def test_worker_death_is_reported_and_the_run_resumes_to_the_same_result(reference_run, tmp_path, monkeypatch):
    config = runner_config(tmp_path / "killed", n_workers=2)
    monkeypatch.setattr(group_tasks, "train_agents", dying_chunk_1(config, tmp_path / "died.json"))
    with pytest.raises(WorkerDiedError) as err:
        call_within(600, lambda: train(config, progress=False))  # stops, not hangs (seconds; more under load)
    message, died = str(err.value), json.loads((tmp_path / "died.json").read_text())
    assert str(died) in message and str(tmp_path / "killed" / "checkpoint.pt") in message
    assert "training agents at step 640 per agent" in message and "(step 640 per agent)" in message
    assert len(pd.read_csv(tmp_path / "killed" / "metrics.csv")) == 2  # evaluations at steps 0 and 640
    monkeypatch.undo()
    resumed = train(config, progress=False)
    pd.testing.assert_frame_equal(results_only(resumed.metrics), results_only(reference_run.metrics))
    assert resumed.runtime["sessions"] == 2


def test_a_dask_worker_death_is_reported_and_the_run_resumes(reference_run, tmp_path, monkeypatch):
    """Under Dask the run stops with a WorkerDiedError instead of waiting forever (as joblib's Dask backend does when
    a worker dies mid-task). How long the scheduler takes to give up (it reruns the task on 4 workers that each die
    as it starts, allowed-failures 3) depends on the machine's load: seconds on a quiet machine, 36 s was seen on a
    loaded one; the limit only tells a stop from a hang."""
    from dask.distributed import Client, LocalCluster
    from joblib import parallel_config

    def train_on_dask() -> runner.RunResult:
        with parallel_config(backend="dask"):  # the joblib config is per thread: set in the calling one
            return train(config, progress=False)

    config = runner_config(tmp_path / "dask_killed", n_workers=2)
    monkeypatch.setattr(group_tasks, "train_agents", dying_chunk_1(config, tmp_path / "died.json", agent=2))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        with pytest.raises(WorkerDiedError) as err:
            call_within(600, train_on_dask)
        monkeypatch.undo()
        resumed = call_within(600, train_on_dask)
    message = str(err.value)
    assert "[2, 3]" in message and json.loads((tmp_path / "died.json").read_text()) == [2, 3]
    assert str(tmp_path / "dask_killed" / "checkpoint.pt") in message
    assert "training agents at step 640 per agent" in message and "(step 640 per agent)" in message
    assert "KilledWorker" in type(err.value.__cause__).__name__
    pd.testing.assert_frame_equal(results_only(resumed.metrics), results_only(reference_run.metrics))
    assert resumed.runtime["sessions"] == 2


def test_a_finished_run_is_read_back_without_training(reference_run, monkeypatch):
    monkeypatch.setattr(dials.Run, "train_chunk", lambda *a: pytest.fail("a finished run must not train"))
    again = train(reference_run.config, progress=False)
    pd.testing.assert_frame_equal(again.metrics, reference_run.metrics)
    for name in ("config.json", "metrics.csv", "runtime.json", "memory.json", "checkpoint.pt"):
        assert (reference_run.run_dir / name).exists()
    runtime = reference_run.runtime
    assert runtime["agents_training_s"] > 0 and runtime["data_collection_plus_aip_training_s"] > 0
    memory = reference_run.memory
    assert memory["total_peak_rss_mb"] >= memory["main_peak_rss_mb"] > 50
    assert 0 < memory["main_peak_pss_mb"] <= memory["main_peak_rss_mb"]


def test_a_run_directory_with_another_config_is_refused(reference_run):
    before = (reference_run.run_dir / "config.json").read_text()
    other = with_fields(reference_run.config, seed=1, eval_episodes=2)
    with pytest.raises(ValueError) as err:
        train(other, progress=False)
    assert str(reference_run.run_dir) in str(err.value)
    assert "seed: stored 0, now 1" in str(err.value) and "eval_episodes: stored 1, now 2" in str(err.value)
    assert (reference_run.run_dir / "config.json").read_text() == before
    resumable = with_fields(reference_run.config, n_workers=3)  # the number of processes may change
    assert len(train(resumable, progress=False).metrics) == 3


def test_gs_training_writes_records_without_aip_columns(tmp_path):
    result = train_gs(runner_config(tmp_path, simulator="gs", total_timesteps=640, eval_every=640))
    assert list(result.metrics.columns) == runner.metric_columns("traffic")
    assert result.metrics["aip_ce"].isna().all() and result.metrics["timestep"].tolist() == [0, 640]
    assert result.runtime["data_collection_plus_aip_training_s"] == 0.0
    assert np.isfinite(result.metrics["train_return"].iloc[-1])


# ---- domain metrics and the command line --------------------------------------------------------------------
def test_traffic_metrics_count_cars_like_the_per_car_reference():
    sim, ref = make_global("traffic", n_agents=4, seed=5), ReferenceTraffic(4, seed=5)
    sim.reset()
    ref.reset()
    tracker = TrafficMetrics(4)
    for _ in range(sim.spec.horizon):
        before = sim.local_states()
        actions = hand_coded_actions(before)
        _, rewards, _ = sim.step(actions)
        ref.step(actions)
        tracker.step(before, rewards, sim)
    tracker.end_episode(sim)
    assert tracker.entered == ref.entered > 50 and tracker.left == ref.left > 30
    summary = tracker.summary()
    assert summary["throughput"] == ref.left / 300
    assert summary["queue_length"] * 16 * 300 == pytest.approx(summary["delay_per_car"] * ref.entered)


def test_command_line_trains_and_rejects_bad_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        cli_main(["train", "--env", "traffic", "--agents", "6"])
    assert err.value.code == 2 and "--agents must be a square number" in capsys.readouterr().err
    args = ["train", "--env", "traffic", "--simulator", "gs", "--steps", "256", "--chunk-steps", "256",
            "--eval-episodes", "1", "--run-dir", str(tmp_path / "cli"), "--no-progress"]
    assert cli_main(args) == 0
    assert "final average return per agent" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "cli" / "metrics.csv")) == 2


# ---- learning --------------------------------------------------------------------------------------------------
def test_dials_beats_untrained_dials_on_a_small_traffic_budget(tmp_path):
    # 10k steps per agent; PPO's learning rate 1e-3 instead of 2.5e-4 so that so short a run shows the effect
    # (measured with seed 0: DIALS 175.1, untrained-DIALS 69.5 average return, both from about 178-182 for their
    # initial policies: on this budget DIALS keeps the agents near their start, untrained AIPs mislead them badly)
    hp = tiny_hp(epochs=30, dataset_steps=3000)
    hp = with_fields(hp, ppo=with_fields(hp.ppo, learning_rate=1e-3))
    returns = {}
    for simulator in ("dials", "untrained-dials"):
        config = RunConfig("traffic", n_agents=4, simulator=simulator, total_timesteps=10_240, retrain_every=5120,
                           eval_every=10_240, eval_episodes=3, chunk_steps=2560, n_workers=2, agents_per_worker=2,
                           hyperparameters=hp, run_dir=str(tmp_path / simulator))
        returns[simulator] = train(config, progress=False).metrics.iloc[-1]
    dials, untrained = returns["dials"], returns["untrained-dials"]
    assert dials["mean_return"] > untrained["mean_return"] + 50, (dials, untrained)
    assert dials["delay_per_car"] < untrained["delay_per_car"]
    assert dials["aip_ce"] < untrained["aip_ce"] - 0.2
    assert not math.isnan(dials["sem_return"])


def test_run_memory_totals_add_the_workers_of_one_call_and_keep_earlier_peaks():
    """Sum of peaks = main + the largest call's workers; tasks run in this process are not counted twice."""
    import os

    from dials_lib.training.memory import RunMemory

    memory = RunMemory()
    task = {"peak_rss_mb": 100.0, "peak_pss_mb": 80.0}
    memory.add_call([{**task, "pid": 1}, {**task, "pid": 2}, {**task, "pid": 2, "peak_rss_mb": 150.0}])
    memory.add_call([{**task, "pid": 3, "peak_rss_mb": 120.0}, {**task, "pid": os.getpid()}])
    records = memory.records({"main_peak_rss_mb": 1e6})
    assert records["worker_peak_rss_mb"] == {"1": 100.0, "2": 150.0, "3": 120.0}
    assert records["max_worker_peak_rss_mb"] == 150.0
    assert records["total_peak_rss_mb"] == pytest.approx(memory.main.peak_mb + 250.0)
    assert records["total_peak_pss_mb"] == pytest.approx(memory.main.peak_pss_mb + 160.0)
    assert records["main_peak_rss_mb"] == 1e6  # an earlier session's larger peak is kept
    assert "simultaneous_peak_rss_mb" not in records  # no sampler ran


def test_ppo_states_wait_on_disk_while_aips_train(reference_run, tmp_path, monkeypatch):
    """Training AIPs does not need the agents' PPO states: the main process holds none of them meanwhile."""
    seen = []
    retrain_aips = dials.Run.retrain_aips

    def watching_map_tasks(function, tasks, n_workers):
        run = watched[-1]
        held = [group.ppo is None for group in run.states[0].groups]
        seen.append((function is group_tasks.train_aips, held,
                     (run.directories[0].path / "ppo_states.spill.pt").exists()))
        return map_tasks(function, tasks, n_workers)

    def watching_retrain_aips(self, c, data, *rest):
        watched.append(self)
        return retrain_aips(self, c, data, *rest)

    watched, map_tasks = [], run_session.map_tasks
    monkeypatch.setattr(run_session, "map_tasks", watching_map_tasks)
    monkeypatch.setattr(dials.Run, "retrain_aips", watching_retrain_aips)
    result = train(runner_config(tmp_path / "spilled"), progress=False)
    during_aips = [(held, spilled) for is_aip, held, spilled in seen if is_aip]
    assert len(during_aips) == 2 and all(all(held) and spilled for held, spilled in during_aips)
    assert not any(any(held) for is_aip, held, _ in seen if not is_aip)  # agents train with their states
    assert not list((tmp_path / "spilled").glob("*.spill.pt"))
    pd.testing.assert_frame_equal(results_only(result.metrics), results_only(reference_run.metrics))


def test_map_tasks_returns_every_result_once_and_raises_a_tasks_error():
    from dials_lib.training.parallel import map_tasks

    arguments = [{"a": i, "b": -i} for i in range(7)]
    reports = dict(map_tasks(dict, [dict(a) for a in arguments], n_workers=2))  # dict(a) returns a copy of a
    assert {i: r.value for i, r in reports.items()} == dict(enumerate(arguments))
    assert {r.pid for r in reports.values()} >= {os.getpid()}  # this process is one of the workers
    assert all(r.seconds >= 0 and r.peak_rss_mb > 10 for r in reports.values())
    with pytest.raises(TypeError):  # int() of a dict: the task's own error, in this thread
        list(map_tasks(int, [{"base": 10} for _ in range(3)], n_workers=2))

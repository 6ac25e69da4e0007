"""Published run records: finished runs' records copied to records/, read back verified on a clone without runs/,
and a shorter run read as the prefix of a longer finished one (equal to training it)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from dials_lib.analysis import plans, published
from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.training.run_config import RunConfig
from dials_lib.training.runner import train, train_batch
from dials_lib.validation import with_fields

torch.set_num_threads(1)


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty runs/ and records/ folders for the test."""
    runs, records = tmp_path / "runs", tmp_path / "records"
    monkeypatch.setenv("DIALS_RUNS_DIR", str(runs))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(records))
    return runs, records


def run_config(runs: Path, simulator: str = "gs", total: int = 1280, seed: int = 0) -> RunConfig:
    """A tiny run under runs/test/, evaluated every chunk of 640 steps (untrained AIPs: no AIP training)."""
    hp = paper_hyperparameters("traffic")
    hp = with_fields(hp, aip=with_fields(hp.aip, epochs=1, dataset_steps=300))
    config = RunConfig("traffic", n_agents=4, simulator=simulator, total_timesteps=total, eval_every=640,
                       eval_episodes=1, chunk_steps=640, n_workers=1, seed=seed, hyperparameters=hp)
    return dataclasses.replace(config, run_dir=str(runs / "test" / config.name()))


def without_wall_time(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metrics without the wall-clock column (the only one that differs between two trainings)."""
    return metrics.drop(columns="wall_time_s").reset_index(drop=True)


def test_published_records_read_back_on_a_clone_without_runs(folders):
    runs, records = folders
    config = run_config(runs)
    trained = train(config, progress=False)
    assert published.publish([config]) == [records / "test" / config.name()]
    assert sorted(p.name for p in (records / "test" / config.name()).iterdir()) == sorted(published.RECORD_FILES)
    shutil.rmtree(runs)  # a fresh clone: no runs/
    assert published.has_records(config) and not config.directory().exists()
    back = published.read_records(config)
    pd.testing.assert_frame_equal(back["metrics"], trained.metrics)
    frame = plans.run_experiments([config], progress=False, log=None)  # reads, never trains
    assert not config.directory().exists()
    assert frame["mean_return"].tolist() == trained.metrics["mean_return"].tolist()


def test_a_planned_run_that_became_a_longer_runs_prefix_is_read_not_trained(folders, monkeypatch):
    """A plan made while no run of its settings had finished: when the shorter run's turn comes, the longer run
    trained before it has finished, so the shorter one is read as its prefix instead of being trained."""
    runs, _ = folders
    longer, shorter = run_config(runs, total=1280), run_config(runs, total=640)
    assert not published.has_records(shorter)  # as the plan is made
    trained = []
    monkeypatch.setattr(plans, "train_batch", lambda batch, progress=None: trained.append(
        [c.name() for c in batch]) or train_batch(batch, progress))
    frame = plans.run_experiments([shorter, longer], progress=False, log=None, n_processes=1)
    assert trained == [[longer.name()]] and not shorter.directory().exists()
    assert frame["timestep"].tolist() == [0, 640, 0, 640, 1280]  # the shorter run's evaluations first, as planned
    assert frame["mean_return"].tolist()[:2] == frame["mean_return"].tolist()[2:4]


def test_unfinished_runs_are_not_published_and_damaged_copies_are_refused(folders):
    runs, records = folders
    config = run_config(runs)
    assert published.publish([config]) == []  # never trained
    train(config, progress=False)
    target = published.publish([config])[0]
    metrics = pd.read_csv(target / "metrics.csv")
    metrics.iloc[:-1].to_csv(target / "metrics.csv", index=False)  # a copy that lost its last evaluation
    shutil.rmtree(runs)
    with pytest.raises(ValueError, match="not the run's 3 ending at 1280: publish the run again"):
        published.read_records(config)
    other = dataclasses.replace(config, eval_episodes=2)  # the same directory name, another config
    with pytest.raises(ValueError, match=r"different config \(eval_episodes: stored 1, now 2\)"):
        published.read_records(other)


def test_a_shorter_run_is_read_as_the_prefix_of_a_longer_finished_run(folders):
    runs, _ = folders
    longer = run_config(runs, total=1920)
    train(longer, progress=False)
    shorter = run_config(runs, total=1280)
    shorter = dataclasses.replace(shorter, run_dir=str(runs / "other" / shorter.name()))
    assert published.longer_run(shorter) == longer.directory()
    prefix = published.read_records(shorter)
    assert prefix["metrics"]["timestep"].tolist() == [0, 640, 1280]
    assert prefix["runtime"]["prefix_of"] == longer.directory().name
    whole = published.read_records(longer)["runtime"]  # its worker seconds in proportion to the wall time at 1280
    share = prefix["metrics"]["wall_time_s"].iloc[-1] / whole["total_s"]
    assert 0 < share < 1 and prefix["runtime"]["total_s"] == prefix["metrics"]["wall_time_s"].iloc[-1]
    assert prefix["runtime"]["worker_cpu_s"] == pytest.approx(whole["worker_cpu_s"] * share)
    assert prefix["runtime"]["worker_busy_s"] == pytest.approx(whole["worker_busy_s"] * share)
    assert not shorter.directory().exists()
    alone = train(shorter, progress=False)  # the same run trained to its own length
    pd.testing.assert_frame_equal(without_wall_time(prefix["metrics"]), without_wall_time(alone.metrics))


def test_a_longer_run_of_other_settings_is_not_a_prefix(folders):
    runs, _ = folders
    train(run_config(runs, total=1920, seed=1), progress=False)  # another seed
    other = dataclasses.replace(run_config(runs, total=1920), eval_episodes=2)  # the same name, another config
    train(dataclasses.replace(other, run_dir=str(runs / "other" / other.name())), progress=False)
    shorter = run_config(runs, total=1280)
    assert published.longer_run(shorter) is None
    with pytest.raises(FileNotFoundError, match="neither finished .* nor published: train it first"):
        published.read_records(shorter)


def test_timed_runs_are_published_and_read_back_on_a_clone(folders, monkeypatch):
    runs, _ = folders
    from dials_lib.analysis import scaling

    monkeypatch.setattr(scaling, "measure", lambda env, n, sim, w, preset, **_: {
        "env": env, "n_agents": n, "simulator": sim, "workers": w, "total_s": float(n)})
    made = scaling.measurements("smoke", verbose=False)
    assert scaling.publish_measurements("smoke") == scaling.published_measurements_path("smoke")
    shutil.rmtree(runs)
    monkeypatch.setattr(scaling, "measure", lambda *args, **kwargs: pytest.fail("measured again"))
    pd.testing.assert_frame_equal(scaling.measurements("smoke", measure_missing=False, verbose=False), made)


def test_publish_records_covers_the_preset_plan_and_its_sumo_runs(monkeypatch):
    """`make publish-records` hands every run of the training plan and the sumo-traffic runs of notebook 11 to
    `publish` (which copies the finished ones)."""
    from dials_lib.analysis import preset_plan, sumo_study

    handed = []
    monkeypatch.setattr(preset_plan, "publish", lambda configs: handed.extend(configs) or [])
    monkeypatch.setattr(preset_plan, "publish_measurements", lambda preset: None)
    assert preset_plan.publish_records("quick") == []
    names = {config.name() for config in handed}
    assert names == {c.name() for c in preset_plan.training_plan("quick") + sumo_study.sumo_configs("quick")}
    assert sum(config.env == "sumo-traffic" for config in handed) == 9


def test_plan_status_says_where_each_run_stands_without_touching_it(folders, monkeypatch):
    from dials_lib.analysis import preset_plan
    from dials_lib.training.checkpoints import write_checkpoint
    from dials_lib.training.run_records import CHECKPOINT, LOCK, SPILL, RunDirectory

    runs, _ = folders
    finished, elsewhere = run_config(runs), run_config(runs, seed=1)
    prefix = dataclasses.replace(run_config(runs, total=640), run_dir=str(runs / "other" / "prefix"))
    training, starting, fresh = (run_config(runs, total=1920, seed=s) for s in (2, 3, 4))
    trained = train(finished, progress=False)
    train(elsewhere, progress=False)
    published.publish([elsewhere])
    shutil.rmtree(elsewhere.directory())  # published, no run directory here
    for config in (training, starting, fresh):
        RunDirectory(config)  # config.json only, as a batch gives its runs before training them
    write_checkpoint(training.directory() / CHECKPOINT, {"boundary": 2}, "any")  # only the header is read
    (starting.directory() / LOCK).touch()
    (starting.directory() / SPILL).touch()
    monkeypatch.setattr(preset_plan, "training_plan",
                        lambda preset: [finished, elsewhere, prefix, training, starting, fresh])
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("*")}

    status = preset_plan.plan_status("smoke").set_index("run")
    assert status["status"].tolist() == ["finished", "published", f"read from {finished.directory().name}",
                                         "training", "started, no checkpoint yet (training its AIPs)", "not started"]
    assert status["steps done"].tolist() == [1280, 1280, 640, 1280, 0, 0]
    last = trained.metrics["mean_return"]
    assert status.loc[finished.name(), "last evaluation"] == last.iloc[-1]
    assert status.loc[prefix.name(), "last evaluation"] == last.iloc[1]  # the longer run's evaluation at 640
    assert status.loc[finished.name(), "worker CPU h"] > 0 and status.loc[elsewhere.name(), "worker CPU h"] > 0
    assert status.loc[[prefix.name(), fresh.name()], "worker CPU h"].isna().all()
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*")} == before and not prefix.directory().exists()
    assert preset_plan.status_summary(status.reset_index()).startswith("3 of 6 runs finished, 2 training, 1 not "
                                                                       "started; worker CPU so far")


def test_status_projects_the_cpu_hours_still_to_train(tmp_path, monkeypatch):
    """Each unfinished run's projected hours times the share of its steps still to run, summed, and over 2 cores;
    finished runs and runs without a projection add nothing (the latter are counted)."""
    from dials_lib.analysis import preset_plan

    status = pd.DataFrame({"run": list("abcd"), "status": ["finished", "training", "not started", "not started"],
                           "steps done": [100, 25, 0, 0], "steps total": [100, 100, 100, 100],
                           "worker CPU h": [1.0, 0.5, float("nan"), float("nan")],
                           "projected CPU h": [8.0, 4.0, 2.0, float("nan")]})
    line = preset_plan.status_summary(status)
    assert line.endswith("about 5.0 CPU h still to train by notebook 07's projection, 2.5 h on 2 cores (1 run "
                         "without a projection); the 1 run finished here took 1.0 CPU h against 8.0 projected "
                         "(x0.12)")  # 4 x 0.75 + 2; only run a is finished, timed and projected
    assert "still to train" not in preset_plan.status_summary(status.assign(**{"projected CPU h": float("nan")}))
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(Path(__file__).resolve().parents[1] / "records"))
    scale = preset_plan.plan_status("scale")  # the committed timed runs of the quick preset project every run
    assert scale["projected CPU h"].notna().all() and (scale["projected CPU h"] > 0).all()


def test_status_shows_how_far_a_long_aip_retraining_is(tmp_path):
    """While a run retrains its AIPs, `make status` reads the epochs of each group's last snapshot and the groups
    done from the files' headers."""
    from dials_lib.analysis.preset_plan import aip_training_status
    from dials_lib.training.group_tasks import AIPSnapshot
    from dials_lib.training.run_records import SPILL, FinishedAIPs, RunDirectory

    first = RunDirectory(run_config(tmp_path / "runs", seed=1))  # its first AIP training: no PPO states to spill
    assert AIPSnapshot(first.aip_snapshot_path([0, 1]), "task", 0, 300).write({"training": {}}, 164)
    assert aip_training_status(first.path) == " (training its AIPs: 164 of 300 epochs saved)"
    directory = RunDirectory(run_config(tmp_path / "runs"))
    assert aip_training_status(directory.path) == ""  # not retraining
    (directory.path / SPILL).touch()
    assert aip_training_status(directory.path) == " (training its AIPs)"  # no snapshot yet
    for ids, epochs in (([0, 1], 120), ([2, 3], 95)):
        assert AIPSnapshot(directory.aip_snapshot_path(ids), "task", 0, 300).write({"training": {}}, epochs)
    directory.save_partial_aips(0, {(4, 5): FinishedAIPs({}, 1.0, 1.0)})
    assert aip_training_status(directory.path) == " (training its AIPs: 120, 95 of 300 epochs saved, 1 group done)"
    assert AIPSnapshot(directory.aip_snapshot_path([6, 7]), "task", 0, 200).write({"training": {}}, 5)
    assert aip_training_status(directory.path) == (" (training its AIPs: 120 of 300 epochs saved, 95 of 300 epochs "
                                                   "saved, 5 of 200 epochs saved, 1 group done)")

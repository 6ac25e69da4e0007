"""A run's trained agents read back from its checkpoint: they replay the run's last evaluation exactly, GS runs have
no AIPs, untrained-DIALS keeps its initial ones, reading changes nothing; and what the AIPs predict next to the GS
(`pooled_predicted_vs_empirical`, `Comparison.influence_on_gs`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib.analysis.comparison import Comparison
from dials_lib.analysis.env_stats import idle_class, source_names
from dials_lib.analysis.influence_eval import pooled_predicted_vs_empirical
from dials_lib.envs import make_global
from dials_lib.learning.controllers import HandCodedController
from dials_lib.learning.influence import collect_dataset, make_predictor, train_predictor
from dials_lib.presets import get_preset
from dials_lib.seeding import Purpose, boundary_counter, derived_seed
from dials_lib.training import dials
from dials_lib.training.checkpoints import CheckpointError
from dials_lib.training.evaluation import evaluate
from dials_lib.training.group_tasks import new_predictors
from dials_lib.training.run_stack import RunStack
from dials_lib.training.runner import CHECKPOINT, train
from dials_lib.training.trained_agents import trained_agents
from dials_lib.validation import with_fields
from tests.conftest import runner_config, tiny_hp

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The tiny traffic run of tests/test_runner.py for each simulator, finished."""
    root = tmp_path_factory.mktemp("trained")
    return {sim: train(runner_config(root / sim, simulator=sim), progress=False).config
            for sim in ("gs", "dials", "untrained-dials")}


def directory_snapshot(config) -> dict[str, bytes]:
    """Every file of a run directory and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(config.directory().iterdir())}


@pytest.mark.parametrize("simulator", ["gs", "dials"])
def test_trained_agents_replay_the_runs_last_evaluation(tiny_runs, simulator):
    config = tiny_runs[simulator]
    before = directory_snapshot(config)
    agents = trained_agents(config)
    last = pd.read_csv(config.directory() / "metrics.csv").iloc[-1]
    assert agents.timestep == last["timestep"] == config.total_timesteps
    boundary = config.schedule().starts.index(agents.timestep)
    agents.actor.eval_count[:] = boundary_counter(Purpose.EVALUATION, boundary)
    row = evaluate(config.env, agents.actor, config.eval_episodes,
                   derived_seed(config.seed, Purpose.EVALUATION, boundary), agents.predictor)
    for column in ("mean_return", "greedy_return", "delay_per_car", "queue_length"):
        assert row[column] == last[column], column
    if simulator == "dials":
        assert row["aip_ce"] == last["aip_ce"]
    else:
        assert agents.predictor is None and np.isnan(last["aip_ce"])
    assert directory_snapshot(config) == before  # reading is read-only


def test_an_interrupted_runs_agents_are_those_of_its_last_checkpoint_not_of_its_last_evaluation(tmp_path,
                                                                                                 monkeypatch):
    config = runner_config(tmp_path / "cut", total_timesteps=1920, eval_every=1280)  # evaluated at 0, 1280, 1920
    train_chunk = dials.Run.train_chunk

    def stop_in_chunk_1(run, c):
        if c == 1:
            raise RuntimeError("stopped")
        train_chunk(run, c)

    monkeypatch.setattr(dials.Run, "train_chunk", stop_in_chunk_1)
    with pytest.raises(RuntimeError, match="stopped"):
        train(config, progress=False)
    assert pd.read_csv(config.directory() / "metrics.csv")["timestep"].tolist() == [0]
    assert trained_agents(config).timestep == 640  # chunk 0 trained and checkpointed, not evaluated


def test_untrained_dials_keeps_its_initial_aips_and_dials_does_not(tiny_runs):
    initial = new_predictors(tiny_runs["untrained-dials"].hp, [0, 1, 2, 3], RunStack((0,))).state_dict()
    kept = trained_agents(tiny_runs["untrained-dials"]).predictor.state_dict()
    retrained = trained_agents(tiny_runs["dials"]).predictor.state_dict()
    assert all(torch.equal(kept[name], initial[name]) for name in initial)
    assert not all(torch.equal(retrained[name], initial[name]) for name in initial)


def test_a_run_without_a_usable_checkpoint_is_refused_in_one_line(tiny_runs, tmp_path):
    with pytest.raises(ValueError, match="has no checkpoint .* train it first"):
        trained_agents(with_fields(tiny_runs["gs"], run_dir=str(tmp_path / "never_trained")))
    damaged = with_fields(tiny_runs["gs"], run_dir=str(tmp_path / "damaged"))
    damaged.directory().mkdir()
    (damaged.directory() / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        trained_agents(damaged)
    other = with_fields(tiny_runs["dials"], seed=1, run_dir=tiny_runs["dials"].run_dir)  # another run's checkpoint
    with pytest.raises(CheckpointError, match="another run|run identity"):
        trained_agents(other)


def test_pooled_rates_show_an_untrained_aip_far_off_and_a_trained_one_close():
    hp = tiny_hp(epochs=30, dataset_steps=3000).aip
    gs = make_global("traffic", n_agents=4, seed=3)
    data = collect_dataset(gs, HandCodedController("traffic"), 3000)
    model = make_predictor(hp, gs.spec.dset_dim, gs.spec.source_sizes, 0, range(4))
    untrained = pooled_predicted_vs_empirical(model, data, source_names("traffic"), idle_class("traffic"))
    train_predictor(model, data, hp, 0, range(4))
    trained = pooled_predicted_vs_empirical(model, data, source_names("traffic"), idle_class("traffic"))
    assert list(trained["source"]) == source_names("traffic")  # binary sources: their class 1 only
    rates = data.sources.reshape(-1, 8).mean(axis=0)
    np.testing.assert_allclose(trained["empirical"], rates)
    assert (untrained["predicted"] - untrained["empirical"]).abs().min() > 0.2
    assert (trained["predicted"] - trained["empirical"]).abs().max() < 0.05


def test_warehouse_sources_are_reported_per_class_without_the_idle_one():
    gs = make_global("warehouse", n_agents=4, seed=1)
    data = collect_dataset(gs, HandCodedController("warehouse"), 200)
    model = make_predictor(tiny_hp("warehouse", epochs=3, dataset_steps=600).aip, gs.spec.dset_dim,
                           gs.spec.source_sizes, 0, range(4))
    table = pooled_predicted_vs_empirical(model, data, source_names("warehouse"), idle_class("warehouse"))
    assert len(table) == sum(size - 1 for size in gs.spec.source_sizes)
    assert table["predicted"].between(0, 1).all() and table["empirical"].between(0, 1).all()


def test_influence_on_gs_sets_each_methods_aips_next_to_the_gs(tiny_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_FIGURES_DIR", str(tmp_path / "figures"))
    budget = with_fields(get_preset("smoke").traffic, sizes=(4,), eval_episodes=1)
    comparison = Comparison("traffic", "04", budget, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                            list(tiny_runs.values()))
    table = comparison.influence_on_gs()
    assert list(table.columns) == ["n_agents", "source", "DIALS: GS", "DIALS: AIPs", "untrained-DIALS: GS",
                                   "untrained-DIALS: AIPs"]
    assert len(table) == 8 and (table["n_agents"] == 4).all()
    assert table["untrained-DIALS: AIPs"].between(0.15, 0.85).all()  # initial weights: near one half
    assert (table["untrained-DIALS: AIPs"] - table["untrained-DIALS: GS"]).abs().mean() > 0.3
    assert (tmp_path / "figures" / "04_traffic_influence_on_gs.csv").exists()

"""The config module: paper values, presets, clear errors, derived values."""

import dataclasses

import pytest

from dials_lib import hyperparameters, paths, presets
from dials_lib.hyperparameters import ENV_NAMES, PAPER_REFERENCE, hyperparameter_table, paper_hyperparameters
from dials_lib.presets import PRESET_NAMES, get_preset, use_preset
from dials_lib.training.run_config import config_from_preset
from dials_lib.validation import field_docs, get_field, with_fields

CONFIG_CLASSES = [
    hyperparameters.AIPConfig,
    hyperparameters.PolicyConfig,
    hyperparameters.PPOConfig,
    hyperparameters.EnvHyperparameters,
    presets.RunBudget,
    presets.Preset,
]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_load_and_are_consistent(name):
    preset = get_preset(name)
    assert preset.name == name
    for env in ENV_NAMES:
        budget = preset.budget(env)
        assert budget.n_seeds >= 2, "mean and standard error need at least two seeds"
        assert budget.total_timesteps % budget.eval_every == 0
        assert budget.n_evaluations == budget.total_timesteps // budget.eval_every + 1
        for size in budget.sizes:
            assert round(size**0.5) ** 2 == size
        assert all(0 < f <= 1 for f in budget.f_fractions)
        assert 2 <= budget.ablation_seeds <= budget.n_seeds, "the ablation reuses the comparison's first seeds"
        assert round(budget.ablation_size**0.5) ** 2 == budget.ablation_size
    assert preset.scaling_sizes == tuple(sorted(preset.scaling_sizes)) and preset.scaling_steps > 0
    assert all(round(size**0.5) ** 2 == size for size in preset.scaling_sizes)


def test_presets_grow_from_smoke_to_paper():
    smoke, quick, paper = (get_preset(n) for n in ("smoke", "quick", "paper"))
    for env in ENV_NAMES:
        assert smoke.budget(env).total_timesteps < quick.budget(env).total_timesteps
        assert quick.budget(env).total_timesteps < paper.budget(env).total_timesteps
    assert paper.traffic.total_timesteps == paper_hyperparameters("traffic").total_timesteps
    assert paper.traffic.sizes == (4, 25, 49, 100)


def test_unknown_preset_names_the_allowed_values():
    allowed = "'smoke', 'quick', 'full4', 'scale', 'paper'"
    with pytest.raises(ValueError, match=rf"unknown preset 'fast'; allowed values: {allowed}"):
        get_preset("fast")


def test_unknown_env_names_the_allowed_values():
    with pytest.raises(ValueError, match="allowed values: 'traffic', 'warehouse'"):
        paper_hyperparameters("city")
    with pytest.raises(ValueError, match="'traffic', 'warehouse'"):
        get_preset("quick").budget("city")


def test_unknown_field_names_the_allowed_fields():
    ppo = paper_hyperparameters("traffic").ppo
    with pytest.raises(ValueError, match="field of PPOConfig.*'clip_eps'"):
        with_fields(ppo, clip_epsilon=0.2)
    assert with_fields(ppo, clip_eps=0.2).clip_eps == 0.2
    assert ppo.clip_eps == 0.1, "with_fields must not modify the original"
    with pytest.raises(ValueError, match="field of AIPConfig"):
        get_field(paper_hyperparameters("traffic"), "aip.layers")


def test_paper_values_match_the_reference_table():
    # Our defaults are the paper's table values wherever the table gives one.
    for env in ENV_NAMES:
        ours = paper_hyperparameters(env)
        for scope, path, paper_value, _ in PAPER_REFERENCE:
            if scope in ("both", env) and paper_value is not None:
                assert get_field(ours, path) == paper_value, (env, path)


def test_hyperparameter_table_flags_known_code_deviations():
    rows = {r["parameter"]: r for r in hyperparameter_table("traffic")}
    assert "authors' code differs" in rows["aip.hidden_layers"]["note"]
    assert rows["aip.hidden_layers"]["authors' code"] == 1
    assert rows["ppo.gamma"]["note"] == ""
    warehouse = {r["parameter"]: r for r in hyperparameter_table("warehouse")}
    assert warehouse["ppo.rollout_steps"]["ours"] == 8
    assert "aip.batch_size" in warehouse and warehouse["aip.batch_size"]["ours"] == 32


def test_hyperparameter_table_flags_a_changed_value(monkeypatch):
    original = hyperparameters.paper_hyperparameters

    def changed(env):
        base = original(env)
        return dataclasses.replace(base, ppo=with_fields(base.ppo, gamma=0.9))

    monkeypatch.setattr(hyperparameters, "paper_hyperparameters", changed)
    rows = {r["parameter"]: r for r in hyperparameters.hyperparameter_table("traffic")}
    assert "differs from the paper's table" in rows["ppo.gamma"]["note"]


@pytest.mark.parametrize("cls", CONFIG_CLASSES)
def test_every_config_field_has_a_docstring(cls):
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("env", ENV_NAMES)
def test_a_preset_run_keeps_the_papers_f_and_learning_rate_decay(preset, env):
    hp = paper_hyperparameters(env)
    config = config_from_preset(preset, env, "dials")
    assert config.retrain_every == hp.retrain_every and config.anneal_timesteps == hp.total_timesteps
    budget = get_preset(preset).budget(env)
    assert budget.ablation_f() == {f: round(f * hp.total_timesteps) for f in budget.f_fractions}


def test_use_preset_directs_figures(monkeypatch):
    monkeypatch.delenv(paths.FIGURES_DIR_ENV, raising=False)
    try:
        use_preset("quick")
        assert paths.figures_dir() == paths.REPO_ROOT / "figures"
        use_preset("smoke")
        assert paths.figures_dir() == paths.REPO_ROOT / "build" / "figures" / "smoke"
    finally:
        paths.set_figures_dir(None)


def test_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (paths.REPO_ROOT / "pyproject.toml").exists()
    assert paths.paper_dir().joinpath("results.csv").exists()
    assert paths.notebooks_dir() == paths.REPO_ROOT / "notebooks"


def test_relative_output_folders_are_taken_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(paths.FIGURES_DIR_ENV, "build/test/figures-relative")
    assert paths.figures_dir() == paths.REPO_ROOT / "build" / "test" / "figures-relative"
    monkeypatch.setenv(paths.FIGURES_DIR_ENV, str(tmp_path / "absolute"))
    assert paths.figures_dir() == tmp_path / "absolute"

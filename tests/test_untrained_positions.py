"""The untrained-DIALS positions experiment: grid positions, transplanted policies acting as the originals, the
rule that decides the explanation, and reading a measurement back only when it was made with the same settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dials_lib.analysis import untrained_positions as up
from dials_lib.envs import get_spec
from dials_lib.files import atomic_write_json
from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.learning.networks import make_policy
from dials_lib.learning.policy_actor import PolicyActor

POLICY = paper_hyperparameters("traffic").policy


def random_actor(n_agents: int, seed: int = 3) -> PolicyActor:
    spec = get_spec("traffic")
    policy = make_policy(POLICY, n_agents, spec.obs_dim, spec.n_actions, seed, list(range(n_agents)))
    return PolicyActor(policy, spec.obs_dim, seed, list(range(n_agents)))


def test_grid_positions_count_corners_edges_and_interior():
    for n, counts in ((4, {"corner": 4}), (25, {"corner": 4, "edge": 12, "interior": 9}),
                      (100, {"corner": 4, "edge": 32, "interior": 64})):
        kinds, sizes = np.unique(up.grid_positions(n), return_counts=True)
        assert dict(zip(kinds, sizes, strict=True)) == counts
    assert list(up.grid_positions(9)) == ["corner", "edge", "corner", "edge", "interior", "edge", "corner", "edge",
                                          "corner"]
    with pytest.raises(ValueError, match="n_agents must be a square number of at least 4; got 10"):
        up.grid_positions(10)


def test_stretched_maps_corners_onto_corners_and_tiled_gives_each_block_one_policy():
    assert up.stretched(4, 100) == [0, 9, 90, 99]
    assert up.stretched(25, 25) == list(range(25)) and up.tiled(25, 25) == list(range(25))
    blocks = np.array(up.tiled(4, 100)).reshape(10, 10)
    assert (blocks[:5, :5] == 0).all() and (blocks[:5, 5:] == 1).all() and (blocks[5:, :5] == 2).all()
    assert (blocks[5:, 5:] == 3).all()
    assert set(up.grid_positions(100)[up.stretched(4, 100)]) == {"corner"}


def test_a_transplanted_policy_acts_as_the_original():
    actor = random_actor(4)
    same = up.transplanted(actor, [0, 1, 2, 3], POLICY)
    assert up.evaluate_by_position(same, 1, seed=5) == up.evaluate_by_position(random_actor(4), 1, seed=5)
    moved = up.transplanted(actor, [3, 3, 0], POLICY)  # agent k of the transplant is agent [3, 3, 0][k]
    x = torch.rand(3, get_spec("traffic").obs_dim)
    logits, _, _ = moved.policy.step(x, moved.initial_hidden(), moved.weights())

    def original(agent: int, obs: torch.Tensor) -> torch.Tensor:
        """The original agent's logits for `obs` (every agent of the original sees it)."""
        return actor.policy.step(obs.expand(4, -1).contiguous(), actor.initial_hidden(), actor.weights())[0][agent]

    for k, agent in enumerate([3, 3, 0]):
        assert torch.equal(logits[k], original(agent, x[k]))


def rows(own_small: float, own_large: float, small_on_large: float, large_on_small: float) -> pd.DataFrame:
    """untrained-DIALS rows of three seeds (1 apart) at sizes 4 and 100, own grids and transplanted."""
    cells = [(4, 4, own_small), (100, 100, own_large), (4, 100, small_on_large), (100, 4, large_on_small)]
    return pd.DataFrame([{"method": "untrained-dials", "seed": seed, "trained at": n, "grid": grid,
                          "return": value + seed - 1} for n, grid, value in cells for seed in (0, 1, 2)])


def test_explanation_rule_reads_where_the_transplants_land():
    assert up.explanation(rows(63.5, 180.4, 158.8, 63.6))[0] == "(b)"  # each scores like its host grid
    assert up.explanation(rows(63.5, 180.4, 70.0, 175.0))[0] == "(a)"  # each scores like its source grid
    assert up.explanation(rows(63.5, 180.4, 170.0, 170.0))[0] == "undecided"
    same = up.explanation(rows(175.7, 173.6, 174.5, 172.7))  # the smoke preset's: no size effect to explain
    assert same[0] == "not measured" and "do not clearly differ" in same[1]
    assert up.explanation(rows(100.0, 104.0, 103.0, 101.0))[0] == "not measured"  # 4 apart, within 5% of 100
    verdict, evidence = up.explanation(None)
    assert verdict == "not measured" and "checkpoints" in evidence
    assert "policies trained at 100 on the 4-agent grid: 63.6 (the 4-agent grid's own 63.5" in \
        up.explanation(rows(63.5, 180.4, 158.8, 63.6))[1]


def test_study_reads_a_measurement_only_with_the_current_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(tmp_path / "records"))
    assert up.measure("smoke") is None  # no checkpoints: nothing to evaluate
    assert up.study("smoke") is None and not up.measurement_path("smoke").exists()
    stored = [{"method": "dials", "trained at": 4, "grid": 4, "return": 1.0}]
    atomic_write_json(up.measurement_path("smoke", published=True), {"settings": up.settings("smoke"),
                                                                      "columns": list(stored[0]), "rows": stored})
    assert up.study("smoke", measure_missing=False).to_dict("records") == stored  # a fresh clone: the record
    other = dict(up.settings("smoke"), episodes=99)
    atomic_write_json(up.measurement_path("smoke"), {"settings": other, "columns": [], "rows": []})
    assert up.study("smoke", measure_missing=False).to_dict("records") == stored  # another setting is not read
    assert up.settings("scale") == {"sizes": [4, 100], "seeds": [0, 1, 2], "steps": 576_000, "episodes":
                                    up.get_preset("scale").traffic.eval_episodes}


def test_a_measurement_is_kept_as_strict_json_and_read_back_equal(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(tmp_path / "records"))
    measured = pd.DataFrame([{"method": "dials", "trained at": 4, "grid": 4, "return": 2.5, "corner": 2.5,
                              "edge": float("nan")},
                             {"method": "dials", "trained at": 25, "grid": 25, "return": 3.0, "corner": 1.0,
                              "edge": 4.0}])
    monkeypatch.setattr(up, "measure", lambda preset: measured)
    pd.testing.assert_frame_equal(up.study("smoke"), measured)
    text = up.measurement_path("smoke").read_text()
    assert "NaN" not in text and '"edge": null' in text
    monkeypatch.setattr(up, "measure", lambda preset: pytest.fail("measured again"))
    pd.testing.assert_frame_equal(up.study("smoke"), measured)  # read back, not measured
    assert up.publish("smoke") == up.measurement_path("smoke", published=True)
    assert up.measurement_path("smoke", published=True).read_text() == text


def test_gap_by_position_compares_each_method_on_its_own_grid_position_by_position():
    def row(method: str, n: int, placement: str, seed: int, corner: float, edge: float, interior: float) -> dict:
        kinds = up.grid_positions(n)
        share = {p: (kinds == p).mean() for p in up.POSITIONS}
        values = {"corner": corner, "edge": edge, "interior": interior}
        mean = sum(share[p] * values[p] for p in up.POSITIONS if share[p])
        return {"method": method, "trained at": n, "placement": placement, "grid": n, "seed": seed, "return": mean,
                **{p: values[p] if share[p] else np.nan for p in up.POSITIONS}, "switch share": 0.0,
                "throughput": 1.0}
    frame = pd.DataFrame([row("dials", 4, "own grid", s, 240 + s, 0, 0) for s in (0, 1)]
                         + [row("untrained-dials", 4, "own grid", s, 60 + s, 0, 0) for s in (0, 1)]
                         + [row("dials", 100, "own grid", s, 235, 225, 200) for s in (0, 1)]
                         + [row("untrained-dials", 100, "own grid", s, 57, 135, 211) for s in (0, 1)]
                         + [row("untrained-dials", 100, "on the 4-agent grid", s, 1, 0, 0) for s in (0, 1)])
    gap = up.gap_by_position(frame).set_index("agents")
    assert gap.loc[4, "corner"] == 180 and gap.loc[100, "corner"] == 178  # matched positions: the same gap
    assert gap.loc[100, "interior"] == -11 and np.isnan(gap.loc[4, "edge"])
    assert gap.loc[100, "return"] == pytest.approx(0.04 * 178 + 0.32 * 90 + 0.64 * -11)  # the average hides it

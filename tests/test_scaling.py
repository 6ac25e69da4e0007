"""Runtime and memory scaling: the extrapolation arithmetic, the projection on P workers against made-up timed
runs, the measurements file (read back, other settings detected), argument checks, and one real timed run."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from dials_lib.analysis import scaling
from dials_lib.analysis.projection import extrapolate, makespan, paper_protocol_configs, projection_check, step_costs
from dials_lib.analysis.scaling import measure, measured_config
from dials_lib.files import read_json


def made_up_row(env: str = "traffic", n_agents: int = 4, simulator: str = "dials", workers: int = 1,
                steps: int = 1_280, training_s: float = 8.0, data_s: float = 3.0, aip_s: float = 2.0,
                eval_s: float = 0.5, other_s: float = 0.2) -> dict:
    """A timed run's record with chosen times (two chunks, a retraining for DIALS and a 1-episode evaluation at
    every boundary but the last, which only evaluates)."""
    config = measured_config(env, n_agents, simulator, workers, steps, aip_epochs=5, dataset_steps=10_000)
    schedule = config.schedule()
    retrainings = sum(schedule.retrain) if simulator == "dials" else 0
    data_s, aip_s = (data_s, aip_s) if retrainings else (0.0, 0.0)
    return {"env": env, "n_agents": n_agents, "simulator": simulator, "workers": workers,
            "agents_per_worker": config.agents_per_worker, "steps_per_agent": steps, "aip_epochs": 5,
            "dataset_steps": 10_000, "collected_steps": scaling.collected_steps(config), "retrainings": retrainings,
            "evaluations": sum(schedule.evaluate), "eval_episodes": 1, "chunks": schedule.n_chunks,
            "agents_training_s": training_s, "data_collection_s": data_s, "aip_training_s": aip_s,
            "evaluation_s": eval_s,
            "total_s": training_s + data_s + aip_s + eval_s + other_s, "worker_core_share": 1.0}


def test_makespan_deals_whole_groups():
    assert makespan([2, 2], 1) == 4
    assert makespan([2, 2], 2) == 2
    assert makespan([5] * 5, 2) == 15  # 3 groups on one worker, 2 on the other
    assert makespan([10] * 10, 128) == 10  # never more workers than groups
    assert [scaling.agents_per_worker(n) for n in (4, 25, 49, 100)] == [2, 5, 7, 10]


def test_extrapolation_reproduces_the_measured_run_and_scales_with_steps():
    row = made_up_row()
    costs = step_costs(row)
    config = measured_config("traffic", 4, "dials", 1, 1_280, aip_epochs=5, dataset_steps=10_000)
    same = extrapolate(costs, config, 1)
    for part in ("agents_training_s", "data_collection_s", "aip_training_s", "evaluation_s", "total_s"):
        assert same[part] == pytest.approx(row[part])
    doubled = extrapolate(costs, measured_config("traffic", 4, "dials", 1, 2_560, 5, 10_000), 1)
    assert doubled["agents_training_s"] == pytest.approx(2 * row["agents_training_s"])
    assert doubled["data_collection_s"] == pytest.approx(row["data_collection_s"])  # the same two retrainings
    more_epochs = extrapolate(costs, measured_config("traffic", 4, "dials", 1, 1_280, 100, 10_000), 1)
    assert more_epochs["aip_training_s"] == pytest.approx(20 * row["aip_training_s"])  # 5 -> 100 epochs


def test_halving_f_doubles_the_retrainings():
    costs = step_costs(made_up_row())
    configs = paper_protocol_configs("traffic", 4)
    one_m, half_m = extrapolate(costs, configs["DIALS F=1M"], 1), extrapolate(costs, configs["DIALS F=500K"], 1)
    assert (one_m["retrainings"], half_m["retrainings"]) == (4, 8)
    assert extrapolate(costs, configs["DIALS F=4M"], 1)["retrainings"] == 1
    assert extrapolate(costs, configs["DIALS F=100K"], 1)["retrainings"] == 40
    for part in ("data_collection_s", "aip_training_s"):
        assert half_m[part] == pytest.approx(2 * one_m[part])
    assert half_m["agents_training_s"] == pytest.approx(one_m["agents_training_s"])
    assert one_m["steps_per_agent"] == 4_000_000
    untrained = extrapolate(costs, configs["untrained-DIALS"], 1)
    assert untrained["retrainings"] == 0 and untrained["aip_training_s"] == 0.0


def test_two_workers_halve_the_parallel_part_only():
    costs = step_costs(made_up_row())
    config = paper_protocol_configs("traffic", 4)["DIALS F=1M"]
    one, two = extrapolate(costs, config, 1), extrapolate(costs, config, 2)
    for part in ("agents_training_s", "aip_training_s"):
        assert two[part] == pytest.approx(one[part] / 2)
    for part in ("data_collection_s", "evaluation_s", "other_s"):
        assert two[part] == pytest.approx(one[part])
    assert extrapolate(costs, config, 128)["agents_training_s"] == pytest.approx(two["agents_training_s"])  # 2 groups
    gs_costs = step_costs(made_up_row(simulator="gs", training_s=4.0))
    gs = paper_protocol_configs("traffic", 4)["GS"]
    assert extrapolate(gs_costs, gs, 16)["total_s"] == pytest.approx(extrapolate(gs_costs, gs, 1)["total_s"])


@pytest.mark.parametrize("n_agents, share", [(4, 1 / 2), (25, 3 / 5), (100, 1 / 2)])
def test_projection_reproduces_a_consistent_two_worker_run(n_agents, share):
    one = made_up_row(n_agents=n_agents, training_s=10.0, aip_s=4.0)
    # a 2-worker run as the model says it should be: the busiest worker holds `share` of the groups
    two = made_up_row(n_agents=n_agents, workers=2, training_s=10.0 * share, aip_s=4.0 * share)
    untrained = made_up_row(n_agents=n_agents, simulator="untrained-dials", workers=2, training_s=10.0 * share)
    check = projection_check(pd.DataFrame([one, two, untrained]))
    assert len(check) == 3
    for part in ("agents_training_s", "total_s"):
        assert check[f"{part} ratio"].to_numpy() == pytest.approx([1.0, 1.0, 1.0])
    slow = made_up_row(n_agents=n_agents, workers=2, training_s=10.0)  # 2 workers no faster than 1
    ratio = projection_check(pd.DataFrame([one, slow]))["agents_training_s ratio"].iloc[1]
    assert ratio == pytest.approx(share)


def test_measurements_file_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path))
    calls = []

    def fake_measure(env, n_agents, simulator, workers, preset, fresh_process):
        calls.append((env, n_agents, simulator, workers))
        return made_up_row(env, n_agents, simulator, workers)

    monkeypatch.setattr(scaling, "measure", fake_measure)
    sizes = scaling.get_preset("smoke").scaling_sizes
    first = scaling.measurements("smoke", verbose=False)
    assert len(calls) == len(first) == 2 * len(sizes) * len(scaling.MEASURED_RUNS)
    again = scaling.measurements("smoke", verbose=False)
    assert len(calls) == len(first)  # read back, nothing measured again
    assert again.equals(first)
    path = scaling.measurements_path("smoke")
    assert path.parent == tmp_path / "smoke" / "scaling"
    stored = read_json(path)
    stored["rows"] = stored["rows"][:-1]  # an interrupted measurement: the last run is measured, only that
    path.write_text(json.dumps(stored))
    assert scaling.measurements("smoke", verbose=False).equals(first) and len(calls) == len(first) + 1
    stored = read_json(path)
    stored["rows"] = stored["rows"][1:]
    path.write_text(json.dumps(stored))
    with pytest.raises(FileNotFoundError, match="lacks 1 measurements"):
        scaling.measurements("smoke", measure_missing=False)
    stored["settings"]["steps_per_agent"] += 128  # made with other settings: refused, file untouched
    path.write_text(json.dumps(stored))
    before = path.read_text()
    with pytest.raises(ValueError, match="other settings"):
        scaling.measurements("smoke")
    assert path.read_text() == before


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown env 'city'"):
        measure("city", 4, "dials", 1, "smoke")
    with pytest.raises(ValueError, match="unknown simulator 'sumo'"):
        measure("traffic", 4, "sumo", 1, "smoke")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        measure("traffic", 4, "dials", 0, "smoke")
    with pytest.raises(ValueError, match="workers must be 1 for simulator 'gs'"):
        measure("traffic", 4, "gs", 2, "smoke")
    with pytest.raises(ValueError, match="unknown preset"):
        measure("traffic", 4, "dials", 1, "fast")
    with pytest.raises(ValueError, match="square"):
        measure("traffic", 5, "dials", 1, "smoke")
    costs = step_costs(made_up_row())
    config = paper_protocol_configs("traffic", 4)["DIALS F=1M"]
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        extrapolate(costs, config, 0)
    with pytest.raises(ValueError, match="cannot extrapolate warehouse"):
        extrapolate(costs, paper_protocol_configs("warehouse", 4)["GS"], 1)
    with pytest.raises(ValueError, match="cannot extrapolate simulator 'gs'"):
        extrapolate(costs, paper_protocol_configs("traffic", 4)["GS"], 1)
    untrained = step_costs(made_up_row(simulator="untrained-dials", workers=2))
    with pytest.raises(ValueError, match="without AIP retraining"):
        extrapolate(untrained, config, 2)


def test_one_real_timed_run_in_a_fresh_process():
    row = measure("traffic", 4, "dials", 1, "smoke", steps=256, aip_epochs=1, dataset_steps=300)
    assert (row["steps_per_agent"], row["retrainings"], row["evaluations"], row["agents_per_worker"]) == (256, 2, 3, 2)
    parts = sum(row[p] for p in ("agents_training_s", "data_collection_s", "aip_training_s", "evaluation_s"))
    assert all(row[p] > 0 for p in ("agents_training_s", "data_collection_s", "aip_training_s", "evaluation_s"))
    assert parts <= row["total_s"] <= row["wall_s"]
    assert row["agent_steps_per_s"] == pytest.approx(4 * 256 / row["agents_training_s"])
    assert 100 < row["main_peak_rss_mib"] == row["total_peak_rss_mib"]  # one worker: the tasks ran in the main process
    assert 0 < row["main_peak_pss_mib"] <= row["main_peak_rss_mib"]
    assert row["max_worker_peak_rss_mib"] == 0.0
    assert 0 < row["worker_core_share"] <= 1.05
    costs = step_costs(row)
    assert math.isfinite(costs.train_s_per_agent_step) and costs.train_s_per_agent_step > 0

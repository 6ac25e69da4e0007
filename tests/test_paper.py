"""The numbers taken from the paper: one place, consistent with the hyperparameters and the paper's tables."""

import pytest

from dials_lib import paper
from dials_lib.hyperparameters import ENV_NAMES, paper_hyperparameters


@pytest.mark.parametrize("env", ENV_NAMES)
def test_main_f_agrees_with_the_papers_hyperparameters(env):
    hp = paper_hyperparameters(env)
    assert paper.F_STEPS[paper.MAIN_F[env]] == hp.retrain_every
    assert paper.TOTAL_STEPS == hp.total_timesteps
    assert paper.main_f_fraction(env) == hp.retrain_every / hp.total_timesteps
    assert paper.main_dials_label(env) in set(paper.read_paper_table("runtimes")["simulator"])


def test_f_labels_and_fractions():
    assert [paper.f_fraction(label) for label in paper.F_STEPS] == [0.025, 0.125, 0.25, 1.0]
    assert paper.f_label_of_fraction(0.25) == "1M" and paper.f_label_of_fraction(0.3) is None
    assert set(paper.read_paper_table("f_ablation")["F"]) == set(paper.F_STEPS)
    with pytest.raises(ValueError, match="paper F"):
        paper.f_fraction("2M")


def test_aip_loss_is_written_at_the_precision_it_was_read():
    assert paper.AIP_LOSS["traffic"].text() == "0.70 -> 0.24-0.26"
    assert paper.AIP_LOSS["warehouse"].text() == "1.4-1.5 -> 0.2-0.3"


def test_final_returns_has_every_size_and_method():
    table = paper.final_returns("warehouse")
    assert len(table) == 4 * 3 and set(table["method"]) == set(paper.RESULT_COLUMNS)
    row = table[(table["n_agents"] == 4) & (table["method"] == "DIALS")].iloc[0]
    assert row["paper_return"] == 13.3 and row["paper_hand_coded"] == 13.1 and row["paper_start"] == 1.8


def test_table_value_is_nan_when_the_paper_has_no_such_row():
    runtimes = paper.read_paper_table("runtimes")
    assert paper.table_value(runtimes, "traffic", 4, "GS", "total_h") == 7.24
    assert paper.table_value(runtimes, "traffic", 7, "GS", "total_h") != paper.table_value(
        runtimes, "traffic", 7, "GS", "total_h")  # NaN


def test_the_reference_tables_the_notebooks_print_hold_the_paper_numbers():
    traffic = paper.final_returns_table("traffic")
    assert list(traffic.columns) == ["agents", "start", "hand-coded", "GS", "DIALS", "untrained-DIALS"]
    assert traffic["agents"].tolist() == [4, 25, 49, 100]
    four = traffic.iloc[0]
    assert (four["start"], four["hand-coded"], four["GS"], four["DIALS"], four["untrained-DIALS"]) == (
        145, 176.4, 200, 214, 172)
    assert paper.final_returns_table("warehouse").set_index("agents").loc[100, "GS"] == 9.5
    ablation = paper.f_ablation_table("traffic")
    assert ablation["F"].tolist() == list(paper.F_STEPS) and set(ablation["agents"]) == {49}
    assert ablation.set_index("F").loc["4M", "final_return"] == 203
    aips = paper.aip_reference().set_index("env")
    assert aips.loc["warehouse", "architecture"] == "GRU" and aips.loc["warehouse", "epochs"] == 300
    assert aips.loc["traffic", "paper's loss (nats)"] == "0.70 -> 0.24-0.26"
    with pytest.raises(ValueError, match="env"):
        paper.f_ablation_table("sumo")


def test_paper_tables_are_readable_and_names_are_checked():
    results = paper.read_paper_table("results")
    assert {"env", "agents", "GS", "DIALS"} <= set(results.columns)
    with pytest.raises(ValueError, match="allowed values: 'results', 'runtimes', 'memory', 'f_ablation'"):
        paper.read_paper_table("speed")

"""The notebook pipeline: discovery, publishing clean outputs, atomic writes."""

import json

import nbformat
import pytest

from dials_lib import files as io
from dials_lib import series


def test_notebooks_are_numbered_and_have_a_parameters_cell():
    notebooks = series.notebook_paths()
    assert notebooks, "the series has no notebooks"
    assert notebooks[0].name.startswith("00_")
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        assert 'preset = "smoke"' in tagged[0].source, f"{path.name}: the default preset must be smoke"


def test_only_filters_and_rejects_unknown_prefixes():
    assert [p.name[:2] for p in series.notebook_paths(["00"])] == ["00"]
    with pytest.raises(ValueError, match="no notebook matches"):
        series.notebook_paths(["99"])


def test_run_series_rejects_unknown_preset():
    with pytest.raises(ValueError, match="allowed values: 'smoke', 'quick', 'full4', 'scale', 'paper'"):
        series.run_series("fast")


def test_publishing_replaces_injected_parameters_and_drops_run_metadata():
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": 1.0}
    params = nbformat.v4.new_code_cell('preset = "smoke"', metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell('preset = "quick"', metadata={"tags": ["injected-parameters"]})
    run_metadata = {"papermill": {"duration": 0.1}, "execution": {"iopub.status.busy": "2026-01-01T00:00:00"}}
    body = nbformat.v4.new_code_cell("1 + 1", metadata=run_metadata)
    nb.cells = [params, injected, body]
    cleaned = series.clean_for_publishing(nb, "quick")
    assert "papermill" not in cleaned.metadata
    assert [c.cell_type for c in cleaned.cells] == ["code", "markdown", "code"]
    assert "`quick` preset" in cleaned.cells[1].source
    assert cleaned.cells[0].source == 'preset = "smoke"'
    assert "papermill" not in cleaned.cells[2].metadata and "execution" not in cleaned.cells[2].metadata


def test_publishing_twice_keeps_a_single_preset_note():
    # A published notebook already carries a note; papermill then injects its cell after `parameters` again.
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "smoke"', metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell('preset = "quick"', metadata={"tags": ["injected-parameters"]})
    nb.cells = [params, injected, nbformat.v4.new_code_cell("1 + 1")]
    first = series.clean_for_publishing(nb, "quick")
    rerun = nbformat.v4.new_notebook()
    rerun.cells = [first.cells[0], injected.copy(), *first.cells[1:]]
    second = series.clean_for_publishing(rerun, "quick")
    assert [c.cell_type for c in second.cells] == ["code", "markdown", "code"]
    assert sum(series.is_preset_note(c) for c in second.cells) == 1
    assert second.cells[1] == first.cells[1]  # the same note, id included: a republish does not churn its lines
    nbformat.validate(second)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    io.atomic_write_json(target, {"a": 1})

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"], "no temporary file left behind"


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    target = io.atomic_write_text(tmp_path / "table.md", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_stored_file_is_read_only_when_made_with_the_settings_asked_for(tmp_path):
    """runs/ first, else the published copy; a file of other settings is passed over, never taken."""
    kept, published = tmp_path / "runs" / "m.json", tmp_path / "records" / "m.json"
    assert io.stored_with_settings((kept, published), {"steps": 8}) is None  # neither exists
    io.atomic_write_json(published, {"settings": {"steps": 8}, "rows": ["published"]})
    assert io.stored_with_settings((kept, published), {"steps": 8})["rows"] == ["published"]
    io.atomic_write_json(kept, {"settings": {"steps": 16}, "rows": ["other budget"]})
    assert io.stored_with_settings((kept, published), {"steps": 8})["rows"] == ["published"]
    assert io.stored_with_settings((kept, published), {"steps": 16})["rows"] == ["other budget"]
    assert io.stored_with_settings((kept, published), {"steps": 4}) is None


def test_copy_json_copies_what_exists_and_leaves_the_target_alone_otherwise(tmp_path):
    source, target = tmp_path / "runs" / "m.json", tmp_path / "records" / "m.json"
    assert io.copy_json(source, target) is None and not target.exists()
    io.atomic_write_json(source, {"rows": [1, 2]})
    assert io.copy_json(source, target) == target and json.loads(target.read_text()) == {"rows": [1, 2]}


def test_a_series_killed_midway_completes_with_the_same_outputs(tmp_path):
    """The traffic comparison notebook run by the series, killed (SIGKILL, kernel and workers too) while it trains,
    then run again: its tables are those of a run without a break."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    def env(name: str) -> dict[str, str]:
        return dict(os.environ, DIALS_RUNS_DIR=str(tmp_path / name / "runs"), MPLBACKEND="Agg",
                    DIALS_FIGURES_DIR=str(tmp_path / name / "figures"), DIALS_BUILD_DIR=str(tmp_path / name / "build"))

    command = [sys.executable, "-m", "dials_lib.series", "--preset", "smoke", "--only", "04"]
    subprocess.run(command, env=env("clean"), check=True, capture_output=True, timeout=600)
    killed = subprocess.Popen(command, env=env("killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "killed" / "runs").glob("smoke/*/checkpoint.pt")):
        assert killed.poll() is None and time.monotonic() < deadline, "the series ended before it trained"
        time.sleep(0.2)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
    subprocess.run(command, env=env("killed"), check=True, capture_output=True, timeout=600)
    for table in ("04_traffic_final_returns.csv", "04_traffic_learning.csv", "04_traffic_differences.csv"):
        clean, again = (pd.read_csv(tmp_path / name / "figures" / table) for name in ("clean", "killed"))
        pd.testing.assert_frame_equal(again, clean)


def test_the_committed_notebooks_name_the_installed_kernel_as_jupyterlab_writes_it():
    """Opening a notebook in JupyterLab must not rewrite it: the kernelspec is the installed kernel's."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3")
    assert series.KERNELSPEC == {"display_name": installed.display_name, "language": installed.language,
                                 "name": "python3"}
    for path in series.notebook_paths():
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"] == series.KERNELSPEC, path.name
        assert nb.metadata["language_info"]["name"] == "python" and (nb.nbformat, nb.nbformat_minor) == (4, 5)
        assert all("id" in cell for cell in nb.cells), path.name
    drifted = nbformat.read(series.notebook_paths()[0], as_version=4)
    drifted.metadata["kernelspec"]["display_name"] = "Python 3"
    assert series.clean_for_publishing(drifted, "quick").metadata["kernelspec"] == series.KERNELSPEC


def test_status_prints_every_run_of_the_plan_and_trains_nothing(tmp_path, monkeypatch, capsys):
    from dials_lib.analysis.preset_plan import training_plan

    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(tmp_path / "records"))
    series.main(["--preset", "smoke", "--status"])
    out = capsys.readouterr().out
    plan = training_plan("smoke")
    assert all(config.name() in out for config in plan)
    assert f"preset smoke: 0 of {len(plan)} runs finished, 0 training, {len(plan)} not started" in out
    assert not list((tmp_path / "runs").rglob("*"))  # no run directory made (the folder itself may be)

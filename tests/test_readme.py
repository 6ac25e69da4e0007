"""The README as a new user reads it: the first screen says what to run and how long it takes, and the adapter
example runs as written, on a budget stated in it (a few AIP epochs, torch on one thread)."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from dials_lib.analysis import plans
from dials_lib.analysis.claims import paper_row
from dials_lib.analysis.untrained_gap import finished_metrics
from dials_lib.paper import read_paper_table
from dials_lib.paths import PACKAGE_DIR, REPO_ROOT
from dials_lib.presets import get_preset

README = (REPO_ROOT / "README.md").read_text()


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_first_screen_gives_the_smoke_run_first_then_the_two_commands_with_their_durations():
    first_screen = "\n".join(README.splitlines()[:30])
    smoke, test, reproduce = (first_screen.find(command) for command in
                              ("make reproduce PRESET=smoke", "make test", "make reproduce  "))
    assert 0 <= smoke < test < reproduce, "smoke run, then make test, then make reproduce"
    for command in ("make reproduce PRESET=smoke", "make test", "make reproduce  "):
        line = next(line for line in first_screen.splitlines() if line.startswith(command))
        assert re.search(r"\d+ (min|hours)", line), line  # each command says how long it takes
    assert "build/notebooks/<preset>/" in first_screen and "docs/api.md" in first_screen


def test_the_reference_material_comes_after_the_examples():
    headings = re.findall(r"(?m)^## (.+)$", README)
    assert headings.index("Layout") > headings.index("The environments in other RL code")
    assert headings.index("Parallel workers and clusters") > headings.index("Training runs")
    assert (REPO_ROOT / "docs" / "api.md").exists() and "docs/api.md" in README


def test_the_adapter_example_runs_as_written_on_the_budget_it_states(tmp_path):
    [example] = [block for block in python_blocks(README) if "InfluenceAugmentedEnv(" in block]
    assert "torch.set_num_threads(1)" in example and re.search(r"epochs=\d+\)", example)
    script = tmp_path / "adapter_example.py"
    script.write_text(example)
    # a hang or an error fails; the time is not asserted (about 10 s on a loaded 2-core machine)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_api_examples_run_top_to_bottom_on_a_small_budget(tmp_path):
    # docs/api.md's blocks as one script, as a reader pastes them, with its 200,000 training steps cut to 3,200
    blocks = python_blocks((REPO_ROOT / "docs" / "api.md").read_text())
    script = "\n".join(blocks)
    assert len(blocks) >= 2 and script.count("total_timesteps=200_000") == 1
    (tmp_path / "api_examples.py").write_text(script.replace("total_timesteps=200_000", "total_timesteps=3_200"))
    environment = {**os.environ, "DIALS_RUNS_DIR": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "api_examples.py"], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]


def layout_names(text: str) -> dict[str, set[str]]:
    """The file names (or patterns such as `*_render.py`) the README's Layout block gives per package folder ('' for
    the package root): a line indented by two spaces opens a folder (`envs/`) or lists root modules, deeper lines
    belong to the folder opened last."""
    block = re.search(r"## Layout\n.*?```\n(.*?)```", text, flags=re.DOTALL).group(1)
    names: dict[str, set[str]] = {}
    folder = None
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            folder = "" if line.startswith("dials_lib/") else None  # the package, or what lies beside it
            continue
        if folder is None:
            continue
        if indent == 2:
            opened = re.match(r"\s+(\w+)/", line)
            folder = opened.group(1) if opened else ""
        names.setdefault(folder, set()).update(re.findall(r"[\w*]+\.py", line))
    return names


def test_the_layout_names_every_module_of_the_package():
    names = layout_names(README)

    def named(path: Path) -> bool:
        folder = path.parent.relative_to(PACKAGE_DIR).as_posix()
        return any(fnmatch.fnmatch(path.name, name) for name in names.get("" if folder == "." else folder, ()))

    unnamed = [path.relative_to(PACKAGE_DIR).as_posix() for path in sorted(PACKAGE_DIR.rglob("*.py"))
               if path.name != "__init__.py" and not named(path)]
    assert not unnamed, f"the README's Layout does not name {unnamed}"


def test_the_layout_check_sees_a_missing_module():
    names = layout_names("## Layout\n\n```\ndials_lib/  the library\n  paths.py  paths\n  envs/  the envs\n"
                         "    traffic.py, *_render.py  grids\ndocs/x.py  not the package\n```\n")
    assert names == {"": {"paths.py"}, "envs": {"traffic.py", "*_render.py"}}


def markdown_table(text: str, header_start: str) -> list[list[str]]:
    """The body rows, as stripped cells, of the markdown table in `text` whose header row starts with
    `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def quoted_cells(rows: list[list[str]], table: pd.DataFrame, columns: tuple[object, ...],
                 number: str = "{:.3g}") -> int:
    """Check each README row (a method, then its cells) against the table's row of that method: every non-empty
    cell must be the table's column written as the README writes its numbers (`number`) or, for a function, what it
    makes of the row; returns how many cells were compared."""
    checked = 0
    for method, *quoted in rows:
        row = table.loc[method]
        for text, column in zip(quoted, columns, strict=True):
            if text:  # a controller has no "at the end"
                expected = column(row) if callable(column) else number.format(row[column])
                name = getattr(column, "__name__", column)
                assert text == expected, f"the README says {text} for {method}, {name}; its table {expected}"
                checked += 1
    return checked


def test_the_quick_results_table_quotes_the_committed_learning_tables():
    # the README's first results table must say what figures/04 and 05 say
    checked = 0
    for env, name in (("traffic", "04_traffic"), ("warehouse", "05_warehouse")):
        table = pd.read_csv(REPO_ROOT / "figures" / f"{name}_learning.csv").set_index("method")
        rows, steps, in_env = [], "", False
        for first, *cells in markdown_table(README, "| env, steps per agent |"):  # an env's first row names it
            if first:
                in_env = first.startswith(f"{env}, ")
                steps = first.removeprefix(f"{env}, ") if in_env else steps
            rows += [cells] if in_env else []
        assert f"paper at {steps}" in table.columns, f"the README's {env} step count {steps} is not the table's"
        checked += quoted_cells(rows, table, ("start", "final", f"paper at {steps}", "paper at 4M"))
    assert checked == 30  # 6 methods x 4 columns, 2 controllers x 3


def test_the_full4_and_sumo_tables_quote_their_committed_tables():
    full4 = pd.read_csv(REPO_ROOT / "figures" / "full4" / "04_traffic_learning.csv").set_index("method")
    sumo = pd.read_csv(REPO_ROOT / "figures" / "11_sumo_traffic_returns.csv").set_index("method")

    def gain(row: pd.Series) -> str:
        return f"{row['final - start']:+.1f} [{row['95% CI low']:+.1f}, {row['95% CI high']:+.1f}]"

    assert quoted_cells(markdown_table(README, "| method | before training | ours after 4M steps |"), full4,
                        ("start", "final", "final, greedy", "paper at 4M"), number="{:.0f}") == 14
    assert quoted_cells(markdown_table(README, "| method | before training | ours at 1,056,000 |"), sumo,
                        ("start", "final", gain, "paper at our steps", "paper after 4M")) == 18


def test_the_scale_results_tables_quote_the_committed_records(tmp_path, monkeypatch):
    # each table of "What the scale run shows" (means over 3 seeds at the steps per agent that the text
    # before it names) against the published records, read as notebook 10 reads them (a 4-agent run from the quick
    # preset's longer run), and the paper's numbers beside them
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))  # no runs: the committed records only
    monkeypatch.setenv("DIALS_RECORDS_DIR", str(REPO_ROOT / "records"))
    header = "| agents | GS | DIALS | untrained-DIALS |"
    results, checked = read_paper_table("results"), 0
    for table_start in [m.start() for m in re.finditer(re.escape(header), README)]:
        env, steps = re.findall(r"(traffic|warehouse) at ([\d,]+) steps per agent", README[:table_start])[-1]
        metrics = finished_metrics(plans.comparison_configs("scale", env))
        means = metrics.groupby(["n_agents", "simulator", "timestep"])["mean_return"].mean()
        final_step = int(steps.replace(",", ""))
        digits = ".1f" if env == "traffic" else ".2f"
        for agents, gs, dials, untrained, gap, paper in markdown_table(README[table_start:], header):
            n = int(agents)
            final = {simulator: means[(n, simulator, final_step)] for simulator in ("gs", "dials", "untrained-dials")}
            assert gs == f"{final['gs']:{digits}} (from {means[(n, 'gs', 0)]:{digits}})"
            assert [dials, untrained, gap] == [format(value, digits) for value in
                                               (final["dials"], final["untrained-dials"],
                                                final["dials"] - final["untrained-dials"])]
            row = paper_row(results, env, n)
            assert paper == f"{row['GS']:g}, {row['DIALS']:g}, {row['DIALS'] - row['untrained_DIALS']:g}"
            checked += 1
    assert checked == 6  # 2 environments x 3 sizes


def test_the_scale_training_time_quotes_its_committed_table():
    # the README's scale section and presets row, and the preset's description, quote the measured training time
    # of notebook 10 (`ScaleStudy.training_time`, from the runs' runtime records), not a projection
    table = pd.read_csv(REPO_ROOT / "figures" / "scale" / "10_training_time.csv").set_index("method")
    total, packed = table.loc["sum of the batches"], table.loc["over 2 processes side by side"]
    cpu, outside = f"{total['worker CPU h']:.1f}", f"{total['evaluation + data wall h']:.1f}"
    section = README[README.index("## What the scale run shows"):README.index("## What the full4 run shows")]
    section = " ".join(section.split())  # as read, whatever the line breaks
    assert (f"took {cpu} worker CPU hours (the agents' and AIPs' training; notebook 07's committed rates projected "
            f"{total['projected CPU h']:.1f}) and {total['evaluation + data wall h']:.2f}") in section
    assert (f"{packed['worker CPU h']:.1f} + {packed['evaluation + data wall h']:.1f} = "
            f"{packed['worker CPU h'] + packed['evaluation + data wall h']:.1f} hours") in section
    presets_row = next(line for line in README.splitlines() if line.startswith("| `scale` |"))
    assert f"took {cpu} worker CPU-hours" in presets_row and f"projected {total['projected CPU h']:.1f}" in presets_row
    assert f"plus {outside} hours of GS evaluation" in presets_row
    assert f"took {cpu} worker CPU-hours and {outside} hours" in get_preset("scale").description

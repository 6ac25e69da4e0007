"""The README as a new user reads it: the first screen says what to run and how long it takes, and the adapter
example runs as written, on a budget stated in it (a few AIP epochs, torch on one thread)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from dials_lib.analysis.claims import paper_row
from dials_lib.paper import read_paper_table
from dials_lib.paths import PACKAGE_DIR, REPO_ROOT

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


def test_the_quick_results_table_quotes_the_committed_learning_tables():
    # the README's first results table must say what figures/04 and 05 say, to the 3 digits it prints
    tables = {env: pd.read_csv(REPO_ROOT / "figures" / f"{name}_learning.csv").set_index("method")
              for env, name in (("traffic", "04_traffic"), ("warehouse", "05_warehouse"))}
    env, checked = "", 0
    for first, method, *quoted in markdown_table(README, "| env, steps per agent |"):
        if first:
            env, steps = first.split(", ")
        table = tables[env]
        assert f"paper at {steps}" in table.columns, f"the README's {env} step count {steps} is not the table's"
        row = table.loc[method]
        values = (row["start"], row["final"], row[f"paper at {steps}"], row["paper at 4M"])
        for text, value in zip(quoted, values, strict=True):
            if text:  # the hand-coded controller has no "at the end"
                assert text == f"{value:.3g}", f"README: {env} {method} says {text}, the table {value:.3g}"
                checked += 1
    assert checked == 30  # 6 methods x 4 columns, 2 controllers x 3


def record_returns(name: str, step: int) -> pd.Series:
    """Each seed's mean return at `step` of the published runs `name` (with `{seed}`), from records/scale or, for
    the scale preset's 4-agent runs, from the quick preset's longer runs of the same settings."""
    returns = []
    for seed in range(3):
        run = REPO_ROOT / "records" / "scale" / name.format(seed=seed)
        if not run.exists():
            run = REPO_ROOT / "records" / "quick" / name.format(seed=seed).replace("_T576000_", "_T1056000_")
        metrics = pd.read_csv(run / "metrics.csv")
        returns.append(float(metrics.loc[metrics["timestep"] == step, "mean_return"].iloc[0]))
    return pd.Series(returns)


def test_the_scale_results_table_quotes_the_committed_records():
    # "What the scale run shows so far": traffic at 576,000 steps per agent, means over 3 seeds, and the paper's
    assert "traffic at 576,000 steps per agent" in README
    results, checked = read_paper_table("results"), 0
    for agents, gs, dials, untrained, gap, paper in markdown_table(README, "| agents | GS | DIALS | untrained-DIALS |"):
        n = int(agents)
        runs = {method: record_returns(f"traffic_n{n}_{method}_T576000_seed{{seed}}", 576_000)
                for method in ("gs", "dials_F1000000", "untrained-dials")}
        start = record_returns(f"traffic_n{n}_gs_T576000_seed{{seed}}", 0)
        final_gap = runs["dials_F1000000"].mean() - runs["untrained-dials"].mean()
        assert gs == f"{runs['gs'].mean():.1f} (from {start.mean():.1f})"
        assert [dials, untrained, gap] == [f"{value:.1f}" for value in
                                           (runs["dials_F1000000"].mean(), runs["untrained-dials"].mean(), final_gap)]
        row = paper_row(results, "traffic", n)
        assert paper == f"{row['GS']:g}, {row['DIALS']:g}, {row['DIALS'] - row['untrained_DIALS']:g}"
        checked += 1
    assert checked >= 2

"""Run the numbered notebook series headlessly with papermill, and publish a run's outputs.

`python -m dials_lib.series --preset quick` first trains every training run of notebooks 04-06 at once (their seed
batches side by side on the cores, `preset_plan.train_plan`; finished runs are kept, interrupted ones resume; not with
`--only`, where each notebook trains its own runs; `--train-only` stops there: the long presets' training, resumed
with the same command), then
executes every `notebooks/NN_*.ipynb` in order into `build/notebooks/<preset>/` (never over the source notebooks),
printing each step's run time, and writes the timings to `build/notebooks/<preset>/timings.json`. `--publish` then
copies the executed notebooks back into `notebooks/` with their outputs, cleaned of run-specific metadata, so a
reader sees results without running anything while the `parameters` cell keeps its smoke defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from dials_lib.files import atomic_write, atomic_write_json, describe_os_error
from dials_lib.notebook_kernels import execute_notebook
from dials_lib.paths import build_dir, notebooks_dir
from dials_lib.presets import PRESET_NAMES
from dials_lib.validation import check_choice

NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    """The series' notebooks in order; `only` keeps those whose name starts with one of the prefixes."""
    found = sorted(p for p in notebooks_dir().iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
        if not found:
            raise ValueError(f"no notebook matches --only {only}; notebooks: {[p.name for p in notebook_paths()]}")
    return found


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Thread counts of the numerical libraries, set to 1 for the notebook kernels unless already set."""


def output_dir(preset: str) -> Path:
    """Folder the executed notebooks of `preset` go to (untracked)."""
    return build_dir() / "notebooks" / preset


def train_runs(preset: str) -> dict[str, Any]:
    """Train (or resume) every training run of notebooks 04-06 at once, their seed batches sharing the cores, so
    that the notebooks only read them back; returns the step's timing."""
    from dials_lib.analysis import preset_plan

    print(f"[training] every run of notebooks 04-06 (preset {preset}), side by side ...", flush=True)
    start = time.perf_counter()
    preset_plan.train_plan(preset, log=lambda line: print(f"    {line}", flush=True))
    seconds = time.perf_counter() - start
    print(f"    done in {seconds:.1f} s", flush=True)
    return {"notebook": "training (the runs of 04-06)", "seconds": round(seconds, 1)}


def run_series(preset: str, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Execute the notebooks with `preset` into build/notebooks/<preset>/; returns per-notebook timings."""
    import papermill

    check_choice("preset", preset, PRESET_NAMES)
    out_dir = output_dir(preset)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = notebook_paths(only)
    # Kernels inherit this environment: one compute thread per process unless the caller chose otherwise (runs
    # are single-threaded in any case; this covers the rest, e.g. the theory checks and the AIP studies)
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    timings: list[dict[str, Any]] = []
    series_start = time.perf_counter()
    if only is None:  # the whole series: its training runs first, all at once (with --only, notebooks train theirs)
        timings.append(train_runs(preset))
    for index, path in enumerate(paths, start=1):
        print(f"[{index}/{len(paths)}] {path.name} (preset {preset}) ...", flush=True)
        start = time.perf_counter()
        try:
            execute_notebook(path, out_dir / path.name, parameters={"preset": preset}, cwd=notebooks_dir(),
                             progress_bar=sys.stdout.isatty())  # cells done / total and elapsed time, on a terminal
        except papermill.PapermillExecutionError as error:
            print(f"    FAILED after {time.perf_counter() - start:.1f} s; see {out_dir / path.name}", flush=True)
            raise SystemExit(f"{path.name} failed: {error.ename}: {error.evalue}") from None
        seconds = time.perf_counter() - start
        timings.append({"notebook": path.name, "seconds": round(seconds, 1)})
        print(f"    done in {seconds:.1f} s", flush=True)
    total = time.perf_counter() - series_start
    print(f"series finished in {total / 60:.1f} min; outputs in {out_dir}", flush=True)
    if only is None:
        atomic_write_json(out_dir / "timings.json", {"preset": preset, "total_seconds": round(total, 1),
                                                     "notebooks": timings})
    return timings


PRESET_NOTE_TAG = "preset-note"
"""Tag of the markdown cell saying which preset produced the published outputs (replaced on every publish); also
its cell id, so that publishing again leaves the note's lines of the notebook unchanged."""


def is_preset_note(cell: nbformat.NotebookNode) -> bool:
    """Whether `cell` is a preset note left by an earlier publish (tagged, or untagged from older versions)."""
    if PRESET_NOTE_TAG in cell.metadata.get("tags", []):
        return True
    return cell.cell_type == "markdown" and cell.source.startswith("**Outputs shown below come from the `")


KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
"""The kernelspec the committed notebooks name: what ipykernel installs and JupyterLab writes when it saves, so that
opening a notebook does not change it."""


def clean_for_publishing(nb: nbformat.NotebookNode, preset: str) -> nbformat.NotebookNode:
    """Drop papermill's run metadata, name the installed kernel (`KERNELSPEC`) and replace the injected-parameters
    cell by a note on the preset.

    Notes from earlier publishes are dropped first, so publishing again never stacks them up."""
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    cells = []
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if is_preset_note(cell):
            continue
        if "injected-parameters" in cell.metadata.get("tags", []):
            note = (
                f"**Outputs shown below come from the `{preset}` preset** (`make reproduce PRESET={preset}`). "
                "Running this notebook as it is uses the defaults of the cell above; set `preset` there "
                "(or pass `-p preset ...` to papermill) to change the budget."
            )
            cells.append(nbformat.v4.new_markdown_cell(note, metadata={"tags": [PRESET_NOTE_TAG]},
                                                       id=PRESET_NOTE_TAG))
            continue
        cells.append(cell)
    nb.cells = cells
    return nb


def publish(preset: str = "quick", only: list[str] | None = None) -> list[Path]:
    """Copy executed notebooks of `preset` back into notebooks/, with outputs and clean metadata."""
    check_choice("preset", preset, PRESET_NAMES)
    written = []
    for path in notebook_paths(only):
        executed = output_dir(preset) / path.name
        if not executed.exists():
            raise FileNotFoundError(f"{executed} does not exist: run the series with preset {preset!r} first")
        nb = clean_for_publishing(nbformat.read(executed, as_version=4), preset)
        atomic_write(path, lambda tmp, nb=nb: nbformat.write(nb, str(tmp)))
        written.append(path)
    return written


def print_status(preset: str) -> None:
    """Print where each training run of `preset` stands (`preset_plan.plan_status`) and a line over them all."""
    import pandas as pd

    from dials_lib.analysis.preset_plan import plan_status, status_summary

    status = plan_status(preset)
    with pd.option_context("display.width", 250, "display.max_rows", None, "display.max_colwidth", 60):
        print(status.round({"last evaluation": 2, "worker CPU h": 2, "projected CPU h": 2}).to_string(index=False))
    print(f"preset {preset}: {status_summary(status)}")


def main(argv: list[str] | None = None) -> None:
    """Command line: run the notebook series with a preset, optionally publishing the outputs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESET_NAMES)} (default quick)")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 00 02")
    parser.add_argument("--publish", action="store_true", help="copy outputs back into notebooks/ afterwards")
    parser.add_argument("--publish-only", action="store_true", help="publish an earlier run without running")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or resume) the preset's runs side by side, without running the notebooks")
    parser.add_argument("--status", action="store_true",
                        help="where each training run of the preset stands (also while it trains), then exit")
    args = parser.parse_args(argv)
    try:
        check_choice("preset", args.preset, PRESET_NAMES)
    except ValueError as error:
        parser.error(str(error))
    if args.status:
        print_status(args.preset)
        return
    if not args.publish_only:
        from dials_lib.training.priority import long_training
        from dials_lib.training.process_tree import exit_now, stop_status

        try:
            with long_training():  # `make train` is niced: against other terminals too
                if args.train_only:
                    train_runs(args.preset)
                    return
                run_series(args.preset, args.only)
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM: the kernel and every worker stop with us
            how, status = stop_status(interrupt)
            print(f"{how}: rerun the same command to continue (finished runs are read back, interrupted ones "
                  "resume from their last checkpoint)", file=sys.stderr, flush=True)
            exit_now(status)
        except OSError as error:  # a full disk, a read-only folder: every file is written whole or not at all
            print(f"error: {describe_os_error(error)}; what was written before is intact: rerun the same command "
                  "once this is fixed to continue", file=sys.stderr, flush=True)
            exit_now(1)
    if args.publish or args.publish_only:
        for path in publish(args.preset, args.only):
            print(f"published {path.name}")


if __name__ == "__main__":
    main(sys.argv[1:])

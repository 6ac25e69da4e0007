"""Bad command lines: each is refused with exit code 2 and a message naming the parameter, writes nothing, and
leaves earlier runs untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dials_lib.__main__ import in_flags, main
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import RunDirectory
from tests.faults import interrupt_when, still_running

BAD = [  # (arguments after `train --env traffic`, the flag or word the error must name)
    (["--steps", "-5"], "--steps"),
    (["--steps", "0"], "--steps"),
    (["--steps", str(10**12)], "--steps"),
    (["--steps", str(10**30)], "--steps"),
    (["--steps", "abc"], "--steps"),
    (["--agents", "5"], "square"),
    (["--agents", "0"], "--agents"),
    (["--agents", "1000000"], "--agents"),
    (["--simulator", "ials"], "--simulator"),
    (["--workers", "0"], "--workers"),
    (["--workers", "-1"], "--workers"),
    (["--workers", "1000"], "--workers"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**64)], "--seed"),
    (["--seed", str(10**30)], "--seed"),
    (["--seed", "0,1"], "use --seeds"),
    (["--seeds", "1,1"], "--seeds must be distinct"),
    (["--seeds", "0,-1"], "--seeds must be"),
    (["--seeds", "0,x"], "--seeds"),
    (["--F", str(10**30)], "--F"),
    (["--F", "0"], "--F"),
    (["--eval-episodes", str(10**9)], "--eval-episodes"),
    (["--eval-episodes", "0"], "--eval-episodes"),
    (["--eval-every", "0"], "--eval-every"),
    (["--chunk-steps", "100"], "--chunk-steps"),
    (["--agents-per-worker", "3"], "--agents-per-worker must divide --agents=4"),
    (["--unknown-flag", "1"], "unrecognized"),
    (["--step", "1000"], "did you mean --steps?"),  # no prefix matching: a mistyped flag is never taken for another
    (["--eval-ep", "3"], "unrecognized"),
]
FIELD_NAMES = ("total_timesteps", "n_agents", "n_workers", "retrain_every", "eval_episodes", "eval_every",
               "chunk_steps", "agents_per_worker")
"""RunConfig's field names, which a command-line error must not show: the user typed flags."""


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    """An empty working directory that is also the runs folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIALS_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def refused(argv: list[str], capsys) -> str:
    """Run the command line; it must exit with code 2; returns what it printed on stderr."""
    try:
        code = main(["train", "--env", "traffic", "--steps", "256", *argv] if "--steps" not in argv
                    else ["train", "--env", "traffic", *argv])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    assert code == 2, argv
    return capsys.readouterr().err


@pytest.mark.parametrize(("argv", "named"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_command_line_is_refused_naming_the_parameter(argv, named, sandbox, capsys):
    err = refused(argv, capsys)
    assert named in err and "Traceback" not in err
    assert not [name for name in FIELD_NAMES if name in err], err
    assert err.startswith("usage: python -m dials_lib train "), err  # the usage of the command that was typed
    assert files_under(sandbox) == set()


def test_field_names_become_the_flags_that_set_them():
    assert in_flags("total_timesteps must be an integer >= 128; got 5") == "--steps must be an integer >= 128; got 5"
    assert in_flags("retrain_every (F) must be an integer >= 1; got 0") == "--F must be an integer >= 1; got 0"
    assert in_flags("seed must be an integer >= 0; got -1", several_seeds=True).startswith("--seeds must")
    assert in_flags("seed must be an integer >= 0; got -1").startswith("--seed must")
    # words that are also field names stay words away from the start of the message
    assert in_flags("run_dir must contain {seed} when training several seeds") == \
        "--run-dir must contain {seed} when training several seeds"


def test_a_bad_run_directory_is_refused_and_earlier_runs_stay_untouched(sandbox, capsys):
    a_file = sandbox / "a_file"
    a_file.write_text("mine")
    earlier = RunConfig("traffic", total_timesteps=512, run_dir=str(sandbox / "earlier"))
    RunDirectory(earlier)
    before = {p: p.read_bytes() for p in files_under(sandbox) if p.is_file()}
    cases = [(["--run-dir", str(a_file)], "is a file"),
             (["--run-dir", str(sandbox / "earlier")], "different config"),
             (["--seeds", "0,1", "--run-dir", str(sandbox / "no_placeholder")], "{seed}")]
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        locked = sandbox / "read_only"
        locked.mkdir(mode=0o500)
        cases.append((["--run-dir", str(locked / "run")], "cannot create"))
        before[locked] = b""
    for argv, named in cases:
        err = refused(argv, capsys)
        errors = [line for line in err.splitlines() if "error:" in line]  # after the train usage, if any
        assert len(errors) == 1 and named in errors[0] and "Traceback" not in err
    after = {p: p.read_bytes() for p in files_under(sandbox) if p.is_file()}
    assert {p: v for p, v in after.items() if p in before} == {p: v for p, v in before.items() if p.is_file()}
    assert set(after) <= set(before)


def test_a_damaged_checkpoint_stops_the_command_with_one_line_and_exit_code_2(sandbox, capsys):
    argv = ["train", "--env", "traffic", "--simulator", "gs", "--steps", "256", "--eval-episodes", "1",
            "--workers", "1", "--run-dir", str(sandbox / "run")]
    assert main(argv) == 0
    checkpoint = sandbox / "run" / "checkpoint.pt"
    for path in (checkpoint, checkpoint.with_name("checkpoint.prev.pt")):
        if path.exists():
            path.write_bytes(path.read_bytes()[:-100])  # truncated
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(checkpoint) in err and "Traceback" not in err


def test_ctrl_c_stops_at_once_with_one_line_and_the_same_command_resumes(sandbox):
    """SIGINT while DIALS agents train on 2 workers: exit 130 within seconds, one line saying where to resume, no
    worker left running; the same command then finishes the run."""
    import signal
    import subprocess
    import sys
    import time

    # 20 chunks: about 7 s of agents training on a quiet 2-core machine, so that the signal, a second after the
    # first checkpoint, always finds the run training (with 2 chunks a fast machine had finished by then)
    command = [sys.executable, "-m", "dials_lib", "train", "--env", "traffic", "--simulator", "dials", "--steps",
               "25600", "--chunk-steps", "1280", "--eval-episodes", "1", "--workers", "2", "--run-dir",
               str(sandbox / "run")]
    # Ctrl-C as at a terminal: a test session started in the background (`cmd &` without job control) hands its
    # children SIGINT ignored, and Python then never raises KeyboardInterrupt; restore the default in the child
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # boundary 0 done: chunk 0 trains on the workers
    children = interrupt_when(process, (sandbox / "run" / "checkpoint.pt").exists)
    started = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and time.monotonic() - started < 15
    assert err.strip().splitlines()[-1].startswith("interrupted: rerun the same command to resume")
    assert "Traceback" not in err
    time.sleep(1.0)
    assert not still_running(children)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "final average return per agent" in finished.stdout

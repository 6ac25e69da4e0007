"""How a run ends when something else ends it: SIGKILL of its main process leaves no worker behind, SIGTERM stops it
like Ctrl-C (the series too), a worker's death at any phase ends the command with one line and exit 1, and so does
a full disk, with what was written before intact."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from dials_lib.__main__ import main as cli_main
from dials_lib.files import atomic_write, describe_os_error
from dials_lib.training import checkpoints
from dials_lib.training.checkpoints import read_header
from dials_lib.training.process_tree import Terminated
from tests.faults import default_signals, still_running_after, wait_until
from tests.leftovers import adopt_orphans, running_descendants

REPOSITORY = Path(__file__).parents[1]
ENDED_WITHIN_S = 60.0
"""Limit for a run's processes to end after its main process did (about a second on a quiet machine)."""


def cli(run_dir: Path, simulator: str, *extra: str) -> list[str]:
    """A DIALS-family run of 4 traffic agents on 2 workers, long enough never to finish during a test."""
    return [sys.executable, "-m", "dials_lib", "train", "--env", "traffic", "--agents", "4", "--simulator",
            simulator, "--steps", "25600", "--chunk-steps", "1280", "--eval-episodes", "1", "--workers", "2",
            "--run-dir", str(run_dir), *extra]


def start(command: list[str], **options: object) -> subprocess.Popen:
    """The command as a child with SIGINT and SIGTERM at their defaults, output captured as text unless `options`
    say otherwise."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **options}
    return subprocess.Popen(command, text=True, preexec_fn=default_signals, **options)


def loky_workers(process: subprocess.Popen) -> list[psutil.Process]:
    """The loky worker processes `process` started so far."""
    return [child for child in psutil.Process(process.pid).children(recursive=True)
            if "LokyProcess" in " ".join(child.cmdline())]


def training_agents(run_dir: Path, process: subprocess.Popen) -> bool:
    """Boundary 0 is checkpointed and a worker process is up: chunk 0 trains."""
    return (run_dir / "checkpoint.pt").exists() and bool(loky_workers(process))


def training_aips(run_dir: Path, process: subprocess.Popen) -> bool:
    """The PPO states wait on disk and a worker process is up: the first AIP retraining runs."""
    return (run_dir / "ppo_states.spill.pt").exists() and bool(loky_workers(process))


PHASES = {"agent training": ("untrained-dials", training_agents), "AIP training": ("dials", training_aips)}


@pytest.mark.parametrize("phase", PHASES)
def test_no_process_of_a_run_outlives_its_main_process_killed_with_sigkill(tmp_path, phase):
    """SIGKILL of the main process (as the OOM killer, a kernel restart or `kill -9` end it): its workers and the
    resource trackers end too, instead of computing on as orphans."""
    simulator, ready = PHASES[phase]
    process = start(cli(tmp_path / "run", simulator), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: ready(tmp_path / "run", process), process)
    descendants = psutil.Process(process.pid).children(recursive=True)  # workers and resource trackers
    process.kill()
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert still_running_after(descendants, ENDED_WITHIN_S) == []


def test_sigterm_stops_a_run_like_ctrl_c_with_one_line_and_exit_143(tmp_path):
    """SIGTERM (what `timeout`, systemd and cluster schedulers send first) while the AIPs retrain: the workers are
    killed, one line names the run and the step it resumes from, exit status 143."""
    process = start(cli(tmp_path / "run", "dials"))
    wait_until(lambda: training_aips(tmp_path / "run", process), process)
    descendants = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err.strip().splitlines()[-1] == (f"terminated (SIGTERM): rerun the same command to resume "
                                            f"({tmp_path / 'run'} from step 0)")
    assert "Traceback" not in err
    assert still_running_after(descendants, ENDED_WITHIN_S) == []


def test_sigterm_stops_the_series_runner_with_exit_143(tmp_path):
    """The series' training (`--train-only`: runs side by side, a pool process and loky workers) stops on SIGTERM as
    on Ctrl-C: one line, exit 143, every process of it ended."""
    env = dict(os.environ, DIALS_RUNS_DIR=str(tmp_path / "runs"), DIALS_FIGURES_DIR=str(tmp_path / "figures"),
               DIALS_BUILD_DIR=str(tmp_path / "build"), MPLBACKEND="Agg")
    process = start([sys.executable, "-m", "dials_lib.series", "--preset", "smoke", "--train-only"], env=env)
    wait_until(lambda: bool(list((tmp_path / "runs").glob("smoke/*/checkpoint.pt")))
               and bool(psutil.Process(process.pid).children()), process)
    descendants = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("terminated (SIGTERM): rerun the same command to continue")
    assert "Traceback" not in err
    assert still_running_after(descendants, ENDED_WITHIN_S) == []


# ---- a worker's death, at any phase ------------------------------------------------------------------------------
DYING_CLI = """
import runpy, sys
sys.path.insert(0, {repository!r})  # whatever the working directory
from dials_lib.seeding import Purpose, derived_seed
from dials_lib.training import dials, group_tasks
from tests.faults import DieInWorker, register_by_value

register_by_value()
phase, record, argv = {phase!r}, {record!r}, {argv!r}
if phase == "AIP training":  # every AIP task dies in a worker process
    group_tasks.train_aips = DieInWorker(group_tasks.train_aips, None, os.getpid(), record)
elif phase == "agent training":  # chunk 0's task in a worker process dies
    chunk_0 = derived_seed(0, Purpose.IALS, 0)
    group_tasks.train_agents = DieInWorker(group_tasks.train_agents, chunk_0, os.getpid(), record)
else:  # the workers are killed while this process evaluates at the end of chunk 0 (they idle meanwhile)
    import psutil
    evaluate = dials.evaluate

    def evaluate_while_workers_die(*args, **kwargs):
        if args[-2] == derived_seed(0, Purpose.EVALUATION, 1):  # the evaluation of boundary 1
            workers = [p for p in psutil.Process().children() if "LokyProcess" in " ".join(p.cmdline())]
            for worker in workers:
                worker.kill()
            psutil.wait_procs(workers)
            open(record, "w").write(str(len(workers)))
        return evaluate(*args, **kwargs)

    dials.evaluate = evaluate_while_workers_die
sys.argv = ["dials_lib", *argv]
runpy.run_module("dials_lib", run_name="__main__", alter_sys=True)  # exactly `python -m dials_lib ...`
""".replace("import runpy, sys", "import os, runpy, sys")


@pytest.mark.parametrize(("phase", "simulator"), [("AIP training", "dials"), ("agent training", "untrained-dials"),
                                                  ("evaluation", "untrained-dials")])
def test_a_worker_death_ends_the_command_with_one_line_and_exit_1(tmp_path, phase, simulator):
    """A worker process that dies, whatever the run is doing: exit 1 with the one-line error, which names the last
    checkpoint only when there is one (none before the first AIP retraining), never an abort of the interpreter."""
    run_dir, record = tmp_path / "run", tmp_path / "died"
    argv = cli(run_dir, simulator)[3:]
    script = DYING_CLI.format(repository=str(REPOSITORY), phase=phase, record=str(record), argv=argv)
    process = start([sys.executable, "-c", script])
    _, err = process.communicate(timeout=600)
    assert record.exists(), err[-2000:]
    assert process.returncode == 1, err[-2000:]
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: a worker process died while "), err[-2000:]
    assert "terminate called" not in err and "Traceback" not in err
    if phase == "AIP training":
        assert "training AIPs at step 0 per agent" in lines[-1] and "No checkpoint was written yet" in lines[-1]
        assert not (run_dir / "checkpoint.pt").exists()
    else:
        assert "training agents" in lines[-1]
        assert f"Last checkpoint: {run_dir / 'checkpoint.pt'}" in lines[-1]
        saved = read_header(run_dir / "checkpoint.pt")["boundary"]
        assert f"(step {saved * 1280} per agent)" in lines[-1]
        if phase == "evaluation":  # boundary 1 was evaluated and checkpointed; chunk 1 found its workers dead
            assert saved == 1 and json.loads(record.read_text()) >= 1


# ---- a full disk -------------------------------------------------------------------------------------------------
def test_a_full_disk_ends_the_command_with_one_line_and_the_run_resumes_once_space_is_freed(tmp_path, monkeypatch,
                                                                                             capsys):
    """The disk fills up while the second checkpoint is written: one line naming the file and the error, exit 1; the
    first checkpoint and the records of it are intact, no temporary file is left, and the same command finishes the
    run with the rows of a run that never stopped."""
    argv = ["train", "--env", "traffic", "--simulator", "gs", "--steps", "512", "--chunk-steps", "256",
            "--eval-every", "256", "--eval-episodes", "1", "--workers", "1"]
    assert cli_main([*argv, "--run-dir", str(tmp_path / "uninterrupted")]) == 0
    fsync, synced = os.fsync, []

    def fsync_until_the_disk_is_full(fd: int) -> None:
        synced.append(fd)
        if len(synced) > 1:  # the first checkpoint fits, the second does not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(checkpoints.os, "fsync", fsync_until_the_disk_is_full)
    run_dir = tmp_path / "full"
    capsys.readouterr()
    assert cli_main([*argv, "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"error: {run_dir / 'checkpoint.pt'}: No space left on device (ENOSPC); what was "
                                "written before is intact: rerun the same command once this is fixed to resume"]
    assert read_header(run_dir / "checkpoint.pt")["boundary"] == 0
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 1
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()  # space freed
    assert cli_main([*argv, "--run-dir", str(run_dir)]) == 0
    finished, uninterrupted = (pd.read_csv(d / "metrics.csv").drop(columns="wall_time_s")
                               for d in (run_dir, tmp_path / "uninterrupted"))
    pd.testing.assert_frame_equal(finished, uninterrupted)


def test_a_write_error_names_the_file_asked_for_even_through_torch(tmp_path):
    """torch.save reports a full disk as a RuntimeError raised while handling the OSError: the error that comes out
    of `atomic_write` is that OSError, naming the file asked for, not the temporary one; and a SIGTERM or Ctrl-C that
    arrived during the write comes out as itself."""
    target = tmp_path / "state.pt"

    def torch_like_write(tmp: Path) -> None:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    def plain_write(tmp: Path) -> None:
        raise RuntimeError("not an OS error")

    def interrupted_write(tmp: Path) -> None:
        try:
            raise Terminated("signal SIGTERM")
        except KeyboardInterrupt:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    with pytest.raises(OSError) as err:
        atomic_write(target, torch_like_write)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert describe_os_error(err.value) == f"{target}: No space left on device (ENOSPC)"
    with pytest.raises(RuntimeError, match="not an OS error"):
        atomic_write(target, plain_write)
    with pytest.raises(Terminated):  # a signal during the write still stops the run as one
        atomic_write(target, interrupted_write)
    assert list(tmp_path.iterdir()) == []


# ---- the mechanisms themselves -----------------------------------------------------------------------------------
WATCHED_CHILD = """
import sys, time
sys.path.insert(0, {repository!r})
from dials_lib.training.process_tree import end_with_parent
end_with_parent({parent})
print("watching", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("starting_thread", ["main", "helper"])
def test_a_worker_ends_with_its_parent_not_with_the_thread_that_started_it(tmp_path, starting_thread):
    """A process that calls `end_with_parent` outlives the thread of its parent that started it (the kernel's
    parent-death signal fires then) and ends once the parent process ends, killed outright."""
    if not adopt_orphans():
        pytest.skip("needs Linux's child subreaper to see the orphan")
    parent_script = f"""
import subprocess, sys, threading, time
children = []
def spawn():
    child = subprocess.Popen([sys.executable, "-c", {WATCHED_CHILD!r}.format(repository={str(REPOSITORY)!r},
                             parent=__import__("os").getpid())], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "watching\\n"
    children.append(child)
if {starting_thread!r} == "helper":
    thread = threading.Thread(target=spawn)
    thread.start()
    thread.join()  # the thread that started the child has ended
else:
    spawn()
time.sleep(1.5)  # the child must still run: its parent process lives
print(children[0].pid, children[0].poll(), flush=True)
time.sleep(600)
"""
    parent = start([sys.executable, "-c", parent_script])
    line = parent.stdout.readline()
    assert line, parent.stderr.read()
    pid, status = line.split()
    assert status == "None"
    child = psutil.Process(int(pid))
    parent.kill()
    parent.wait(timeout=60)
    assert still_running_after([child], ENDED_WITHIN_S) == []


def test_end_with_parent_kills_a_process_whose_parent_is_already_gone():
    """The worker starts, but its parent died before the worker's initializer ran: it ends at once."""
    script = f"""
import sys
sys.path.insert(0, {str(REPOSITORY)!r})
from dials_lib.training.process_tree import end_with_parent
end_with_parent(1 if __import__("os").getppid() != 1 else 2)  # some process other than its parent
print("still alive", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL and "still alive" not in done.stdout


def test_the_session_end_check_sees_orphans_of_the_processes_a_test_starts():
    """`conftest.py` fails the session if a process started by a test outlives it; an orphan (its parent ended) counts:
    this process adopts it instead of init."""
    if not adopt_orphans():
        pytest.skip("needs Linux's child subreaper")
    shell = subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                           timeout=60)
    orphan = int(shell.stdout)
    try:
        assert orphan in [p.pid for p in running_descendants()]
    finally:
        psutil.Process(orphan).kill()
    assert still_running_after([psutil.Process(orphan)], ENDED_WITHIN_S) == []

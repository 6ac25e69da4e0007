"""Command line: `python -m dials_lib train ...` runs (or resumes) one training run.

    python -m dials_lib train --env traffic --agents 4 --simulator dials --steps 200000 --seed 0 --workers 2
    python -m dials_lib train --env traffic --agents 4 --simulator gs --steps 200000 --seeds 0,1,2

Rerunning the same command resumes an interrupted run from its last checkpoint (or prints the records of a
finished one). `--seeds` trains several runs that differ only in seed as one stacked batch (one run directory per
seed, each with exactly the numbers of that seed trained alone). Torch runs single-threaded. The notebook series
has its own entry point: `python -m dials_lib.series`.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys

from dials_lib.hyperparameters import TRAINABLE_ENVS
from dials_lib.training.run_config import SIMULATORS, RunConfig, seed_configs


def _seed_list(text: str) -> list[int]:
    """The value of --seeds: comma-separated non-negative integers."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2; got {text!r}") from None


def _one_seed(text: str) -> int:
    """The value of --seed: one integer (a list gets a pointer to --seeds)."""
    try:
        return int(text)
    except ValueError:
        hint = ": for several seeds use --seeds (e.g. --seeds 0,1,2)" if "," in text else ""
        raise argparse.ArgumentTypeError(f"expected one integer, got {text!r}{hint}") from None


FLAGS = {
    "total_timesteps": "--steps", "n_agents": "--agents", "retrain_every (F)": "--F", "retrain_every": "--F",
    "eval_every": "--eval-every", "eval_episodes": "--eval-episodes", "n_workers": "--workers",
    "agents_per_worker": "--agents-per-worker", "chunk_steps": "--chunk-steps", "run_dir": "--run-dir",
}
"""RunConfig's fields, as its error messages name them, and the flags of `train` that set them."""
LEADING_FLAGS = {"seeds": "--seeds", "seed": "--seed", "env": "--env", "simulator": "--simulator"}
"""Fields whose names are also English words ('seeds are hashed ...'): replaced only where a message starts."""


def in_flags(message: str, several_seeds: bool = False) -> str:
    """An error message of the run's configuration with each field name replaced by the flag the user typed."""
    fields = "|".join(re.escape(name) for name in sorted(FLAGS, key=len, reverse=True))
    message = re.sub(rf"(?<![\w-])({fields})(?!\w)", lambda match: FLAGS[match.group(1)], message)
    leading = dict(LEADING_FLAGS, seed="--seeds" if several_seeds else "--seed")
    return re.sub(rf"^({'|'.join(leading)})\b", lambda match: leading[match.group(1)], message)


def _unrecognized(arguments: list[str], parser: argparse.ArgumentParser) -> str:
    """The error for arguments `parser` does not know, with the closest flag for a mistyped one."""
    import difflib

    flags = [flag for action in parser._actions for flag in action.option_strings]
    hints = []
    for argument in arguments:
        close = difflib.get_close_matches(argument.split("=")[0], flags, n=1) if argument.startswith("--") else []
        if close:
            hints.append(f"{argument.split('=')[0]}: did you mean {close[0]}?")
    return f"unrecognized arguments: {' '.join(arguments)}" + (f" ({'; '.join(hints)})" if hints else "")


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command line's parser and its `train` subcommand's (flags must be typed in full: no prefixes)."""
    parser = argparse.ArgumentParser(prog="python -m dials_lib", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    train = commands.add_parser(
        "train", allow_abbrev=False,
        help="train agents on the GS, with DIALS or with untrained-DIALS (resumes an interrupted run)",
        description="Train agents and write a run directory (config.json, metrics.csv, runtime.json, memory.json, "
        "checkpoint.pt). Rerun the same command to resume after an interruption.")
    train.add_argument("--env", required=True, choices=TRAINABLE_ENVS,
                       help="environment (the paper's traffic or warehouse, or a variant of traffic)")
    train.add_argument("--agents", type=int, default=4, help="number of agents, a square number (default 4)")
    train.add_argument("--simulator", default="dials", choices=SIMULATORS,
                       help="what the agents train on (default dials)")
    train.add_argument("--steps", type=int, default=None,
                       help="training steps per agent (default: the paper's 4,000,000)")
    seeds = train.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_one_seed, default=0, help="run seed (default 0)")
    seeds.add_argument("--seeds", type=_seed_list, default=None,
                       help="several run seeds, comma-separated (e.g. 0,1,2), trained together as one stacked batch")
    train.add_argument("--workers", type=int, default=2, help="parallel joblib workers (default 2)")
    train.add_argument("--agents-per-worker", type=int, default=None,
                       help="agents per worker task; must divide --agents (default: split evenly over --workers)")
    train.add_argument("--F", dest="retrain_every", type=int, default=None,
                       help="steps per agent between AIP retrainings (default: the paper's F)")
    train.add_argument("--eval-every", type=int, default=None,
                       help="steps per agent between GS evaluations (default: a twentieth of the run)")
    train.add_argument("--eval-episodes", type=int, default=5, help="GS episodes per evaluation (default 5)")
    train.add_argument("--chunk-steps", type=int, default=None,
                       help="steps per agent per worker call, a multiple of PPO's buffer size (default >= 10,000)")
    train.add_argument("--run-dir", default=None, help="run directory (default: runs/<name derived from the config>); "
                       "with --seeds it must contain {seed}")
    progress = train.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show the progress bar")
    progress.add_argument("--no-progress", dest="progress", action="store_false",
                          help="never show the progress bar (default: only on a terminal)")
    return parser, train


def _extending(config: RunConfig, seeds: list[int], eval_every_given: bool) -> RunConfig:
    """`config`, ready to extend the shorter runs of it that sit in their default directories: each seed's shorter
    run is copied as the start of the longer one (it stays as it is), and without --eval-every the longer run keeps
    the shorter one's evaluation interval, so that it is that run continued."""
    from dials_lib.training.extension import copy_run, shorter_sibling

    found = shorter_sibling(seed_configs(config, seeds)[0], any_eval_every=not eval_every_given)
    if found is not None:
        config = dataclasses.replace(config, eval_every=found[1].eval_every)
    for seed_config in seed_configs(config, seeds):
        sibling = shorter_sibling(seed_config)
        if sibling is not None:
            print(f"extending {sibling[0].name} to {seed_config.total_timesteps:,} steps per agent in "
                  f"{seed_config.directory()}", flush=True)
            copy_run(sibling[0], seed_config.directory())
    return config


def _stop_after_interrupt(configs: list[RunConfig], interrupt: KeyboardInterrupt) -> None:
    """Ctrl-C or SIGTERM: stop the worker processes, say where each run can resume, and exit at once with status 130
    or 143 (the threads still inside a call are not waited for: the checkpoint on disk is what the next start
    resumes)."""
    from dials_lib.training.checkpoints import read_header
    from dials_lib.training.process_tree import exit_now, kill_descendants, stop_status
    from dials_lib.training.run_records import CHECKPOINT

    kill_descendants()  # loky's workers
    places = []
    for config in configs:
        header = read_header(config.directory() / CHECKPOINT)
        step = config.schedule().starts[header["boundary"]] if header else 0
        places.append(f"{config.directory()} from step {step:,}")
    how, status = stop_status(interrupt)
    print(f"{how}: rerun the same command to resume ({'; '.join(places)})", file=sys.stderr, flush=True)
    exit_now(status)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser, train_parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        train_parser.error(_unrecognized(unknown, train_parser))
    try:
        config = RunConfig(
            env=args.env, n_agents=args.agents, simulator=args.simulator, total_timesteps=args.steps,
            retrain_every=args.retrain_every, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
            seed=args.seed, n_workers=args.workers, agents_per_worker=args.agents_per_worker,
            chunk_steps=args.chunk_steps, run_dir=args.run_dir,
        )
        seeds = [args.seed] if args.seeds is None else args.seeds
        config = _extending(config, seeds, eval_every_given=args.eval_every is not None)
    except ValueError as err:
        train_parser.error(in_flags(str(err), several_seeds=args.seeds is not None))
    from dials_lib.files import describe_os_error
    from dials_lib.training.priority import long_training
    from dials_lib.training.runner import WorkerDiedError, train_seeds

    try:
        with long_training():  # started with `nice`: niced against other terminals too
            results = train_seeds(config, seeds, progress=args.progress)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM
        _stop_after_interrupt(seed_configs(config, seeds), interrupt)
    except ValueError as err:  # what the user can fix: the run directory, its files, the config
        print(f"error: {in_flags(str(err), several_seeds=args.seeds is not None)}", file=sys.stderr)
        return 2
    except WorkerDiedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a read-only folder: every file is written whole or not at all
        print(f"error: {describe_os_error(err)}; what was written before is intact: rerun the same command once "
              "this is fixed to resume", file=sys.stderr)
        return 1
    for result in results:
        last = result.metrics.iloc[-1]
        print(f"run directory: {result.run_dir}")
        print(f"final average return per agent: {last['mean_return']:.3f} at step {int(last['timestep'])}")
    return 0


if __name__ == "__main__":
    from dials_lib.training.process_tree import exit_process

    exit_process(main())

"""Algorithm 1 of the paper, top to bottom: DIALS, untrained-DIALS and GS training in one loop.

A run walks through the chunk boundaries of its `Schedule` (`dials_lib.training.run_config`). At boundary c:
1. At a retraining point (DIALS only): run the current joint policy on the GS for `aip.dataset_steps` steps
   (Algorithm 2), then retrain every group's AIPs on its agents' slice of that data, warm-started, one task per
   group. Timed as data collection and AIP training (the paper's Tables 1 and 2).
2. At an evaluation point: run the joint policy on the GS (`evaluation.evaluate`: average return, domain
   metrics, AIP cross-entropy on those fresh GS trajectories); a row of metrics.csv.
3. Checkpoint the run state and write the records (`dials_lib.training.run_records`). A retraining point also
   checkpoints right after the AIPs are trained (the state marked `retrained`), so that an interruption during the
   evaluation that follows does not cost the data collection and AIP training: the run resumes at the evaluation,
   with exactly the numbers of an uninterrupted run (the evaluation draws from its boundary's own counters).
Then chunk c runs: every group of agents trains with PPO on its simulator (Algorithm 3), one task per group,
in parallel. Timed as agents training.

GS training is the same loop with one group holding every agent, whose simulator is the GS; its schedule has no
retraining points. Untrained-DIALS is DIALS whose schedule has none either: its AIPs keep their initial weights.
Evaluation and data collection act with the concatenated states of all groups (`ppo.concat_states`,
`PolicyActor`), sampling from counters of their own per boundary (`seeding.boundary_counter`), so that what a
boundary samples does not depend on what earlier boundaries did.

Several seeds at once (`train_seeds`): runs that differ only in seed train as one batch. At every boundary each
run collects its own data, retrains its AIPs (the tasks of all runs in one parallel map), evaluates and checkpoints
into its own run directory; in a chunk, group g of every run trains as one stacked PPO group of runs x agents on
one GS batched over a copy per run (or one IALS batch holding every run's regions). Per-agent randomness and a
per-agent Adam step (`ppo.PPOGroup`) make each run's numbers exactly those it gets when trained alone, so resume,
records and analysis see ordinary runs.

Randomness: every agent's streams (initial weights, actions, minibatch order, AIP initialisation and minibatch
order, IALS influence and noise) come from (run seed, agent id, stream), and the GS episodes of each purpose and
boundary from `derived_seed(seed, purpose, boundary)` (all in `dials_lib.seeding`), and Adam steps every agent's
parameters as tensors of their own. So results depend neither on the number of worker processes nor on where a
task runs, nor on how the agents are grouped, as long as every group holds at least two agents (torch's batched
matrix product takes another path for a single matrix, which rounds the critic's one output differently).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np

from dials_lib.envs import get_spec, make_global
from dials_lib.learning.controllers import PolicyController
from dials_lib.learning.influence import (
    InfluenceData,
    collect_compact_dataset,
    concat_predictor_states,
    slice_predictor_state,
)
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo import concat_states, mean_episode_return, slice_state
from dials_lib.seeding import Purpose, boundary_counter, derived_seed
from dials_lib.training import group_tasks as tasks
from dials_lib.training.evaluation import evaluate
from dials_lib.training.memory import RunMemory, TreeMemorySampler, release_free_memory
from dials_lib.training.parallel import WorkerLostError, map_tasks, single_threaded
from dials_lib.training.progress import RunProgress
from dials_lib.training.run_config import RunConfig, seed_configs
from dials_lib.training.run_records import RUNTIME_PARTS, RunClock, RunDirectory, RunResult, WorkerDiedError
from dials_lib.training.trained_agents import joint_policies, joint_predictors


def train(config: RunConfig, progress: bool | None = None) -> RunResult:
    """Run (or resume, or read back) the training run `config`; progress bar on a terminal unless told."""
    return train_seeds(config, [config.seed], progress)[0]


def train_seeds(config: RunConfig, seeds: Sequence[int], progress: bool | None = None) -> list[RunResult]:
    """The runs of `config` with each of `seeds`, trained as one stacked batch; each has its own run directory and
    exactly the records it would have alone. Finished runs are read back, interrupted ones resume (runs whose last
    checkpoints are at different boundaries train as separate batches). Torch runs single-threaded throughout, as
    in the workers, so the numbers do not depend on the caller's thread setting (restored on return)."""
    return train_batch(seed_configs(config, seeds), progress)


def train_batch(configs: Sequence[RunConfig], progress: bool | None = None) -> list[RunResult]:
    """`train_seeds` for runs given one config each (they must differ only in seed and run directory)."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs must hold at least one run")
    for other in configs[1:]:
        if dataclasses.replace(other, seed=configs[0].seed, run_dir=configs[0].run_dir) != configs[0]:
            raise ValueError(f"the runs of a batch must differ only in seed; {other.name()} differs from "
                             f"{configs[0].name()} in more")
    with single_threaded():
        return _train_batch(configs, progress)


def is_finished(config: RunConfig) -> bool:
    """Whether the run `config` has a checkpoint at its last boundary (then `train` only reads it back)."""
    state = RunDirectory(config).load_checkpoint()
    return state is not None and state["boundary"] == config.schedule().n_chunks


def _train_batch(configs: list[RunConfig], progress: bool | None) -> list[RunResult]:
    config = configs[0]
    directories = [RunDirectory(c) for c in configs]
    with ExitStack() as locks:
        for directory in directories:
            locks.enter_context(directory.locked())
        states = [directory.load_checkpoint() for directory in directories]
        n_chunks = config.schedule().n_chunks
        batches: dict[tuple[int, bool, bool], list[int]] = {}
        for i, state in enumerate(states):
            if state is None:
                batches.setdefault((0, False, False), []).append(i)
            elif state["boundary"] < n_chunks:
                phase = (state["boundary"], state["prepared"], state.get("retrained", False))
                batches.setdefault(phase, []).append(i)
            else:  # finished: its records are rewritten from the checkpoint, whatever a kill left of them
                directories[i].write_records(state)
        for members in batches.values():
            Run([configs[i] for i in members], [directories[i] for i in members], [states[i] for i in members]
                ).run(progress)
        return [directory.result() for directory in directories]


class Run:
    """A batch of runs that differ only in seed (often one), in the main process: every run's groups' PPO and AIP
    states, its records and its directory; one clock."""

    def __init__(self, configs: list[RunConfig], directories: list[RunDirectory],
                 states: list[dict[str, Any] | None]) -> None:
        self.configs, self.directories = configs, directories
        config = self.config = configs[0]  # every setting but the seed is shared
        self.seeds = tuple(c.seed for c in configs)
        self.hp, self.spec, self.schedule = config.hp, get_spec(config.env), config.schedule()
        on_gs = config.simulator == "gs"
        self.groups = [list(range(config.n_agents))] if on_gs else config.groups()
        self.states = [self.regrouped(state) if state is not None else self.initial_state(seed, with_aips=not on_gs)
                       for seed, state in zip(self.seeds, states, strict=True)]
        # where group g of every run trains in chunk c: the GS for GS training, its IALS for (untrained-)DIALS
        self.simulator: Callable[[int, int], tasks.OnGlobal | tasks.OnIALS] = (
            (lambda c, g: tasks.OnGlobal(self.chunk_seeds(Purpose.GS_TRAINING, c))) if on_gs else
            (lambda c, g: tasks.OnIALS(concat_predictor_states([state["groups"][g]["aip"] for state in self.states]),
                                       self.chunk_seeds(Purpose.IALS, c))))
        self.memory = RunMemory()

    def initial_state(self, seed: int, with_aips: bool) -> dict[str, Any]:
        """Boundary 0 of a new run: every agent's initial PPO (and AIP) state, sliced into the groups."""
        all_ids = list(range(self.config.n_agents))
        ppo = tasks.new_learners(self.hp, all_ids, seed, self.config.anneal_timesteps).state_dict()
        aip = tasks.new_predictors(self.hp, all_ids, seed).state_dict() if with_aips else None
        return {"boundary": 0, "prepared": False, "groups": self.split(ppo, aip), "rows": [], "sessions": 0,
                "runtime": dict.fromkeys(RUNTIME_PARTS, 0.0), "memory": {}, "train_return": math.nan}

    def regrouped(self, state: dict[str, Any]) -> dict[str, Any]:
        """A checkpointed state with its agents split into this run's groups (the grouping does not change the
        numbers, so a run may resume with another `n_workers` than it started with)."""
        sizes = [len(group["ppo"]["agent_ids"]) for group in state["groups"]]
        if sizes == [len(ids) for ids in self.groups]:
            return state
        aips = [group["aip"] for group in state["groups"]]
        return {**state, "groups": self.split(concat_states([group["ppo"] for group in state["groups"]]),
                                              concat_predictor_states(aips) if aips[0] is not None else None)}

    def split(self, ppo: dict[str, Any], aip: dict[str, Any] | None) -> list[dict[str, Any]]:
        """One run's PPO (and AIP) state of all its agents, split into this run's groups."""
        return [{"ppo": slice_state(ppo, ids[0], ids[-1] + 1),
                 "aip": slice_predictor_state(aip, ids[0], ids[-1] + 1) if aip is not None else None}
                for ids in self.groups]

    # ---- Algorithm 1 --------------------------------------------------------------------------------------
    def run(self, progress: bool | None) -> None:
        """Train from the last checkpoint (or the start) to the end; write all records."""
        n, schedule, c = self.config.n_agents * len(self.seeds), self.schedule, self.states[0]["boundary"]
        for state in self.states:
            state["sessions"] += 1
            state["runtime"]["stacked_runs"] = len(self.seeds)
        self.clock = RunClock([state["runtime"] for state in self.states])
        name = self.config.name() if len(self.seeds) == 1 else f"{self.config.name()} (+{len(self.seeds) - 1} seeds)"
        self.progress = RunProgress(name, n * schedule.steps_per_agent, n * schedule.starts[c], self.groups,
                                    len(self.seeds), progress)
        self._aip_epochs: Callable[[int], None] = lambda epochs: None
        try:
            with TreeMemorySampler(own=self.memory.main) as self.memory.tree, \
                    tasks.progress_reports(self.progress.advance, lambda ids, epochs: self._aip_epochs(epochs)):
                if not self.states[0]["prepared"]:
                    self.boundary(c)
                while c < schedule.n_chunks:
                    start = time.perf_counter()
                    self.doing(f"training agents (chunk {c + 1} of {schedule.n_chunks})")
                    with self.clock.timed("agents_training_s"):
                        self.train_chunk(c)
                    steps = n * schedule.chunk_length(c)
                    self.doing(f"{steps / (time.perf_counter() - start):,.0f} agent-steps/s")
                    c += 1
                    self.boundary(c)
        finally:
            self.progress.close()

    def doing(self, what: str) -> None:
        """Say on the progress bar what the run is doing now (nothing when the bar is off)."""
        self.progress.doing(what)

    def boundary(self, c: int) -> None:
        """Retrain the AIPs where the schedule says so (then checkpoint: the AIPs are what took long), evaluate
        where it says so, then checkpoint every run."""
        if self.schedule.retrain[c] and not self.states[0].get("retrained", False):
            steps, n_runs = self.hp.aip.dataset_steps, len(self.states)
            with self.clock.timed("data_collection_s"), \
                    self.progress.phase("collecting GS data", steps * n_runs, "steps") as reached:
                data = [self.collect_gs_data(r, c, lambda done, r=r: reached(r * steps + done))
                        for r in range(n_runs)]
            with self.clock.timed("aip_training_s"), \
                    self.progress.phase("training AIPs", self.hp.aip.epochs, "epochs") as self._aip_epochs:
                self.retrain_aips(c, data)
            self._aip_epochs = lambda epochs: None
            self.checkpoint(c, prepared=False, retrained=True)
        if self.schedule.evaluate[c]:
            with self.clock.timed("evaluation_s"), self.progress.phase(
                    f"evaluating on the GS ({self.config.eval_episodes} episodes per run)", len(self.states),
                    "runs") as reached:
                for r in range(len(self.states)):
                    self.evaluate(r, c)
                    reached(r + 1)
        self.checkpoint(c, prepared=True, retrained=False)
        release_free_memory()  # the boundary's GS data and evaluation buffers are gone: return their pages

    def checkpoint(self, c: int, prepared: bool, retrained: bool) -> None:
        """Checkpoint every run at boundary c: `prepared` once the boundary's work is done (the next chunk may
        train), `retrained` when only its AIPs are (a resume then starts at the evaluation)."""
        memory = self.memory.records(self.states[0]["memory"])
        for r, (state, directory) in enumerate(zip(self.states, self.directories, strict=True)):
            state["boundary"], state["prepared"], state["retrained"] = c, prepared, retrained
            state["runtime"]["total_s"] = self.clock.elapsed(r)
            state["memory"] = memory
            directory.save(state)

    def collect_gs_data(self, r: int, c: int, reached: Callable[[int], None] | None = None) -> InfluenceData:
        """Algorithm 2 for run r: its joint policy on the GS for `aip.dataset_steps` steps (compact arrays);
        `reached` is told the steps collected so far after every episode."""
        sim = make_global(self.config.env, n_agents=self.config.n_agents,
                          seed=derived_seed(self.seeds[r], Purpose.DATA_COLLECTION, c))
        return collect_compact_dataset(sim, PolicyController(self.joint_actor(r, Purpose.DATA_COLLECTION, c)),
                                       self.hp.aip.dataset_steps, reached)

    def retrain_aips(self, c: int, data: list[InfluenceData]) -> None:
        """Every group's AIPs trained on its agents' slice of its run's GS data, while the PPO states wait on disk."""
        round_index = sum(self.schedule.retrain[:c])
        jobs = [tasks.TrainAIPs(self.hp, ids, self.seeds,
                                concat_predictor_states([state["groups"][g]["aip"] for state in self.states]),
                                InfluenceData.concat([run_data.agent_range(ids[0], ids[-1] + 1) for run_data in data]),
                                round_index)
                for g, ids in enumerate(self.groups)]
        del data
        with ExitStack() as on_disk:
            for state, directory in zip(self.states, self.directories, strict=True):
                on_disk.enter_context(directory.ppo_states_on_disk(state["groups"]))
            for g, result in self.map(tasks.train_aips, jobs, "training AIPs", c, list(range(len(self.groups)))):
                size = len(self.groups[g])
                for r, state in enumerate(self.states):
                    state["groups"][g]["aip"] = slice_predictor_state(result["aip_state"], r * size, (r + 1) * size)

    def evaluate(self, r: int, c: int) -> None:
        """A row of run r's metrics.csv: its joint policy on fresh GS episodes."""
        state, seed = self.states[r], self.seeds[r]
        predictor = joint_predictors(self.hp, seed, state["groups"])
        row = evaluate(self.config.env, self.joint_actor(r, Purpose.EVALUATION, c), self.config.eval_episodes,
                       derived_seed(seed, Purpose.EVALUATION, c), predictor)
        row.update(timestep=self.schedule.starts[c], wall_time_s=self.clock.elapsed(r),
                   train_return=state["train_return"])
        state["rows"].append(row)

    def train_chunk(self, c: int) -> None:
        """Chunk c: group g of every run trains with PPO on its simulator (Algorithm 3 for DIALS), one stacked task
        per group."""
        jobs = [tasks.TrainAgents(self.hp, ids, self.seeds, self.config.anneal_timesteps,
                                  concat_states([state["groups"][g]["ppo"] for state in self.states]),
                                  self.simulator(c, g), self.schedule.chunk_length(c))
                for g, ids in enumerate(self.groups)]
        returns: list[list[Any]] = [[None] * len(self.groups) for _ in self.states]
        self.progress.start_chunk()
        for g, result in self.map(tasks.train_agents, jobs, "training agents", c, list(range(len(self.groups)))):
            size = len(self.groups[g])
            self.progress.advance(tuple(self.groups[g]), self.schedule.chunk_length(c))  # the rest of its chunk
            for r, state in enumerate(self.states):
                state["groups"][g]["ppo"] = slice_state(result["ppo_state"], r * size, (r + 1) * size)
                returns[r][g] = result["metrics"][r]["episode_returns"]
        # every agent's return per episode, the groups side by side: the same mean however the agents were grouped
        for state, run_returns in zip(self.states, returns, strict=True):
            state["train_return"] = mean_episode_return(np.concatenate(run_returns, axis=1))

    # ---- helpers ------------------------------------------------------------------------------------------
    def chunk_seeds(self, purpose: Purpose, c: int) -> tuple[int, ...]:
        """Each run's seed of the simulator for `purpose` in chunk c."""
        return tuple(derived_seed(seed, purpose, c) for seed in self.seeds)

    def joint_actor(self, r: int, purpose: Purpose, c: int) -> PolicyActor:
        """Every agent's current policy of run r, to act on the GS for `purpose` at boundary c: its samples come
        from the boundary's own counters, so a boundary's evaluation is the same whether or not the run collects
        data there or evaluated before (a shorter run is a prefix of a longer one)."""
        actor = joint_policies(self.hp, self.states[r]["groups"])
        actor.eval_count[:] = boundary_counter(purpose, c)
        return actor

    def map(self, function: Callable[[Any], dict[str, Any]], jobs: list[Any], what: str, c: int,
            job_groups: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """The tasks on the run's workers (job i for group `job_groups[i]`); yields (job index, result) as each
        arrives, to be taken in at once: `map_tasks` lets go of a task when it is handed out, so this process holds
        one task's old and new state at a time, not every task's."""
        reports = []
        try:
            for i, report in map_tasks(function, jobs, self.config.n_workers):
                reports.append({"pid": report.pid, "peak_rss_mb": report.peak_rss_mb,
                                "peak_pss_mb": report.peak_pss_mb})
                self.clock.add_tasks(report.seconds, report.cpu_seconds)
                yield i, report.value
        except WorkerLostError as err:
            raise WorkerDiedError.of_call(f"idle, before {what}" if err.idle else what, self.schedule.starts[c], c,
                                          [self.groups[job_groups[i]] for i in err.pending],
                                          self.directories[0].checkpoint_path,
                                          self.schedule.starts[self.states[0]["boundary"]]) from err.__cause__
        self.memory.add_call(reports)

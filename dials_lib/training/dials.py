"""Algorithm 1 of the paper, top to bottom: DIALS, untrained-DIALS and GS training in one loop.

A run walks through the chunk boundaries of its `Schedule` (`dials_lib.training.run_config`). At boundary c:
1. Every F steps per agent (`retrain_every`; DIALS only): run the current joint policy on the GS for
   `aip.dataset_steps` steps (Algorithm 2), then retrain every group's AIPs on its agents' slice of that data,
   warm-started, one task per group; checkpoint (an interruption during the evaluation that follows resumes at
   the evaluation, with the numbers of an uninterrupted run). A stop during the retraining loses little: each
   group's new AIPs are kept as they come, and a task still training carries on from its last snapshot.
2. Every evaluation period (`eval_every`): run the joint policy on the GS (`evaluation.evaluate`); a row of
   metrics.csv.
3. Checkpoint the run state (`run_state.RunState`) and write the records (`run_records.RunDirectory`).
Then chunk c runs: every group of agents trains with PPO on its simulator (Algorithm 3), one task per group, in
parallel.

GS training is the same loop with one group holding every agent, whose simulator is the GS, and no retraining.
Untrained-DIALS is DIALS without retraining: its AIPs keep their initial weights.

Several seeds at once: runs that differ only in seed train as one batch (`run_stack.RunStack` owns that layout).
At every boundary each run collects its own data, evaluates and checkpoints into its own run directory; the AIPs
of group g of every run retrain as one task, and in a chunk group g of every run trains as one stacked PPO group.
Each run's numbers are exactly those it gets when trained alone (docs/design.md, "Randomness"). Where training
starts, resumes and is dispatched: `dials_lib.training.runner`; its bookkeeping: `run_session.RunSession`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import numpy as np

from dials_lib.envs import close_simulator, make_global
from dials_lib.learning.controllers import PolicyController
from dials_lib.learning.influence import InfluenceData, collect_compact_dataset
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo_loop import mean_episode_return
from dials_lib.seeding import Purpose, boundary_counter, derived_seed
from dials_lib.training import group_tasks as tasks
from dials_lib.training.agent_axis import Kind, cut
from dials_lib.training.evaluation import evaluate
from dials_lib.training.memory import release_free_memory
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import FinishedAIPs, RunDirectory
from dials_lib.training.run_session import RunSession
from dials_lib.training.run_stack import RunStack
from dials_lib.training.run_state import RunState, split_groups
from dials_lib.training.trained_agents import joint_policies, joint_predictors


class Run:
    """A batch of runs that differ only in seed (often one), in the main process: every run's state and directory."""

    def __init__(self, configs: list[RunConfig], directories: list[RunDirectory],
                 states: list[RunState | None]) -> None:
        self.configs, self.directories = configs, directories
        self.config = config = configs[0]  # every setting but the seed is shared
        self.runs = RunStack(tuple(c.seed for c in configs))
        self.hp, self.schedule, self.on_gs = config.hp, config.schedule(), config.simulator == "gs"
        self.groups = [list(range(config.n_agents))] if self.on_gs else config.groups()
        self.states = [state.regrouped(self.groups) if state is not None else self.initial_state(seed)
                       for seed, state in zip(self.runs.seeds, states, strict=True)]

    def initial_state(self, seed: int) -> RunState:
        """Boundary 0 of a new run: every agent's initial PPO (and AIP) state, cut into the groups."""
        all_ids, one_run = list(range(self.config.n_agents)), RunStack((seed,))
        ppo = tasks.new_learners(self.hp, all_ids, one_run, self.config.anneal_timesteps).state_dict()
        aip = None if self.on_gs else tasks.new_predictors(self.hp, all_ids, one_run).state_dict()
        return RunState(split_groups(ppo, aip, self.groups))

    # ---- Algorithm 1 --------------------------------------------------------------------------------------
    def run(self, progress: bool | None) -> None:
        """Train from the last checkpoint (or the start) to the end; write all records."""
        self.session = RunSession(self.config, self.states, self.directories, self.groups, progress)
        c = self.states[0].boundary
        with self.session.open():
            if not self.states[0].prepared:
                self.boundary(c)
            while c < self.schedule.n_chunks:
                with self.session.chunk(c):
                    self.train_chunk(c)
                c += 1
                self.boundary(c)

    def boundary(self, c: int) -> None:
        """Retrain the AIPs if a multiple of F steps per agent was passed, evaluate if a multiple of the evaluation
        period was, then checkpoint every run. A retraining takes long: the runs are checkpointed before and after
        it, and each group's new AIPs are kept on disk as they come, so that a stop loses only the groups in
        training, and of those only the epochs since their last snapshot (a resume collects the GS data again, the
        same data, and trains those groups only, from their snapshots). The worker seconds of trainings finished or
        snapshotted before a stop are counted once, as if the retraining had not been stopped."""
        passed_f, passed_eval_period = self.schedule.retrain[c], self.schedule.evaluate[c]
        if passed_f and not self.states[0].retrained:
            if c > 0:  # the chunk before is kept (boundary 0 holds the initial state, made again on a resume)
                self.session.checkpoint(c, prepared=False, retrained=False)
            saved = [directory.partial_aips(c) for directory in self.directories]
            todo = [g for g, ids in enumerate(self.groups) if not all(tuple(ids) in part for part in saved)]
            for g in sorted(set(range(len(self.groups))) - set(todo)):  # finished before a stop: the same AIPs
                for state, part in zip(self.states, saved, strict=True):
                    state.groups[g].aip = part[tuple(self.groups[g])].aip
                done = saved[0][tuple(self.groups[g])]  # the task that trained them, counted once as if here
                self.session.clock.add_tasks(done.seconds, done.cpu_seconds)
            if todo:
                steps, n_runs = self.hp.aip.dataset_steps, self.runs.n_runs
                with self.session.phase("data_collection_s", "collecting GS data", steps * n_runs,
                                        "steps") as reached:
                    data = [self.collect_gs_data(r, c, lambda done, r=r: reached(r * steps + done))
                            for r in range(n_runs)]
                with self.session.aip_training():
                    self.retrain_aips(c, data, todo, saved)
            self.session.checkpoint(c, prepared=False, retrained=True)
            for directory in self.directories:
                directory.drop_partial_aips()
        if passed_eval_period:
            with self.session.phase("evaluation_s", f"evaluating on the GS ({self.config.eval_episodes} episodes "
                                    "per run)", self.runs.n_runs, "runs") as reached:
                for r in range(self.runs.n_runs):
                    self.evaluate(r, c)
                    reached(r + 1)
        self.session.checkpoint(c, prepared=True, retrained=False)
        release_free_memory()  # the boundary's GS data and evaluation buffers are gone: return their pages

    def collect_gs_data(self, r: int, c: int, reached: Callable[[int], None] | None = None) -> InfluenceData:
        """Algorithm 2 for run r: its joint policy on the GS for `aip.dataset_steps` steps (compact arrays);
        `reached` is told the steps collected so far after every episode."""
        sim = make_global(self.config.env, n_agents=self.config.n_agents,
                          seed=derived_seed(self.runs.seeds[r], Purpose.DATA_COLLECTION, c))
        try:
            return collect_compact_dataset(sim, PolicyController(self.joint_actor(r, Purpose.DATA_COLLECTION, c)),
                                           self.hp.aip.dataset_steps, reached)
        finally:
            close_simulator(sim)

    def retrain_aips(self, c: int, data: list[InfluenceData], todo: list[int] | None = None,
                     saved: list[dict[tuple[int, ...], Any]] | None = None) -> None:
        """The AIPs of the groups `todo` (default: all) trained on their agents' slice of their run's GS data, while
        the PPO states wait on disk; as each group finishes, its AIPs join each run's `saved` ones on disk
        (`RunDirectory.save_partial_aips`), so that a stop loses only the groups still training."""
        todo = list(range(len(self.groups))) if todo is None else todo
        saved = [{} for _ in self.directories] if saved is None else saved
        round_index = sum(self.schedule.retrain[:c])
        jobs = [tasks.TrainAIPs(self.hp, self.groups[g], self.runs, self.stacked("aip", g),
                                self.runs.join("data", [cut("data", part, self.groups[g][0], self.groups[g][-1] + 1)
                                                        for part in data]),
                                round_index, self.aip_snapshot(c, self.groups[g]))
                for g in todo]
        del data
        with ExitStack() as on_disk:
            for state, directory in zip(self.states, self.directories, strict=True):
                on_disk.enter_context(directory.ppo_states_on_disk(state.groups))
            for j, result in self.session.in_workers(tasks.train_aips, jobs, "training AIPs", c,
                                                     [self.groups[g] for g in todo]):
                ids = self.groups[todo[j]]
                self.session.clock.add_tasks(result["earlier_s"], result["earlier_cpu_s"])  # before a stop
                for state, part, directory, aip in zip(self.states, saved, self.directories,
                                                       self.runs.split("aip", result["aip_state"], len(ids)),
                                                       strict=True):
                    state.groups[todo[j]].aip = aip
                    part[tuple(ids)] = FinishedAIPs(aip, result["task_s"], result["task_cpu_s"])
                    directory.save_partial_aips(c, part)
                self.aip_snapshot(c, ids).path.unlink(missing_ok=True)  # kept as finished AIPs now

    def aip_snapshot(self, c: int, ids: list[int]) -> tasks.AIPSnapshot:
        """Where the retraining at boundary c of the group `ids` (of every run of the batch) keeps its state."""
        task = json.dumps([self.directories[0].identity, c, ids, list(self.runs.seeds)])
        return tasks.AIPSnapshot(self.directories[0].aip_snapshot_path(ids),
                                 hashlib.sha256(task.encode()).hexdigest()[:32], c, self.hp.aip.epochs)

    def evaluate(self, r: int, c: int) -> None:
        """A row of run r's metrics.csv: its joint policy on fresh GS episodes."""
        state, seed = self.states[r], self.runs.seeds[r]
        row = evaluate(self.config.env, self.joint_actor(r, Purpose.EVALUATION, c), self.config.eval_episodes,
                       derived_seed(seed, Purpose.EVALUATION, c), joint_predictors(self.hp, seed, state.groups))
        row.update(timestep=self.schedule.starts[c], wall_time_s=self.session.clock.elapsed(r),
                   train_return=state.train_return)
        state.rows.append(row)

    def train_chunk(self, c: int) -> None:
        """Chunk c: group g of every run trains with PPO on its simulator (Algorithm 3 for DIALS), one stacked task
        per group."""
        jobs = [tasks.TrainAgents(self.hp, ids, self.runs, self.config.anneal_timesteps, self.stacked("ppo", g),
                                  self.simulator(c, g), self.schedule.chunk_length(c))
                for g, ids in enumerate(self.groups)]
        returns: list[list[np.ndarray]] = [[np.empty(0)] * len(self.groups) for _ in self.states]
        for g, result in self.session.in_workers(tasks.train_agents, jobs, "training agents", c):
            self.session.progress.advance(tuple(self.groups[g]), self.schedule.chunk_length(c))  # the rest of it
            ppo_states = self.runs.split("ppo", result["ppo_state"], len(self.groups[g]))
            for r, (state, ppo) in enumerate(zip(self.states, ppo_states, strict=True)):
                state.groups[g].ppo = ppo
                returns[r][g] = result["metrics"][r]["episode_returns"]
        # every agent's return per episode, the groups side by side: the same mean however the agents were grouped
        for state, run_returns in zip(self.states, returns, strict=True):
            state.train_return = mean_episode_return(np.concatenate(run_returns, axis=1))

    # ---- what the steps above act with --------------------------------------------------------------------
    def simulator(self, c: int, g: int) -> tasks.OnGlobal | tasks.OnIALS:
        """Where group g of every run trains in chunk c: the GS (GS training), or its IALS driven by its AIPs."""
        if self.on_gs:
            return tasks.OnGlobal(self.chunk_seeds(Purpose.GS_TRAINING, c))
        return tasks.OnIALS(self.stacked("aip", g), self.chunk_seeds(Purpose.IALS, c))

    def stacked(self, kind: Kind, g: int) -> dict[str, Any]:
        """Group g's PPO ('ppo') or AIP ('aip') state of every run, stacked."""
        return self.runs.join(kind, [getattr(state.groups[g], kind) for state in self.states])

    def chunk_seeds(self, purpose: Purpose, c: int) -> RunStack:
        """Each run's seed of the simulator for `purpose` in chunk c."""
        return RunStack(tuple(derived_seed(seed, purpose, c) for seed in self.runs.seeds))

    def joint_actor(self, r: int, purpose: Purpose, c: int) -> PolicyActor:
        """Every agent's current policy of run r, to act on the GS for `purpose` at boundary c: its samples come
        from the boundary's own counters, so a boundary's evaluation is the same whether or not the run collects
        data there or evaluated before (a shorter run is a prefix of a longer one)."""
        actor = joint_policies(self.hp, self.states[r].groups)
        actor.eval_count[:] = boundary_counter(purpose, c)
        return actor


__all__ = ["Run"]

"""Algorithm 1 of the paper, top to bottom: DIALS, untrained-DIALS and GS training in one loop.

A run walks through the chunk boundaries of its `Schedule` (`dials_lib.training.run_config`). At boundary c:
1. At a retraining point (DIALS only): run the current joint policy on the GS for `aip.dataset_steps` steps
   (Algorithm 2), then retrain every group's AIPs on its agents' slice of that data, warm-started, one task per
   group. Timed as data collection and AIP training (the paper's Tables 1 and 2).
2. At an evaluation point: run the joint policy on the GS (`evaluation.evaluate`: average return, domain
   metrics, AIP cross-entropy on those fresh GS trajectories); a row of metrics.csv.
3. Checkpoint the run state and write the records (`dials_lib.training.run_records`).
Then chunk c runs: every group of agents trains with PPO on its simulator (Algorithm 3), one task per group,
in parallel. Timed as agents training.

GS training is the same loop with one group holding every agent, whose simulator is the GS; its schedule has no
retraining points. Untrained-DIALS is DIALS whose schedule has none either: its AIPs keep their initial weights.
Evaluation and data collection act with the concatenated states of all groups (`ppo.concat_states`,
`PolicyActor`), and hand the evaluation streams' counters back to the groups.

Randomness: every agent's streams (initial weights, actions, minibatch order, AIP initialisation and minibatch
order, IALS influence and noise) come from (run seed, agent id, stream), and the GS episodes of each purpose and
boundary from `derived_seed(seed, purpose, boundary)` (all in `dials_lib.seeding`). So results do not depend on
the number of worker processes or where a task runs; they depend on the grouping of agents only through the
rounding of stacked arithmetic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from tqdm import tqdm  # the text bar: tqdm.auto warns in kernels without ipywidgets

from dials_lib.envs import get_spec, make_global
from dials_lib.learning.controllers import PolicyController
from dials_lib.learning.influence import (
    InfluenceData,
    collect_compact_dataset,
    concat_predictor_states,
    slice_predictor_state,
)
from dials_lib.learning.policy_actor import PolicyActor
from dials_lib.learning.ppo import concat_states, slice_state
from dials_lib.seeding import Purpose, derived_seed
from dials_lib.training import group_tasks as tasks
from dials_lib.training.evaluation import evaluate
from dials_lib.training.memory import RunMemory, TreeMemorySampler, release_free_memory
from dials_lib.training.parallel import WorkerLostError, map_tasks
from dials_lib.training.run_config import RunConfig
from dials_lib.training.run_records import RUNTIME_PARTS, RunClock, RunDirectory, RunResult, WorkerDiedError


def train(config: RunConfig, progress: bool | None = None) -> RunResult:
    """Run (or resume, or read back) the training run `config`; progress bar on a terminal unless told."""
    directory = RunDirectory(config)
    state = directory.load_checkpoint()
    if state is not None and state["boundary"] == config.schedule().n_chunks:
        return directory.result()
    return Run(config, directory, state).run(progress)


class Run:
    """One run's state in the main process: every group's PPO and AIP states, the records, the clock."""

    def __init__(self, config: RunConfig, directory: RunDirectory, state: dict[str, Any] | None) -> None:
        self.config, self.hp, self.spec, self.directory = config, config.hp, get_spec(config.env), directory
        self.schedule = config.schedule()
        on_gs = config.simulator == "gs"
        self.groups = [list(range(config.n_agents))] if on_gs else config.groups()
        self.state = state if state is not None else self.initial_state(with_aips=not on_gs)
        # where each group trains in chunk c: the GS for GS training, its IALS for (untrained-)DIALS
        self.simulator: Callable[[int, dict[str, Any]], tasks.OnGlobal | tasks.OnIALS] = (
            (lambda c, group: tasks.OnGlobal(derived_seed(config.seed, Purpose.GS_TRAINING, c))) if on_gs else
            (lambda c, group: tasks.OnIALS(group["aip"], derived_seed(config.seed, Purpose.IALS, c))))
        self.memory = RunMemory()

    def initial_state(self, with_aips: bool) -> dict[str, Any]:
        """Boundary 0 of a new run: every agent's initial PPO (and AIP) state, sliced into the groups."""
        seed, all_ids = self.config.seed, list(range(self.config.n_agents))
        ppo = tasks.new_learners(self.hp, all_ids, seed, self.schedule.steps_per_agent).state_dict()
        aip = tasks.new_predictors(self.hp, all_ids, seed).state_dict() if with_aips else None
        groups = [{"ppo": slice_state(ppo, ids[0], ids[-1] + 1),
                   "aip": slice_predictor_state(aip, ids[0], ids[-1] + 1) if aip is not None else None}
                  for ids in self.groups]
        return {"boundary": 0, "prepared": False, "groups": groups, "rows": [], "sessions": 0,
                "runtime": dict.fromkeys(RUNTIME_PARTS, 0.0), "memory": {}, "train_return": math.nan}

    # ---- Algorithm 1 --------------------------------------------------------------------------------------
    def run(self, progress: bool | None) -> RunResult:
        """Train from the last checkpoint (or the start) to the end; write all records."""
        n, schedule, c = self.config.n_agents, self.schedule, self.state["boundary"]
        self.state["sessions"] += 1
        self.clock = RunClock(self.state["runtime"])
        bar = tqdm(total=n * schedule.steps_per_agent, initial=n * schedule.starts[c], unit="agent-step",
                   unit_scale=True, disable=None if progress is None else not progress, desc=self.config.name())
        try:
            with TreeMemorySampler(own=self.memory.main) as self.memory.tree:
                if not self.state["prepared"]:
                    self.boundary(0)
                while c < schedule.n_chunks:
                    start = time.perf_counter()
                    with self.clock.timed("agents_training_s"):
                        self.train_chunk(c)
                    steps = n * schedule.chunk_length(c)
                    bar.set_postfix_str(f"{steps / (time.perf_counter() - start):,.0f} agent-steps/s")
                    bar.update(steps)
                    c += 1
                    self.boundary(c)
        finally:
            bar.close()
        return self.directory.result()

    def boundary(self, c: int) -> None:
        """Retrain the AIPs and evaluate where the schedule says so, then checkpoint."""
        if self.schedule.retrain[c]:
            with self.clock.timed("data_collection_s"):
                data = self.collect_gs_data(c)
            with self.clock.timed("aip_training_s"):
                self.retrain_aips(c, data)
        if self.schedule.evaluate[c]:
            with self.clock.timed("evaluation_s"):
                self.evaluate(c)
        self.state["boundary"], self.state["prepared"] = c, True
        self.state["runtime"]["total_s"] = self.clock.elapsed()
        self.state["memory"] = self.memory.records(self.state["memory"])
        self.directory.save(self.state)
        release_free_memory()  # the boundary's GS data and evaluation buffers are gone: return their pages

    def collect_gs_data(self, c: int) -> InfluenceData:
        """Algorithm 2: the joint policy on the GS for `aip.dataset_steps` steps (compact arrays)."""
        sim = make_global(self.config.env, n_agents=self.config.n_agents,
                          seed=derived_seed(self.config.seed, Purpose.DATA_COLLECTION, c))
        actor = self.joint_actor()
        data = collect_compact_dataset(sim, PolicyController(actor), self.hp.aip.dataset_steps)
        self.keep_eval_counts(actor)
        return data

    def retrain_aips(self, c: int, data: InfluenceData) -> None:
        """Every group's AIPs trained on its agents' slice of the GS data, while the PPO states wait on disk."""
        groups, round_index = self.state["groups"], sum(self.schedule.retrain[:c])
        jobs = [tasks.TrainAIPs(self.hp, ids, self.config.seed, group["aip"], data.agent_range(ids[0], ids[-1] + 1),
                                round_index) for ids, group in zip(self.groups, groups, strict=True)]
        del data
        with self.directory.ppo_states_on_disk(groups):
            for i, result in self.map(tasks.train_aips, jobs, "training AIPs", c):
                groups[i]["aip"] = result["aip_state"]

    def evaluate(self, c: int) -> None:
        """A row of metrics.csv: the joint policy on fresh GS episodes."""
        aips = [group["aip"] for group in self.state["groups"]]
        predictor = None
        if aips[0] is not None:
            predictor = tasks.new_predictors(self.hp, list(range(self.config.n_agents)), self.config.seed)
            predictor.load_state_dict(concat_predictor_states(aips))
        actor = self.joint_actor()
        row = evaluate(self.config.env, actor, self.config.eval_episodes,
                       derived_seed(self.config.seed, Purpose.EVALUATION, c), predictor)
        self.keep_eval_counts(actor)
        row.update(timestep=self.schedule.starts[c], wall_time_s=self.clock.elapsed(),
                   train_return=self.state["train_return"])
        self.state["rows"].append(row)

    def train_chunk(self, c: int) -> None:
        """Chunk c: every group trains with PPO on its simulator (Algorithm 3 for DIALS)."""
        groups = self.state["groups"]
        jobs = [tasks.TrainAgents(self.hp, ids, self.config.seed, self.schedule.steps_per_agent, group["ppo"],
                                  self.simulator(c, group), self.schedule.chunk_length(c))
                for ids, group in zip(self.groups, groups, strict=True)]
        returns = [0.0] * len(groups)
        for i, result in self.map(tasks.train_agents, jobs, "training agents", c):
            groups[i]["ppo"], returns[i] = result["ppo_state"], result["metrics"]["train_return"]
        sizes = [len(ids) for ids in self.groups]  # one group: its own value, not an average's rounding of it
        self.state["train_return"] = returns[0] if len(returns) == 1 else float(np.average(returns, weights=sizes))

    # ---- helpers ------------------------------------------------------------------------------------------
    def joint_actor(self) -> PolicyActor:
        """Every agent's current policy, to act on the GS."""
        state = concat_states([group["ppo"] for group in self.state["groups"]])
        return PolicyActor.from_state(state, self.hp.policy, self.spec.obs_dim, self.spec.n_actions)

    def keep_eval_counts(self, actor: PolicyActor) -> None:
        """Hand the evaluation streams' advanced counters back to the groups' states."""
        for ids, group in zip(self.groups, self.state["groups"], strict=True):
            group["ppo"]["eval_count"] = actor.eval_count[ids[0] : ids[-1] + 1].copy()

    def map(self, function: Callable[[Any], dict[str, Any]], jobs: list[Any], what: str, c: int
            ) -> Iterator[tuple[int, dict[str, Any]]]:
        """One task per group on the run's workers; yields (group index, result) as each arrives, to be taken in
        at once: `map_tasks` lets go of a task when it is handed out, so this process holds one group's old and
        new state at a time, not every group's."""
        reports = []
        try:
            for i, report in map_tasks(function, jobs, self.config.n_workers):
                reports.append({"pid": report.pid, "peak_rss_mb": report.peak_rss_mb,
                                "peak_pss_mb": report.peak_pss_mb})
                self.clock.add_tasks(report.seconds, report.cpu_seconds)
                yield i, report.value
        except WorkerLostError as err:
            raise WorkerDiedError.of_call(what, self.schedule.starts[c], c, [self.groups[i] for i in err.pending],
                                          self.directory.checkpoint_path,
                                          self.schedule.starts[self.state["boundary"]]) from err.__cause__
        self.memory.add_call(reports)

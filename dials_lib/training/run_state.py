"""The state of one training run at a chunk boundary: what a checkpoint holds and what a resumed run starts from.

A run's agents train in groups (`RunConfig.groups`: one group of every agent on the GS, groups of a few agents in
worker processes for DIALS); `GroupState` is one group's PPO learners and AIPs as state dicts with the agents on
the first axis of every tensor. `RunState` is the whole run: its groups, where it is in its `Schedule` and its
records so far. `Algorithm 1` (`dials_lib.training.dials`) moves it from boundary to boundary; `RunDirectory`
(`dials_lib.training.run_records`) checkpoints it and writes its records from it.

On disk a checkpoint holds the plain dict of `to_checkpoint` (format 1 of `dials_lib.training.checkpoints`), so that
checkpoints stay readable whatever classes the code uses; `from_checkpoint` reads one back, including those
written before the `retrained` flag existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from dials_lib.training.agent_axis import cut, join

RUNTIME_PARTS = ("agents_training_s", "data_collection_s", "aip_training_s", "evaluation_s", "total_s",
                 "worker_busy_s", "worker_cpu_s")
"""The seconds runtime.json accumulates over all sessions of a run."""


@dataclass
class GroupState:
    """One group of a run's agents: their PPO learners and (DIALS, untrained-DIALS) their AIPs."""

    ppo: dict[str, Any] | None
    """The group's `PPOGroup.state_dict()` (None only while it waits on disk, see `RunDirectory.ppo_states_on_disk`)."""
    aip: dict[str, torch.Tensor] | None
    """The group's AIPs (`StackedPredictor.state_dict()`); None for a GS run."""

    @property
    def agent_ids(self) -> list[int]:
        """The group's agents."""
        assert self.ppo is not None, "the group's PPO state is on disk"
        return list(self.ppo["agent_ids"])


def split_groups(ppo: dict[str, Any], aip: dict[str, torch.Tensor] | None, groups: list[list[int]]
                 ) -> list[GroupState]:
    """A run's PPO (and AIP) state of all its agents in order, cut into `groups` (agent ids, consecutive)."""
    return [GroupState(cut("ppo", ppo, ids[0], ids[-1] + 1),
                       cut("aip", aip, ids[0], ids[-1] + 1) if aip is not None else None)
            for ids in groups]


def joined_groups(groups: list[GroupState]) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """The PPO (and AIP) state of every agent of a run, its groups joined in order."""
    aips = [group.aip for group in groups]
    return join("ppo", [group.ppo for group in groups]), (join("aip", aips) if aips[0] is not None else None)


@dataclass
class RunState:
    """A run at a chunk boundary of its schedule."""

    groups: list[GroupState]
    """Its agents, group by group in agent order."""
    boundary: int = 0
    """The boundary the run is at (0: the start; `Schedule.n_chunks`: finished)."""
    prepared: bool = False
    """Whether the boundary's work (AIP retraining, evaluation) is done, so that the next chunk may train."""
    retrained: bool = False
    """Whether the boundary's AIP retraining is done while its evaluation is not (a resume starts there)."""
    rows: list[dict[str, float]] = field(default_factory=list)
    """metrics.csv so far: one row per evaluation."""
    sessions: int = 0
    """How many times the run was started or resumed."""
    runtime: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RUNTIME_PARTS, 0.0))
    """Seconds per part (`RUNTIME_PARTS`), over all sessions, and how many runs trained stacked last."""
    memory: dict[str, Any] = field(default_factory=dict)
    """Peak memory records (`dials_lib.training.memory.RunMemory.records`)."""
    train_return: float = math.nan
    """Mean return of the training episodes of the last chunk (on the IALS for DIALS)."""

    def regrouped(self, groups: list[list[int]]) -> RunState:
        """This state with its agents cut into `groups` instead (the grouping does not change the numbers, so a run
        may resume with another `n_workers` than it started with)."""
        if [group.agent_ids for group in self.groups] == groups:
            return self
        return RunState(split_groups(*joined_groups(self.groups), groups), self.boundary, self.prepared,
                        self.retrained, self.rows, self.sessions, self.runtime, self.memory, self.train_return)

    def to_checkpoint(self) -> dict[str, Any]:
        """The plain dict a checkpoint file holds."""
        return {"boundary": self.boundary, "prepared": self.prepared,
                "groups": [{"ppo": group.ppo, "aip": group.aip} for group in self.groups], "rows": self.rows,
                "sessions": self.sessions, "runtime": self.runtime, "memory": self.memory,
                "train_return": self.train_return, "retrained": self.retrained}

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> RunState:
        """A state from the dict of a checkpoint file."""
        return cls([GroupState(group["ppo"], group["aip"]) for group in state["groups"]], int(state["boundary"]),
                   bool(state["prepared"]), bool(state.get("retrained", False)), list(state["rows"]),
                   int(state["sessions"]), dict(state["runtime"]), dict(state["memory"]),
                   float(state["train_return"]))


__all__ = ["RUNTIME_PARTS", "GroupState", "RunState", "joined_groups", "split_groups"]

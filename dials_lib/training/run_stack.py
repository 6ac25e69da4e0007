"""The runs x agents axis of a seed batch: runs that differ only in seed, trained as one.

A seed batch trains R runs of one config together: group g of every run is one PPO group (one set of AIPs, one
IALS batch, one GS batched over a copy per run) of R x |g| agents, run-major (run 0's agents of the group, then
run 1's, ...). `RunStack` is the one place that knows this layout. It gives every stacked agent its id and its
run's seed, joins the runs' states of a group into the stacked state a worker task takes (`join`), and cuts a
task's result back into the runs' states (`split`), for each kind of agent-major thing a run holds (PPO states, AIP
states, GS data sets: `agent_axis`). Below it, the learning layer sees agents only, each with its own id and seed,
never runs.

A batch of one run is that run exactly: its seed stays the int it is when the run trains alone (`seed_argument`),
so its states and checkpoints are those of a run that never heard of batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dials_lib.learning.ppo_loop import PPOTrace
from dials_lib.training.agent_axis import Kind, cut, join


@dataclass(frozen=True)
class RunStack:
    """The runs of a seed batch, by seed (run-major order); often one."""

    seeds: tuple[int, ...]
    """The runs' seeds, in the batch's order."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("a RunStack needs at least one run seed")

    @property
    def n_runs(self) -> int:
        """How many runs the batch stacks."""
        return len(self.seeds)

    def seed_argument(self) -> int | list[int]:
        """The seed(s) to build a simulator or a group of learners for every run with: one run's seed as the int
        it is when that run trains alone, else one per run."""
        return int(self.seeds[0]) if self.n_runs == 1 else [int(s) for s in self.seeds]

    def agents(self, agent_ids: Sequence[int]) -> tuple[list[int], int | list[int]]:
        """The stacked agents of the group `agent_ids` (the same ids in every run): their ids and their seeds, one
        int for a single run, else one per stacked agent (each agent's run's seed)."""
        if self.n_runs == 1:
            return list(agent_ids), int(self.seeds[0])
        return [a for _ in self.seeds for a in agent_ids], [int(s) for s in self.seeds for _ in agent_ids]

    def run_slices(self, group_size: int) -> list[slice]:
        """Where each run's agents sit among the group's stacked agents."""
        return [slice(r * group_size, (r + 1) * group_size) for r in range(self.n_runs)]

    def join(self, kind: Kind, per_run: Sequence[Any]) -> Any:
        """One group's state of every run (`kind`: 'ppo', 'aip' or 'data'), stacked run-major."""
        return join(kind, per_run)

    def split(self, kind: Kind, stacked: Any, group_size: int) -> list[Any]:
        """A stacked state of one group cut back into every run's own (copies)."""
        return [cut(kind, stacked, part.start, part.stop) for part in self.run_slices(group_size)]

    def summaries(self, trace: PPOTrace, group_size: int) -> list[dict[str, Any]]:
        """The training metrics of a chunk of the stacked group, per run: each averaged over that run's agents only,
        exactly as a group holding the run alone averages them (`PPOTrace.summary`)."""
        return [trace.summary(part) for part in self.run_slices(group_size)]

    def last_losses(self, losses: np.ndarray | torch.Tensor) -> list[float]:
        """Each run's mean of per-agent values of the stacked agents (e.g. the AIPs' last-epoch loss)."""
        return [float(run.mean()) for run in np.asarray(losses).reshape(self.n_runs, -1)]


__all__ = ["RunStack"]

"""The agent axis: every agent-major thing a run holds joins and cuts along its first axis, by one vocabulary.

A run holds three kinds of things with the agents on the first axis of every tensor, array and counter: PPO states
(`PPOGroup.state_dict`), AIP states (`StackedPredictor.state_dict`) and GS data sets (`InfluenceData`). The
training layer joins them (the groups of a run into all its agents; the runs of a seed batch into one stacked group,
`run_stack.RunStack`) and cuts them (all agents into groups; a stacked group back into runs) only through `join` and
`cut`, which take the kind by name; each kind's own pair lives in the learning layer, exact (copies, no rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from dials_lib.learning.influence import InfluenceData, concat_predictor_states, slice_predictor_state
from dials_lib.learning.ppo import concat_states, slice_state

Kind = Literal["ppo", "aip", "data"]
"""The kinds of agent-major things: PPO states, AIP states, GS data sets."""

AGENT_AXIS: dict[str, tuple[Callable[[Sequence[Any]], Any], Callable[[Any, int, int], Any]]] = {
    "ppo": (concat_states, slice_state),
    "aip": (concat_predictor_states, slice_predictor_state),
    "data": (InfluenceData.concat, InfluenceData.agent_range),
}
"""Each kind's join (parts in order, along the agent axis) and cut (agents lo..hi-1)."""


def join(kind: Kind, parts: Sequence[Any]) -> Any:
    """The agents of `parts` (each a `kind`), in order, as one."""
    return AGENT_AXIS[kind][0](list(parts))


def cut(kind: Kind, whole: Any, lo: int, hi: int) -> Any:
    """Agents lo..hi-1 (positions, not ids) of `whole` (a `kind`)."""
    return AGENT_AXIS[kind][1](whole, lo, hi)


__all__ = ["AGENT_AXIS", "Kind", "cut", "join"]

"""Conditional edges: fan the next round out to its drafts, or go to the refine step."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import get_runtime
from langgraph.types import Send

from pdr.graphs.context import RefineContext
from pdr.graphs.state import DraftTask, State


def next_round(state: State) -> list[Send] | Literal["refine"]:
    """Send one draft task per draft of the round, each with its workspace; the last round refines.

    ``workspaces`` holds one shared workspace or one per draft (per-sample distillers).
    """
    context = get_runtime(RefineContext).context
    sizes = context.round_sizes()
    round_ = state["round"]
    if round_ >= len(sizes):
        return "refine"
    workspaces = state.get("workspaces") or [""]
    return [
        Send(
            "draft",
            DraftTask(
                problem=state["problem"],
                round=round_,
                index=index,
                workspace=workspaces[index] if len(workspaces) > 1 else workspaces[0],
            ),
        )
        for index in range(sizes[round_ - 1])
    ]

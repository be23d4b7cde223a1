"""Conditional edges: fan the next round out to its drafts, or go to the refine step."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import get_runtime
from langgraph.types import Send

from pdr.graphs.context import RefineContext
from pdr.graphs.state import DraftTask, State


def round_workspaces(state: State) -> list[str] | None:
    """The workspace of each draft of the round to write, by index; None when refining is next.

    ``workspaces`` holds one shared workspace or one per draft (per-sample distillers).
    """
    sizes = get_runtime(RefineContext).context.round_sizes()
    round_ = state["round"]
    if round_ >= len(sizes):
        return None
    workspaces = state.get("workspaces") or [""]
    return [
        workspaces[index] if len(workspaces) > 1 else workspaces[0]
        for index in range(sizes[round_ - 1])
    ]


def next_round(state: State) -> list[Send] | Literal["refine"]:
    """Send one draft task per draft of the round, each with its workspace; the last round refines."""
    planned = round_workspaces(state)
    if planned is None:
        return "refine"
    return [
        Send(
            "draft",
            DraftTask(
                problem=state["problem"], round=state["round"], index=index, workspace=workspace
            ),
        )
        for index, workspace in enumerate(planned)
    ]

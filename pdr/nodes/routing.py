"""Fan-out: the drafts of a round, each with its workspace and its share of the token caps."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import get_runtime
from langgraph.types import Send

from pdr.budget import CallRecord
from pdr.caps import Allowance, stage_allowance
from pdr.graphs.context import RefineContext, RunContext
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


def allowance(context: RunContext, calls: list[CallRecord], branches: int) -> Allowance | None:
    """Each of ``branches`` calls' share of what the run's caps leave after ``calls``."""
    return stage_allowance(context.max_total_tokens, context.max_sequential_tokens, calls, branches)


def draft_sends(state: State, calls: list[CallRecord]) -> list[Send] | None:
    """One draft task per draft of ``state``'s round (None: refining is next).

    ``calls`` are the run's records so far, from which each branch's allowance is computed. In
    round 1 a planted candidate (``injected_draft``) goes last, as draft M_1.
    """
    planned = round_workspaces(state)
    if planned is None:
        return None
    share = allowance(get_runtime(RefineContext).context, calls, len(planned))
    tasks = [
        DraftTask(
            problem=state["problem"],
            round=state["round"],
            index=index,
            workspace=workspace,
            allowance=share,
        )
        for index, workspace in enumerate(planned)
    ]
    planted = planted_candidate(state)
    if planted is not None:
        tasks.append(
            DraftTask(
                problem=state["problem"],
                round=state["round"],
                index=len(planned),
                workspace="",
                planted=planted,
            )
        )
    return [Send("draft", task) for task in tasks]


def planted_candidate(state: State) -> str | None:
    """The candidate to plant among this round's drafts, after the model's: round 1 only.

    It is the context's ``injected_draft`` (the verification experiment of ``pdr eval
    --inject``); no model call makes it, so it takes no share of the token caps.
    """
    if state["round"] != 1:
        return None
    planted: str | None = getattr(get_runtime(RefineContext).context, "injected_draft", None)
    return planted


def next_round(state: State) -> list[Send] | Literal["refine"]:
    """Send one draft task per draft of the round, each with its workspace; the last round refines.

    A run already stopped (``stopped``) goes to ``refine``, which writes the best answer so far.
    """
    if state.get("stopped"):
        return "refine"
    sends = draft_sends(state, state.get("calls") or [])
    return "refine" if sends is None else sends

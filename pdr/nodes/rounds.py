"""What joins a round's parallel stages.

The edge after ``start``/``distill``, and the checks ``distill`` makes before it distils.

The round of PDR is: drafts (one ``draft`` branch each) -> ``distill`` -> [verification (one
``verify`` branch per draft) -> ``distill``] -> next round or ``refine``. ``distill`` is the one
step that runs after all branches of a stage, so it decides what happens between them
(``hold_round``): a stage with failed branches pauses the run, and once resumed sends only those
branches again, with their share of the caps recomputed; a stopped run goes to ``refine``; drafts
still to be graded go to verification. ``round_router`` builds the conditional edge that carries
out that decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.runtime import get_runtime
from langgraph.types import Send

from pdr.budget import CallRecord
from pdr.graphs.context import PDRContext, RefineContext
from pdr.graphs.state import Draft, Failure, State, VerifyTask
from pdr.nodes.draft_batch import batched_sends
from pdr.nodes.halts import own_failures, pause_for
from pdr.nodes.routing import allowance, draft_sends
from pdr.nodes.workspace import excerpt

FanOut = Callable[[State, list[CallRecord]], list[Send] | None]


def round_drafts(state: State) -> list[Draft]:
    """The drafts of the round just finished, in index order, with their verify grades if any."""
    grades = {(s["round"], s["index"]): s["score"] for s in state.get("scores") or []}
    drafts = sorted(state.get("drafts") or [], key=lambda d: d["index"])
    return [
        Draft(**d, score=grades[(d["round"], d["index"])])
        if (d["round"], d["index"]) in grades
        else d
        for d in drafts
    ]


def unscored(state: State) -> list[Draft]:
    """The round's drafts the verify stage has not graded yet."""
    return [d for d in round_drafts(state) if "score" not in d]


def verify_sends(state: State) -> list[Send]:
    """One verify task per ungraded draft, each with the draft as the prompt shows it."""
    context = get_runtime(PDRContext).context
    waiting = unscored(state)
    drafts = len(state.get("drafts") or [])
    share = allowance(context, state.get("calls") or [], len(waiting))
    return [
        Send(
            "verify",
            VerifyTask(
                problem=state["problem"],
                round=d["round"],
                index=d["index"],
                text=excerpt(d["text"], context, drafts),
                allowance=share,
            ),
        )
        for d in waiting
    ]


def hold_round(state: State, context: RefineContext, verifies: bool) -> tuple[dict[str, Any], bool]:
    """What ``distill`` does before distilling: ``(update, hold)``; with ``hold`` it stops there.

    Failed steps pause the run (``pdr.nodes.halts.pause_for``); once resumed, failed branches
    are sent again (``resend``) and the distill step's own failure is retried by going on. A
    stopped run and a round whose drafts await their grades are held (the edge goes on).
    """
    update: dict[str, Any] = {"resend": None}
    branches = [f for f in state.get("failures") or [] if f["node"] != "distill"]
    own = own_failures(state, "distill")
    if branches or own:
        pause_for(branches + own)
        update["failures"] = None
        if branches:
            share = allowance(context, state.get("calls") or [], len(branches))
            update["resend"] = [
                Failure(**{**f, "task": {**f["task"], "allowance": share}}) for f in branches
            ]
            return update, True
    if state.get("stopped") or (verifies and unscored(state)):
        return update, True
    return update, False


def round_router(*, verifies: bool = False, batched: bool = False) -> Callable[[State], Any]:
    """The conditional edge after ``start`` and ``distill``.

    In order: the distill step's own failure goes back to ``distill`` (which pauses); failed
    branches are sent again; a stopped run goes to ``refine``; drafts awaiting their grades go to
    ``verify``; otherwise the next round's drafts are sent, or the last round goes to ``refine``.
    """
    fan_out: FanOut = batched_sends if batched else draft_sends

    def route(state: State) -> list[Send] | str:
        if own_failures(state, "distill"):
            return "distill"
        resend = state.get("resend")
        if resend:
            return [Send(f["node"], f["task"]) for f in resend]
        if state.get("stopped"):
            return "refine"
        if verifies and unscored(state):
            return verify_sends(state)
        sends = fan_out(state, state.get("calls") or [])
        return "refine" if sends is None else sends

    route.__name__ = "route"
    return route

"""What a step does when its call fails or would go over the token caps.

A failing branch must not take its siblings down: it returns a ``Failure`` (with the records of its
attempts) instead of raising, so the other calls of its stage finish and are checkpointed. The
next step that joins the stage (``distill`` after drafts or verification; ``refine`` and
``long_cot`` for their own call) sees the failures and pauses the run with a LangGraph interrupt
that names them; resumed (``Command(resume=...)``), it asks only the failed steps again.

A call refused by the caps (``pdr.caps.BudgetExhaustedError``) ends the run instead: the step
writes why into ``stopped``, the round is not distilled, and ``refine`` writes the best answer so
far without a call.
"""

from __future__ import annotations

from typing import Any

from langgraph.types import interrupt

from pdr.budget import Role
from pdr.calls import CallFailedError, CallResult, call_model
from pdr.caps import Allowance, BudgetExhaustedError, majority
from pdr.graphs.context import RunContext
from pdr.graphs.state import Failure, State
from pdr.models import Message
from pdr.redact import redact

STOPPED_PREFIX = "budget_exhausted"


def failed(
    node: str, task: dict[str, Any], role: str, round_: int, index: int, error: CallFailedError
) -> dict[str, Any]:
    """The update of a step whose call failed: the failure and its attempts' records."""
    failure = Failure(
        node=node, task=dict(task), role=role, round=round_, index=index, error=redact(str(error))
    )
    return {"failures": [failure], "calls": error.records}


def stopped(error: BudgetExhaustedError) -> dict[str, Any]:
    """The update of a step whose call the caps refused: why, and its earlier attempts."""
    return {"stopped": f"{STOPPED_PREFIX}: {error}", "calls": error.records}


async def call_or_halt(
    node: str,
    task: dict[str, Any],
    context: RunContext,
    *,
    role: Role,
    round_: int,
    index: int,
    messages: list[Message],
    allowance: Allowance | None,
    n: int = 1,
) -> CallResult | dict[str, Any]:
    """``call_model`` for a branch; a failed or refused call becomes the branch's update instead.

    Returns the call's result, or the update the branch returns (``failed`` with ``node`` and
    ``task`` to send again, or ``stopped``).
    """
    try:
        return await call_model(
            context,
            role=role,
            round_=round_,
            index=index,
            messages=messages,
            n=n,
            allowance=allowance,
        )
    except BudgetExhaustedError as error:
        return stopped(error)
    except CallFailedError as error:
        return failed(node, task, role, round_, index, error)


def describe(failure: Failure) -> str:
    """``draft 2.1: <error>``."""
    return f"{failure['role']} {failure['round']}.{failure['index']}: {failure['error']}"


def pause_for(failures: list[Failure]) -> None:
    """Pause the run naming the failed steps; returns once it is resumed.

    The value of the interrupt is ``{"failed": [descriptions]}``; ``Command(resume=True)``
    continues.
    """
    interrupt({"failed": [describe(failure) for failure in failures]})


def own_failures(state: State, node: str) -> list[Failure]:
    """The recorded failures of ``node``."""
    return [f for f in state.get("failures") or [] if f["node"] == node]


def best_answer(state: State) -> str | None:
    """The best answer so far, or None.

    It is the majority of the newest drafts: this round's, else those behind the last workspace.
    """
    current = [d["answer"] for d in state.get("drafts") or []]
    return majority(current if current else state.get("round_answers") or [])

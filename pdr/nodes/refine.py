"""The refine step: the last round writes the final solution from the last workspace.

``refine`` is also where a run that stopped early ends (``stopped``, set when the token caps
refused a call): it then makes no call and answers with the best answer so far. A failed call of
its own is recorded as a failure and the edge comes back here, which pauses the run; resumed, it
asks again.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END
from langgraph.runtime import Runtime

from pdr.answers import extract_answer
from pdr.budget import CallRecord, budgets, per_draft_total
from pdr.calls import BudgetExhaustedError, CallFailedError, CallResult, call_model
from pdr.events import ANSWER, emit
from pdr.graphs.context import RefineContext, RunContext
from pdr.graphs.state import State
from pdr.models import Message
from pdr.nodes.halts import best_answer, failed, own_failures, pause_for, stopped
from pdr.nodes.routing import allowance
from pdr.prompts import refine as prompts


def refine_messages(problem: str, workspace: str, context: RefineContext) -> list[Message]:
    """The refine prompt: the problem and the last workspace."""
    return [
        {"role": "system", "content": context.refine_system_prompt},
        {"role": "user", "content": prompts.REFINE.format(problem=problem, workspace=workspace)},
    ]


async def refine(state: State, runtime: Runtime[RefineContext]) -> dict[str, Any]:
    """Write the final solution and close the books: answer, B_seq and B_tot."""
    context = runtime.context
    workspace = (state.get("workspaces") or [""])[0]
    return await final_call(
        state,
        context,
        "refine",
        state["round"],
        refine_messages(state["problem"], workspace, context),
    )


async def final_call(
    state: State, context: RunContext, role: str, round_: int, messages: list[Message]
) -> dict[str, Any]:
    """The one call that ends a run (refine, long CoT), with the pause, stop and failure rules."""
    own = own_failures(state, role)
    cleared: dict[str, Any] = {}
    if own:
        pause_for(own)
        cleared = {"failures": None}
    if state.get("stopped"):
        return {**cleared, **finish_early(state, [])}
    try:
        result: CallResult = await call_model(
            context,
            role="refine" if role == "refine" else "long_cot",
            round_=round_,
            index=0,
            messages=messages,
            allowance=allowance(context, state.get("calls") or [], 1),
        )
    except BudgetExhaustedError as error:
        halt = stopped(error)
        return {**cleared, **finish_early(state, error.records, halt["stopped"])}
    except CallFailedError as error:
        return {**cleared, **failed(role, {}, role, round_, 0, error)}
    truncated = bool(result.records[-1].get("truncated"))
    return {**cleared, **finish(state, result.text, result.records), "truncated": truncated}


def after_final(role: str) -> Any:
    """The edge after a final step: back to it when its call failed (it pauses), else the end."""

    def route(state: State) -> str:
        return role if own_failures(state, role) else END

    route.__name__ = f"after_{role}"
    return route


def finish(state: State, text: str, records: list[CallRecord]) -> dict[str, Any]:
    """The final keys every graph writes: solution, answer, budgets over all calls, new records."""
    answer = extract_answer(text, state["problem"])
    every = [*(state.get("calls") or []), *records]
    b_seq, b_tot = budgets(every)
    emit(ANSWER, answer=answer, b_seq=b_seq, b_tot=b_tot)
    return {
        "final_text": text,
        "answer": answer,
        "b_seq": b_seq,
        "b_tot": b_tot,
        "b_tot_per_draft": per_draft_total(every),
        "calls": records,
    }


def finish_early(
    state: State, records: list[CallRecord], reason: str | None = None
) -> dict[str, Any]:
    """The final keys of a run that stopped early: the best answer so far and no final text."""
    answer = best_answer(state)
    every = [*(state.get("calls") or []), *records]
    b_seq, b_tot = budgets(every)
    emit(ANSWER, answer=answer, b_seq=b_seq, b_tot=b_tot, stopped=reason or state.get("stopped"))
    update: dict[str, Any] = {
        "final_text": None,
        "answer": answer,
        "b_seq": b_seq,
        "b_tot": b_tot,
        "b_tot_per_draft": per_draft_total(every),
        "calls": records,
        "truncated": False,
    }
    if reason is not None:
        update["stopped"] = reason
    return update

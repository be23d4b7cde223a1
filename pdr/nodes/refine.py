"""The refine step: the last round writes the final solution from the last workspace."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.answers import extract_answer
from pdr.budget import CallRecord, budgets
from pdr.calls import call_model
from pdr.events import ANSWER, emit
from pdr.graphs.context import RefineContext
from pdr.graphs.state import State
from pdr.models import Message
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
    result = await call_model(
        context,
        role="refine",
        round_=state["round"],
        index=0,
        messages=refine_messages(state["problem"], workspace, context),
    )
    return finish(state, result.text, result.records)


def finish(state: State, text: str, records: list[CallRecord]) -> dict[str, Any]:
    """The final keys every graph writes: solution, answer, budgets over all calls, new records."""
    answer = extract_answer(text)
    b_seq, b_tot = budgets([*(state.get("calls") or []), *records])
    emit(ANSWER, answer=answer, b_seq=b_seq, b_tot=b_tot)
    return {"final_text": text, "answer": answer, "b_seq": b_seq, "b_tot": b_tot, "calls": records}

"""The refine step: the last round writes the final solution from the last workspace."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.answers import extract_answer
from pdr.budget import sequential_budget, total_budget
from pdr.calls import call_model, call_seed, sampling_for
from pdr.graphs.context import RefineContext
from pdr.graphs.state import State
from pdr.models import Message
from pdr.nodes.progress import emit
from pdr.prompts import refine as prompts


def refine_messages(problem: str, workspace: str) -> list[Message]:
    """The refine prompt: the problem and the last workspace."""
    return [
        {"role": "system", "content": prompts.SYSTEM},
        {"role": "user", "content": prompts.REFINE.format(problem=problem, workspace=workspace)},
    ]


async def refine(state: State, runtime: Runtime[RefineContext]) -> dict[str, Any]:
    """Write the final solution and close the books: answer, B_seq and B_tot."""
    context = runtime.context
    round_ = state["round"]
    workspace = (state.get("workspaces") or [""])[0]
    result = await call_model(
        context,
        role="refine",
        round_=round_,
        index=0,
        messages=refine_messages(state["problem"], workspace),
        options=sampling_for(
            context,
            "refine",
            context.max_tokens,
            context.temperature,
            seed=call_seed(context, round_, 0),
        ),
    )
    return finish(state, result.text, result.records)


def finish(state: State, text: str, records: list[Any]) -> dict[str, Any]:
    """The final keys every graph writes: solution, answer, budgets over all calls, new records."""
    calls = [*(state.get("calls") or []), *records]
    answer = extract_answer(text)
    b_seq, b_tot = sequential_budget(calls), total_budget(calls)
    emit("answer", answer=answer, b_seq=b_seq, b_tot=b_tot)
    return {"final_text": text, "answer": answer, "b_seq": b_seq, "b_tot": b_tot, "calls": records}

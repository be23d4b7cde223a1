"""The draft step: one parallel branch writes one candidate solution from problem and workspace."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.answers import extract_answer
from pdr.calls import call_model, call_seed, sampling_for
from pdr.graphs.context import RunContext
from pdr.graphs.state import Draft, DraftTask
from pdr.models import Message
from pdr.nodes.progress import emit
from pdr.prompts import draft as prompts


def draft_messages(problem: str, workspace: str) -> list[Message]:
    """The draft prompt: the problem alone in round 1, with the workspace afterwards."""
    user = (
        prompts.WITH_WORKSPACE.format(problem=problem, workspace=workspace)
        if workspace
        else prompts.FIRST.format(problem=problem)
    )
    return [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": user}]


async def draft(task: DraftTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Write one draft; returns it and the call's ledger records."""
    context = runtime.context
    round_, index = task["round"], task["index"]
    result = await call_model(
        context,
        role="draft",
        round_=round_,
        index=index,
        messages=draft_messages(task["problem"], task["workspace"]),
        options=sampling_for(
            context,
            "draft",
            context.max_tokens,
            context.temperature,
            seed=call_seed(context, round_, index),
        ),
    )
    text = result.text
    answer = extract_answer(text)
    record = result.records[-1]
    emit(
        "draft_finished",
        round=round_,
        index=index,
        input_tokens=record["input_tokens"],
        output_tokens=record["output_tokens"],
        answer=answer,
    )
    return {
        "drafts": [Draft(round=round_, index=index, text=text, answer=answer)],
        "calls": result.records,
    }

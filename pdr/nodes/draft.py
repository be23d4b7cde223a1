"""The draft step: one parallel branch writes one candidate solution from problem and workspace."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.answers import extract_answer
from pdr.budget import CallRecord
from pdr.events import CALL_FINISHED, DRAFT_FINISHED, emit
from pdr.graphs.context import RefineContext
from pdr.graphs.state import Draft, DraftTask
from pdr.models import Message
from pdr.nodes.halts import call_or_halt
from pdr.prompts import draft as prompts

# The model name of a planted candidate's record: no model wrote it.
INJECTED_MODEL = "injected"


def draft_messages(problem: str, workspace: str, context: RefineContext) -> list[Message]:
    """The draft prompt: the problem alone in round 1, with the workspace afterwards."""
    user = (
        prompts.WITH_WORKSPACE.format(problem=problem, workspace=workspace)
        if workspace
        else prompts.FIRST.format(problem=problem)
    )
    return [
        {"role": "system", "content": context.draft_system_prompt},
        {"role": "user", "content": user},
    ]


async def draft(task: DraftTask, runtime: Runtime[RefineContext]) -> dict[str, Any]:
    """Write one draft; returns it and the call's ledger records.

    A failed call returns a failure instead (the round's other drafts go on), a call the token
    caps refuse returns why the run stops.
    """
    context = runtime.context
    round_, index = task["round"], task["index"]
    if "planted" in task:
        return plant(task["problem"], round_, index, task["planted"])
    result = await call_or_halt(
        "draft",
        dict(task),
        context,
        role="draft",
        round_=round_,
        index=index,
        messages=draft_messages(task["problem"], task["workspace"], context),
        allowance=task.get("allowance"),
    )
    if isinstance(result, dict):  # failed, or refused by the token caps
        return result
    text = result.text
    answer = extract_answer(text, task["problem"])
    record = result.records[-1]
    emit(
        DRAFT_FINISHED,
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


def plant(problem: str, round_: int, index: int, text: str) -> dict[str, Any]:
    """A planted candidate as a draft: no model call, a 0-token record marked ``injected``.

    The record goes to the ledger like a call's (a ``call_finished`` event), so the run's
    drafts, their texts and answers are all there; its 0 tokens leave B_seq and B_tot unchanged.
    """
    record = CallRecord(
        role="draft",
        round=round_,
        index=index,
        attempt=0,
        model=INJECTED_MODEL,
        input_tokens=0,
        output_tokens=0,
        reasoning_tokens=0,
        cached_tokens=0,
        samples=1,
        sample_output_tokens=None,
        latency_s=0.0,
        estimated=False,
        error=None,
        texts=[text],
        injected=True,
    )
    emit(CALL_FINISHED, record=record)
    answer = extract_answer(text, problem)
    emit(
        DRAFT_FINISHED,
        round=round_,
        index=index,
        input_tokens=0,
        output_tokens=0,
        answer=answer,
        injected=True,
    )
    return {
        "drafts": [Draft(round=round_, index=index, text=text, answer=answer)],
        "calls": [record],
    }

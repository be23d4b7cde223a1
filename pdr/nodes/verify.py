"""The verify stage: one branch per draft grades it with one model call (the verify scorer).

``pdr.nodes.rounds`` sends one ``VerifyTask`` per draft of the round once all drafts are written,
so each grade is its own task: checkpointed when it finishes and never asked again on resume. The
grades go to ``scores``; the top-k distillers read them through the ``verify`` scorer.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.events import DRAFT_VERIFIED, emit
from pdr.graphs.context import PDRContext
from pdr.graphs.state import DraftScore, VerifyTask
from pdr.nodes.halts import call_or_halt
from pdr.nodes.scoring import parse_score, verify_messages


async def verify_draft(task: VerifyTask, runtime: Runtime[PDRContext]) -> dict[str, Any]:
    """Grade one draft; returns its score and the call's ledger records."""
    context = runtime.context
    round_, index = task["round"], task["index"]
    result = await call_or_halt(
        "verify",
        dict(task),
        context,
        role="verify",
        round_=round_,
        index=index,
        messages=verify_messages(task["problem"], task["text"], context),
        allowance=task.get("allowance"),
    )
    if isinstance(result, dict):  # failed, or refused by the token caps
        return result
    score = parse_score(result.text)
    emit(DRAFT_VERIFIED, round=round_, index=index, score=score)
    return {
        "scores": [DraftScore(round=round_, index=index, score=score)],
        "calls": result.records,
    }

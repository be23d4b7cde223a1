"""The first node of every graph: check the run context, start a fresh run on the thread."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.events import ROUND_STARTED, emit
from pdr.graphs.context import RunContext
from pdr.graphs.state import State


async def start(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Validate the context and clear what a previous run on this thread left behind."""
    context = runtime.context
    context.validate()
    problem = state.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise ValueError("problem: the input needs a non-empty 'problem' string")
    sizes = context.round_sizes()
    emit(
        ROUND_STARTED,
        round=1,
        drafts=sizes[0],
        rounds=len(sizes),
        max_concurrency=context.max_concurrency,
    )
    return {
        "round": 1,
        "drafts": None,
        "workspaces": [""],
        "calls": None,
        "scores": None,
        "failures": None,
        "stopped": None,
        "resend": None,
        "round_answers": [],
    }

"""The long chain-of-thought baseline: one call with a large output budget."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.graphs.context import LongCoTContext
from pdr.graphs.state import State
from pdr.models import Message
from pdr.nodes.refine import final_call
from pdr.prompts import long_cot as prompts


def long_cot_messages(problem: str, context: LongCoTContext) -> list[Message]:
    """The baseline prompt: the problem, with room to think."""
    return [
        {"role": "system", "content": context.long_cot_system_prompt},
        {"role": "user", "content": prompts.PROBLEM.format(problem=problem)},
    ]


async def long_cot(state: State, runtime: Runtime[LongCoTContext]) -> dict[str, Any]:
    """Answer in one call whose output cap is the whole thinking budget."""
    context = runtime.context
    return await final_call(
        state, context, "long_cot", 1, long_cot_messages(state["problem"], context)
    )

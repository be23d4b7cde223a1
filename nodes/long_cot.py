"""The long chain-of-thought baseline: one call with a large output budget."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from pdr.calls import call_model, call_seed, sampling_for
from pdr.graphs.context import RunContext
from pdr.graphs.state import State
from pdr.models import Message
from pdr.nodes.refine import finish
from pdr.prompts import long_cot as prompts


def long_cot_messages(problem: str) -> list[Message]:
    """The baseline prompt: the problem, with room to think."""
    return [
        {"role": "system", "content": prompts.SYSTEM},
        {"role": "user", "content": prompts.PROBLEM.format(problem=problem)},
    ]


async def long_cot(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Answer in one call whose output cap is the whole thinking budget."""
    context = runtime.context
    result = await call_model(
        context,
        role="long_cot",
        round_=1,
        index=0,
        messages=long_cot_messages(state["problem"]),
        options=sampling_for(
            context,
            "long_cot",
            context.max_tokens,
            context.temperature,
            seed=call_seed(context, 1, 0),
        ),
    )
    return finish(state, result.text, result.records)

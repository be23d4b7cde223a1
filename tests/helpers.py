"""Shared helpers of the graph tests: checkpointers, event collection, ledger summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from pdr.store.checkpoints import open_async_graph


@asynccontextmanager
async def compiled(
    builder: StateGraph[Any, Any, Any, Any], kind: str, tmp_path: Path
) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
    """The builder compiled with a fresh checkpointer of ``kind`` ("memory" or "sqlite")."""
    if kind == "memory":
        yield builder.compile(checkpointer=InMemorySaver())
    else:
        async with open_async_graph(builder, tmp_path / "checkpoints.sqlite") as graph:
            yield graph


def roles(calls: list[dict[str, Any]]) -> Counter[str]:
    """Successful calls per role in a final state's ledger."""
    return Counter(call["role"] for call in calls if call["error"] is None)


def config(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def final_and_events(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    problem: str,
    context: Any,
    thread: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stream one run: its final state and the custom events it emitted, in order."""
    events: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    run_config = config(thread) if thread is not None else None
    async for mode, chunk in graph.astream(
        {"problem": problem}, run_config, context=context, stream_mode=["custom", "values"]
    ):
        if mode == "custom":
            events.append(chunk)
        else:
            final = chunk
    return final, events

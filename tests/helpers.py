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

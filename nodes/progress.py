"""Progress events that nodes emit on LangGraph's "custom" stream mode."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer


def emit(event: str, **fields: Any) -> None:
    """Send ``{"event": event, **fields}`` to ``stream_mode="custom"`` listeners, if any."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run (a node invoked directly)
        return
    writer({"event": event, **fields})

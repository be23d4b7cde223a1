"""Events the nodes write on LangGraph's "custom" stream: progress, call records and workspaces.

This is the one route by which side information leaves a running graph. ``pdr.runner`` reads the
stream and is the only writer of the ledger: a ``call_finished`` event carries one ledger record (a
call attempt, failed ones too) the moment the attempt ends, a ``workspace_written`` event the
workspaces a distill step wrote. The other events are progress for people: ``round_started``,
``draft_finished``, ``draft_verified`` and ``answer``. Outside a streamed run (a plain ``invoke``,
or a node called directly) the events go nowhere.
"""

from __future__ import annotations

from typing import Any, Final

from langgraph.config import get_stream_writer

CALL_FINISHED: Final = "call_finished"
WORKSPACE_WRITTEN: Final = "workspace_written"
ROUND_STARTED: Final = "round_started"
DRAFT_FINISHED: Final = "draft_finished"
DRAFT_VERIFIED: Final = "draft_verified"
ANSWER: Final = "answer"


def emit(event: str, **fields: Any) -> None:
    """Send ``{"event": event, **fields}`` to ``stream_mode="custom"`` readers, if any."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run (a node invoked directly)
        return
    writer({"event": event, **fields})

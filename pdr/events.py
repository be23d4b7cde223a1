"""Events the nodes write on LangGraph's "custom" stream: progress, call records and workspaces.

This is the one route by which side information leaves a running graph. ``pdr.runner`` reads the
stream and is the only writer of the ledger: a ``call_started`` event carries the record of an
attempt about to be sent (its prompt tokens estimated), a ``call_finished`` event the attempt's
final record (failed ones too), a ``workspace_written`` event the workspaces a distill step wrote.
The other events are progress for people: ``round_started``, ``draft_finished``,
``draft_verified`` and ``answer``; and ``tokens_sampled`` carries the token ids and
log-probabilities of a call whose backend keeps them (the training policy, ``pdr.training``).
Outside a streamed run (a plain ``invoke``, or a node called directly) the events go nowhere.

A reader that stores what it reads (the runner) says so in the run's config
(``configurable[ACKNOWLEDGED]``); ``announce`` then waits until the reader has stored the event, so
an attempt is in the ledger before its request leaves the process and a killed process cannot
have made a call the ledger does not know of.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from langgraph.config import get_config, get_stream_writer

CALL_STARTED: Final = "call_started"
CALL_FINISHED: Final = "call_finished"
WORKSPACE_WRITTEN: Final = "workspace_written"
ROUND_STARTED: Final = "round_started"
DRAFT_FINISHED: Final = "draft_finished"
DRAFT_VERIFIED: Final = "draft_verified"
ANSWER: Final = "answer"
TOKENS_SAMPLED: Final = "tokens_sampled"

ACKNOWLEDGED: Final = "pdr_acknowledged"
"""``configurable`` key: the reader of the custom stream acknowledges ``announce``d events."""
ACK: Final = "ack"
"""Field of an announced event: a future the reader resolves once the event is stored."""


def emit(event: str, **fields: Any) -> None:
    """Send ``{"event": event, **fields}`` to ``stream_mode="custom"`` readers, if any."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run (a node invoked directly)
        return
    writer({"event": event, **fields})


async def announce(event: str, **fields: Any) -> None:
    """``emit`` the event and wait until the reader has stored it, where the reader said it would.

    Raises whatever the reader set on the acknowledgement (a ledger that cannot be written), so
    nothing is done that the ledger could not record.
    """
    try:
        writer = get_stream_writer()
        acknowledged = bool(get_config().get("configurable", {}).get(ACKNOWLEDGED))
    except RuntimeError:
        return
    if not acknowledged:
        writer({"event": event, **fields})
        return
    stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    writer({"event": event, **fields, ACK: stored})
    await stored

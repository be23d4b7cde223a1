"""A process that runs PDR with SQLite checkpoints and is killed (SIGKILL) inside round 2.

Run as ``python -m tests.crash_worker CHECKPOINTS LOG THREAD``. Every finished model call is
appended to LOG, so the test can see which calls the killed process had completed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import register_model
from pdr.store.checkpoints import compile_with_sqlite
from tests.scripted import Call, Script, ScriptedChatModel

SCHEDULE = [3, 3, 1]
VICTIM = ("draft", 2, 2)  # the call during which the process dies


def slow_victim(call: Call) -> float:
    """The victim call lasts longer than its siblings, so they finish (and are saved) first."""
    return 0.5 if (call.role, call.round, call.index) == VICTIM else 0.0


def die(call: Call) -> None:
    if (call.role, call.round, call.index) == VICTIM:
        os.kill(os.getpid(), signal.SIGKILL)


def main(checkpoints: str, log: str, thread: str) -> None:
    register_model(
        "scripted",
        ScriptedChatModel(script=Script(latency=slow_victim, before_reply=die, log_path=Path(log))),
    )
    graph = compile_with_sqlite(build_pdr(), checkpoints)
    graph.invoke(
        {"problem": "What is 17 * 23?"},
        {"configurable": {"thread_id": thread}},
        context=PDRContext(model="scripted", schedule=SCHEDULE),
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])

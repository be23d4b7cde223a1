"""Run a coroutine from synchronous code so that Ctrl-C and SIGTERM stop it cleanly.

``asyncio.run`` turns Ctrl-C into a cancellation of the main task; SIGTERM would kill the process
outright and leave a run marked ``running``. ``until_signal`` installs a handler for both that
cancels the main task, so the runner gets to record the calls in flight as cancelled and the run
as ``interrupted``; it then raises ``RunInterruptedError`` naming the run and the signal, for the
command line to print the ``pdr resume`` line and exit with 128 + the signal's number.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class RunInterruptedError(Exception):
    """A run stopped by a signal (Ctrl-C, SIGTERM); its ledger row says ``interrupted``."""

    def __init__(self, thread_id: str, number: signal.Signals) -> None:
        """Name the run and the signal."""
        super().__init__(f"run {thread_id} interrupted by {SIGNAL_NAMES[number]}")
        self.thread_id = thread_id
        self.signal = number

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended."""
        return 128 + int(self.signal)


def until_signal(coroutine: Coroutine[Any, Any, T], thread_id: str) -> T:
    """Run ``coroutine`` to its end; Ctrl-C or SIGTERM stop it cleanly (RunInterruptedError)."""
    received: list[signal.Signals] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        installed = []
        for number in SIGNAL_NAMES:

            def stop(number: signal.Signals = number) -> None:
                received.append(number)
                task.cancel()

            try:
                loop.add_signal_handler(number, stop)
                installed.append(number)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            return await coroutine
        finally:
            for number in installed:
                loop.remove_signal_handler(number)

    try:
        return asyncio.run(guarded())
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise RunInterruptedError(thread_id, received[0] if received else signal.SIGINT) from None

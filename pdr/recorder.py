"""The ledger side of one run session: events become rows, the lease is held and renewed.

``Recorder`` is what ``pdr.runner`` hands every event of the graph's custom stream to. It is the
only writer of the ledger while a run executes: a ``call_started`` event becomes the attempt's row
(committed before the event is acknowledged, so before the request leaves the process), a
``call_finished`` event completes that row (the ledger marks repeats), a ``workspace_written``
event becomes the round's workspace rows. It also holds the run's lease (``pdr.store.leases``):
taken before anything is written, renewed by a heartbeat while the run executes, given back when
the session ends however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pdr.budget import CallRecord, budgets
from pdr.events import ACK, CALL_FINISHED, CALL_STARTED, WORKSPACE_WRITTEN
from pdr.redact import redact
from pdr.store.leases import HEARTBEAT_S, Holder
from pdr.store.ledger import Ledger, Status


class LeaseLostError(RuntimeError):
    """Another process took this run's lease over (this one was presumed dead)."""


class Recorder:
    """One session of one run: its ledger rows and its lease; see the module docstring."""

    def __init__(self, thread_id: str, ledger: Ledger | None, earlier: list[CallRecord]) -> None:
        """Record into ``ledger`` (nothing when None); ``earlier``: calls of earlier sessions."""
        self.thread_id = thread_id
        self.ledger = ledger
        self.records = list(earlier)
        self.holder = Holder()
        self.lease_lost = False

    # -- events ----------------------------------------------------------------------------

    def take(self, event: dict[str, Any]) -> dict[str, Any]:
        """Store what ``event`` carries; returns the event without its acknowledgement."""
        kind = event.get("event")
        ack: asyncio.Future[None] | None = event.get(ACK)
        try:
            if kind in (CALL_STARTED, CALL_FINISHED):
                record: CallRecord = event["record"]
                if kind == CALL_FINISHED:
                    self.records.append(record)
                if self.ledger is not None:
                    record["repeat"] = self.ledger.record_call(self.thread_id, record)
            elif kind == WORKSPACE_WRITTEN and self.ledger is not None:
                written = zip(event["texts"], event["tokens"], strict=True)
                for index, (text, tokens) in enumerate(written):
                    self.ledger.record_workspace(
                        self.thread_id, int(event["round"]), text, int(tokens), index
                    )
        except Exception as error:
            if ack is not None and not ack.done():
                ack.set_exception(error)
            raise
        if ack is not None and not ack.done():
            ack.set_result(None)
        return {key: value for key, value in event.items() if key != ACK}

    # -- lease -----------------------------------------------------------------------------

    def take_lease(self) -> None:
        """Take the run's lease (raises LeaseHeldError naming a live holder)."""
        if self.ledger is not None:
            self.ledger.take_lease(self.thread_id, self.holder)

    def release_lease(self) -> None:
        """Give the lease back (never another holder's)."""
        if self.ledger is not None:
            self.ledger.release_lease(self.thread_id, self.holder)

    @contextlib.asynccontextmanager
    async def heartbeat(self, guarded: asyncio.Task[Any] | None) -> AsyncIterator[None]:
        """Renew the lease while the block runs; a lease taken over cancels ``guarded``."""
        if self.ledger is None:
            yield
            return
        ledger = self.ledger

        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_S)
                if not ledger.renew_lease(self.thread_id, self.holder):
                    self.lease_lost = True
                    if guarded is not None:
                        guarded.cancel()
                    return

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- closing ---------------------------------------------------------------------------

    def close(
        self,
        *,
        answer: str | None,
        final_text: str | None,
        wall_s: float,
        status: Status,
        grade: bool | None = None,
        error: str | None = None,
    ) -> tuple[int, int, list[CallRecord]]:
        """Close the run in the ledger (which computes its budgets from its rows).

        Returns (B_seq, B_tot, calls): the ledger's own figures, or the session's records'
        without a ledger.
        """
        if self.ledger is None:
            b_seq, b_tot = budgets(self.records)
            return b_seq, b_tot, self.records
        b_seq, b_tot = self.ledger.finish_run(
            self.thread_id,
            answer=answer,
            final_text=final_text,
            wall_s=wall_s,
            status=status,
            grade=grade,
            error=None if error is None else redact(error),
        )
        stored = self.ledger.get_run(self.thread_id)
        return b_seq, b_tot, stored.call_records if stored is not None else self.records

    def close_unfinished(self, note: str) -> None:
        """End the attempts still in flight with ``note`` (their prompt tokens estimated)."""
        if self.ledger is not None:
            self.ledger.close_unfinished_calls(self.thread_id, redact(note))

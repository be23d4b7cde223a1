"""Leases: one process at a time executes a run.

Whoever runs or resumes a thread first takes its lease: a row in the ``leases`` table keyed by the
thread id, naming the holder (a session id, the host and the pid) and a heartbeat the holder
renews while it works. A second ``run`` or ``resume`` of the thread finds the row and is refused
with ``LeaseHeldError``, which names the holder. A lease whose holder is gone is taken over: on the
same host when its process no longer exists (or its heartbeat is stale, which covers a reused pid),
on another host when its heartbeat is older than ``STALE_AFTER_S``.

Every step is one statement in its own transaction, portable SQL through SQLAlchemy Core: the
first take is an INSERT that the primary key makes exclusive (the loser gets an integrity error),
a takeover an UPDATE guarded by the old holder and heartbeat (compare-and-set: at most one taker
changes the row). The same statements hold on PostgreSQL, where the unique key and the row lock of
the UPDATE give the same guarantees under concurrent sessions.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pdr.store.database import LedgerError
from pdr.store.ledger_models import Lease, utcnow
from pdr.store.rows import as_utc

HEARTBEAT_S = 10.0
"""How often a holder renews its lease."""
STALE_AFTER_S = 60.0
"""A lease not renewed for this long belongs to a holder presumed dead."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a lease: this process, under a fresh session id."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as stored."""

    thread_id: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime

    def describe(self, now: datetime | None = None) -> str:
        """``pid 123 on host h since 12:00:01 UTC (heartbeat 3 s ago)``."""
        age = ((now or utcnow()) - self.heartbeat_at).total_seconds()
        return (
            f"pid {self.pid} on host {self.host} since "
            f"{self.acquired_at.strftime('%Y-%m-%d %H:%M:%S')} UTC (heartbeat {age:.0f} s ago)"
        )


class LeaseHeldError(LedgerError):
    """Another live process executes the run; the message names it."""

    def __init__(self, lease: LeaseInfo) -> None:
        """Name the holder and what to do."""
        super().__init__(
            f"run {lease.thread_id!r} is being executed by {lease.describe()}; wait for it to "
            f"finish or stop that process (a lease whose process died is taken over)"
        )
        self.lease = lease


def _info(row: Lease) -> LeaseInfo:
    return LeaseInfo(
        thread_id=row.thread_id,
        holder=row.holder,
        host=row.host,
        pid=row.pid,
        acquired_at=as_utc(row.acquired_at),
        heartbeat_at=as_utc(row.heartbeat_at),
    )


def _count(result: Any) -> int:
    """Rows an UPDATE changed (its CursorResult's rowcount)."""
    return int(cast(CursorResult[Any], result).rowcount)


def process_exists(pid: int) -> bool:
    """True when a process with this pid exists on this host (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    # A killed child its parent has not reaped yet still answers kill(pid, 0); Linux says "Z".
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def holder_alive(lease: LeaseInfo, me: Holder, now: datetime) -> bool:
    """Whether the lease's holder is presumed to be working."""
    if now - lease.heartbeat_at > timedelta(seconds=STALE_AFTER_S):
        return False
    if lease.host == me.host:
        return process_exists(lease.pid)
    return True


def read(sessions: sessionmaker[Session], thread_id: str) -> LeaseInfo | None:
    """The lease of ``thread_id``, if any."""
    with sessions() as session:
        row = session.get(Lease, thread_id)
        return None if row is None else _info(row)


def take(sessions: sessionmaker[Session], thread_id: str, me: Holder) -> LeaseInfo | None:
    """Take the lease of ``thread_id`` for ``me``; returns the dead holder's lease taken over.

    Raises:
        LeaseHeldError: a live holder has it.
    """
    for _ in range(3):
        now = utcnow()
        try:
            with sessions.begin() as session:
                session.execute(
                    insert(Lease).values(
                        thread_id=thread_id,
                        holder=me.id,
                        host=me.host,
                        pid=me.pid,
                        acquired_at=now,
                        heartbeat_at=now,
                    )
                )
            return None
        except IntegrityError:
            pass
        current = read(sessions, thread_id)
        if current is None:
            continue  # released meanwhile: try the insert again
        if current.holder == me.id:
            return None
        if holder_alive(current, me, now):
            raise LeaseHeldError(current)
        with sessions.begin() as session:
            result = session.execute(
                update(Lease)
                .where(
                    Lease.thread_id == thread_id,
                    Lease.holder == current.holder,
                    Lease.heartbeat_at == current.heartbeat_at,
                )
                .values(holder=me.id, host=me.host, pid=me.pid, acquired_at=now, heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
        if _count(result) == 1:
            return current
    found = read(sessions, thread_id)
    if found is not None and found.holder != me.id:
        raise LeaseHeldError(found)
    raise LedgerError(f"could not take the lease of run {thread_id!r}; try again")


def renew(sessions: sessionmaker[Session], thread_id: str, me: Holder) -> bool:
    """Renew ``me``'s heartbeat; False when the lease is no longer ``me``'s (taken over)."""
    with sessions.begin() as session:
        result = session.execute(
            update(Lease)
            .where(Lease.thread_id == thread_id, Lease.holder == me.id)
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return _count(result) == 1


def release(sessions: sessionmaker[Session], thread_id: str, me: Holder) -> None:
    """Give the lease back (only ``me``'s own)."""
    with sessions.begin() as session:
        session.execute(delete(Lease).where(Lease.thread_id == thread_id, Lease.holder == me.id))


def held_by(sessions: sessionmaker[Session], thread_id: str) -> LeaseInfo | None:
    """The lease of a run if its holder is presumed alive (for ``pdr runs``)."""
    found = read(sessions, thread_id)
    if found is None or not holder_alive(found, Holder(), utcnow()):
        return None
    return found


__all__ = ["Holder", "LeaseHeldError", "LeaseInfo", "held_by", "release", "renew", "take"]

"""An experiment's work queue: cells that evaluation workers claim, run and mark done.

Each (configuration label, item, seed) of an experiment is one row of ``cells`` (``QueuedCell``),
``waiting`` until a worker claims it, ``running`` while the worker's heartbeat is fresh, ``done``
once its run ended. A claim is atomic: on PostgreSQL the candidate row is selected ``FOR UPDATE
SKIP LOCKED`` (concurrent claimers skip each other's rows instead of queueing on them); on every
database the claim itself is one UPDATE guarded by the state and claim count the claimer read
(compare-and-set: of two claimers of one row exactly one changes it; SQLite serializes writers, so
there the guard alone is the equivalent). A running cell whose heartbeat is older than the
experiment's lease time-out belongs to a worker presumed dead and is claimed again, keeping its
thread id, so the new worker resumes its run from the checkpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from pdr.store.leases import Holder
from pdr.store.ledger_models import QueuedCell, utcnow
from pdr.store.rows import as_utc

WAITING, RUNNING, DONE = "waiting", "running", "done"


@dataclass(frozen=True)
class CellKey:
    """A cell to queue: its phase, order, method and (label, item, seed) key."""

    phase: str
    position: int
    method: str
    label: str
    item_id: str
    seed: int


@dataclass(frozen=True)
class Claim:
    """A cell claimed by this worker: its row id, key, run thread and how often it was claimed."""

    id: int
    label: str
    item_id: str
    seed: int
    thread_id: str
    claims: int
    taken_over: bool


@dataclass(frozen=True)
class WorkerLoad:
    """The cells one worker holds now."""

    host: str
    pid: int
    worker: str
    running: int
    heartbeat_at: datetime


@dataclass(frozen=True)
class ClaimedCell:
    """A cell some worker claimed: its state, the worker, its process and the cell's run."""

    state: str
    worker: str
    pid: int
    thread_id: str


@dataclass(frozen=True)
class QueueState:
    """How many cells of an experiment (or one phase) are waiting, running and done."""

    waiting: int
    running: int
    done: int

    @property
    def total(self) -> int:
        """Cells in the queue."""
        return self.waiting + self.running + self.done


def _insert(sessions: sessionmaker[Session]) -> Any:
    dialect = sessions.kw["bind"].dialect.name
    return pg_insert if dialect == "postgresql" else sqlite_insert


def enqueue(
    sessions: sessionmaker[Session],
    experiment_id: int,
    keys: Sequence[CellKey],
    completed: set[tuple[str, str, int]],
) -> None:
    """Add the cells not yet queued (``done`` when their key is in ``completed``).

    Several workers may queue the same cells at once: the unique key and ``ON CONFLICT DO
    NOTHING`` keep one row per cell.
    """
    if not keys:
        return
    rows = [
        {
            "experiment_id": experiment_id,
            "phase": key.phase,
            "position": key.position,
            "method": key.method,
            "label": key.label,
            "item_id": key.item_id,
            "seed": key.seed,
            "state": DONE if (key.label, key.item_id, key.seed) in completed else WAITING,
            "claims": 0,
        }
        for key in keys
    ]
    statement = _insert(sessions)(QueuedCell).on_conflict_do_nothing()
    with sessions.begin() as session:
        for start in range(0, len(rows), 500):
            session.execute(statement, rows[start : start + 500])


def reopen(
    sessions: sessionmaker[Session],
    experiment_id: int,
    completed: set[tuple[str, str, int]],
    me: Holder,
    alive: Any,
) -> int:
    """Before a fresh ``pdr eval`` of an experiment: queue again what did not finish.

    Done cells whose run did not finish (failed) get a fresh run; running cells of this host
    whose process is gone (``alive(pid)`` False) are waiting again, keeping their run so it is
    resumed. Returns how many cells were reopened.
    """
    reopened = 0
    with sessions.begin() as session:
        rows = session.scalars(
            select(QueuedCell).where(
                QueuedCell.experiment_id == experiment_id, QueuedCell.state != WAITING
            )
        ).all()
        for row in rows:
            key = (row.label, row.item_id, row.seed)
            if row.state == DONE and key not in completed:
                row.state, row.thread_id, row.worker = WAITING, None, None
                reopened += 1
            elif row.state == RUNNING and row.host == me.host and row.pid and not alive(row.pid):
                row.state, row.worker = WAITING, None
                reopened += 1
    return reopened


def claim(
    sessions: sessionmaker[Session],
    experiment_id: int,
    phase: str,
    me: Holder,
    lease_timeout_s: float,
) -> Claim | None:
    """Claim the first waiting cell of ``phase`` (or one whose worker's lease ran out).

    Returns None when no cell can be claimed now (all done, or held by live workers).
    """
    for _ in range(20):
        now = utcnow()
        stale = now - timedelta(seconds=lease_timeout_s)
        with sessions.begin() as session:
            row = session.scalars(
                select(QueuedCell)
                .where(
                    QueuedCell.experiment_id == experiment_id,
                    QueuedCell.phase == phase,
                    or_(
                        QueuedCell.state == WAITING,
                        and_(QueuedCell.state == RUNNING, QueuedCell.heartbeat_at < stale),
                    ),
                )
                .order_by(QueuedCell.position)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            taken_over = row.state == RUNNING
            thread_id = row.thread_id or f"eval{experiment_id}-{uuid.uuid4().hex[:12]}"
            result = session.execute(
                update(QueuedCell)
                .where(
                    QueuedCell.id == row.id,
                    QueuedCell.state == row.state,
                    QueuedCell.claims == row.claims,
                )
                .values(
                    state=RUNNING,
                    thread_id=thread_id,
                    worker=me.id,
                    host=me.host,
                    pid=me.pid,
                    claimed_at=now,
                    heartbeat_at=now,
                    claims=row.claims + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], result).rowcount == 1:
                return Claim(
                    row.id, row.label, row.item_id, row.seed, thread_id, row.claims + 1, taken_over
                )
    return None  # lost every race: the caller tries again later


def renew(sessions: sessionmaker[Session], me: Holder) -> int:
    """Renew the heartbeat of every cell ``me`` holds; returns how many."""
    with sessions.begin() as session:
        result = session.execute(
            update(QueuedCell)
            .where(QueuedCell.worker == me.id, QueuedCell.state == RUNNING)
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return int(cast(CursorResult[Any], result).rowcount)


def finish(sessions: sessionmaker[Session], cell_id: int) -> None:
    """Mark a cell done (its run ended, whoever ran it)."""
    with sessions.begin() as session:
        session.execute(
            update(QueuedCell)
            .where(QueuedCell.id == cell_id)
            .values(state=DONE, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def release(sessions: sessionmaker[Session], me: Holder, cell_ids: Iterable[int]) -> None:
    """Give cells back to the queue (a worker stopped before their runs ended)."""
    with sessions.begin() as session:
        session.execute(
            update(QueuedCell)
            .where(
                QueuedCell.id.in_(list(cell_ids)),
                QueuedCell.worker == me.id,
                QueuedCell.state == RUNNING,
            )
            .values(state=WAITING, worker=None)
            .execution_options(synchronize_session=False)
        )


def state(
    sessions: sessionmaker[Session], experiment_id: int, phase: str | None = None
) -> QueueState:
    """Counts of waiting, running and done cells (of one phase, or all)."""
    query = (
        select(QueuedCell.state, func.count())
        .where(QueuedCell.experiment_id == experiment_id)
        .group_by(QueuedCell.state)
    )
    if phase is not None:
        query = query.where(QueuedCell.phase == phase)
    with sessions() as session:
        counts = {name: int(n) for name, n in session.execute(query).all()}
    return QueueState(counts.get(WAITING, 0), counts.get(RUNNING, 0), counts.get(DONE, 0))


def workers(sessions: sessionmaker[Session], experiment_id: int) -> list[WorkerLoad]:
    """The workers holding running cells, with how many each holds and its last heartbeat."""
    with sessions() as session:
        rows = session.execute(
            select(
                QueuedCell.host,
                QueuedCell.pid,
                QueuedCell.worker,
                func.count(),
                func.max(QueuedCell.heartbeat_at),
            )
            .where(QueuedCell.experiment_id == experiment_id, QueuedCell.state == RUNNING)
            .group_by(QueuedCell.host, QueuedCell.pid, QueuedCell.worker)
            .order_by(QueuedCell.host, QueuedCell.pid)
        ).all()
    return [
        WorkerLoad(str(host), int(pid or 0), str(worker), int(n), as_utc(beat or utcnow()))
        for host, pid, worker, n, beat in rows
    ]


def claimed(sessions: sessionmaker[Session], experiment_id: int) -> list[ClaimedCell]:
    """Every cell claimed at least once, with its last claimant."""
    with sessions() as session:
        rows = session.execute(
            select(QueuedCell.state, QueuedCell.worker, QueuedCell.pid, QueuedCell.thread_id)
            .where(QueuedCell.experiment_id == experiment_id, QueuedCell.claims > 0)
            .order_by(QueuedCell.position)
        ).all()
    return [
        ClaimedCell(str(state), str(worker), int(pid or 0), str(thread))
        for state, worker, pid, thread in rows
    ]


def claims(sessions: sessionmaker[Session], experiment_id: int) -> dict[tuple[str, str, int], int]:
    """How many times each cell was claimed (1 unless a worker died or stopped holding it)."""
    with sessions() as session:
        rows = session.execute(
            select(QueuedCell.label, QueuedCell.item_id, QueuedCell.seed, QueuedCell.claims).where(
                QueuedCell.experiment_id == experiment_id
            )
        ).all()
    return {(label, item, seed): int(n) for label, item, seed, n in rows}


__all__ = [
    "DONE",
    "RUNNING",
    "WAITING",
    "CellKey",
    "Claim",
    "ClaimedCell",
    "QueueState",
    "WorkerLoad",
    "claim",
    "claimed",
    "claims",
    "enqueue",
    "finish",
    "release",
    "renew",
    "reopen",
    "state",
    "workers",
]

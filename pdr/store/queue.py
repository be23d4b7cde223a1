"""An experiment as workers share it: its problems, its settings and its work queue.

``WorkQueue(ledger, experiment_id)`` is what an evaluation worker needs beyond the ledger's runs
and results: the experiment's items (so a worker joining from another machine needs no dataset
file), where its runs keep their checkpoints, its lease time-out, and the cells it claims
(``pdr.store.cells``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from pdr.store import cells
from pdr.store.database import LedgerError
from pdr.store.leases import Holder, process_exists
from pdr.store.ledger import Ledger
from pdr.store.ledger_models import Experiment, Item

DEFAULT_LEASE_TIMEOUT_S = 60.0
"""A claim not renewed for this long belongs to a worker presumed dead."""


@dataclass(frozen=True)
class StoredItem:
    """A problem of an experiment as stored (id, text, gold answer, level)."""

    item_id: str
    problem: str
    answer: str
    level: int | None


@dataclass(frozen=True)
class Settings:
    """What a joining worker reads: the name, checkpoint location, host that named it, lease."""

    name: str
    checkpoints: str | None
    host: str | None
    lease_timeout_s: float


class WorkQueue:
    """One experiment's items, settings and cells in a ledger."""

    def __init__(self, ledger: Ledger, experiment_id: int) -> None:
        """Wrap ``experiment_id`` of ``ledger``."""
        self.ledger = ledger
        self.experiment_id = experiment_id
        self._sessions = sessionmaker(ledger.engine, expire_on_commit=False)

    # -- the experiment --------------------------------------------------------------------

    def save(
        self,
        items: Sequence[StoredItem],
        *,
        checkpoints: str,
        host: str,
        lease_timeout_s: float,
    ) -> None:
        """Store the items not stored yet and the experiment's worker settings."""
        with self._sessions.begin() as session:
            known = set(
                session.scalars(
                    select(Item.item_id).where(Item.experiment_id == self.experiment_id)
                )
            )
            session.add_all(
                Item(
                    experiment_id=self.experiment_id,
                    position=position,
                    item_id=item.item_id,
                    problem=item.problem,
                    answer=item.answer,
                    level=item.level,
                )
                for position, item in enumerate(items)
                if item.item_id not in known
            )
            experiment = session.get(Experiment, self.experiment_id)
            assert experiment is not None
            experiment.checkpoints = checkpoints
            experiment.host = host
            experiment.lease_timeout_s = lease_timeout_s

    def items(self) -> list[StoredItem]:
        """The experiment's problems, in dataset order."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Item).where(Item.experiment_id == self.experiment_id).order_by(Item.position)
            ).all()
            return [StoredItem(r.item_id, r.problem, r.answer, r.level) for r in rows]

    def settings(self) -> Settings:
        """The stored checkpoint location, host and lease time-out."""
        with self._sessions() as session:
            experiment = session.get(Experiment, self.experiment_id)
            if experiment is None:
                raise LedgerError(f"no experiment with id {self.experiment_id}")
            return Settings(
                experiment.name,
                experiment.checkpoints,
                experiment.host,
                experiment.lease_timeout_s or DEFAULT_LEASE_TIMEOUT_S,
            )

    # -- the cells -------------------------------------------------------------------------

    def enqueue(self, keys: Sequence[cells.CellKey], completed: set[tuple[str, str, int]]) -> None:
        """Queue the cells not queued yet (see ``pdr.store.cells.enqueue``)."""
        cells.enqueue(self._sessions, self.experiment_id, keys, completed)

    def reopen(self, me: Holder) -> int:
        """Queue again failed cells and those of dead processes of this host."""
        completed = self.ledger.completed_items(self.experiment_id)
        return cells.reopen(self._sessions, self.experiment_id, completed, me, process_exists)

    def claim(self, phase: str, me: Holder, lease_timeout_s: float) -> cells.Claim | None:
        """Claim a cell of ``phase`` for ``me`` (see ``pdr.store.cells.claim``)."""
        return cells.claim(self._sessions, self.experiment_id, phase, me, lease_timeout_s)

    def renew(self, me: Holder) -> int:
        """Renew the heartbeat of ``me``'s cells."""
        return cells.renew(self._sessions, me)

    def finish(self, cell_id: int) -> None:
        """Mark a cell done."""
        cells.finish(self._sessions, cell_id)

    def release(self, me: Holder, cell_ids: Iterable[int]) -> None:
        """Give ``me``'s unfinished cells back to the queue."""
        cells.release(self._sessions, me, cell_ids)

    def state(self, phase: str | None = None) -> cells.QueueState:
        """Waiting, running and done cells."""
        return cells.state(self._sessions, self.experiment_id, phase)

    def workers(self) -> list[cells.WorkerLoad]:
        """Workers holding cells now."""
        return cells.workers(self._sessions, self.experiment_id)

    def claimed(self) -> list[cells.ClaimedCell]:
        """Every cell claimed at least once, with its last claimant."""
        return cells.claimed(self._sessions, self.experiment_id)

    def claims(self) -> dict[tuple[str, str, int], int]:
        """Claims per cell key."""
        return cells.claims(self._sessions, self.experiment_id)

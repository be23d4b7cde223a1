"""The ledger's database: its engine, its schema brought up to date, and plain errors.

``open_engine`` makes the SQLAlchemy engine (SQLite files in WAL mode with a generous busy timeout,
any other URL as given) and upgrades the ledger to the current schema with its Alembic revisions
(``pdr.store.schema``): a ledger written by an older pdr gains what it lacks and keeps its rows,
one written by a newer pdr is refused. A path that cannot hold a database, a file that is not
one, or a server that cannot be reached fails with a ``LedgerError`` naming the ledger and the
fix instead of SQLAlchemy's dump of the statement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pdr.redact import redact
from pdr.store.schema import SchemaError, upgrade


class LedgerError(ValueError):
    """A ledger operation that cannot be done as asked (unknown thread, duplicate thread)."""


def open_engine(url: str) -> Engine:
    """The engine of the ledger at ``url``, with every table and column in place.

    Raises:
        LedgerError: the folder cannot be made, or the file is not a database pdr can use.
    """
    shown = redact(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True)
    else:
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise LedgerError(
                    f"cannot create the ledger {parsed.database}: a part of {folder} is a file, "
                    f"not a folder; choose another path"
                ) from None
            except OSError as error:
                raise LedgerError(
                    f"cannot create the folder {folder} of the ledger: {error.strerror}"
                ) from None
        engine = _sqlite_engine(url)
    try:
        upgrade(engine)
    except SchemaError as error:
        engine.dispose()
        raise LedgerError(f"the ledger {shown} cannot be used: {error}") from None
    except SQLAlchemyError as error:
        engine.dispose()
        reason = redact(str(getattr(error, "orig", None) or error)).strip().splitlines()[0]
        if parsed.get_backend_name() != "sqlite":
            raise LedgerError(
                f"the ledger {shown} cannot be used: {reason}; check the URL, that the server "
                f"runs and that the database exists"
            ) from None
        raise LedgerError(
            f"the ledger {shown} cannot be used: {reason}; if it is not a pdr ledger (or is "
            f"damaged), move it away or name another file"
        ) from None
    return engine


def _sqlite_engine(url: str) -> Engine:
    # Calls are written from LangGraph's worker threads and the event loop thread; a generous busy
    # timeout lets a second process (an evaluation beside a `pdr runs list`) wait instead of fail.
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        # WAL: readers never block the writer; each commit survives a killed process. In WAL mode
        # synchronous=NORMAL still keeps every commit through a killed process (only a power
        # loss can drop the last ones) without an fsync per commit: the runner commits a row per
        # call, and at 64 calls a round the fsyncs blocked the event loop for about 0.9 s here.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine

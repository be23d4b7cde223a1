"""The ledger's database: its engine, the columns added since it was created, and plain errors.

``open_engine`` makes the SQLAlchemy engine (SQLite files in WAL mode with a generous busy timeout,
any other URL as given), creates the tables and adds the columns a ledger written by an older pdr
lacks (``ALTER TABLE ... ADD COLUMN``, portable across SQLite and PostgreSQL; new columns are
nullable). A path that cannot hold a database, or a file that is not one, fails with a
``LedgerError`` naming the file and the fix instead of SQLAlchemy's dump of the statement.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pdr.redact import redact
from pdr.store.ledger_models import Base

SCHEMA_ATTEMPTS = 5


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
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            Base.metadata.create_all(engine)
            add_missing_columns(engine)
            return engine
        except SQLAlchemyError as error:
            # Another process may be creating the same tables right now ("already exists"):
            # look again; a file that is not a ledger fails every time.
            if attempt + 1 < SCHEMA_ATTEMPTS:
                time.sleep(0.1 * (attempt + 1))
                continue
            engine.dispose()
            reason = getattr(error, "orig", None) or error
            raise LedgerError(
                f"the ledger {shown} cannot be used: {reason}; if it is not a pdr ledger (or is "
                f"damaged), move it away or name another file"
            ) from None
    raise AssertionError("unreachable")


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


def add_missing_columns(engine: Engine) -> list[str]:
    """Add to each table the columns of the models it lacks; returns ``table.column`` added."""
    inspector = inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    added: list[str] = []
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                connection.execute(
                    text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}")
                )
                added.append(f"{table.name}.{column.name}")
    return added

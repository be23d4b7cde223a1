"""The ledger's schema, versioned with Alembic: brought up to date when opened, never misread.

Opening a ledger reads the revision in its ``alembic_version`` table (one query). At the head
revision there is nothing to do. Otherwise, under the database's own lock (SQLite: a write
transaction begun with ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock), so
that several processes opening one ledger upgrade it once, the revision is read again and:

- a revision this pdr does not know (a newer pdr wrote the ledger): refused, naming it;
- none (a new database, or a ledger written before pdr used Alembic): every revision runs from
  the first. Their steps add only what is missing (``pdr.store.migrations.steps``), so an older
  ledger keeps its rows and gains the tables and columns it lacks;
- an older revision: the later revisions run.

Afterwards every table and column of ``pdr.store.ledger_models`` must be there: a database whose
``runs`` table is someone else's is refused rather than read. It all happens in one transaction,
so an upgrade that fails leaves the ledger as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from pdr.store.ledger_models import Base

HEAD: Final = "v5"
"""The newest revision (``tests/test_schema.py`` checks it is the head of ``migrations/``)."""
MIGRATIONS = Path(__file__).with_name("migrations")
# The columns every pdr ledger has had since the first release: a table of one of these names
# without them is someone else's, and the ledger is refused before anything is written.
FIRST_RELEASE: Final = {
    "experiments": ("id", "name", "config", "created_at"),
    "runs": ("id", "thread_id", "graph", "models", "context", "problem", "status", "seed"),
    "calls": ("id", "run_id", "role", "round", "index", "attempt", "model", "input_tokens"),
    "workspaces": ("id", "run_id", "round", "index", "text", "tokens"),
    "results": ("id", "experiment_id", "method", "label", "seed", "item_id", "run_id"),
}
# An arbitrary 64-bit key: PostgreSQL's advisory lock that serialises upgrades of one database.
UPGRADE_LOCK_KEY: Final = 0x7064725F6C656467


class SchemaError(ValueError):
    """The ledger's schema cannot be used by this pdr; the message says why and what to do."""


def revision_of(engine: Engine) -> str | None:
    """The ledger's Alembic revision; None where it has none (new, or written before Alembic)."""
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            versions = list(found)
    except SQLAlchemyError:
        return None
    return versions[0] if len(versions) == 1 else None


def known_revisions() -> list[str]:
    """Every revision of ``migrations/``, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def upgrade(engine: Engine) -> bool:
    """Bring the ledger on ``engine`` to the head revision; returns whether anything ran.

    Raises:
        SchemaError: a newer pdr's revision, or tables that are not a pdr ledger's.
        SQLAlchemyError: the database cannot be read or written at all.
    """
    if revision_of(engine) == HEAD:
        return False
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    with _locked(engine) as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current == HEAD:
            return False
        if current is not None and current not in known_revisions():
            raise SchemaError(
                f"it was written by a newer pdr (schema revision {current!r}; this pdr knows up "
                f"to {HEAD!r}): upgrade pdr to use it"
            )
        if current is None:
            _refuse_foreign_tables(connection)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        missing = missing_columns(connection)
        if missing:
            raise SchemaError(
                f"it has tables that are not a pdr ledger's (no column {', '.join(missing[:3])}); "
                f"name another database, or move that one away"
            )
    return True


def _refuse_foreign_tables(connection: Connection) -> None:
    inspector: Any = inspect(connection)
    missing = []
    for table, columns in FIRST_RELEASE.items():
        if inspector.has_table(table):
            present = {column["name"] for column in inspector.get_columns(table)}
            missing += [f"{table}.{column}" for column in columns if column not in present]
    if missing:
        raise SchemaError(
            f"it has tables that are not a pdr ledger's (no column {', '.join(missing[:3])}); "
            f"name another database, or move that one away"
        )


def missing_columns(connection: Connection) -> list[str]:
    """``table.column`` of the models that the database lacks."""
    inspector: Any = inspect(connection)
    missing = []
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in present]
    return missing


@contextlib.contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the database's upgrade lock; commits on exit."""
    if engine.dialect.name == "sqlite":
        # pysqlite opens transactions lazily and not for DDL; this engine begins them itself,
        # with the write lock taken at once (other processes wait on the busy timeout).
        locking = create_engine(engine.url, connect_args={"timeout": 30})

        @event.listens_for(locking, "connect")
        def _manual(connection: Any, _record: Any) -> None:
            connection.isolation_level = None

        @event.listens_for(locking, "begin")
        def _immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        try:
            with locking.begin() as connection:
                yield connection
        finally:
            locking.dispose()
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY}
            )
        yield connection

"""Compile any of the graphs with a checkpointer, so an interrupted run can resume.

Checkpoints go to a SQLite file (LangGraph's SQLite saver) or, for a ``postgresql://`` URL, to a
PostgreSQL database (langgraph-checkpoint-postgres), which workers on several machines share. The
graphs' nodes are async, so the graph runs on an event loop either way: ``compile_with_sqlite``
gives a graph for ``invoke``/``stream`` (LangGraph runs the loop), ``open_async_graph`` one for
``ainvoke``/``astream`` on either kind. Resume a run with ``invoke(None, config)`` on the same
thread id.

A location is checked before a run writes anything (``check_checkpoints``): a file must be absent,
empty or a SQLite database; a database must be reachable, and gets LangGraph's tables (created
once, under an advisory lock, however many processes start together). The ledger keeps each
run's location (``stored_form``: a URL with its password redacted), and ``resume_location`` finds
it again for a resume, refusing another location unless the run is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from pdr.aio import SYNC_FAN_OUT
from pdr.redact import is_redacted, redact
from pdr.settings import checkpoints_location, is_postgres, postgres_conninfo

Location = str | Path
"""A SQLite checkpoint file, or a ``postgresql://`` URL."""

# Seconds a connection waits for another process's write (several runs share one file).
BUSY_TIMEOUT_S = 30.0
# An arbitrary 64-bit key: the advisory lock under which LangGraph's tables are created.
SETUP_LOCK_KEY = 0x7064725F63686B70
_prepared: set[str] = set()  # locations whose tables this process has checked


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used as asked; the message names the file and the fix."""


def _prepare(path: str | Path) -> str:
    location = Path(path).expanduser()
    try:
        location.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CheckpointError(
            f"cannot create the checkpoint file {location}: a part of {location.parent} is a "
            f"file, not a folder; choose another path"
        ) from None
    return str(location)


def describe(location: Location) -> str:
    """``the checkpoint file PATH`` or ``the checkpoint database URL`` (password redacted)."""
    if is_postgres(location):
        return f"the checkpoint database {redact(str(location))}"
    return f"the checkpoint file {Path(location).expanduser()}"


def stored_form(location: Location) -> str:
    """How the ledger keeps a location: the absolute file path, or the URL without password."""
    if is_postgres(location):
        return redact(str(location))
    return str(Path(location).expanduser().resolve())


def check_checkpoints(location: Location, again: bool = False) -> None:
    """Raise CheckpointError unless checkpoints can be written to ``location``.

    A file must be absent, empty or a SQLite database (``check_checkpoint_file``); a PostgreSQL
    database must answer, and gets LangGraph's tables if it lacks them (checked once per process
    unless ``again``: a resume looks again, in case they were dropped meanwhile).
    """
    if not is_postgres(location):
        check_checkpoint_file(location)
        return
    url = postgres_conninfo(str(location))
    if url in _prepared and not again:
        return
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    try:
        with psycopg.Connection.connect(
            url, autocommit=True, prepare_threshold=0, row_factory=dict_row, connect_timeout=10
        ) as connection:
            # Polled, not waited for inside a statement: LangGraph's setup builds indexes
            # CONCURRENTLY, which waits for every open transaction, a blocked waiter's too.
            while not connection.execute(
                "SELECT pg_try_advisory_lock(%s) AS taken", (SETUP_LOCK_KEY,)
            ).fetchone()["taken"]:  # type: ignore[index]
                time.sleep(0.05)
            try:
                PostgresSaver(connection).setup()
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))
    except psycopg.Error as error:
        reason = redact(str(error)).strip().splitlines()[0] if str(error).strip() else "no reply"
        raise CheckpointError(
            f"cannot use {describe(url)}: {reason}; check the URL, that the server runs and "
            f"that the database exists"
        ) from None
    _prepared.add(url)


def check_checkpoint_file(path: str | Path) -> None:
    """Raise CheckpointError unless ``path`` is absent, empty or a SQLite database.

    Checked before a run writes anything, so a file that is not a database is reported in one
    line instead of failing the run after its ledger row was written. The file is then put in
    WAL mode with LangGraph's tables (``set_up_sqlite``).
    """
    location = Path(path).expanduser()
    if location.is_dir():
        raise CheckpointError(f"the checkpoint file {location} is a folder; name a file")
    _prepare(location)
    if not location.exists() or location.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{location}?mode=ro", uri=True)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as error:
        raise CheckpointError(
            f"the checkpoint file {location} is not a SQLite database ({error}); move it away "
            f"or name another file"
        ) from None
    set_up_sqlite(location)


def set_up_sqlite(location: Path) -> None:
    """Put a checkpoint file in WAL mode and give it LangGraph's tables, once.

    Runs that start together on a new file (an evaluation's, or several workers') would
    otherwise each switch its journal mode and create the tables on first use, and some fail at
    once with "database is locked" (neither step waits on the busy timeout). Here a process
    that finds the file locked tries again.
    """
    key = str(location.resolve())
    if key in _prepared and location.exists():
        return
    for attempt in range(100):
        try:
            with contextlib.closing(sqlite3.connect(location, timeout=BUSY_TIMEOUT_S)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                SqliteSaver(db).setup()
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == 99:
                raise CheckpointError(f"cannot set up {describe(location)}: {error}") from None
            time.sleep(0.02 * (1 + attempt % 10))
    _prepared.add(key)


def sqlite_checkpointer(path: str | Path) -> SqliteSaver:
    """A SqliteSaver on ``path`` (created with its folder if missing), usable from any thread."""
    connection = sqlite3.connect(_prepare(path), check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    # WAL lets concurrent runs on one file read while another writes ("database is locked" in
    # the default rollback mode under load); the file keeps the setting.
    connection.execute("PRAGMA journal_mode=WAL")
    # Commits survive a killed process without an fsync each (see pdr.store.database).
    connection.execute("PRAGMA synchronous=NORMAL")
    return SqliteSaver(connection)


def compile_with_sqlite(
    builder: StateGraph[Any, Any, Any, Any], path: str | Path, *, name: str | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile ``builder`` with checkpoints in the SQLite file ``path`` (sync API)."""
    graph = builder.compile(checkpointer=sqlite_checkpointer(path), name=name or "graph")
    return graph.with_config(SYNC_FAN_OUT)


@asynccontextmanager
async def open_async_graph(
    builder: StateGraph[Any, Any, Any, Any], location: Location, *, name: str | None = None
) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
    """Compile ``builder`` with checkpoints at ``location``; the connection closes on exit.

    A SQLite file gets an AsyncSqliteSaver; a ``postgresql://`` URL an AsyncPostgresSaver (its
    tables are created first if missing, see ``check_checkpoints``).
    """
    if is_postgres(location):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        url = postgres_conninfo(str(location))
        if url not in _prepared:
            await asyncio.to_thread(check_checkpoints, url)
        async with AsyncPostgresSaver.from_conn_string(url) as shared:
            yield builder.compile(checkpointer=shared, name=name or "graph")
        return
    # aiosqlite opens the file on a thread of its own that the process waits for at exit; a run
    # cancelled while the file opens (Ctrl-C) must still close it, or the process never ends.
    opening = asyncio.ensure_future(_open_sqlite(_prepare(location)))
    try:
        connection = await asyncio.shield(opening)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await (await opening).close()
        raise
    try:
        yield builder.compile(checkpointer=AsyncSqliteSaver(connection), name=name or "graph")
    finally:
        await connection.close()


async def _open_sqlite(path: str) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        await connection.close()
        raise
    return connection


def resume_location(
    stored: str | None, given: Location | None, thread_id: str, restart: bool
) -> Location:
    """Where to resume a run from: its own location (``stored``) unless another is named.

    ``stored`` is the ledger's form (``stored_form``). A database URL whose password the ledger
    does not keep is taken from ``given`` or ``PDR_CHECKPOINTS`` when either is that URL with its
    password.

    Raises:
        CheckpointError: another location than the run's was named, a file is missing or not a
            database, or a database cannot be reached, and ``restart`` was not asked for; or the
            run's database URL needs its password.
    """
    where: Location
    if given is None:
        if stored is None:
            where = checkpoints_location(None)
        elif is_postgres(stored) and is_redacted(stored):
            supplied = os.environ.get("PDR_CHECKPOINTS")
            if not supplied or redact(postgres_conninfo(supplied)) != stored:
                raise CheckpointError(
                    f"run {thread_id} keeps its checkpoints in {stored}, whose password pdr does "
                    f"not store; give the full URL with --checkpoints or PDR_CHECKPOINTS"
                )
            where = postgres_conninfo(supplied)
        else:
            where = checkpoints_location(stored)
    else:
        where = checkpoints_location(given)
        if stored is not None and stored_form(where) != stored and not restart:
            own = Path(stored) if not is_postgres(stored) else stored
            raise CheckpointError(
                f"run {thread_id} was checkpointed in {own}, not {_shown(where)}; resume it with "
                f"--checkpoints {own}, or start it over in {_shown(where)} with --restart"
            )
    if isinstance(where, Path):
        where = where.expanduser()
        if not restart and not where.exists():
            raise CheckpointError(
                f"the checkpoint file {where} of run {thread_id} does not exist; restore it, or "
                f"start the run over with --restart (its recorded calls stay in the ledger)"
            )
    check_checkpoints(where, again=True)
    return where


def _shown(location: Location) -> str:
    return redact(str(location)) if is_postgres(location) else str(location)

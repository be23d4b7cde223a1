"""Compile any of the graphs with a SQLite checkpointer, so an interrupted run can resume.

The graphs' nodes are async, so the graph runs on an event loop either way: ``compile_with_sqlite``
gives a graph for ``invoke``/``stream`` (LangGraph runs the loop), ``open_async_graph`` one for
``ainvoke``/``astream``. Resume a run with ``invoke(None, config)`` on the same thread id.
"""

from __future__ import annotations

import contextlib
import sqlite3
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
from pdr.settings import checkpoints_path

# Seconds a connection waits for another process's write (several runs share one file).
BUSY_TIMEOUT_S = 30.0


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


def check_checkpoint_file(path: str | Path) -> None:
    """Raise CheckpointError unless ``path`` is absent, empty or a SQLite database.

    Checked before a run writes anything, so a file that is not a database is reported in one
    line instead of failing the run after its ledger row was written.
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
    builder: StateGraph[Any, Any, Any, Any], path: str | Path, *, name: str | None = None
) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
    """Compile ``builder`` with an AsyncSqliteSaver on ``path``; the connection closes on exit."""
    async with aiosqlite.connect(_prepare(path), timeout=BUSY_TIMEOUT_S) as connection:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(connection)
        yield builder.compile(checkpointer=saver, name=name or "graph")


def resume_file(
    stored: str | None, given: str | Path | None, thread_id: str, restart: bool
) -> Path:
    """The checkpoint file to resume a run from: its own (``stored``) unless another is named.

    Raises:
        CheckpointError: another file than the run's was named, or the file is missing or not a
            database, and ``restart`` was not asked for.
    """
    own = Path(stored) if stored else None
    if given is None:
        where = own or checkpoints_path(None)
    else:
        where = checkpoints_path(given)
        if own is not None and where.expanduser().resolve() != own and not restart:
            raise CheckpointError(
                f"run {thread_id} was checkpointed in {own}, not {where}; resume it with "
                f"--checkpoints {own}, or start it over in {where} with --restart"
            )
    where = where.expanduser()
    if not restart and not where.exists():
        raise CheckpointError(
            f"the checkpoint file {where} of run {thread_id} does not exist; restore it, or "
            f"start the run over with --restart (its recorded calls stay in the ledger)"
        )
    check_checkpoint_file(where)
    return where

"""Compile any of the graphs with a SQLite checkpointer, so an interrupted run can resume.

The graphs' nodes are async, so the graph runs on an event loop either way: ``compile_with_sqlite``
gives a graph for ``invoke``/``stream`` (LangGraph runs the loop), ``open_async_graph`` one for
``ainvoke``/``astream``. Resume a run with ``invoke(None, config)`` on the same thread id.
"""

from __future__ import annotations

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


def _prepare(path: str | Path) -> str:
    location = Path(path).expanduser()
    location.parent.mkdir(parents=True, exist_ok=True)
    return str(location)


def sqlite_checkpointer(path: str | Path) -> SqliteSaver:
    """A SqliteSaver on ``path`` (created with its folder if missing), usable from any thread."""
    connection = sqlite3.connect(_prepare(path), check_same_thread=False)
    # WAL lets concurrent runs on one file read while another writes ("database is locked" in
    # the default rollback mode under load); the file keeps the setting.
    connection.execute("PRAGMA journal_mode=WAL")
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
    async with aiosqlite.connect(_prepare(path)) as connection:
        await connection.execute("PRAGMA journal_mode=WAL")
        saver = AsyncSqliteSaver(connection)
        yield builder.compile(checkpointer=saver, name=name or "graph")

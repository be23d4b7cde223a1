"""The SQLite files: WAL with synchronous=NORMAL, so a commit costs no fsync of its own, and a
writer waits up to 30 s for the lock.

That a commit survives a killed process is what tests/test_ledger.py and tests/test_resume.py
check with SIGKILL; here, that every connection pdr opens runs in that mode (1 is NORMAL). The
busy timeout: an evaluation of 100 problems, 64 at a time on 2 busy cores, lost a run to
"database is locked" with sqlite3's default of 5 s (``python -m benchmarks``, scale).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from pdr.graphs.pdr import build_pdr
from pdr.store.checkpoints import open_async_graph, sqlite_checkpointer
from pdr.store.ledger import Ledger


def test_the_ledger_commits_without_an_fsync_each(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with ledger.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1
    ledger.close()


def test_both_checkpointers_commit_without_an_fsync_each(tmp_path: Path) -> None:
    saver = sqlite_checkpointer(tmp_path / "sync.sqlite")
    assert saver.conn.execute("PRAGMA synchronous").fetchone() == (1,)
    assert saver.conn.execute("PRAGMA busy_timeout").fetchone() == (30_000,)


async def test_the_async_checkpointer_too(tmp_path: Path) -> None:
    async with open_async_graph(build_pdr(), tmp_path / "async.sqlite") as graph:
        connection = graph.checkpointer.conn  # type: ignore[union-attr]
        async with connection.execute("PRAGMA synchronous") as cursor:
            assert await cursor.fetchone() == (1,)
        async with connection.execute("PRAGMA busy_timeout") as cursor:
            assert await cursor.fetchone() == (30_000,)

"""``pdr resume`` refuses a run whose checkpoint is gone, naming the file; ``--restart`` reruns it.

The model is the OpenAI-compatible server on loopback (tests/openai_server.py, a double for a
paid API). A run fails at its refine call (the server's reply is not JSON), leaving 4 calls in
the ledger and its checkpoints in a file; then the file is deleted, emptied, replaced by another
run's checkpoints, or another file is named, and the resume must stop before any call. The same
holds with the checkpoints in a real PostgreSQL database: LangGraph's tables dropped, emptied, or
holding only another run's checkpoints, or another location named.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from pdr import calls
from pdr.cli import app
from pdr.store.checkpoints import stored_form
from pdr.store.ledger import Ledger
from tests.conftest import Store, sqlite_store
from tests.openai_server import FakeOpenAIServer, Fault, Served

PROBLEM = "What is 17 * 23?"
NOT_JSON = b"<html>bad gateway</html>"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    yield


def fail_refine(served: Served) -> Fault | None:
    return Fault(body=NOT_JSON) if served.role == "refine" else None


def failed_run(server: FakeOpenAIServer, store: Store, thread: str = "r") -> list[str]:
    args = ["run", PROBLEM, "--model", server.spec(), "--schedule", "2,1", "--max-retries", "0"]
    result = CliRunner().invoke(app, [*args, "--thread-id", thread, "-q", *store.args])
    assert result.exit_code == 1, result.output
    return ["--db", store.ledger]


LANGGRAPH_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations")


def on_postgres(store: Store, statement: str) -> None:
    with psycopg.connect(store.checkpoints, autocommit=True) as connection:
        connection.execute(statement)


def delete(store: Store, tmp_path: Path, server: FakeOpenAIServer) -> list[str]:
    if store.kind == "postgresql":
        on_postgres(store, f"DROP TABLE {', '.join(LANGGRAPH_TABLES)}")
        return []
    path = Path(store.checkpoints)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)
    return []


def empty(store: Store, tmp_path: Path, server: FakeOpenAIServer) -> list[str]:
    if store.kind == "postgresql":
        on_postgres(store, f"TRUNCATE {', '.join(LANGGRAPH_TABLES[:3])}")
        return []
    delete(store, tmp_path, server)
    Path(store.checkpoints).write_bytes(b"")
    return []


def replace(store: Store, tmp_path: Path, server: FakeOpenAIServer) -> list[str]:
    if store.kind == "postgresql":
        empty(store, tmp_path, server)
        failed_run(server, store, thread="someone-else")
        return []
    other = tmp_path / "other"
    other.mkdir()
    failed_run(server, sqlite_store(other), thread="someone-else")
    delete(store, tmp_path, server)
    shutil.copy(other / "checkpoints.sqlite", store.checkpoints)
    return []


def name_another(store: Store, tmp_path: Path, server: FakeOpenAIServer) -> list[str]:
    return ["--checkpoints", str(tmp_path / "elsewhere.sqlite")]


Damage = Callable[[Store, Path, FakeOpenAIServer], list[str]]
CASES: dict[str, tuple[Damage, dict[str, str]]] = {
    "deleted": (
        delete,
        {
            "sqlite": "the checkpoint file {cp} of run r does not exist",
            "postgresql": "the checkpoint database {cp} has no checkpoint of run r",
        },
    ),
    "emptied": (empty, {"": "the checkpoint {kind} {cp} has no checkpoint of run r"}),
    "replaced": (replace, {"": "the checkpoint {kind} {cp} has no checkpoint of run r"}),
    "another file named": (name_another, {"": "run r was checkpointed in {cp}, not {elsewhere}"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resume_without_the_runs_checkpoint_is_refused_and_restart_reruns(
    store: Store, tmp_path: Path, case: str
) -> None:
    damage, messages = CASES[case]
    with FakeOpenAIServer(fault=fail_refine) as server:
        db = failed_run(server, store)
        asked = len(server.requests)
        extra = damage(store, tmp_path, server)
        asked_before = len(server.requests)
        refused = CliRunner().invoke(app, ["resume", "r", *db, *extra])
        assert len(server.requests) == asked_before  # no call was made
        server.fault = lambda served: None
        restarted = CliRunner().invoke(app, ["resume", "r", "--restart", "-q", *db, *extra])
        after = server.completed()
    expected = messages.get(store.kind, messages.get("")).format(  # type: ignore[union-attr]
        kind="file" if store.kind == "sqlite" else "database",
        cp=store.checkpoints,
        elsewhere=tmp_path / "elsewhere.sqlite",
    )
    assert refused.exit_code == 2
    [line] = refused.output.splitlines()
    assert line.startswith(f"Error: --checkpoints: {expected}"), line
    assert "--restart" in line
    assert restarted.exit_code == 0, restarted.output
    ledger = Ledger(store.ledger)
    run = ledger.get_run("r")
    ledger.close()
    assert run is not None and run.status == "done" and run.answer == "391"
    # The restarted run keeps its checkpoints where the restart put them.
    assert run.checkpoints == stored_form(extra[1] if extra else store.checkpoints)
    # The restart asked every step again: the three that had succeeded are marked repeats,
    # and every call of both sessions counts.
    assert asked == 4 and after[("draft", 1, 0)] >= 2
    repeats = sorted((r["role"], r["index"]) for r in run.call_records if r["repeat"])
    assert repeats == [("distill", 0), ("draft", 0), ("draft", 1)]
    assert run.calls == 4 + 4
    assert (run.b_seq, run.b_tot) == tuple(run.recorded_budgets)


def test_a_garbage_checkpoint_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    garbage = tmp_path / "cp.sqlite"
    garbage.write_bytes(b"not a database, just some bytes " * 100)
    with FakeOpenAIServer() as server:
        result = CliRunner().invoke(
            app,
            [
                "run",
                PROBLEM,
                "--model",
                server.spec(),
                "--db",
                str(tmp_path / "l.sqlite"),
                "--checkpoints",
                str(garbage),
            ],
        )
        assert server.requests == []
    assert result.exit_code == 2
    assert result.output == (
        f"Error: --checkpoints: the checkpoint file {garbage} is not a SQLite database (file is "
        f"not a database); move it away or name another file\n"
    )
    ledger = Ledger(tmp_path / "l.sqlite")
    assert ledger.list_runs() == []  # no 'failed' run suggesting a resume that cannot work
    ledger.close()

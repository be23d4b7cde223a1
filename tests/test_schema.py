"""The ledger's schema is versioned with Alembic, on SQLite and on a real PostgreSQL server.

A new ledger is built by the revisions and matches the models; ledgers written by older pdr
versions (built here from those versions' table definitions: tests/old_ledgers.py) are upgraded
with their rows intact, and then take what only the new schema can hold; a ledger from a newer
pdr, or tables that are not a pdr ledger's, are refused and left as they were; several processes
opening a new ledger at once create it once.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from pdr.budget import CallRecord
from pdr.settings import database_url
from pdr.store.ledger import Ledger, LedgerError
from pdr.store.ledger_models import Base
from pdr.store.schema import HEAD, MIGRATIONS, revision_of
from tests.conftest import Store
from tests.old_ledgers import CALLS, answers_tables, fill, release_tables, survive_tables

# What SQLite does not enforce, so its older tables are left as they were (see steps.widen).
SQLITE_UNENFORCED = {("runs", "status"), ("calls", "model")}


def differences(url: str) -> list[tuple[str, str, str]]:
    """(kind, table, column) where the database differs from the models."""
    engine = create_engine(database_url(url))
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    found = []
    for diff in diffs:
        entry: Any = diff[0] if isinstance(diff, list) else diff
        kind = entry[0]
        if kind == "modify_type":
            found.append((kind, entry[2], entry[3]))
        else:
            found.append((kind, str(entry[1]), ""))
    return found


def test_head_is_the_last_revision() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD


def test_a_new_ledger_is_built_by_the_revisions_and_matches_the_models(store: Store) -> None:
    ledger = Ledger(store.ledger)
    assert revision_of(ledger.engine) == HEAD
    ledger.close()
    found = differences(store.ledger)
    if store.kind == "sqlite":
        # A new SQLite ledger passes through the first release's columns too.
        assert {(table, column) for _kind, table, column in found} <= SQLITE_UNENFORCED
    else:
        assert found == []


OLD_SHAPES = {"release": release_tables, "survive": survive_tables, "answers": answers_tables}


@pytest.mark.parametrize("version", sorted(OLD_SHAPES))
def test_an_older_ledger_is_upgraded_and_keeps_its_rows(store: Store, version: str) -> None:
    fill(database_url(store.ledger), OLD_SHAPES[version]())
    ledger = Ledger(store.ledger)
    assert revision_of(ledger.engine) == HEAD
    run = ledger.get_run("old-run")
    assert run is not None
    assert (run.status, run.answer, run.gold, run.grade, run.b_seq, run.b_tot) == (
        "done",
        "391",
        "391",
        True,
        42,
        42,
    )
    assert [
        (r["role"], r["attempt"], r["input_tokens"], r["output_tokens"], r["error"], r["repeat"])
        for r in run.call_records
    ] == [
        (c["role"], c["attempt"], c["input_tokens"], c["output_tokens"], c["error"], False)
        for c in CALLS
    ]
    assert run.recorded_budgets == (42, 42)
    [result] = ledger.results(1)
    assert (result.thread_id, result.item_id, result.grade, result.calls) == (
        "old-run",
        "item-1",
        True,
        2,
    )
    # What the old schema could not hold: an 11- and a 16-character status, a model spec of
    # several replicas longer than 300 characters, the replica column, the work queue.
    spec = "vllm:m@" + ",".join(f"http://replica-{n}.cluster.example:8000/v1" for n in range(9))
    assert len(spec) > 300
    for number, status in enumerate(("interrupted", "budget_exhausted")):
        thread = f"new-{number}"
        ledger.start_run(thread_id=thread, graph="long_cot", context={"model": spec}, problem="p")
        record = CallRecord(
            role="long_cot",
            round=1,
            index=0,
            attempt=0,
            model=spec,
            input_tokens=3,
            output_tokens=4,
            reasoning_tokens=0,
            cached_tokens=0,
            samples=1,
            latency_s=0.1,
            estimated=False,
            error=None,
            replica="http://replica-1.cluster.example:8000/v1",
            texts=["Answer: 391"],
            reached_model=None,
        )
        ledger.record_call(thread, record)
        ledger.finish_run(thread, answer=None, final_text=None, wall_s=0.1, status=status)
        stored = ledger.get_run(thread)
        assert stored is not None and stored.status == status
        assert stored.call_records[0]["model"] == spec
        assert stored.call_records[0].get("replica") == "http://replica-1.cluster.example:8000/v1"
        assert stored.call_records[0].get("texts") == ["Answer: 391"]
    ledger.close()
    found = differences(store.ledger)
    if store.kind == "sqlite":
        assert {(table, column) for _kind, table, column in found} <= SQLITE_UNENFORCED
    else:
        assert found == []  # status and model widened in place


def test_a_ledger_at_revision_v3_gains_the_call_texts_of_v4(store: Store) -> None:
    """A ledger of this change before issue 9's columns: upgraded by revision v4 alone."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(database_url(store.ledger))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "v3")
    engine.dispose()
    assert "texts" not in column_names(store.ledger, "calls")
    ledger = Ledger(store.ledger)
    assert revision_of(ledger.engine) == HEAD
    ledger.close()
    assert {"texts", "answers", "reached_model", "injected", "sample_output_estimated"} <= (
        column_names(store.ledger, "calls")
    )
    assert "b_tot_per_draft" in column_names(store.ledger, "runs")


def test_a_ledger_at_revision_v4_gains_the_rollouts_table_of_v5(store: Store) -> None:
    """A ledger from before pdr train: revision v5 adds its rollouts table, rows kept."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(database_url(store.ledger))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "v4")
        assert not inspect(connection).has_table("rollouts")
    engine.dispose()
    ledger = Ledger(store.ledger)
    assert revision_of(ledger.engine) == HEAD == "v5"
    ledger.close()
    assert column_names(store.ledger, "rollouts") == {
        "id",
        "experiment_id",
        "run_id",
        "step",
        "mode",
        "role",
        "reward",
        "trained_tokens",
        "created_at",
    }
    found = differences(store.ledger)
    if store.kind == "sqlite":
        assert {(table, column) for _kind, table, column in found} <= SQLITE_UNENFORCED
    else:
        assert found == []


def column_names(url: str, table: str) -> set[str]:
    engine = create_engine(database_url(url))
    names = {column["name"] for column in inspect(engine).get_columns(table)}
    engine.dispose()
    return names


def test_a_ledger_from_a_newer_pdr_is_refused_and_left_alone(store: Store) -> None:
    Ledger(store.ledger).close()
    engine = create_engine(database_url(store.ledger))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'v99'"))
    with pytest.raises(LedgerError, match=r"written by a newer pdr \(schema revision 'v99'; "):
        Ledger(store.ledger)
    assert revision_of(engine) == "v99"
    engine.dispose()


def test_tables_that_are_not_a_pdr_ledger_are_refused_and_left_alone(store: Store) -> None:
    engine = create_engine(database_url(store.ledger))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)"))
        connection.execute(text("INSERT INTO runs (id, name) VALUES (1, 'mine')"))
    with pytest.raises(LedgerError, match=r"not a pdr ledger's \(no column runs\.thread_id"):
        Ledger(store.ledger)
    # The whole upgrade was one transaction: nothing of pdr's is left behind.
    assert set(inspect(engine).get_table_names()) == {"runs"}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM runs")).scalar_one() == "mine"
    engine.dispose()


def _open(url: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    try:
        Ledger(url).close()
        out.put("ok")
    except Exception as error:  # reported to the test
        out.put(f"{type(error).__name__}: {error}")


def test_processes_opening_a_new_ledger_at_once_create_it_once(
    store: Store, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_open, args=(store.ledger, barrier, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert results == ["ok"] * 4
    engine = create_engine(database_url(store.ledger))
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert versions == [(HEAD,)]

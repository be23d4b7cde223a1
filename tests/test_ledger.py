"""The run ledger on real SQLite files and a real PostgreSQL server: written as a run goes, kept by
a killed run, queried.

The killed run is a real ``pdr run`` process (tests/scripted_cli.py, the scripted model
registered) that SIGKILLs itself inside a round-2 draft; ``pdr resume`` then finishes it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from pdr.budget import call_tokens
from pdr.cli import app
from pdr.graphs.context import PDRContext
from pdr.runner import run_problem
from pdr.settings import checkpoints_location, checkpoints_path, database_url
from pdr.store.ledger import Ledger, LedgerError
from pdr.store.rows import RunDetail
from tests.conftest import Store
from tests.scripted import Call, ScriptedChatModel, words
from tests.test_runner import PROBLEM, expected_budgets, ledger_calls, made

ROOT = Path(__file__).resolve().parent.parent


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


async def test_calls_and_workspaces_are_written_while_the_run_goes(
    scripted: ScriptedChatModel, store: Store
) -> None:
    path = store.ledger
    seen_at_refine: list[RunDetail | None] = []

    def look(call: Call) -> None:
        if call.role == "refine":  # another connection reads the file mid-run
            reader = Ledger(path)
            seen_at_refine.append(reader.get_run("t"))
            reader.close()

    scripted.script.before_reply = look
    ledger = Ledger(path)
    outcome = await run_problem(
        graph="pdr",
        problem=PROBLEM,
        context=PDRContext(model="scripted", schedule=[3, 2, 1]),
        thread_id="t",
        ledger=ledger,
        checkpoints=store.checkpoints,
    )
    [mid] = seen_at_refine
    assert mid is not None
    assert (mid.status, mid.answer, mid.b_tot) == ("running", None, None)
    assert Counter((r["role"], r["round"]) for r in mid.call_records) == {
        ("draft", 1): 3,
        ("distill", 1): 1,
        ("draft", 2): 2,
        ("distill", 2): 1,
        ("refine", 3): 1,
    }
    # The refine call's row was stored when it started: in flight, its prompt tokens estimated.
    [refining] = [r for r in mid.call_records if r["role"] == "refine"]
    assert (refining["error"], refining["estimated"], refining["output_tokens"]) == (
        "in flight",
        True,
        0,
    )
    refine_call = next(c for c in scripted.calls if c.role == "refine")
    assert refining["input_tokens"] == words(refine_call.prompt)
    assert [w.round for w in mid.workspaces] == [1, 2]

    done = ledger.get_run("t")
    assert done is not None
    assert (done.status, done.calls, done.b_tot) == ("done", 8, outcome.b_tot)
    assert done.finished_at is not None and done.finished_at >= done.created_at
    ledger.close()
    ours = {"runs", "calls", "workspaces", "experiments", "results", "leases", "alembic_version"}
    if store.kind == "sqlite":
        # The ledger and the checkpoints are separate files with separate tables.
        assert ours <= tables(Path(path))
        assert not {"checkpoints", "writes"} & tables(Path(path))
        assert {"checkpoints", "writes"} <= tables(Path(store.checkpoints))
        assert "runs" not in tables(Path(store.checkpoints))
    else:
        # One database holds both, in tables of their own: LangGraph's next to the ledger's.
        found = set(inspect(create_engine(database_url(path))).get_table_names())
        assert ours | {"checkpoints", "checkpoint_writes", "checkpoint_blobs"} <= found


@pytest.mark.slow
def test_a_killed_run_keeps_its_calls_and_resume_repeats_none(
    scripted: ScriptedChatModel, store: Store
) -> None:
    db, options = store.ledger, store.args
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.scripted_cli",
            "run",
            PROBLEM,
            "--model",
            "scripted",
            "--schedule",
            "3,3,1",
            "--thread-id",
            "killed",
            "--quiet",
            *options,
        ],
        cwd=ROOT,
        env={**os.environ, "PDR_TEST_VICTIM": "draft,2,2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr

    ledger = Ledger(db)
    left = ledger.get_run("killed")
    assert left is not None
    assert (left.status, left.answer, left.finished_at) == ("running", None, None)
    # Everything that completed before the kill is there, and the victim draft 2.2 too: its row
    # was stored before its request went out (in flight, prompt tokens estimated).
    assert ledger_calls(ledger, "killed") == {
        ("draft", 1, 0): 1,
        ("draft", 1, 1): 1,
        ("draft", 1, 2): 1,
        ("distill", 1, 0): 1,
        ("draft", 2, 0): 1,
        ("draft", 2, 1): 1,
        ("draft", 2, 2): 1,
    }
    [victim] = [r for r in left.call_records if r["error"] is not None]
    assert (victim["index"], victim["error"], victim["estimated"]) == (2, "in flight", True)
    assert [w.round for w in left.workspaces] == [1]

    result = CliRunner().invoke(app, ["resume", "killed", *options])
    assert result.exit_code == 0, result.output
    # Only the unfinished work was done: the victim, round 2's summary and the refine step.
    assert made(scripted) == {("draft", 2, 2): 1, ("distill", 2, 0): 1, ("refine", 3, 0): 1}

    finished = ledger.get_run("killed")
    assert finished is not None and finished.status == "done"
    assert finished.calls == 10  # 9 calls and the attempt the kill cut off
    interrupted, again = [r for r in finished.call_records if r["index"] == 2 and r["round"] == 2]
    assert interrupted["error"] is not None and interrupted["error"].startswith(
        "interrupted: the process ended during the call"
    )
    assert (again["error"], again["repeat"]) == (None, True)  # the model may have done it twice
    b_tot = sum(call_tokens(r) for r in finished.call_records)
    assert finished.b_tot == b_tot
    assert (finished.b_seq, finished.b_tot) == tuple(finished.recorded_budgets)

    # The same run without a kill costs the same tokens but for the cut-off attempt's prompt.
    scripted.calls.clear()
    CliRunner().invoke(
        app, ["run", PROBLEM, "--model", "scripted", "--schedule", "3,3,1", "-q", *options]
    )
    b_seq_whole, b_tot_whole = expected_budgets(scripted)
    # On the critical path too: the victim's branch of round 2 costs its two attempts.
    assert (finished.b_seq, finished.b_tot) == (
        b_seq_whole + interrupted["input_tokens"],
        b_tot_whole + interrupted["input_tokens"],
    )
    assert f"B_tot: {finished.b_tot} tokens   calls: 10" in result.output
    assert [w.round for w in finished.workspaces] == [1, 2]
    ledger.close()


def test_experiments_results_and_completed_items(store: Store) -> None:
    ledger = Ledger(store.ledger)
    experiment = ledger.create_experiment("grid", {"methods": ["pdr", "sr"], "seeds": [0]})
    assert ledger.find_experiment("grid") == experiment
    assert ledger.find_experiment("other") is None
    assert ledger.experiment_config(experiment) == {"methods": ["pdr", "sr"], "seeds": [0]}
    with pytest.raises(LedgerError, match="experiment 'grid' already exists"):
        ledger.create_experiment("grid", {})

    record = {
        "role": "long_cot",
        "round": 1,
        "index": 0,
        "attempt": 0,
        "model": "m",
        "input_tokens": 30,
        "output_tokens": 12,
        "reasoning_tokens": 5,
        "cached_tokens": 10,
        "samples": 1,
        "sample_output_tokens": None,
        "sample_output_estimated": False,
        "latency_s": 0.25,
        "estimated": False,
        "error": None,
        "reached_model": None,
        "texts": ["p restated: Answer: 5\n2 + 2 = 4\nAnswer: 4"],
        "injected": False,
    }
    for thread, item, status in (("a", "q1", "done"), ("b", "q2", "failed"), ("c", "q1", "done")):
        ledger.start_run(
            thread_id=thread,
            graph="long_cot",
            context={"model": "m", "refine_model": "r"},
            problem="p",
            gold="4",
            experiment_id=experiment,
            item_id=item,
            seed=0,
        )
        ledger.record_call(thread, record)  # type: ignore[arg-type]
        ledger.record_call(thread, record)  # type: ignore[arg-type]
        # Budgets come from the run's rows: two attempts of one branch, 42 tokens each.
        assert ledger.finish_run(
            thread,
            answer="4",
            final_text="Answer: 4",
            wall_s=0.5,
            status=status,  # type: ignore[arg-type]
            grade=status == "done",
            error=None if status == "done" else "boom",
        ) == (84, 84)
    ledger.add_result(
        experiment, label="lc-512", method="long_cot", seed=0, item_id="q1", thread_id="a"
    )
    ledger.add_result(
        experiment, label="lc-512", method="long_cot", seed=0, item_id="q2", thread_id="b"
    )
    assert ledger.completed_items(experiment) == {("lc-512", "q1", 0)}
    # A rerun of a cell replaces the run it points at.
    ledger.add_result(
        experiment, label="lc-512", method="long_cot", seed=0, item_id="q2", thread_id="c"
    )
    assert ledger.completed_items(experiment) == {("lc-512", "q1", 0), ("lc-512", "q2", 0)}
    rows = ledger.results(experiment)
    assert [(r.item_id, r.thread_id, r.status, r.grade, r.calls, r.b_tot) for r in rows] == [
        ("q1", "a", "done", True, 2, 84),
        ("q2", "c", "done", True, 2, 84),
    ]
    runs = ledger.list_runs(limit=2, experiment_id=experiment)
    assert [r.thread_id for r in runs] == ["c", "b"]
    assert runs[0].models == {"model": "m", "refine": "r"}
    stored = ledger.get_run("b")
    assert stored is not None and (stored.status, stored.error) == ("failed", "boom")
    # The same successful call stored twice: the second is a repeat (both count).
    assert stored.call_records == [
        {**record, "truncated": False, "repeat": False},
        {**record, "truncated": False, "repeat": True},
    ]
    # Each call's text is kept with the answer extracted from it: the last one it commits to.
    outputs = ledger.call_outputs(experiment, role="long_cot")
    assert sorted(outputs) == ["a", "c"]  # the runs the experiment's results point at
    assert [(o.texts, o.answers) for o in outputs["a"]] == [(record["texts"], ["4"])] * 2
    assert ledger.get_run(stored.id) == stored  # by numeric id too
    with pytest.raises(LedgerError, match="thread 'a' is already in the ledger"):
        ledger.start_run(thread_id="a", graph="pdr", context={}, problem="p")
    with pytest.raises(LedgerError, match="no run with thread id 'zz'"):
        ledger.finish_run("zz", answer=None, final_text=None, wall_s=0, status="done")
    ledger.close()


def test_default_locations_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PDR_DATABASE_URL", raising=False)
    monkeypatch.delenv("PDR_CHECKPOINTS", raising=False)
    monkeypatch.setenv("PDR_DATA_DIR", str(tmp_path / "data"))
    assert database_url() == f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}"
    assert checkpoints_path() == tmp_path / "data" / "checkpoints.sqlite"
    ledger = Ledger()
    assert (tmp_path / "data" / "ledger.sqlite").is_file()
    ledger.close()
    monkeypatch.setenv("PDR_DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
    monkeypatch.setenv("PDR_CHECKPOINTS", str(tmp_path / "cp.sqlite"))
    assert Ledger().url == f"sqlite:///{tmp_path / 'team.db'}"
    assert checkpoints_path() == tmp_path / "cp.sqlite"
    assert database_url(tmp_path / "x.sqlite") == f"sqlite:///{tmp_path / 'x.sqlite'}"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    # One plain URL serves both: SQLAlchemy's psycopg driver for the ledger, libpq's own form
    # for the checkpoints.
    for plain in ("postgresql://u:pw@h:5432/db", "postgres://u:pw@h:5432/db"):
        assert database_url(plain) == "postgresql+psycopg://u:pw@h:5432/db"
        assert checkpoints_location(plain) == "postgresql://u:pw@h:5432/db"
    assert checkpoints_location("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    monkeypatch.setenv("PDR_CHECKPOINTS", "postgresql://u@h/cp")
    assert checkpoints_location() == "postgresql://u@h/cp"

"""Ledgers as older pdr versions wrote them, built from those versions' table definitions.

``release_tables``: the tables of the release before the "One house" change (its
``store/ledger_models.py``), which main kept unchanged until "Runs that survive": no Alembic
revision table, ``runs.status`` VARCHAR(10). ``survive_tables``: main after "Runs that survive"
(leases, attempt ids, repeat marks, ``runs.status`` VARCHAR(20)), whose start-up step added
missing columns by hand. ``fill`` writes one finished run of an experiment, with two calls and a
workspace, the way those versions stored them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    insert,
)

STAMP = DateTime(timezone=True)
WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def release_tables(status_length: int = 10) -> MetaData:
    """experiments, runs, calls, workspaces, results as the first release defined them."""
    meta = MetaData()
    Table(
        "experiments",
        meta,
        Column("id", Integer, primary_key=True),
        Column("name", String(200), unique=True, nullable=False),
        Column("config", JSON, nullable=False),
        Column("created_at", STAMP, nullable=False),
    )
    Table(
        "runs",
        meta,
        Column("id", Integer, primary_key=True),
        Column("thread_id", String(100), unique=True, index=True, nullable=False),
        Column("graph", String(20), nullable=False),
        Column("distill", String(40)),
        Column("scorer", String(40)),
        Column("models", JSON, nullable=False),
        Column("context", JSON, nullable=False),
        Column("problem", Text, nullable=False),
        Column("gold", Text),
        Column("answer", Text),
        Column("final_text", Text),
        Column("grade", Boolean),
        Column("b_seq", Integer),
        Column("b_tot", Integer),
        Column("wall_s", Float),
        Column("status", String(status_length), nullable=False),
        Column("error", Text),
        Column("experiment_id", Integer, ForeignKey("experiments.id"), index=True),
        Column("item_id", String(200)),
        Column("seed", Integer, nullable=False),
        Column("created_at", STAMP, nullable=False),
        Column("finished_at", STAMP),
    )
    Table(
        "calls",
        meta,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("runs.id"), index=True, nullable=False),
        Column("role", String(10), nullable=False),
        Column("round", Integer, nullable=False),
        Column("index", Integer, nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("model", String(300), nullable=False),
        Column("input_tokens", Integer, nullable=False),
        Column("output_tokens", Integer, nullable=False),
        Column("reasoning_tokens", Integer, nullable=False),
        Column("cached_tokens", Integer, nullable=False),
        Column("samples", Integer, nullable=False),
        Column("sample_output_tokens", JSON),
        Column("latency_s", Float, nullable=False),
        Column("estimated", Boolean, nullable=False),
        Column("error", Text),
        Column("created_at", STAMP, nullable=False),
    )
    Table(
        "workspaces",
        meta,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("runs.id"), index=True, nullable=False),
        Column("round", Integer, nullable=False),
        Column("index", Integer, nullable=False),
        Column("text", Text, nullable=False),
        Column("tokens", Integer, nullable=False),
        UniqueConstraint("run_id", "round", "index"),
    )
    Table(
        "results",
        meta,
        Column("id", Integer, primary_key=True),
        Column("experiment_id", Integer, ForeignKey("experiments.id"), index=True, nullable=False),
        Column("method", String(20), nullable=False),
        Column("label", String(200), nullable=False),
        Column("seed", Integer, nullable=False),
        Column("item_id", String(200), nullable=False),
        Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
        UniqueConstraint("experiment_id", "label", "item_id", "seed"),
    )
    return meta


def survive_tables() -> MetaData:
    """The tables of main after "Runs that survive" (before this change)."""
    meta = release_tables(status_length=20)
    meta.tables["runs"].append_column(Column("checkpoints", Text))
    calls = meta.tables["calls"]
    calls.append_column(Column("attempt_id", String(32), index=True))
    calls.append_column(Column("truncated", Boolean))
    calls.append_column(Column("repeat", Boolean))
    Table(
        "leases",
        meta,
        Column("thread_id", String(100), primary_key=True),
        Column("holder", String(64), nullable=False),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("acquired_at", STAMP, nullable=False),
        Column("heartbeat_at", STAMP, nullable=False),
    )
    return meta


def answers_tables() -> MetaData:
    """The tables of main after issue 9 (call texts and answers, added by its start-up step)."""
    meta = survive_tables()
    calls = meta.tables["calls"]
    for name, kind in (
        ("sample_output_estimated", Boolean),
        ("reached_model", Boolean),
        ("texts", JSON),
        ("answers", JSON),
        ("injected", Boolean),
    ):
        calls.append_column(Column(name, kind))
    meta.tables["runs"].append_column(Column("b_tot_per_draft", Integer))
    return meta


CALLS: list[dict[str, Any]] = [
    {"role": "long_cot", "attempt": 0, "input_tokens": 12, "output_tokens": 30, "error": None},
    {"role": "long_cot", "attempt": 1, "input_tokens": 0, "output_tokens": 0, "error": "boom"},
]


def fill(url: str, meta: MetaData) -> None:
    """Create ``meta``'s tables at ``url`` and write one experiment with one finished run."""
    engine = create_engine(url)
    meta.create_all(engine)
    with engine.begin() as connection:
        experiment = connection.execute(
            insert(meta.tables["experiments"]).values(
                name="old-exp", config={"model": "m"}, created_at=WHEN
            )
        ).inserted_primary_key[0]
        run = connection.execute(
            insert(meta.tables["runs"]).values(
                thread_id="old-run",
                graph="long_cot",
                models={"model": "vllm:m@http://h/v1"},
                context={"model": "vllm:m@http://h/v1", "max_tokens": 64},
                problem="What is 17 * 23?",
                gold="391",
                answer="391",
                final_text="Answer: 391",
                grade=True,
                b_seq=42,
                b_tot=42,
                wall_s=1.5,
                status="done",
                experiment_id=experiment,
                item_id="item-1",
                seed=0,
                created_at=WHEN,
                finished_at=WHEN,
            )
        ).inserted_primary_key[0]
        for call in CALLS:
            connection.execute(
                insert(meta.tables["calls"]).values(
                    run_id=run,
                    round=1,
                    index=0,
                    model="vllm:m@http://h/v1",
                    reasoning_tokens=0,
                    cached_tokens=0,
                    samples=1 if call["error"] is None else 0,
                    latency_s=0.5,
                    estimated=False,
                    created_at=WHEN,
                    **call,
                )
            )
        connection.execute(
            insert(meta.tables["results"]).values(
                experiment_id=experiment,
                method="long_cot",
                label="long_cot",
                seed=0,
                item_id="item-1",
                run_id=run,
            )
        )
    engine.dispose()

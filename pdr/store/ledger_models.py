"""Tables of the run ledger (SQLAlchemy 2.0 typed models).

One row per run, per model call (every attempt, failed ones too), per workspace written, per
evaluation experiment and per evaluation result, one lease per run being executed, and an
experiment's work queue (its items and cells, claimed by evaluation workers). These tables live in
their own database, never inside the LangGraph checkpoint file: checkpoints are LangGraph's to
migrate, the ledger is pdr's. Every change to these tables is an Alembic revision
(``pdr/store/migrations``) that brings a ledger written by an older pdr up to date when it is
opened (``pdr.store.schema``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timestamps are stored in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the ledger tables (JSON and timestamp columns name their types)."""


class Experiment(Base):
    """An evaluation: a named grid of methods x configurations x seeds over a dataset."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Where the experiment's runs keep their checkpoints (a file path, or a database URL with its
    # password redacted), the host that named it, and how long a worker's claim outlives its last
    # heartbeat: what a worker joining from another process or machine needs.
    checkpoints: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    lease_timeout_s: Mapped[float | None] = mapped_column(Float)

    results: Mapped[list[Result]] = relationship(back_populates="experiment")


class Run(Base):
    """One run of a graph on one problem (a LangGraph thread)."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    graph: Mapped[str] = mapped_column(String(20))
    distill: Mapped[str | None] = mapped_column(String(40))
    scorer: Mapped[str | None] = mapped_column(String(40))
    models: Mapped[dict[str, Any]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    problem: Mapped[str] = mapped_column(Text)
    gold: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    final_text: Mapped[str | None] = mapped_column(Text)
    grade: Mapped[bool | None] = mapped_column(Boolean)
    b_seq: Mapped[int | None] = mapped_column(Integer)
    b_tot: Mapped[int | None] = mapped_column(Integer)
    b_tot_per_draft: Mapped[int | None] = mapped_column(Integer)
    wall_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"), index=True)
    item_id: Mapped[str | None] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checkpoints: Mapped[str | None] = mapped_column(Text)

    calls: Mapped[list[Call]] = relationship(back_populates="run", order_by="Call.id")
    workspaces: Mapped[list[Workspace]] = relationship(
        back_populates="run", order_by="(Workspace.round, Workspace.index)"
    )


class Call(Base):
    """One model call or failed attempt: the fields of ``pdr.budget.CallRecord``.

    ``texts`` is what the call wrote (one text per sample) and ``answers`` the final answer
    extracted from each (drafts, refine and long CoT calls), so a finished experiment can say
    whether the drafts were right and the last step lost them, or the reverse.
    """

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    role: Mapped[str] = mapped_column(String(10))
    round: Mapped[int]
    index: Mapped[int]
    attempt: Mapped[int]
    model: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    reasoning_tokens: Mapped[int]
    cached_tokens: Mapped[int]
    samples: Mapped[int]
    sample_output_tokens: Mapped[list[int] | None] = mapped_column(JSON)
    sample_output_estimated: Mapped[bool | None] = mapped_column(Boolean)
    latency_s: Mapped[float] = mapped_column(Float)
    estimated: Mapped[bool]
    error: Mapped[str | None] = mapped_column(Text)
    reached_model: Mapped[bool | None] = mapped_column(Boolean)
    texts: Mapped[list[str] | None] = mapped_column(JSON)
    answers: Mapped[list[str | None] | None] = mapped_column(JSON)
    injected: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempt_id: Mapped[str | None] = mapped_column(String(32), index=True)
    truncated: Mapped[bool | None] = mapped_column(Boolean)
    repeat: Mapped[bool | None] = mapped_column(Boolean)
    replica: Mapped[str | None] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="calls")


class Workspace(Base):
    """A workspace C_r written by the distill step of round ``round`` (``index``: per-sample)."""

    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("run_id", "round", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    round: Mapped[int]
    index: Mapped[int] = mapped_column(default=0)
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int]

    run: Mapped[Run] = relationship(back_populates="workspaces")


class Result(Base):
    """One cell of an experiment's grid: (configuration label, item, seed) and the run behind it."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("experiment_id", "label", "item_id", "seed"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    method: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int]
    item_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))

    experiment: Mapped[Experiment] = relationship(back_populates="results")
    run: Mapped[Run] = relationship()


class Lease(Base):
    """The right to execute a run: one row per run being executed, held by one process.

    ``holder`` is the holding session's own id; ``host`` and ``pid`` say which process it is;
    ``heartbeat_at`` is renewed while it runs, so a holder that died can be told from one that is
    working (``pdr.store.leases``).
    """

    __tablename__ = "leases"

    thread_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Item(Base):
    """A problem of an experiment's dataset, kept so a worker can join without the dataset file."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("experiment_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    position: Mapped[int]
    item_id: Mapped[str] = mapped_column(String(200))
    problem: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    level: Mapped[int | None] = mapped_column(Integer)


class QueuedCell(Base):
    """One cell (configuration label, item, seed) of an experiment in its work queue.

    ``state`` is ``waiting`` (nobody runs it), ``running`` (claimed by ``worker`` on ``host`` with
    ``pid``; the claim holds while ``heartbeat_at`` is renewed) or ``done`` (its run ended).
    ``thread_id`` is the cell's run once claimed, so a claim taken over resumes that run from its
    checkpoint. ``claims`` counts how many times the cell was claimed (``pdr.store.cells``).
    """

    __tablename__ = "cells"
    __table_args__ = (
        UniqueConstraint("experiment_id", "label", "item_id", "seed"),
        Index("ix_cells_queue", "experiment_id", "state", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    phase: Mapped[str] = mapped_column(String(20))
    position: Mapped[int]
    method: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(200))
    item_id: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int]
    state: Mapped[str] = mapped_column(String(10), default="waiting")
    thread_id: Mapped[str | None] = mapped_column(String(100))
    worker: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claims: Mapped[int] = mapped_column(Integer, default=0)


class Rollout(Base):
    """One training rollout (``pdr train``): the run that made it, its mode, what was trained.

    ``mode`` is "long" (a long chain-of-thought rollout) or "operator" (one PDR round); ``role`` is
    the call whose tokens were trained (long_cot, or refine); ``reward`` is the grader's verdict
    (1 or 0; None when the run failed and nothing was trained); ``trained_tokens`` counts the
    completion tokens that entered the objective.
    """

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), unique=True)
    step: Mapped[int]
    mode: Mapped[str] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(10))
    reward: Mapped[float | None] = mapped_column(Float)
    trained_tokens: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

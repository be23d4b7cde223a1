"""What the ledger's reads return: plain dataclasses, never ORM objects, and their converters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pdr.budget import Budgets, CallRecord, budgets
from pdr.store.ledger_models import Call, Run

ROLES = ("draft", "distill", "verify", "refine")


@dataclass(frozen=True)
class WorkspaceInfo:
    """One workspace of a run as stored."""

    round: int
    index: int
    text: str
    tokens: int


@dataclass(frozen=True)
class RunSummary:
    """A run's row, with the number of calls recorded for it."""

    id: int
    thread_id: str
    graph: str
    models: dict[str, str]
    problem: str
    status: str
    answer: str | None
    gold: str | None
    grade: bool | None
    b_seq: int | None
    b_tot: int | None
    wall_s: float | None
    calls: int
    experiment_id: int | None
    item_id: str | None
    seed: int
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RunDetail(RunSummary):
    """A run with everything recorded for it: parameters, calls and workspaces."""

    distill: str | None
    scorer: str | None
    context: dict[str, Any]
    final_text: str | None
    error: str | None
    call_records: list[CallRecord]
    workspaces: list[WorkspaceInfo]
    checkpoints: str | None = None

    @property
    def recorded_budgets(self) -> Budgets:
        """B_seq and B_tot of the call rows as they stand (for a run still running, so far)."""
        return budgets(self.call_records)


@dataclass(frozen=True)
class ResultRow:
    """One result of an experiment joined with its run."""

    experiment_id: int
    method: str
    label: str
    seed: int
    item_id: str
    thread_id: str
    status: str
    answer: str | None
    gold: str | None
    grade: bool | None
    b_seq: int | None
    b_tot: int | None
    wall_s: float | None
    calls: int
    error: str | None
    b_tot_per_draft: int | None = None


def models_of(context: dict[str, Any]) -> dict[str, str]:
    """The model spec serving each role, from a run context's fields."""
    default = str(context.get("model") or "")
    models = {"model": default}
    for role in ROLES:
        own = context.get(f"{role}_model")
        if own:
            models[role] = str(own)
    return models


def run_summary(run: Run, calls: int) -> RunSummary:
    """A run's row as a RunSummary, with ``calls`` recorded for it."""
    return RunSummary(
        id=run.id,
        thread_id=run.thread_id,
        graph=run.graph,
        models={str(k): str(v) for k, v in run.models.items()},
        problem=run.problem,
        status=run.status,
        answer=run.answer,
        gold=run.gold,
        grade=run.grade,
        b_seq=run.b_seq,
        b_tot=run.b_tot,
        wall_s=run.wall_s,
        calls=calls,
        experiment_id=run.experiment_id,
        item_id=run.item_id,
        seed=run.seed,
        created_at=as_utc(run.created_at),
        finished_at=as_utc(run.finished_at) if run.finished_at else None,
    )


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp in UTC."""
    # SQLite drops the zone of stored timestamps; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def call_record(call: Call) -> CallRecord:
    """A call row as the CallRecord it was written from."""
    role: Any = call.role
    record = CallRecord(
        role=role,
        round=call.round,
        index=call.index,
        attempt=call.attempt,
        model=call.model,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        reasoning_tokens=call.reasoning_tokens,
        cached_tokens=call.cached_tokens,
        samples=call.samples,
        sample_output_tokens=call.sample_output_tokens,
        sample_output_estimated=bool(call.sample_output_estimated),
        latency_s=call.latency_s,
        estimated=call.estimated,
        error=call.error,
        truncated=bool(call.truncated),
        repeat=bool(call.repeat),
        reached_model=call.reached_model,
        texts=call.texts,
        injected=bool(call.injected),
    )
    if call.attempt_id is not None:
        record["attempt_id"] = call.attempt_id
    if call.replica is not None:
        record["replica"] = call.replica
    return record


@dataclass(frozen=True)
class CallOutput:
    """What one call wrote, as stored: its place in the run, texts and extracted answers."""

    role: str
    round: int
    index: int
    attempt: int
    texts: list[str]
    answers: list[str | None]
    injected: bool
    error: str | None


def call_output(call: Call) -> CallOutput:
    """A call row as the CallOutput the reports read."""
    return CallOutput(
        role=call.role,
        round=call.round,
        index=call.index,
        attempt=call.attempt,
        texts=list(call.texts or []),
        answers=list(call.answers or []),
        injected=bool(call.injected),
        error=call.error,
    )

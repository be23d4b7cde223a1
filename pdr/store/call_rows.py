"""Call rows: an attempt's row from the moment it starts, completed when it ends, and repeats.

The runner stores an attempt when it is about to be sent (``error`` "in flight", its prompt tokens
estimated) and completes the same row, found by its ``attempt_id``, when it ends. A successful call
is marked ``repeat`` when the run has another row of the same step (role, round, index) that
succeeded or whose reply pdr never received (cancelled, interrupted, still in flight): the provider
may have done that work as well, and both rows count in B_seq and B_tot.
"""

from __future__ import annotations

from typing import Any, Final, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from pdr.budget import CallRecord
from pdr.redact import redact
from pdr.store.ledger_models import Call, Result, Run
from pdr.store.rows import CallOutput, call_output

IN_FLIGHT: Final = "in flight"
UNSEEN_REPLIES: Final = ("cancelled", "interrupted", IN_FLIGHT)
"""How the errors of attempts whose reply never arrived begin."""
_COPIED = (
    "role",
    "round",
    "index",
    "attempt",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "samples",
    "latency_s",
    "estimated",
    "error",
)


def write_call(
    session: Session, run_id: int, record: CallRecord, answers: list[str | None] | None = None
) -> bool:
    """Store ``record`` (completing its attempt's row if there is one); returns the repeat mark.

    ``answers`` are the final answers extracted from the record's texts, stored beside them.
    """
    attempt_id = record.get("attempt_id") or None
    row = None
    if attempt_id is not None:
        row = session.scalar(
            select(Call).where(Call.run_id == run_id, Call.attempt_id == attempt_id)
        )
    if row is None:
        row = Call(run_id=run_id, attempt_id=attempt_id)
        session.add(row)
    fields = cast(dict[str, Any], record)
    for name in _COPIED:
        setattr(row, name, fields[name])
    row.model = redact(record["model"])
    row.sample_output_tokens = record.get("sample_output_tokens")
    row.sample_output_estimated = bool(record.get("sample_output_estimated"))
    row.truncated = bool(record.get("truncated"))
    row.reached_model = record.get("reached_model")
    row.texts = record.get("texts")
    row.answers = answers
    row.injected = bool(record.get("injected"))
    replica = record.get("replica")
    row.replica = redact(replica) if replica else None
    session.flush()
    row.repeat = record["error"] is None and done_before(session, row)
    return bool(row.repeat)


def done_before(session: Session, row: Call) -> bool:
    """Whether the run has another row of ``row``'s step whose work the provider may have done."""
    unseen = [Call.error.startswith(prefix) for prefix in UNSEEN_REPLIES]
    earlier = session.scalar(
        select(func.count(Call.id)).where(
            Call.run_id == row.run_id,
            Call.id != row.id,
            Call.role == row.role,
            Call.round == row.round,
            Call.index == row.index,
            or_(Call.error.is_(None), *unseen),
        )
    )
    return bool(earlier)


def close_unfinished(session: Session, run_id: int, note: str) -> int:
    """Mark the run's attempts still in flight as ended with ``note``; returns how many."""
    result = session.execute(
        update(Call)
        .where(Call.run_id == run_id, Call.error == IN_FLIGHT)
        .values(error=note)
        .execution_options(synchronize_session=False)
    )
    return int(cast(CursorResult[Any], result).rowcount)


def outputs_of(session: Session, experiment_id: int, role: str) -> dict[str, list[CallOutput]]:
    """What the calls of ``role`` wrote in each run of an experiment, by thread id.

    Every attempt is listed, in the order the calls were recorded (failed attempts have no texts
    and carry their error).
    """
    rows = session.execute(
        select(Run.thread_id, Call)
        .join(Call, Call.run_id == Run.id)
        .join(Result, Result.run_id == Run.id)
        .where(Result.experiment_id == experiment_id, Call.role == role)
        .order_by(Call.id)
    ).all()
    outputs: dict[str, list[CallOutput]] = {}
    for thread_id, call in rows:
        outputs.setdefault(thread_id, []).append(call_output(call))
    return outputs

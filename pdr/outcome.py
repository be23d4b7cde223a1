"""What a run ended with (``RunOutcome``), as ``pdr.runner`` returns it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pdr.budget import CallRecord
from pdr.store.ledger import Status

__all__ = ["RunOutcome"]


@dataclass(frozen=True)
class RunOutcome:
    """What a run ended with.

    Attributes:
        thread_id: the LangGraph thread (and ledger key) of the run.
        answer: the extracted final answer (the best so far for a stopped run; None if none).
        final_text: the final solution text.
        b_seq: tokens on the critical path, over every call of the run.
        b_tot: tokens of every call of the run, failed and repeated attempts included.
        wall_s: wall time in seconds (summed over the sessions of a resumed run).
        calls: the ledger records of the run's calls.
        status: 'done', 'truncated' (the final call stopped at its output cap),
            'budget_exhausted' (a token cap refused a call), 'failed' or 'interrupted'.
        error: why a run failed or stopped.
        grade: the grader's verdict when a gold answer and a grader were given.
    """

    thread_id: str
    answer: str | None
    final_text: str | None
    b_seq: int
    b_tot: int
    wall_s: float
    calls: list[CallRecord] = field(default_factory=list)
    status: Status = "done"
    error: str | None = None
    grade: bool | None = None

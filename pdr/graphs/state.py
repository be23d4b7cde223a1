"""Graph state: what the steps of a run hand each other. Run parameters live in graphs.context."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypeVar

# typing_extensions' TypedDict: pydantic (LangGraph Studio's schemas) rejects typing's on 3.11.
from typing_extensions import TypedDict

from pdr.budget import CallRecord
from pdr.caps import Allowance


class Draft(TypedDict):
    """One candidate solution of a round (``score``: its verify grade, once the stage gave one)."""

    round: int
    index: int
    text: str
    answer: str | None
    score: NotRequired[float]


class DraftTask(TypedDict):
    """What one parallel draft branch receives through ``Send``: the problem and its workspace.

    ``allowance`` is what the branch may spend under the run's token caps (None: no cap);
    ``planted``: a candidate the experiment places among the drafts instead of calling the model.
    """

    problem: str
    round: int
    index: int
    workspace: str
    allowance: NotRequired[Allowance | None]
    planted: NotRequired[str]


class VerifyTask(TypedDict):
    """What one verify branch receives: the draft to grade, as the verify prompt shows it."""

    problem: str
    round: int
    index: int
    text: str
    allowance: NotRequired[Allowance | None]


class DraftScore(TypedDict):
    """The verify stage's grade of one draft."""

    round: int
    index: int
    score: float


class Failure(TypedDict):
    """A step whose model call failed: the run pauses before it, and a resume asks it again.

    ``node`` is the graph node that failed and ``task`` its ``Send`` payload (empty for the
    one-call steps, which retry themselves).
    """

    node: str
    task: dict[str, Any]
    role: str
    round: int
    index: int
    error: str


T = TypeVar("T")


def accumulate(current: list[T] | None, update: list[T] | None) -> list[T]:
    """A list channel that grows with every update; ``None`` empties it.

    ``drafts`` is emptied once a round is distilled, which keeps each checkpoint's copy of the
    drafts bounded by one round; ``calls`` is emptied when a new run starts on the same thread.
    """
    if update is None:
        return []
    return [*(current or []), *update]


class InputState(TypedDict):
    """What a caller passes: the problem."""

    problem: str


def first_reason(current: str | None, update: str | None) -> str | None:
    """Keep the first reason a run stopped for; ``None`` clears it (a new run on the thread)."""
    if update is None:
        return None
    return current or update


class OutputState(TypedDict, total=False):
    """What a run returns: the final solution, its extracted answer, the budgets and the ledger.

    ``stopped`` says why a run ended early (``budget_exhausted: ...``; then ``answer`` is the best
    answer so far and ``final_text`` None); ``truncated`` is True when the final call stopped at
    its output cap. ``b_tot`` is billed (an n-sample call's prompt once), ``b_tot_per_draft``
    counts that prompt once per sample (``pdr.budget``).
    """

    final_text: str | None
    answer: str | None
    b_seq: int
    b_tot: int
    b_tot_per_draft: int
    calls: list[CallRecord]
    stopped: str | None
    truncated: bool


class State(InputState, OutputState, total=False):
    """The full state of the PDR, SR and long CoT graphs.

    ``round`` is the round being drafted (1-based); ``workspaces`` holds C_r for the next round:
    one entry shared by every draft, or one entry per draft. ``scores`` are the verify stage's
    grades of the round's drafts; ``failures`` the steps whose calls failed (the run pauses
    before going on, and asks them again when resumed; ``resend`` those to send again, with fresh
    allowances); ``round_answers`` the answers of the drafts behind the last workspace (the best
    answer so far when a run stops early).
    """

    round: int
    drafts: Annotated[list[Draft], accumulate]
    workspaces: list[str]
    calls: Annotated[list[CallRecord], accumulate]
    scores: Annotated[list[DraftScore], accumulate]
    failures: Annotated[list[Failure], accumulate]
    stopped: Annotated[str | None, first_reason]
    round_answers: list[str | None]
    resend: list[Failure] | None

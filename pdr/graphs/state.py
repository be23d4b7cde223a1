"""Graph state: what the steps of a run hand each other. Run parameters live in graphs.context."""

from __future__ import annotations

from typing import Annotated, TypeVar

# typing_extensions' TypedDict: pydantic (LangGraph Studio's schemas) rejects typing's on 3.11.
from typing_extensions import TypedDict

from pdr.budget import CallRecord


class Draft(TypedDict):
    """One candidate solution of a round."""

    round: int
    index: int
    text: str
    answer: str | None


class DraftTask(TypedDict):
    """What one parallel draft branch receives through ``Send``: the problem and its workspace."""

    problem: str
    round: int
    index: int
    workspace: str


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


class OutputState(TypedDict, total=False):
    """What a run returns: the final solution, its extracted answer, the budgets and the ledger."""

    final_text: str
    answer: str | None
    b_seq: int
    b_tot: int
    calls: list[CallRecord]


class State(InputState, OutputState, total=False):
    """The full state of the PDR, SR and long CoT graphs.

    ``round`` is the round being drafted (1-based); ``workspaces`` holds C_r for the next round:
    one entry shared by every draft, or one entry per draft.
    """

    round: int
    drafts: Annotated[list[Draft], accumulate]
    workspaces: list[str]
    calls: Annotated[list[CallRecord], accumulate]

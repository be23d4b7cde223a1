"""Token caps: what a run may still spend, and how a stage shares it among its branches.

A run context can cap B_tot (``max_total_tokens``) and B_seq (``max_sequential_tokens``). Before a
stage starts (the drafts of a round, their verification, a summary, the refine step), the node or
edge that starts it gives each branch an ``Allowance`` computed from the calls already in the state:
the tokens of B_tot left, shared equally among the stage's branches, and the tokens of B_seq left
(a stage adds only its most expensive branch to B_seq, so every branch may use all of it). Before
each attempt, ``pdr.calls.call_model`` checks that the attempt's worst case (prompt plus output cap)
fits what is left of its branch's allowance after its earlier attempts; when it does not, the call
is refused (``BudgetExhaustedError``) and the run ends with status ``budget_exhausted``. So the
branches of a stage together never spend more than was left, and no run goes over its caps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# typing_extensions' TypedDict: pydantic (LangGraph Studio's schemas) rejects typing's on 3.11.
from typing_extensions import TypedDict

from pdr.answers import normalize_answer
from pdr.budget import CallRecord, budgets, call_tokens, critical_tokens

# Tokens a chat template adds around each message (role markers, separators); the prompt's worst
# case is its text counted with the model's tokenizer plus this much per message.
TEMPLATE_TOKENS_PER_MESSAGE = 8


class Allowance(TypedDict):
    """What one branch of a stage may spend, all its attempts together (None: no cap)."""

    total: int | None
    sequential: int | None


class BudgetExhaustedError(RuntimeError):
    """A call whose worst case does not fit its allowance; ``records``: its earlier attempts."""

    def __init__(self, message: str, records: list[CallRecord]) -> None:
        """Keep the attempts' records beside the message."""
        super().__init__(message)
        self.records = records


def stage_allowance(
    max_total: int | None, max_sequential: int | None, calls: Iterable[CallRecord], branches: int
) -> Allowance | None:
    """Each branch's allowance when ``branches`` calls start together after ``calls``.

    None when the run has no cap. The B_tot left is shared equally (rounded down); the B_seq left
    goes whole to every branch, since a stage adds only its costliest branch to B_seq.
    """
    if max_total is None and max_sequential is None:
        return None
    spent = budgets(calls)
    total = None if max_total is None else max(0, max_total - spent.b_tot) // max(1, branches)
    sequential = None if max_sequential is None else max(0, max_sequential - spent.b_seq)
    return Allowance(total=total, sequential=sequential)


def split(allowance: Allowance | None, parts: int) -> Allowance | None:
    """One of ``parts`` equal shares of ``allowance`` (B_seq whole), for calls that run together."""
    if allowance is None:
        return None
    total = allowance["total"]
    return Allowance(
        total=None if total is None else total // max(1, parts),
        sequential=allowance["sequential"],
    )


def less(allowance: Allowance | None, spent: Iterable[CallRecord]) -> Allowance | None:
    """What is left of ``allowance`` after the calls ``spent`` (one branch, one after another)."""
    if allowance is None:
        return None
    spent = list(spent)
    total, sequential = allowance["total"], allowance["sequential"]
    return Allowance(
        total=None if total is None else max(0, total - sum(call_tokens(r) for r in spent)),
        sequential=None
        if sequential is None
        else max(0, sequential - sum(critical_tokens(r) for r in spent)),
    )


def refusal(
    allowance: Allowance | None, earlier: list[CallRecord], worst_total: int, worst_critical: int
) -> str | None:
    """Why the next attempt may not start (None: it fits what is left of ``allowance``)."""
    if allowance is None:
        return None
    left = less(allowance, earlier)
    assert left is not None
    if left["total"] is not None and worst_total > left["total"]:
        return (
            f"its worst case is {worst_total} tokens of B_tot (prompt and output cap) and "
            f"{left['total']} are left to it under max_total_tokens"
        )
    if left["sequential"] is not None and worst_critical > left["sequential"]:
        return (
            f"its worst case is {worst_critical} tokens of B_seq and {left['sequential']} are "
            f"left to it under max_sequential_tokens"
        )
    return None


def majority(answers: Iterable[str | None]) -> str | None:
    """The most common answer (normalised for comparison; the first one seen wins a tie)."""
    seen = [answer for answer in answers if answer is not None]
    keys = [normalize_answer(answer) for answer in seen]
    counts = Counter(key for key in keys if key is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a, k in zip(seen, keys, strict=True) if k is not None and counts[k] == best)

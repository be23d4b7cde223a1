"""The budget ledger: one record per model call, and the two budgets computed from it.

B_tot (cost) is the sum of input and output tokens over every call, failed attempts included.
B_seq (latency) is the critical path: within a round, the stages run one after another (drafts,
then verification, then distillation, then refinement); a stage's branches run in parallel, so a
stage costs its most expensive branch; a branch costs the sum of its attempts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal, NamedTuple, NotRequired

# typing_extensions' TypedDict: pydantic (LangGraph Studio's schemas) rejects typing's on 3.11.
from typing_extensions import TypedDict

Role = Literal["draft", "verify", "distill", "refine", "long_cot"]

# Order of the stages inside one round; every stage waits for the one before it.
STAGE_ORDER: tuple[Role, ...] = ("draft", "verify", "distill", "refine", "long_cot")


class CallRecord(TypedDict):
    """What one model call (or one failed attempt) consumed, as the provider reported it.

    Attributes:
        role: which step made the call.
        round: 1-based round of the run (long CoT and refine use the last round).
        index: the branch inside the stage (draft number, verified draft number; 0 otherwise).
        attempt: 0 for the first attempt, 1.. for retries of the same branch.
        model: the model spec string that served the call.
        input_tokens: prompt tokens, cached ones included.
        output_tokens: completion tokens, reasoning ones included, summed over all samples.
        reasoning_tokens: the part of output_tokens spent thinking (0 if not reported).
        cached_tokens: the part of input_tokens served from a prefix cache.
        samples: how many completions the call returned (n); usage is counted once for the call.
        sample_output_tokens: per-sample output tokens when the backend reports them; the
            critical path of an n-sample call is its prompt plus its longest sample.
        latency_s: wall time of the call.
        estimated: True when a backend reported no usage and the model's tokenizer counted it.
        error: the error of a failed attempt, None for a success. A cancelled attempt (a
            time-out, Ctrl-C) reads ``cancelled: ...`` and counts its prompt tokens, estimated.
        attempt_id: the attempt's own id, shared by its ledger row from the moment it starts.
        truncated: True when a sample stopped at the output cap (``finish_reason`` "length").
        repeat: True (set by the ledger) when the same step had already made a call whose work the
            provider may have done: a success, or an attempt whose reply was never received.
    """

    role: Role
    round: int
    index: int
    attempt: int
    model: str
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    samples: int
    sample_output_tokens: NotRequired[list[int] | None]
    latency_s: float
    estimated: bool
    error: str | None
    attempt_id: NotRequired[str]
    truncated: NotRequired[bool]
    repeat: NotRequired[bool]


def call_tokens(record: CallRecord) -> int:
    """Tokens the call costs: input plus all outputs (its share of B_tot)."""
    return record["input_tokens"] + record["output_tokens"]


def critical_tokens(record: CallRecord) -> int:
    """Tokens the call puts on the critical path (its prompt plus its longest sample)."""
    per_sample = record.get("sample_output_tokens")
    longest = max(per_sample) if per_sample else record["output_tokens"]
    return record["input_tokens"] + longest


class Budgets(NamedTuple):
    """The two budgets of a set of call records (see the module docstring)."""

    b_seq: int
    b_tot: int


def budgets(records: Iterable[CallRecord]) -> Budgets:
    """B_seq and B_tot of ``records``: the one place either figure is computed.

    B_tot is every call's input and output tokens, failed attempts included. B_seq is the sum over
    rounds and stages of the most expensive branch of each stage, a branch costing the sum of its
    attempts' critical tokens.
    """
    records = list(records)
    branch_cost: dict[tuple[int, int, int], int] = defaultdict(int)
    for record in records:
        stage = STAGE_ORDER.index(record["role"])
        branch_cost[(record["round"], stage, record["index"])] += critical_tokens(record)
    stage_cost: dict[tuple[int, int], int] = defaultdict(int)
    for (round_, stage, _index), cost in branch_cost.items():
        stage_cost[(round_, stage)] = max(stage_cost[(round_, stage)], cost)
    return Budgets(
        b_seq=sum(stage_cost.values()), b_tot=sum(call_tokens(record) for record in records)
    )

"""The budget ledger: one record per model call, and the two budgets computed from it.

B_tot (cost) is the sum of input and output tokens over every call, failed attempts included. It
is what providers bill: a call that returns n samples (batched drafts) reads its prompt once, so
its prompt counts once. The per-draft B_tot (``per_draft_total``) counts that prompt once per
sample instead, as if each draft had been its own call; for unbatched runs the two are equal.
B_seq (latency) is the critical path: within a round, the stages run one after another (drafts,
then verification, then distillation, then refinement); a stage's branches run in parallel, so a
stage costs its most expensive branch; a branch costs the sum of its attempts; an n-sample call
costs its prompt plus its longest sample.
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
        sample_output_estimated: True when the provider reported only the call's total output
            and the per-sample split was counted with the model's tokenizer (scaled to the total).
        latency_s: wall time of the call.
        estimated: True when the input or output count is the model's tokenizer's, not the
            provider's: a backend that reported no usage, or a failed attempt whose prompt
            reached the model (its prompt counted).
        error: the error of a failed attempt, None for a success. A cancelled attempt (a
            time-out, Ctrl-C) reads ``cancelled: ...`` and counts its prompt tokens, estimated.
        attempt_id: the attempt's own id, shared by its ledger row from the moment it starts.
        truncated: True when a sample stopped at the output cap (``finish_reason`` "length").
        repeat: True (set by the ledger) when the same step had already made a call whose work the
            provider may have done: a success, or an attempt whose reply was never received.
        reached_model: for a failed attempt, whether the request got to the model (a time-out,
            a 5xx after it was sent, an empty or malformed reply: its prompt counts) or never did
            (connection refused, 429, a request refused as invalid: 0 tokens); None on success.
        texts: what the call wrote, one text per sample (None for a failed attempt).
        injected: True for a candidate planted among the drafts by an experiment (no model
            call, 0 tokens).
        replica: the base URL (password redacted) of the replica that served the call, when the
            model spec names several (``vllm:MODEL@URL1,URL2``).
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
    sample_output_estimated: NotRequired[bool]
    latency_s: float
    estimated: bool
    error: str | None
    attempt_id: NotRequired[str]
    truncated: NotRequired[bool]
    repeat: NotRequired[bool]
    reached_model: NotRequired[bool | None]
    texts: NotRequired[list[str] | None]
    injected: NotRequired[bool]
    replica: NotRequired[str]


def call_tokens(record: CallRecord) -> int:
    """Tokens the call costs: input plus all outputs (its share of B_tot, as billed)."""
    return record["input_tokens"] + record["output_tokens"]


def per_draft_tokens(record: CallRecord) -> int:
    """The call's share of the per-draft B_tot: its prompt once per sample, plus all outputs."""
    return record["input_tokens"] * max(1, record["samples"]) + record["output_tokens"]


def per_draft_total(records: Iterable[CallRecord]) -> int:
    """B_tot with the prompt of an n-sample call counted n times (see the module docstring)."""
    return sum(per_draft_tokens(record) for record in records)


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

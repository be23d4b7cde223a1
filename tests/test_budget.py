"""B_seq and B_tot from ledger records, checked against numbers computed by hand."""

from __future__ import annotations

from pdr.budget import CallRecord, Role, budgets


def record(
    role: Role,
    round_: int,
    index: int,
    input_tokens: int,
    output_tokens: int,
    *,
    attempt: int = 0,
    samples: int = 1,
    per_sample: list[int] | None = None,
    error: str | None = None,
) -> CallRecord:
    return CallRecord(
        role=role,
        round=round_,
        index=index,
        attempt=attempt,
        model="m",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=0,
        cached_tokens=0,
        samples=samples,
        sample_output_tokens=per_sample,
        latency_s=0.0,
        estimated=False,
        error=error,
    )


def test_parallel_stage_costs_its_longest_branch_and_sequential_steps_add() -> None:
    records = [
        record("draft", 1, 0, 100, 50),
        record("draft", 1, 1, 100, 80),
        record("distill", 1, 0, 300, 40),
        record("draft", 2, 0, 120, 60),
        record("draft", 2, 1, 120, 10),
        record("refine", 3, 0, 90, 30),
    ]
    # stages: max(150, 180) + 340 + max(180, 130) + 120
    assert budgets(records).b_seq == 180 + 340 + 180 + 120
    assert budgets(records).b_tot == 150 + 180 + 340 + 180 + 130 + 120


def test_retries_lie_on_their_branch_and_count_in_the_total() -> None:
    records = [
        record("draft", 1, 0, 100, 50),
        record("draft", 1, 1, 100, 20, attempt=0, error="timeout after partial output"),
        record("draft", 1, 1, 100, 30, attempt=1),
        record("refine", 2, 0, 10, 10),
    ]
    # branch 1 costs 120 + 130 = 250 > branch 0's 150
    assert budgets(records).b_seq == 250 + 20
    assert budgets(records).b_tot == 150 + 120 + 130 + 20


def test_a_call_with_n_samples_is_counted_once() -> None:
    one_call = record("draft", 1, 0, 200, 300, samples=3, per_sample=[50, 150, 100])
    assert budgets([one_call]).b_tot == 500
    assert budgets([one_call]).b_seq == 200 + 150


def test_verify_stage_runs_between_drafts_and_next_round() -> None:
    records = [
        record("draft", 1, 0, 10, 10),
        record("draft", 1, 1, 10, 30),
        record("verify", 1, 0, 40, 5),
        record("verify", 1, 1, 45, 5),
        record("refine", 2, 0, 20, 20),
    ]
    assert budgets(records).b_seq == 40 + 50 + 40
    assert budgets(records).b_tot == 20 + 40 + 45 + 50 + 40


def test_long_cot_is_its_one_call() -> None:
    assert budgets([record("long_cot", 1, 0, 80, 900)]).b_seq == 980
    assert budgets([]).b_seq == 0

"""What a finished experiment says about its drafts, from the ledger's stored draft answers;
call seeds that differ by problem; an older ledger gets the new columns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pdr.calls import call_seed
from pdr.evaluation.configs import Config
from pdr.evaluation.drafts import DraftRow, draft_rows, drafts_markdown, majority
from pdr.graphs.context import PDRContext, RunContext
from pdr.graphs.pdr import build_pdr
from pdr.models import Message
from pdr.store.ledger import Ledger
from pdr.store.rows import CallOutput, ResultRow
from tests.scripted import ScriptedChatModel

PDR = Config("pdr", {"schedule": [3, 1], "max_tokens": 128, "distill": "topk"})
LONG = Config("long_cot", {"max_tokens": 128})
LONGER = Config("long_cot", {"max_tokens": 256})


def result(thread: str, label: str, method: str, correct: bool, status: str = "done") -> ResultRow:
    return ResultRow(
        experiment_id=1,
        method=method,
        label=label,
        seed=0,
        item_id=thread,
        thread_id=thread,
        status=status,
        answer=None,
        gold="12",
        grade=correct,
        b_seq=0,
        b_tot=0,
        wall_s=0.0,
        calls=0,
        error=None,
    )


def draft(
    index: int,
    *answers: str | None,
    round_: int = 1,
    injected: bool = False,
    error: str | None = None,
) -> CallOutput:
    texts = [f"Answer: {a}" for a in answers] if error is None else []
    return CallOutput(
        "draft", round_, index, 0 if error is None else 1, texts, list(answers), injected, error
    )


def test_draft_accuracy_majority_oracle_and_what_the_last_step_did() -> None:
    results = [
        result("a", PDR.label, "pdr", False),  # right majority, final wrong: lost
        result("b", PDR.label, "pdr", True),  # three-way tie: the first (wrong) wins; rescued
        result("c", PDR.label, "pdr", False),  # majority wrong, one right, the plant ignored
        result("d", PDR.label, "pdr", True, status="failed"),  # a failed run counts as wrong
        result("l1", LONG.label, "long_cot", True),
        result("l2", LONG.label, "long_cot", False),
        result("l3", LONGER.label, "long_cot", True),
    ]
    outputs = {
        "a": [draft(0, "12"), draft(1, "012"), draft(2, "7"), draft(0, "5", round_=2)],
        "b": [draft(0, "7"), draft(1, "8"), draft(2, "12")],
        "c": [draft(0, "7"), draft(1, "7"), draft(2, "12"), draft(3, "12", injected=True)],
        # a failed first attempt, then one call that returned two samples
        "d": [draft(0, error="TransientBackendError: 503"), draft(0, "12", "9")],
    }
    rows = draft_rows(results, outputs, [PDR, LONG, LONGER])
    assert rows == [
        DraftRow(
            method="pdr",
            label=PDR.label,
            runs=4,
            drafts=3 + 3 + 3 + 2,
            draft_accuracy=(2 + 1 + 1 + 1) / 11,
            majority_accuracy=2 / 4,  # a (12), d (12 before 9)
            oracle_accuracy=4 / 4,
            final_accuracy=1 / 4,
            lost=2,  # a, d
            rescued=1,  # b
            long_cot_accuracy=1 / 2,  # the max_tokens=128 runs, not the 256 one
        )
    ]
    table = drafts_markdown(rows).splitlines()
    assert table[2] == (
        f"| pdr | {PDR.label.removeprefix('pdr ')} | 4 | 11 | 45.5% | 50.0% | 50.0% | 100.0% "
        "| 25.0% | 2 | 1 |"
    )


def test_majority_ties_go_to_the_earliest_draft() -> None:
    assert majority(["7", "12", "12", "7"]) == "7"
    assert majority([None, "12", "$12$", "7"]) == "12"
    assert majority([None, None]) is None


def test_seeds_differ_by_problem_and_repeat_for_the_same_call() -> None:
    def messages(problem: str) -> list[Message]:
        return [{"role": "system", "content": "s"}, {"role": "user", "content": problem}]

    context = RunContext(model="scripted", seed=0)
    one = [call_seed(context, 1, i, messages("What is 2 + 2?")) for i in range(4)]
    other = [call_seed(context, 1, i, messages("What is 3 + 3?")) for i in range(4)]
    assert len(set(one) | set(other)) == 8  # no seed shared across drafts or problems
    assert one == [call_seed(context, 1, i, messages("What is 2 + 2?")) for i in range(4)]
    assert (
        call_seed(RunContext(model="scripted", seed=1), 1, 0, messages("What is 2 + 2?"))
        != (one[0])
    )
    assert call_seed(context, 2, 0, messages("What is 2 + 2?")) != one[0]
    assert all(0 <= seed < 2**31 for seed in one + other)


async def test_draft_seeds_of_two_problems_are_unrelated(scripted: ScriptedChatModel) -> None:
    graph = build_pdr().compile()
    seeds: dict[str, list[int | None]] = {}
    for problem in ("What is 17 * 23?", "What is 19 * 29?", "What is 17 * 23?"):
        start = len(scripted.calls)
        await graph.ainvoke(
            {"problem": problem}, context=PDRContext(model="scripted", schedule=[4, 1])
        )
        made = scripted.calls[start:]
        drafts = sorted((c.index, c.seed) for c in made if c.role == "draft")
        seeds.setdefault(problem, [])
        if seeds[problem]:
            assert [seed for _, seed in drafts] == seeds[problem]  # reproducible
        seeds[problem] = [seed for _, seed in drafts]
    first, second = seeds.values()
    assert len(set(first)) == 4 and not set(first) & set(second)


def test_an_older_ledger_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as connection:  # as a ledger written before these columns,
        for column in ("texts", "answers", "injected", "reached_model"):
            connection.execute(f'ALTER TABLE calls DROP COLUMN "{column}"')
        connection.execute("ALTER TABLE runs DROP COLUMN b_tot_per_draft")
        # The schema revision before these columns (pdr.store.migrations.versions.v4_call_texts)
        connection.execute("UPDATE alembic_version SET version_num = 'v3'")
        connection.execute(
            "INSERT INTO runs (thread_id, graph, models, context, problem, status, seed, "
            "created_at) VALUES ('old', 'long_cot', '{}', '{}', 'p', 'done', 0, "
            "'2026-01-01 00:00:00')"
        )
    ledger = Ledger(path)
    with sqlite3.connect(path) as connection:
        names = {row[1] for row in connection.execute("PRAGMA table_info(calls)")}
    assert {"texts", "answers", "injected", "reached_model"} <= names
    old = ledger.get_run("old")
    assert old is not None and old.problem == "p"  # the old row reads as it was
    ledger.close()

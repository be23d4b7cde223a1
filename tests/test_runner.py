"""The runner: each graph end to end with checkpoints and the ledger, failures, resume, grading.

The model is the scripted chat model (tests/scripted.py), so every token count is known: it
reports the whitespace words of prompt and reply, and these tests recompute both budgets from
what the model saw. Runs and resumes go to SQLite files and to a real PostgreSQL server (the
``store`` fixture: ledger and checkpoints in one fresh database per test).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pdr.graphs.catalog import make_context
from pdr.graphs.context import ContextError, PDRContext, RunContext, SRContext
from pdr.runner import resume_problem, run_problem
from pdr.store.ledger import Ledger
from tests.conftest import Store
from tests.scripted import Call, ScriptedChatModel, words

PROBLEM = "What is 17 * 23?"


def call_cost(model: ScriptedChatModel, call: Call) -> int:
    """in + out tokens of one scripted call, from the prompt and the reply it gave."""
    return words(call.prompt) + words(model._reply(call))


def expected_budgets(model: ScriptedChatModel) -> tuple[int, int]:
    """(B_seq, B_tot) by hand: B_tot sums every call; B_seq sums, per round and role, the
    costliest branch (every call here succeeds on its first attempt)."""
    b_tot = sum(call_cost(model, call) for call in model.calls)
    stage: dict[tuple[int, str], int] = {}
    for call in model.calls:
        key = (call.round, call.role)
        stage[key] = max(stage.get(key, 0), call_cost(model, call))
    return sum(stage.values()), b_tot


def made(model: ScriptedChatModel) -> Counter[tuple[str, int, int]]:
    """Finished scripted calls by (role, round, index)."""
    return Counter((call.role, call.round, call.index) for call in model.calls)


def ledger_calls(ledger: Ledger, thread_id: str) -> Counter[tuple[str, int, int]]:
    run = ledger.get_run(thread_id)
    assert run is not None
    return Counter((r["role"], r["round"], r["index"]) for r in run.call_records)


# graph, distill, scorer, parameters, calls per role, workspaces stored as (round, index)
# (a scorer only where one runs: the top-k operators)
CASES: list[
    tuple[str, str | None, str | None, dict[str, Any], dict[str, int], list[tuple[int, int]]]
] = [
    (
        "pdr",
        "summary",
        None,
        {"schedule": [3, 2, 1]},
        {"draft": 5, "distill": 2, "refine": 1},
        [(1, 0), (2, 0)],
    ),
    (
        "pdr",
        "topk",
        "verify",
        {"schedule": [3, 2, 1]},
        {"draft": 5, "verify": 5, "refine": 1},
        [(1, 0), (2, 0)],
    ),
    (
        "pdr",
        "topk",
        "vote",
        {"schedule": [3, 2, 1]},
        {"draft": 5, "refine": 1},
        [(1, 0), (2, 0)],
    ),
    # Per-sample workspaces: one per next-round draft (2 after round 1, 1 for the refine).
    (
        "pdr",
        "topk_per_sample",
        "verify",
        {"schedule": [3, 2, 1]},
        {"draft": 5, "verify": 5, "refine": 1},
        [(1, 0), (1, 1), (2, 0)],
    ),
    (
        "pdr",
        "topk_per_sample",
        "vote",
        {"schedule": [2, 2, 1]},
        {"draft": 4, "refine": 1},
        [(1, 0), (1, 1), (2, 0)],
    ),
    # Bootstrapped workspaces: one per next-round draft (2 after round 1, 1 for the refine).
    (
        "pdr",
        "random_k",
        None,
        {"schedule": [2, 2, 1]},
        {"draft": 4, "refine": 1},
        [(1, 0), (1, 1), (2, 0)],
    ),
    ("sr", None, None, {"rounds": 3}, {"draft": 2, "refine": 1}, [(1, 0), (2, 0)]),
    ("long_cot", None, None, {}, {"long_cot": 1}, []),
]


@pytest.mark.parametrize(("graph", "distill", "scorer", "values", "roles", "spaces"), CASES)
async def test_each_graph_runs_into_the_ledger(
    scripted: ScriptedChatModel,
    store: Store,
    graph: str,
    distill: str | None,
    scorer: str | None,
    values: dict[str, Any],
    roles: dict[str, int],
    spaces: list[tuple[int, int]],
) -> None:
    ledger = Ledger(store.ledger)
    events: list[dict[str, Any]] = []
    outcome = await run_problem(
        graph=graph,
        problem=PROBLEM,
        context=make_context(graph, model="scripted", **values),
        distill=distill,
        scorer=scorer,
        thread_id="t1",
        ledger=ledger,
        checkpoints=store.checkpoints,
        on_event=events.append,
    )
    assert outcome.status == "done"
    assert outcome.answer == "391"
    assert Counter(call.role for call in scripted.calls) == roles
    b_seq, b_tot = expected_budgets(scripted)
    assert (outcome.b_seq, outcome.b_tot) == (b_seq, b_tot)
    assert len(outcome.calls) == sum(roles.values())

    stored = ledger.get_run("t1")
    assert stored is not None
    assert (stored.status, stored.answer, stored.b_seq, stored.b_tot) == (
        "done",
        "391",
        b_seq,
        b_tot,
    )
    assert stored.calls == sum(roles.values())
    assert sum(r["input_tokens"] + r["output_tokens"] for r in stored.call_records) == b_tot
    # The stored budgets are the one budget function applied to the run's own ledger rows.
    assert stored.recorded_budgets == (stored.b_seq, stored.b_tot)
    assert stored.models == {"model": "scripted"}
    assert (stored.distill, stored.scorer) == (distill, scorer)
    assert [(w.round, w.index) for w in stored.workspaces] == spaces
    # Tokens of each stored workspace, in the scripted model's tokenizer (whitespace words).
    assert all(w.tokens == words(w.text) for w in stored.workspaces)
    rounds = len(make_context(graph, **values).round_sizes())
    assert events[-1] == {"event": "answer", "answer": "391", "b_seq": b_seq, "b_tot": b_tot}
    started = [e["round"] for e in events if e["event"] == "round_started"]
    assert started == list(range(1, max(rounds, 2)))
    ledger.close()


async def test_a_failed_call_fails_the_run_which_resumes_to_the_same_budgets(
    scripted: ScriptedChatModel, store: Store
) -> None:
    context = PDRContext(model="scripted", schedule=[3, 3, 1], max_retries=0)
    reference = await run_problem(graph="pdr", problem=PROBLEM, context=context)
    reference_calls = made(scripted)
    scripted.calls.clear()

    victim = ("draft", 2, 1)
    failed_once: list[Call] = []

    def fail(call: Call) -> Exception | None:
        if (call.role, call.round, call.index) == victim and not failed_once:
            failed_once.append(call)
            return RuntimeError("the provider went away")
        return None

    scripted.script.fail = fail
    # The victim ends last, so its siblings finish (and are saved) before the round fails.
    scripted.script.latency = lambda call: (
        0.2 if (call.role, call.round, call.index) == victim else 0
    )
    ledger = Ledger(store.ledger)
    where = store.checkpoints
    outcome = await run_problem(
        graph="pdr",
        problem=PROBLEM,
        context=context,
        thread_id="t",
        ledger=ledger,
        checkpoints=where,
    )
    assert outcome.status == "failed"
    assert outcome.error is not None and "the provider went away" in outcome.error
    before = made(scripted)
    assert before == {("draft", 1, i): 1 for i in range(3)} | {
        ("distill", 1, 0): 1,
        ("draft", 2, 0): 1,
        ("draft", 2, 2): 1,
    }
    stored = ledger.get_run("t")
    assert stored is not None and stored.status == "failed"
    assert stored.error is not None and "the provider went away" in stored.error
    # The failed attempt is in the ledger too (zero tokens, with its error).
    failed = [r for r in stored.call_records if r["error"] is not None]
    assert [(r["role"], r["round"], r["index"]) for r in failed] == [victim]
    assert (failed[0]["input_tokens"], failed[0]["output_tokens"]) == (0, 0)
    assert stored.calls == 7
    assert outcome.b_tot == stored.b_tot == sum(call_cost(scripted, c) for c in scripted.calls)

    resumed = await resume_problem("t", ledger=ledger, checkpoints=where)
    assert resumed.status == "done"
    assert made(scripted) - before == {
        ("draft", 2, 1): 1,
        ("distill", 2, 0): 1,
        ("refine", 3, 0): 1,
    }
    assert made(scripted) == reference_calls
    assert (resumed.b_seq, resumed.b_tot) == (reference.b_seq, reference.b_tot)
    final = ledger.get_run("t")
    assert final is not None and final.status == "done" and final.error is None
    assert final.calls == 10  # 9 calls and the failed attempt
    ledger.close()


@pytest.mark.parametrize(
    ("graph", "context", "distill", "message"),
    [
        ("tree", PDRContext(model="scripted"), "summary", "graph: unknown graph 'tree'"),
        (
            "pdr",
            SRContext(model="scripted"),
            "summary",
            "context: the pdr graph needs a PDRContext",
        ),
        ("pdr", PDRContext(model="scripted"), "best", "distill: unknown operator 'best'"),
        ("pdr", PDRContext(model="nosuch:model"), "summary", "model: model 'nosuch:model'"),
    ],
)
async def test_bad_parameters_fail_before_any_call_or_write(
    scripted: ScriptedChatModel,
    tmp_path: Path,
    graph: str,
    context: RunContext,
    distill: str,
    message: str,
) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with pytest.raises(ContextError, match=message):
        await run_problem(
            graph=graph, problem=PROBLEM, context=context, distill=distill, ledger=ledger
        )
    assert scripted.started == []
    assert ledger.list_runs() == []
    ledger.close()


def test_make_context_names_the_field() -> None:
    with pytest.raises(ContextError, match=r"^schedule: the sr graph does not take this parameter"):
        make_context("sr", schedule=[2, 1])
    with pytest.raises(ContextError, match=r"^kappa: must be a whole number >= 1, got 0"):
        make_context("pdr", kappa=0)
    assert make_context("sr", rounds=4, kappa=None).round_sizes() == [1, 1, 1, 1]


async def test_gold_and_grade_are_stored(scripted: ScriptedChatModel, store: Store) -> None:
    ledger = Ledger(store.ledger)
    context = make_context("long_cot", model="scripted")
    for thread, gold in (("right", "391"), ("wrong", "390")):
        outcome = await run_problem(
            graph="long_cot",
            problem=PROBLEM,
            context=context,
            thread_id=thread,
            ledger=ledger,
            checkpoints=store.checkpoints,
            gold=gold,
            grade=lambda answer, gold: answer == gold,
            item_id=f"item-{thread}",
        )
        stored = ledger.get_run(thread)
        assert stored is not None
        assert (stored.gold, stored.grade, stored.item_id) == (
            gold,
            outcome.grade,
            f"item-{thread}",
        )
    assert [r.grade for r in ledger.list_runs()] == [False, True]
    ledger.close()


async def test_resuming_a_done_run_makes_no_call(scripted: ScriptedChatModel, store: Store) -> None:
    ledger = Ledger(store.ledger)
    first = await run_problem(
        graph="sr",
        problem=PROBLEM,
        context=SRContext(model="scripted", rounds=2),
        thread_id="sr1",
        ledger=ledger,
        checkpoints=store.checkpoints,
    )
    count = len(scripted.calls)
    again = await resume_problem("sr1", ledger=ledger, checkpoints=store.checkpoints)
    assert len(scripted.calls) == count == 2
    assert (again.answer, again.b_seq, again.b_tot, len(again.calls)) == (
        first.answer,
        first.b_seq,
        first.b_tot,
        2,
    )
    ledger.close()

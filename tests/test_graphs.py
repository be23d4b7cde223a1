"""The graphs run offline on the scripted model: calls per role, budgets by hand, final answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pdr.graphs.context import LongCoTContext, PDRContext, SRContext
from pdr.graphs.long_cot import build_long_cot
from pdr.graphs.pdr import build_pdr
from pdr.graphs.sr import build_sr
from pdr.nodes.distill import Distiller, random_k, summary, topk, topk_per_sample
from tests.helpers import compiled, config, roles
from tests.scripted import Call, ScriptedChatModel

PROBLEM = {"problem": "What is 17 * 23?"}

# (operator, scorer calls per draft, summary calls per distill)
OPERATORS: dict[str, tuple[Callable[[], Distiller], int, int]] = {
    "summary": (lambda: summary, 0, 1),
    "topk_vote": (lambda: topk("vote"), 0, 0),
    "topk_verify": (lambda: topk("verify"), 1, 0),
    "topk_per_sample_vote": (lambda: topk_per_sample("vote"), 0, 0),
    "topk_per_sample_verify": (lambda: topk_per_sample("verify"), 1, 0),
    "random_k": (lambda: random_k, 0, 0),
}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("operator", sorted(OPERATORS))
async def test_calls_per_role_follow_the_schedule(
    operator: str, kind: str, scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    make, verify_per_draft, summaries_per_distill = OPERATORS[operator]
    schedule = [4, 3, 1]
    drafts = 4 + 3
    async with compiled(build_pdr(distill=make()), kind, tmp_path) as graph:
        out = await graph.ainvoke(
            PROBLEM, config(), context=PDRContext(model="scripted", schedule=schedule, k=2)
        )
    expected = {"draft": drafts, "refine": 1}
    if verify_per_draft:
        expected["verify"] = drafts * verify_per_draft
    if summaries_per_distill:
        expected["distill"] = 2 * summaries_per_distill
    assert roles(out["calls"]) == expected
    assert {role: scripted.count(role) for role in expected} == expected
    assert len(scripted.calls) == sum(expected.values())
    assert out["answer"] == "391"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_sr_and_long_cot_call_counts(
    kind: str, scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    async with compiled(build_sr(), kind, tmp_path) as graph:
        out = await graph.ainvoke(
            PROBLEM, config("sr"), context=SRContext(model="scripted", rounds=4)
        )
    assert roles(out["calls"]) == {"draft": 3, "refine": 1}
    async with compiled(build_long_cot(), kind, tmp_path) as graph:
        out = await graph.ainvoke(PROBLEM, config("cot"), context=LongCoTContext(model="scripted"))
    assert roles(out["calls"]) == {"long_cot": 1}
    assert len(scripted.calls) == 5


def scripted_usage(call: Call, text: str) -> tuple[int, int]:
    """Usage numbers the budget tests compute by hand."""
    if call.role == "draft":
        return 100, 10 * (call.index + 1) + 100 * call.round
    if call.role == "distill":
        return 300, 40
    if call.role == "verify":
        return 50, 5 + call.index
    if call.role == "refine":
        return 150, 50
    return 80, 900


async def test_budgets_of_pdr_with_summary_match_the_hand_computation(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script.usage = scripted_usage
    out = (
        await build_pdr()
        .compile()
        .ainvoke(PROBLEM, context=PDRContext(model="scripted", schedule=[3, 2, 1]))
    )
    # round 1 drafts 210/220/230, summary 340, round 2 drafts 310/320, summary 340, refine 200
    assert out["b_seq"] == 230 + 340 + 320 + 340 + 200 == 1430
    assert out["b_tot"] == (210 + 220 + 230) + 340 + (310 + 320) + 340 + 200 == 2170


async def test_budgets_of_pdr_with_verified_topk_match_the_hand_computation(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script.usage = scripted_usage
    out = (
        await build_pdr(distill=topk("verify"))
        .compile()
        .ainvoke(PROBLEM, context=PDRContext(model="scripted", schedule=[3, 2, 1]))
    )
    # verify calls 55/56/57 after round 1 and 55/56 after round 2 run in parallel
    assert out["b_seq"] == 230 + 57 + 320 + 56 + 200 == 863
    assert out["b_tot"] == 660 + (55 + 56 + 57) + 630 + (55 + 56) + 200 == 1769


async def test_budgets_of_sr_and_long_cot(scripted: ScriptedChatModel) -> None:
    scripted.script.usage = scripted_usage
    sr = await build_sr().compile().ainvoke(PROBLEM, context=SRContext(model="scripted", rounds=3))
    # draft r1 i0: 210, draft r2 i0: 310, refine: 200, all sequential
    assert sr["b_seq"] == sr["b_tot"] == 210 + 310 + 200
    cot = (
        await build_long_cot().compile().ainvoke(PROBLEM, context=LongCoTContext(model="scripted"))
    )
    assert cot["b_seq"] == cot["b_tot"] == 980


async def test_b_tot_equals_the_sum_of_the_usage_the_model_reported(
    scripted: ScriptedChatModel,
) -> None:
    out = (
        await build_pdr(distill=topk_per_sample("verify"))
        .compile()
        .ainvoke(PROBLEM, context=PDRContext(model="scripted", schedule=[5, 2, 1]))
    )
    reported = sum(len(call.prompt.split()) for call in scripted.calls)
    assert out["b_tot"] == sum(c["input_tokens"] + c["output_tokens"] for c in out["calls"])
    assert sum(c["input_tokens"] for c in out["calls"]) == reported


async def test_transient_failures_are_retried_and_every_attempt_is_recorded(
    scripted: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pdr import calls
    from pdr.models import TransientBackendError

    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    failures = {"left": 2}

    def flaky(call: Call) -> Exception | None:
        if call.role == "draft" and call.index == 1 and failures["left"]:
            failures["left"] -= 1
            return TransientBackendError("503 from the server")
        return None

    scripted.script.fail = flaky
    out = (
        await build_pdr()
        .compile()
        .ainvoke(PROBLEM, context=PDRContext(model="scripted", schedule=[2, 1], max_retries=2))
    )
    branch = [c for c in out["calls"] if c["role"] == "draft" and c["index"] == 1]
    assert [c["attempt"] for c in branch] == [0, 1, 2]
    assert [c["error"] is None for c in branch] == [False, False, True]
    assert roles(out["calls"]) == {"draft": 2, "distill": 1, "refine": 1}


async def test_a_call_that_keeps_failing_fails_the_run_with_the_cause(
    scripted: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pdr import calls
    from pdr.models import TransientBackendError

    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    scripted.script.fail = lambda call: TransientBackendError("connection refused")
    out = await (
        build_long_cot()
        .compile()
        .ainvoke(PROBLEM, context=LongCoTContext(model="scripted", max_retries=1))
    )
    # The graph pauses on the failed step (a LangGraph interrupt naming it and the cause) ...
    [pause] = out["__interrupt__"]
    assert pause.value == {"failed": ["long_cot 1.0: long_cot call failed: connection refused"]}
    # ... with both attempts in its own ledger.
    assert [(c["attempt"], c["error"]) for c in out["calls"]] == [
        (0, "TransientBackendError: connection refused"),
        (1, "TransientBackendError: connection refused"),
    ]


async def test_custom_events_report_rounds_drafts_and_workspaces(
    scripted: ScriptedChatModel,
) -> None:
    events: list[dict[str, Any]] = []
    async for mode, chunk in (
        build_pdr()
        .compile()
        .astream(
            PROBLEM,
            context=PDRContext(model="scripted", schedule=[3, 2, 1]),
            stream_mode=["updates", "custom"],
        )
    ):
        if mode == "custom":
            events.append(chunk)
    kinds = [event["event"] for event in events]
    assert kinds.count("round_started") == 2
    assert kinds.count("draft_finished") == 5
    assert kinds.count("workspace_written") == 2
    assert kinds[-1] == "answer"
    assert events[0] == {
        "event": "round_started",
        "round": 1,
        "drafts": 3,
        "rounds": 3,
        "max_concurrency": None,
    }


def test_the_sync_api_runs_the_async_nodes(scripted: ScriptedChatModel) -> None:
    out = build_pdr().compile().invoke(PROBLEM, context={"model": "scripted", "schedule": [2, 1]})
    assert out["answer"] == "391"
    assert roles(out["calls"]) == {"draft": 2, "distill": 1, "refine": 1}

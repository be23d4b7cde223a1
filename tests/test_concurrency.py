"""Drafts of a round run at the same time, and the cap on concurrent calls holds."""

from __future__ import annotations

import time

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.nodes.distill import topk
from tests.scripted import Call, ScriptedChatModel

DRAFT_S = 0.2


def draft_latency(call: Call) -> float:
    return DRAFT_S if call.role == "draft" else 0.0


async def test_sixteen_drafts_take_about_one_drafts_time(scripted: ScriptedChatModel) -> None:
    scripted.script.latency = draft_latency
    graph = build_pdr(distill=topk("vote")).compile()
    started = time.perf_counter()
    out = await graph.ainvoke(
        {"problem": "What is 17 * 23?"},
        context=PDRContext(model="scripted", schedule=[16, 1], max_concurrency=16),
    )
    elapsed = time.perf_counter() - started
    assert scripted.count("draft") == 16
    assert scripted.peak_in_flight == 16
    assert elapsed < 2 * DRAFT_S, f"16 parallel drafts took {elapsed:.2f} s"
    assert out["answer"] == "391"


def test_the_sync_api_runs_a_round_in_parallel_too(scripted: ScriptedChatModel) -> None:
    from pdr.graphs.pdr import graph

    scripted.script.latency = draft_latency
    started = time.perf_counter()
    graph.invoke(
        {"problem": "What is 17 * 23?"},
        context=PDRContext(model="scripted", schedule=[16, 1], max_concurrency=16),
    )
    elapsed = time.perf_counter() - started
    # drafts 0.2 s in parallel, then a summary and a refine call of 0 s
    assert scripted.peak_in_flight == 16
    assert elapsed < 2 * DRAFT_S, f"16 parallel drafts took {elapsed:.2f} s"


async def test_the_concurrency_cap_is_honoured(scripted: ScriptedChatModel) -> None:
    scripted.script.latency = draft_latency
    graph = build_pdr(distill=topk("vote")).compile()
    started = time.perf_counter()
    await graph.ainvoke(
        {"problem": "What is 17 * 23?"},
        context=PDRContext(model="scripted", schedule=[8, 1], max_concurrency=3),
    )
    elapsed = time.perf_counter() - started
    assert scripted.peak_in_flight == 3
    # 8 drafts, 3 at a time: three waves
    assert elapsed >= 3 * DRAFT_S

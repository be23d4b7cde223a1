"""Drafts of a round run at the same time, the cap on concurrent calls holds, waves are shown."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from pdr.cli import app
from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.live import LiveView
from pdr.nodes.distill import topk
from tests.scripted import Call, ScriptedChatModel

DRAFT_S = 0.2
# Long enough that 64 branches started by LangGraph's sync executor on a loaded machine (they
# start up to 0.7 s apart there) are all still running when the last one starts.
SLOW_DRAFT_S = 2.0


def draft_latency(call: Call) -> float:
    return DRAFT_S if call.role == "draft" else 0.0


def slow_draft_latency(call: Call) -> float:
    return SLOW_DRAFT_S if call.role == "draft" else 0.0


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


async def test_by_default_every_draft_of_a_round_starts_together(
    scripted: ScriptedChatModel,
) -> None:
    # The old default cap (16) ran a 64-draft round in four waves.
    scripted.script.latency = slow_draft_latency
    graph = build_pdr(distill=topk("vote")).compile()
    context = PDRContext(model="scripted", schedule=[64, 1])
    assert context.max_concurrency is None
    await graph.ainvoke({"problem": "What is 17 * 23?"}, context=context)
    assert scripted.count("draft") == 64
    assert scripted.peak_in_flight == 64


def test_by_default_the_sync_api_starts_every_draft_together_too(
    scripted: ScriptedChatModel,
) -> None:
    from pdr.graphs.pdr import graph

    scripted.script.latency = slow_draft_latency
    graph.invoke(
        {"problem": "What is 17 * 23?"}, context=PDRContext(model="scripted", schedule=[64, 1])
    )
    assert scripted.peak_in_flight == 64


async def test_the_round_events_carry_the_cap(scripted: ScriptedChatModel) -> None:
    graph = build_pdr(distill=topk("vote")).compile()
    events = [
        chunk
        async for chunk in graph.astream(
            {"problem": "What is 17 * 23?"},
            context=PDRContext(model="scripted", schedule=[8, 4, 1], max_concurrency=3),
            stream_mode="custom",
        )
        if chunk["event"] == "round_started"
    ]
    assert [(e["drafts"], e["max_concurrency"]) for e in events] == [(8, 3), (4, 3)]


def test_the_progress_view_shows_the_waves(scripted: ScriptedChatModel, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "run",
            "What is 17 * 23?",
            "--model",
            "scripted",
            "--schedule",
            "5,1",
            "--max-concurrency",
            "2",
            "--distill",
            "topk",
            "--db",
            str(tmp_path / "ledger.sqlite"),
            "--checkpoints",
            str(tmp_path / "cp.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "round 1/2 started: 5 drafts, 2 at a time (max_concurrency 2): 3 waves"
    )
    assert scripted.peak_in_flight == 2


def test_the_live_table_shows_the_waves() -> None:
    console = Console(record=True, width=120)
    view = LiveView(console, title="pdr")
    view.quiet = True  # take the events without printing lines
    view.handle(
        {"event": "round_started", "round": 1, "drafts": 64, "rounds": 2, "max_concurrency": 16}
    )
    view.handle(
        {"event": "round_started", "round": 2, "drafts": 1, "rounds": 2, "max_concurrency": 16}
    )
    console.print(view.render())
    text = console.export_text()
    [first] = [line for line in text.splitlines() if "1/2" in line]
    [second] = [line for line in text.splitlines() if "2/2" in line]
    assert "0/64 (4 waves of 16)" in first
    assert "0/1 " in second and "waves" not in second

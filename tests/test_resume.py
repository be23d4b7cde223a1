"""A run stopped in round 2 resumes from its SQLite checkpoint without redoing saved calls.

A failed call pauses the graph (a LangGraph interrupt naming it) once the other branches of its
stage have finished; ``Command(resume=True)`` asks only the failed branch again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from langgraph.types import Command

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.nodes.distill import topk
from pdr.store.checkpoints import compile_with_sqlite, open_async_graph
from tests.crash_worker import SCHEDULE
from tests.helpers import config, roles
from tests.scripted import Call, ScriptedChatModel

PROBLEM = {"problem": "What is 17 * 23?"}
CONTEXT = PDRContext(model="scripted", schedule=[3, 3, 1])
ROOT = Path(__file__).resolve().parent.parent


def fail_once(victim: tuple[str, int, int]) -> Any:
    """A fail hook that raises on the first call of ``victim`` and lets later ones through."""
    seen: set[tuple[str, int, int]] = set()

    def hook(call: Call) -> Exception | None:
        key = (call.role, call.round, call.index)
        if key == victim and key not in seen:
            seen.add(key)
            return RuntimeError("the provider went away")
        return None

    return hook


def slow(victim: tuple[str, int, int]) -> Any:
    return lambda call: 0.2 if (call.role, call.round, call.index) == victim else 0.0


def comparable(out: dict[str, Any]) -> dict[str, Any]:
    """A final state without wall-clock latencies and retry bookkeeping."""
    calls = sorted(
        (c["role"], c["round"], c["index"], c["input_tokens"], c["output_tokens"])
        for c in out["calls"]
        if c["error"] is None
    )
    return {**{k: v for k, v in out.items() if k != "calls"}, "calls": calls}


async def test_resume_after_an_exception_in_round_2(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    reference = comparable(await build_pdr().compile().ainvoke(PROBLEM, context=CONTEXT))
    scripted.calls.clear()
    scripted.started.clear()

    victim = ("draft", 2, 1)
    scripted.script.fail = fail_once(victim)
    scripted.script.latency = slow(victim)
    async with open_async_graph(build_pdr(), tmp_path / "cp.sqlite") as graph:
        paused = await graph.ainvoke(PROBLEM, config(), context=CONTEXT)
        [pause] = paused["__interrupt__"]
        assert pause.value == {
            "failed": ["draft 2.1: draft call to 'scripted' failed: the provider went away"]
        }
        done_before = Counter((c.role, c.round, c.index) for c in scripted.calls)
        assert done_before == {
            ("draft", 1, 0): 1,
            ("draft", 1, 1): 1,
            ("draft", 1, 2): 1,
            ("distill", 1, 0): 1,
            ("draft", 2, 0): 1,
            ("draft", 2, 2): 1,
        }
        out = await graph.ainvoke(Command(resume=True), config(), context=CONTEXT)
    finished = Counter((c.role, c.round, c.index) for c in scripted.calls)
    assert max(finished.values()) == 1, "a saved call was made again"
    assert sum(finished.values()) == 3 + 3 + 2 + 1
    assert comparable(out) == reference


def test_sync_resume_after_an_exception_in_round_2(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    victim = ("draft", 2, 0)
    scripted.script.fail = fail_once(victim)
    scripted.script.latency = slow(victim)
    graph = compile_with_sqlite(build_pdr(), tmp_path / "cp.sqlite")
    paused = graph.invoke(PROBLEM, config(), context=CONTEXT)
    assert "the provider went away" in paused["__interrupt__"][0].value["failed"][0]
    assert len(scripted.calls) == 3 + 1 + 2
    out = graph.invoke(Command(resume=True), config(), context=CONTEXT)
    finished = Counter((c.role, c.round, c.index) for c in scripted.calls)
    assert max(finished.values()) == 1
    assert roles(out["calls"]) == {"draft": 6, "distill": 2, "refine": 1}
    assert out["answer"] == "391"


def test_resume_after_the_process_was_killed_in_round_2(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    checkpoints, log = tmp_path / "cp.sqlite", tmp_path / "calls.jsonl"
    worker = subprocess.run(
        [sys.executable, "-m", "tests.crash_worker", str(checkpoints), str(log), "killed"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == -9, worker.stderr
    before = [tuple(json.loads(line).values()) for line in log.read_text().splitlines()]
    # round 1, its summary, and round 2's two faster drafts finished before the kill
    assert sorted(before) == sorted(
        [
            ("draft", 1, 0),
            ("draft", 1, 1),
            ("draft", 1, 2),
            ("distill", 1, 0),
            ("draft", 2, 0),
            ("draft", 2, 1),
        ]
    )

    graph = compile_with_sqlite(build_pdr(), checkpoints)
    out = graph.invoke(
        None, config("killed"), context=PDRContext(model="scripted", schedule=SCHEDULE)
    )
    after = [(c.role, c.round, c.index) for c in scripted.calls]
    assert sorted(after) == [("distill", 2, 0), ("draft", 2, 2), ("refine", 3, 0)]
    assert roles(out["calls"]) == {"draft": 6, "distill": 2, "refine": 1}
    assert out["answer"] == "391"


async def test_a_failing_draft_leaves_its_slower_siblings_to_finish(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    """The failing draft ends first; the siblings still in flight finish and are saved."""
    victim = ("draft", 1, 1)
    scripted.script.fail = fail_once(victim)
    scripted.script.latency = lambda call: 0.3 if call.role == "draft" and call.index != 1 else 0
    context = PDRContext(model="scripted", schedule=[3, 1])
    async with open_async_graph(build_pdr(), tmp_path / "cp.sqlite") as graph:
        paused = await graph.ainvoke(PROBLEM, config(), context=context)
        assert "__interrupt__" in paused
        assert Counter((c.role, c.round, c.index) for c in scripted.calls) == {
            ("draft", 1, 0): 1,
            ("draft", 1, 2): 1,
        }
        out = await graph.ainvoke(Command(resume=True), config(), context=context)
    assert Counter((c.role, c.round, c.index) for c in scripted.calls) == {
        ("draft", 1, 0): 1,
        ("draft", 1, 1): 1,
        ("draft", 1, 2): 1,
        ("distill", 1, 0): 1,
        ("refine", 2, 0): 1,
    }
    # The failed attempt is in the graph's own ledger too, beside the calls that succeeded.
    drafts = sorted((c["index"], c["error"] is None) for c in out["calls"] if c["role"] == "draft")
    assert drafts == [(0, True), (1, False), (1, True), (2, True)]


async def test_each_verification_is_its_own_checkpointed_task(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    """Verify calls are a stage of one task per draft; a resume asks only the one that failed."""
    victim = ("verify", 1, 2)
    scripted.script.fail = fail_once(victim)
    scripted.script.latency = lambda call: 0.3 if call.role == "verify" and call.index != 2 else 0
    context = PDRContext(model="scripted", schedule=[3, 1])
    async with open_async_graph(build_pdr(distill=topk("verify")), tmp_path / "cp.sqlite") as graph:
        paused = await graph.ainvoke(PROBLEM, config(), context=context)
        [pause] = paused["__interrupt__"]
        assert pause.value["failed"] == [
            "verify 1.2: verify call to 'scripted' failed: the provider went away"
        ]
        stages = [
            sorted(task.name for task in snapshot.tasks)
            async for snapshot in graph.aget_state_history(config())
        ]
        assert ["verify", "verify", "verify"] in stages  # one task per draft, one super-step
        out = await graph.ainvoke(Command(resume=True), config(), context=context)
    made = Counter((c.role, c.round, c.index) for c in scripted.calls)
    assert made == {
        **{("draft", 1, i): 1 for i in range(3)},
        **{("verify", 1, i): 1 for i in range(3)},
        ("refine", 2, 0): 1,
    }
    assert out["answer"] == "391"


async def test_batched_drafts_resume_only_the_draft_that_failed(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    """The scripted model makes one sample per call, so a batch group is single calls."""
    scripted.script.fail = fail_once(("draft", 1, 1))
    context = PDRContext(model="scripted", schedule=[3, 1])
    async with open_async_graph(build_pdr(batch_drafts=True), tmp_path / "cp.sqlite") as graph:
        paused = await graph.ainvoke(PROBLEM, config(), context=context)
        [pause] = paused["__interrupt__"]
        assert pause.value["failed"] == [
            "draft 1.1: draft call to 'scripted' failed: the provider went away"
        ]
        out = await graph.ainvoke(Command(resume=True), config(), context=context)
    made = Counter((c.role, c.round, c.index) for c in scripted.calls)
    assert made == {
        **{("draft", 1, i): 1 for i in range(3)},
        ("distill", 1, 0): 1,
        ("refine", 2, 0): 1,
    }
    assert out["answer"] == "391"

"""Any sequence of invoke, ainvoke, asyncio.run and new event loops works in one process.

The model is an OpenAI-compatible server on loopback (tests/openai_server.py, a double for vLLM),
reached through pdr's shared backend cache (one backend per spec per process), so the HTTP
connection pools are the real ones. Before the fix, the second ``asyncio.run`` failed with "Event
loop is closed" or "bound to a different event loop": the pool belonged to the first loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import graph
from pdr.models import get_backend
from pdr.runner import run_problem_sync
from pdr.store.ledger import Ledger
from tests.openai_server import FakeOpenAIServer

PROBLEM = {"problem": "What is 17 * 23?"}
CALLS_PER_RUN = 4  # schedule [2, 1] with the summary: 2 drafts, 1 summary, 1 refine


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


def context(server: FakeOpenAIServer) -> PDRContext:
    # No retries: a call that fails on a stale loop must fail the run, not be retried away.
    return PDRContext(model=server.spec(), schedule=[2, 1], max_tokens=64, max_retries=0)


def test_two_asyncio_runs_in_a_row(server: FakeOpenAIServer) -> None:
    first = asyncio.run(graph.ainvoke(PROBLEM, context=context(server)))
    second = asyncio.run(graph.ainvoke(PROBLEM, context=context(server)))
    assert first["answer"] == second["answer"] == "391"
    assert len(server.requests) == 2 * CALLS_PER_RUN


def test_invoke_ainvoke_and_new_loops_in_any_order(server: FakeOpenAIServer) -> None:
    backend = get_backend(server.spec())
    answers = [asyncio.run(graph.ainvoke(PROBLEM, context=context(server)))["answer"]]
    answers.append(graph.invoke(PROBLEM, context=context(server))["answer"])
    answers.append(asyncio.run(graph.ainvoke(PROBLEM, context=context(server)))["answer"])
    loop = asyncio.new_event_loop()
    try:
        done = loop.run_until_complete(graph.ainvoke(PROBLEM, context=context(server)))
        answers.append(done["answer"])
    finally:
        loop.close()
    answers.append(graph.invoke(PROBLEM, context=context(server))["answer"])
    assert answers == ["391"] * 5
    assert len(server.requests) == 5 * CALLS_PER_RUN
    assert get_backend(server.spec()) is backend  # one backend per spec, shared by all loops


def test_run_problem_sync_twice(server: FakeOpenAIServer, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    outcomes = [
        run_problem_sync(
            graph="pdr",
            problem=PROBLEM["problem"],
            context=context(server),
            ledger=ledger,
            checkpoints=tmp_path / "checkpoints.sqlite",
        )
        for _ in range(2)
    ]
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    assert [len(o.calls) for o in outcomes] == [CALLS_PER_RUN, CALLS_PER_RUN]
    ledger.close()

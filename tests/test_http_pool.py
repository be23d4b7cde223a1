"""The OpenAI backends' HTTP clients: a ring of clients per event loop, connections kept alive.

The server is the loopback OpenAI-compatible double (tests/openai_server.py); the clients are the
real openai SDK and LangChain ChatOpenAI. httpcore's pool probes every idle connection whenever it
assigns or releases one, so M calls through one client cost about M * M probes; the backend
hands calls to 8 clients in turn (``CLIENTS_PER_LOOP``), each pool holding about M / 8
connections, and every connection is kept alive for the next round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import get_backend
from pdr.models.providers import CLIENTS_PER_LOOP, ProviderBackend
from pdr.nodes.distill import topk
from tests.openai_server import FakeOpenAIServer


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=0.3) as running:
        yield running


def test_calls_take_the_loops_clients_in_turn(server: FakeOpenAIServer) -> None:
    backend = get_backend(server.spec("ring"))
    assert isinstance(backend, ProviderBackend)

    async def turns() -> list[object]:
        return [backend.loop_model() for _ in range(2 * CLIENTS_PER_LOOP + 1)]

    first_loop = asyncio.run(turns())
    assert CLIENTS_PER_LOOP == 8
    assert len({id(model) for model in first_loop}) == CLIENTS_PER_LOOP
    assert first_loop[CLIENTS_PER_LOOP:] == first_loop[: CLIENTS_PER_LOOP + 1]
    second_loop = asyncio.run(turns())  # a new event loop gets clients of its own
    assert not {id(m) for m in first_loop} & {id(m) for m in second_loop}


def test_a_rounds_connections_are_kept_alive_for_the_next_run(server: FakeOpenAIServer) -> None:
    graph = build_pdr(distill=topk("vote")).compile()
    context = PDRContext(model=server.spec("alive"), schedule=[16, 1], max_retries=0)

    async def two_runs() -> None:
        for _ in range(2):
            out = await graph.ainvoke({"problem": "What is 17 * 23?"}, context=context)
            assert out["answer"] == "391"

    asyncio.run(two_runs())
    assert len(server.requests) == 2 * 17
    # 16 drafts at once need 16 connections; the refine call and the second run reuse them.
    assert len({request.client for request in server.requests}) == 16

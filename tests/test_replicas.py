"""Several replicas of one model: the least busy first, failover, the replica in every ledger row.

Each replica is an OpenAI-compatible server on loopback (tests/openai_server.py, a double for the
vLLM servers that cannot run here); between pdr and them everything is the real client code (the
OpenAI SDK, httpx, ChatOpenAI, pdr's backends). Servers are stopped mid-run (new connections
refused, requests on open ones dropped) or hang past the call's time-out.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdr import calls
from pdr.cli import app
from pdr.graphs.catalog import make_context
from pdr.models.base import TransientBackendError
from pdr.models.providers import OpenAICompatibleBackend
from pdr.models.replicas import DOWN_FOR_S, ReplicaPool
from pdr.models.specs import backend_from_spec
from pdr.runner import run_problem
from pdr.store.ledger import Ledger
from tests.conftest import Store
from tests.openai_server import FakeOpenAIServer, Fault, Served

PROBLEM = "What is 17 * 23?"


def spec_of(servers: list[FakeOpenAIServer]) -> str:
    return "vllm:fake@" + ",".join(server.url for server in servers)


@pytest.fixture
def servers() -> Iterator[list[FakeOpenAIServer]]:
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b, FakeOpenAIServer() as c:
        yield [a, b, c]


FORM = "e.g. 'vllm:MODEL@http://host1:8000/v1,http://host2:8000/v1'"
MALFORMED = [
    (
        "vllm:m@http://a:1/v1,",
        f"replica 2 of 2 is empty; separate the base URLs with single commas, {FORM}",
    ),
    (
        "vllm:m@http://a:1/v1,,http://b:1/v1",
        f"replica 2 of 3 is empty; separate the base URLs with single commas, {FORM}",
    ),
    (
        "vllm:m@http://a:1/v1, http://b:1/v1",
        f"replica 2 (' http://b:1/v1') has spaces; write the base URLs without spaces, {FORM}",
    ),
    (
        "vllm:m@http://a:1/v1,ftp://b/v1",
        f"replica 2 ('ftp://b/v1') is not an http(s) base URL "
        f"with a host; write each as http://host:port/v1, {FORM}",
    ),
    (
        "vllm:m@http://a:1/v1,http://",
        f"replica 2 ('http://') is not an http(s) base URL with a "
        f"host; write each as http://host:port/v1, {FORM}",
    ),
    (
        "vllm:m@http://a:1/v1,http://u:pw@a:1/v1,http://u:pw@a:1/v1",
        f"'http://u:***@a:1/v1' is named twice; list each replica once, {FORM}",
    ),
]


@pytest.mark.parametrize(("spec", "reason"), MALFORMED, ids=[s for s, _ in MALFORMED])
def test_a_malformed_replica_list_is_refused_in_one_line(
    servers: list[FakeOpenAIServer], tmp_path: Path, spec: str, reason: str
) -> None:
    result = CliRunner().invoke(
        app, ["run", PROBLEM, "--model", spec, "--db", str(tmp_path / "l.sqlite")]
    )
    shown = spec.replace(":pw@", ":***@")
    assert result.exit_code == 2
    assert result.output == f"Error: --model: model {shown!r}: {reason}\n"
    assert all(server.requests == [] for server in servers)
    assert not (tmp_path / "l.sqlite").exists() or Ledger(tmp_path / "l.sqlite").list_runs() == []


def test_one_url_is_one_server_as_before(servers: list[FakeOpenAIServer]) -> None:
    assert type(backend_from_spec(servers[0].spec())) is OpenAICompatibleBackend
    pool = backend_from_spec(spec_of(servers))
    assert isinstance(pool, ReplicaPool)
    assert [replica.url for replica in pool.replicas] == [server.url for server in servers]


async def test_calls_go_to_the_replica_with_the_fewest_in_flight(
    servers: list[FakeOpenAIServer], store: Store
) -> None:
    for server in servers:
        server.latency = 0.3  # the six drafts of round 1 are all in flight together
    ledger = Ledger(store.ledger)
    outcome = await run_problem(
        graph="pdr",
        problem=PROBLEM,
        context=make_context("pdr", model=spec_of(servers), schedule=[6, 1]),
        thread_id="spread",
        ledger=ledger,
        checkpoints=store.checkpoints,
    )
    run = ledger.get_run("spread")
    ledger.close()
    assert outcome.status == "done" and run is not None
    drafts = [Counter(s.role for s in server.requests)["draft"] for server in servers]
    assert drafts == [2, 2, 2]
    # The summary and the refine call come one at a time: each goes to the next replica in turn.
    assert sum(len(server.requests) for server in servers) == 8
    # Every ledger row names the replica whose log holds its request.
    for server in servers:
        served = Counter(s.step for s in server.requests)
        recorded = Counter(
            (r["role"], r["round"], r["index"])
            for r in run.call_records
            if r.get("replica") == server.url
        )
        assert recorded == served, server.url
    assert all(r.get("replica") for r in run.call_records)


def own_checkpoints(store: Store, number: int) -> str:
    """A run's own checkpoint file on SQLite: six runs writing one new file at once sometimes get
    "database is locked" from LangGraph's SQLite saver (its read-then-write transactions), which is
    not what this test is about; on PostgreSQL they share the database."""
    if store.kind != "sqlite":
        return store.checkpoints
    return str(Path(store.checkpoints).with_name(f"checkpoints-{number}.sqlite"))


async def test_a_replica_stopped_mid_run_fails_no_run_and_the_live_ones_take_its_calls(
    servers: list[FakeOpenAIServer], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No back-off at all: a retry waits for nothing when another replica is up.
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 1000.0)
    doomed = servers[1]

    def stop_at_third(served: Served) -> Fault | None:
        if served.number == 3:
            doomed.stop()
            return Fault(drop=True)
        return None

    doomed.fault = stop_at_third
    for server in servers:
        server.latency = 0.05
    ledger = Ledger(store.ledger)
    context = make_context("pdr", model=spec_of(servers), schedule=[3, 1])
    outcomes = await asyncio.gather(
        *(
            run_problem(
                graph="pdr",
                problem=f"{PROBLEM} (copy {number})",
                context=context,
                thread_id=f"r{number}",
                ledger=ledger,
                checkpoints=own_checkpoints(store, number),
            )
            for number in range(6)
        )
    )
    runs = [ledger.get_run(f"r{number}") for number in range(6)]
    ledger.close()
    assert [outcome.status for outcome in outcomes] == ["done"] * 6, [o.error for o in outcomes]
    rows = [(run.thread_id, r) for run in runs if run is not None for r in run.call_records]
    failed = [(thread, r) for thread, r in rows if r["error"] is not None]
    answered = [sum(server.completed().values()) for server in servers]
    # The stopped replica answered what it finished before going down (at most its first two
    # requests); every other request it got is one failed attempt recorded against it (and so is
    # every connection it refused once down, which it never logged), whose retry succeeded on a
    # live replica.
    assert answered[1] <= 2 and len(doomed.requests) >= 3
    assert len(failed) >= len(doomed.requests) - answered[1]
    live = {servers[0].url, servers[2].url}
    for thread, row in failed:
        assert row.get("replica") == doomed.url
        retried = [
            r
            for t, r in rows
            if t == thread
            and r["error"] is None
            and (r["role"], r["round"], r["index"]) == (row["role"], row["round"], row["index"])
        ]
        assert [r.get("replica") in live for r in retried] == [True]
    # 6 runs of 5 calls, each answered once: the live replicas took all the others, both of them.
    assert answered[0] + answered[2] == 30 - answered[1]
    assert answered[0] >= 10 and answered[2] >= 10
    for run in runs:
        assert run is not None and (run.b_seq, run.b_tot) == tuple(run.recorded_budgets)


async def test_a_replica_that_times_out_is_left_alone_and_the_call_retried_elsewhere(
    servers: list[FakeOpenAIServer], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 1000.0)
    slow = servers[0]
    slow.fault = lambda served: Fault(hang=30)  # every request: past the time-out
    ledger = Ledger(store.ledger)
    outcome = await run_problem(
        graph="sr",
        problem=PROBLEM,
        context=make_context("sr", model=spec_of(servers), rounds=4, timeout=1.0),
        thread_id="t",
        ledger=ledger,
        checkpoints=store.checkpoints,
    )
    run = ledger.get_run("t")
    ledger.close()
    assert outcome.status == "done" and run is not None
    # The first call went to the first replica, timed out, and was retried on the second; the
    # hung replica was down for the rest of the run, so it got no other call.
    assert len(slow.requests) == 1
    first, retry = run.call_records[:2]
    assert (first["replica"], first["error"]) == (
        slow.url,
        "cancelled: no reply within the timeout of 1 s",
    )
    assert retry["replica"] in (servers[1].url, servers[2].url)
    assert (retry["error"], retry["attempt"]) == (None, 1)
    assert {r["replica"] for r in run.call_records[2:]} == {servers[1].url, servers[2].url}
    assert len(run.call_records) == 1 + 4


def test_a_replica_is_left_alone_as_long_as_its_retry_after_asks(
    servers: list[FakeOpenAIServer],
) -> None:
    pool = backend_from_spec(spec_of(servers))
    assert isinstance(pool, ReplicaPool)
    first, second, third = pool.replicas
    before = time.monotonic()
    pool.failed(first, TransientBackendError("429", retry_after=120.0))
    pool.failed(second, TransientBackendError("502"))
    pool.failed(third, ValueError("a bad request fails on every replica alike"))
    assert first.down_until - before == pytest.approx(120.0, abs=1.0)
    assert second.down_until - before == pytest.approx(DOWN_FOR_S, abs=1.0)
    assert third.down_until == 0.0
    assert [pool.pick() is third for _ in range(3)] == [True] * 3  # the only one up

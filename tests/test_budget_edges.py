"""Budgets at the edges: batched drafts, billed and per-draft B_tot, failed attempts.

The n-sample server is ``tests/openai_server.py`` on loopback (a double for vLLM's server, which
needs a GPU): real OpenAI SDK, httpx and pdr backend in between. Like vLLM, OpenAI and Gemini it
reports an n-sample call's output only as a total, counted in whitespace words; pdr's backend for
it counts with its own stand-in tokenizer (``count_pieces``), which is what splits that total.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from pdr import calls
from pdr.budget import per_draft_total
from pdr.calls import CallFailedError, call_model
from pdr.graphs.context import PDRContext, RunContext
from pdr.graphs.pdr import build_pdr
from pdr.models import (
    Message,
    SamplingOptions,
    TransientBackendError,
    register_model,
    unregister_model,
)
from pdr.models.base import count_pieces
from pdr.models.providers import OpenAICompatibleBackend
from pdr.prompts import distill as distill_prompts
from pdr.prompts import draft as draft_prompts
from tests.helpers import final_and_events
from tests.openai_server import FakeOpenAIServer, Fault, words
from tests.scripted import Call, Script, ScriptedChatModel

PROBLEM = "What is 17 * 23?"
SUMMARY = "notes the drafts agree on 391"
FINAL = "so 17 times 23 is 391 Answer: 391"


class Drafts:
    """Replies by prompt: the k-th draft asked with a given prompt writes 4 + 6 k words of work.

    Counted across requests, so the drafts of a round get the same lengths whether they come
    from one n-sample request (choice k) or from n requests of one sample (the k-th to arrive).
    Draft k is 6 + 6 k words ("Answer: 391" is 2 of them) and 7 + 6 k pieces (the colon is one).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.asked: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any], choice: int) -> str:
        messages = body["messages"]
        system = messages[0]["content"]
        if system == distill_prompts.SUMMARY_SYSTEM:
            return SUMMARY
        if system != draft_prompts.SYSTEM:
            return FINAL
        key = json.dumps(messages)
        with self.lock:
            k = self.asked[key]
            self.asked[key] += 1
        return " ".join(["step"] * (4 + 6 * k)) + " Answer: 391"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=Drafts()) as running:
        yield running


def prompt_words(body: dict[str, Any]) -> int:
    return sum(words(m["content"]) for m in body["messages"])


async def run_pdr(server: FakeOpenAIServer, batch: bool) -> tuple[dict[str, Any], list[Any]]:
    """One PDR run [4, 2, 1] on the server; its drafts start again at the shortest."""
    assert isinstance(server.reply, Drafts)
    server.reply.asked.clear()
    context = PDRContext(model=server.spec(), schedule=[4, 2, 1], max_tokens=64)
    return await final_and_events(build_pdr(batch_drafts=batch).compile(), PROBLEM, context)


async def test_batched_drafts_put_only_the_longest_sample_on_the_critical_path(
    server: FakeOpenAIServer,
) -> None:
    batched, events = await run_pdr(server, batch=True)
    bodies = [served.body for served in server.requests]
    assert [body.get("n", 1) for body in bodies] == [4, 1, 2, 1, 1]
    p1, s1, p2, s2, r = (prompt_words(body) for body in bodies)
    drafts = [c for c in batched["calls"] if c["role"] == "draft"]
    # Round 1: 6 + 12 + 18 + 24 = 60 words reported; pieces 7, 13, 19, 25 of 64 split them:
    # 60 * (7, 13, 19, 25) / 64 = 6.56, 12.19, 17.81, 23.44 -> 6, 12, 17, 23, and the two
    # tokens left go to the largest remainders (17.81, 6.56): 7, 12, 18, 23.
    # Round 2: 18 words, pieces 7 and 13 of 20: 6.3, 11.7 -> 6, 11, +1 -> 6, 12.
    assert [(c["output_tokens"], c["sample_output_tokens"]) for c in drafts] == [
        (60, [7, 12, 18, 23]),
        (18, [6, 12]),
    ]
    assert [c["sample_output_estimated"] for c in drafts] == [True, True]
    summary, final = words(SUMMARY), words(FINAL)
    assert batched["b_seq"] == (p1 + 23) + (s1 + summary) + (p2 + 12) + (s2 + summary) + (r + final)
    # Before: p1 + 60 and p2 + 18, every sample's output on the critical path.
    # Progress shows each draft's own share, not the call's total.
    shown = sorted(
        (e["round"], e["index"], e["output_tokens"])
        for e in events
        if e["event"] == "draft_finished"
    )
    assert shown == [(1, 0, 7), (1, 1, 12), (1, 2, 18), (1, 3, 23), (2, 0, 6), (2, 1, 12)]

    before = len(server.requests)
    unbatched, _ = await run_pdr(server, batch=False)
    assert len(server.requests) - before == 4 + 1 + 2 + 1 + 1
    # The same drafts one call each: the longest is its prompt plus its 24 and 12 words.
    assert unbatched["b_seq"] == (p1 + 24) + (s1 + summary) + (p2 + 12) + (s2 + summary) + (
        r + final
    )
    assert batched["b_seq"] == unbatched["b_seq"] - 1  # 23 of 24 by the tokenizer's split


async def test_billed_and_per_draft_b_tot_of_batched_and_unbatched_drafts(
    server: FakeOpenAIServer,
) -> None:
    batched, _ = await run_pdr(server, batch=True)
    p1, _, p2, _, _ = (prompt_words(served.body) for served in server.requests)
    unbatched, _ = await run_pdr(server, batch=False)
    # Billed: a batched round reads its prompt once, so it bills 3 x p1 and 1 x p2 fewer.
    assert batched["b_tot"] == unbatched["b_tot"] - 3 * p1 - p2
    # Per draft: every draft with its own prompt, as the unbatched run spends it.
    assert batched["b_tot_per_draft"] == unbatched["b_tot_per_draft"] == unbatched["b_tot"]
    assert per_draft_total(batched["calls"]) == batched["b_tot_per_draft"]


def failing_script(failures: dict[tuple[str, int, int], Exception | str]) -> Script:
    """A script whose first attempt of each listed (role, round, index) fails as given.

    An exception is raised; the text "empty" makes the model reply with no text at all.
    """
    lock = threading.Lock()
    left = dict(failures)

    def fail(call: Call) -> Exception | None:
        with lock:
            failure = left.get((call.role, call.round, call.index))
            if isinstance(failure, Exception):
                del left[(call.role, call.round, call.index)]
                return failure
        return None

    def text(call: Call) -> str:
        with lock:
            if left.get((call.role, call.round, call.index)) == "empty":
                del left[(call.role, call.round, call.index)]
                return ""
        return "work . Answer: 391" if call.role != "distill" else "notes"

    return Script(fail=fail, text=text)


async def test_failed_attempts_cost_what_reached_the_model(
    scripted: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    scripted.script = failing_script(
        {
            ("draft", 1, 0): TransientBackendError("read timed out", reached_model=True),
            ("draft", 1, 1): TransientBackendError("connection refused", reached_model=False),
            ("draft", 1, 2): "empty",
        }
    )
    out = (
        await build_pdr()
        .compile()
        .ainvoke({"problem": PROBLEM}, context=PDRContext(model="scripted", schedule=[3, 1]))
    )
    prompt = {c.index: words(c.prompt) for c in scripted.calls if c.role == "draft"}
    records = sorted(
        (
            c["index"],
            c["attempt"],
            c["input_tokens"],
            c["output_tokens"],
            c["estimated"],
            c.get("reached_model"),
        )
        for c in out["calls"]
        if c["role"] == "draft"
    )
    empty_prompt = prompt[2]
    assert records == [
        # time-out after sending: the prompt, counted by the model's tokenizer
        (0, 0, prompt[0], 0, True, True),
        (0, 1, prompt[0], 4, False, None),
        # refused before processing: nothing
        (1, 0, 0, 0, False, False),
        (1, 1, prompt[1], 4, False, None),
        # an empty reply: the usage the model reported for it (its prompt, 0 output)
        (2, 0, empty_prompt, 0, False, True),
        (2, 1, prompt[2], 4, False, None),
    ]
    draft_total = 3 * prompt[0] + 3 * 4  # all three prompts are the same
    assert prompt[0] == prompt[1] == prompt[2]
    others = sum(
        c["input_tokens"] + c["output_tokens"] for c in out["calls"] if c["role"] != "draft"
    )
    assert out["b_tot"] == draft_total + 2 * prompt[0] + others  # two failed attempts count
    # Each branch's attempts add up on the critical path: branches 0 and 2 cost 2 p + 4.
    assert out["b_seq"] == (2 * prompt[0] + 4) + others


async def test_a_time_out_raised_around_the_call_counts_its_prompt(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script = Script(fail=lambda call: TimeoutError("no reply in 30 s"))
    messages: list[Message] = [
        {"role": "system", "content": "Solve it."},
        {"role": "user", "content": "What is 17 * 23?"},
    ]
    with pytest.raises(CallFailedError) as failed:
        await call_model(
            RunContext(model="scripted", max_retries=0),
            role="long_cot",
            round_=1,
            index=0,
            messages=messages,
        )
    [record] = failed.value.records
    assert (record["input_tokens"], record["output_tokens"]) == (2 + 5, 0)  # words of the prompt
    assert (record["estimated"], record["reached_model"]) == (True, True)


MESSAGES: list[Message] = [
    {"role": "system", "content": "Solve the problem."},
    {"role": "user", "content": "What is 17 * 23?"},
]
PIECES = count_pieces("Solve the problem.\nWhat is 17 * 23?")  # 11: the backend's tokenizer


async def attempt(spec: str, backend: OpenAICompatibleBackend) -> list[dict[str, Any]]:
    """One call with one retry through the real backend; the records of its attempts."""
    register_model(spec, backend)
    try:
        result = await call_model(
            RunContext(model=spec, max_retries=1),
            role="draft",
            round_=1,
            index=0,
            messages=MESSAGES,
            options=SamplingOptions(max_tokens=16, temperature=0.0),
        )
        return [dict(r) for r in result.records]
    except CallFailedError as failed:
        return [dict(r) for r in failed.records]
    finally:
        unregister_model(spec)


def first_attempt(records: list[dict[str, Any]]) -> tuple[Any, ...]:
    first = records[0]
    return (first["input_tokens"], first["output_tokens"], first["estimated"])


@pytest.mark.parametrize(
    ("status", "reached", "cost"),
    [(500, True, (PIECES, 0, True)), (503, True, (PIECES, 0, True)), (429, False, (0, 0, False))],
)
async def test_http_failures_cost_the_prompt_only_once_it_reached_the_model(
    status: int, reached: bool, cost: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    with FakeOpenAIServer(
        fault=lambda served: Fault(status=status) if served.number == 1 else None
    ) as server:
        records = await attempt("srv", OpenAICompatibleBackend("srv", "m", server.url))
    assert first_attempt(records) == cost
    assert records[0]["reached_model"] is reached
    assert records[1]["error"] is None and records[1]["input_tokens"] == 8  # server's words


async def test_a_refused_connection_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    records = await attempt("closed", OpenAICompatibleBackend("closed", "m", url))
    assert [first_attempt([r]) for r in records] == [(0, 0, False)] * 2
    assert [r["reached_model"] for r in records] == [False, False]


async def test_a_read_time_out_costs_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    with FakeOpenAIServer(latency=1.0) as server:
        backend = OpenAICompatibleBackend("slow", "m", server.url, timeout=0.2)
        records = await attempt("slow", backend)
    assert [first_attempt([r]) for r in records] == [(PIECES, 0, True)] * 2
    assert [r["reached_model"] for r in records] == [True, True]


async def test_an_empty_reply_costs_what_the_server_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    replies = iter(["", "Answer: 391"])
    with FakeOpenAIServer(reply=lambda body, choice: next(replies)) as server:
        records = await attempt("empty", OpenAICompatibleBackend("empty", "m", server.url))
    # The server's own usage: 8 words of prompt, 0 of output; not estimated.
    assert [first_attempt([r]) for r in records] == [(8, 0, False), (8, 2, False)]
    assert "NoTextError" in str(records[0]["error"])

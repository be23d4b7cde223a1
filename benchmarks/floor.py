"""The floor: a plain asyncio loop with the openai client making exactly the calls pdr made.

A run's calls, as the simulated server logged them, fall into stages: the calls that could run
together (a round's drafts, its verify calls, the summary, the refine call). For pdr the stage of
a call is read from the request itself: its seed is a hash of the run seed, the prompt, the round
and the index (``pdr.calls.call_seed``), so recomputing it for the request's messages gives the
round, and its system prompt gives the role; a stage whose calls started late is still one
stage. For any other client (the peer) a call that arrived after every call of the current stage
had finished starts the next stage. ``plan_from_log`` turns a log into that plan, each call as
it was asked for; ``run_plan`` replays it with ``asyncio.gather`` per stage and nothing else, so
the difference between a pdr run and its replay is pdr's own orchestration. ``ideal`` is the time
the stages take at the server with no time at all between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import openai

# Where pdr_stage looks for a call's round and index (the benchmarks' runs use run seed 0).
RUN_SEED = 0
ROUNDS = range(8)
INDICES = range(257)


@dataclass(frozen=True)
class Call:
    """One chat-completion request of a plan."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    n: int
    seed: int | None = None


Plan = list[list[Call]]
StageKey = Callable[[dict[str, Any]], Hashable]


def pdr_round(seed: int | None, messages: list[dict[str, Any]]) -> int:
    """The round of a pdr call, found by recomputing ``pdr.calls.call_seed`` for its messages.

    -1 when no round and index give the seed (no seed, or another run seed).
    """
    from pdr.calls import call_seed  # only where a log is read: the floor's process imports no pdr
    from pdr.graphs.context import RunContext

    if seed is None:
        return -1
    context = RunContext(model="sim", seed=RUN_SEED)
    sent = [
        {  # the openai SDK's "developer" is pdr's system message
            "role": "system" if m.get("role") == "developer" else str(m.get("role")),
            "content": str(m.get("content", "")),
        }
        for m in messages
    ]
    for round_ in ROUNDS:
        for index in INDICES:
            if call_seed(context, round_, index, sent) == seed:  # type: ignore[arg-type]
                return round_
    return -1


def pdr_stage(entry: dict[str, Any]) -> Hashable:
    """A pdr call's stage: its round (from the seed) and its role (the system prompt)."""
    messages = entry.get("messages") or [{}]
    return pdr_round(entry.get("seed"), messages), str(messages[0].get("content", ""))


def stages(log: list[dict[str, Any]], key: StageKey | None = None) -> list[list[dict[str, Any]]]:
    """The log's entries grouped into stages, in order of first arrival."""
    entries = sorted(log, key=lambda e: e["arrived"])
    if key is not None:
        grouped: dict[Hashable, list[dict[str, Any]]] = {}
        for entry in entries:
            grouped.setdefault(key(entry), []).append(entry)
        return list(grouped.values())
    found: list[list[dict[str, Any]]] = []
    stage_end = float("-inf")
    for entry in entries:
        if not found or entry["arrived"] >= stage_end:
            found.append([])
            stage_end = entry["finished"]
        found[-1].append(entry)
        stage_end = max(stage_end, entry["finished"])
    return found


def plan_from_log(log: list[dict[str, Any]], key: StageKey | None = None) -> Plan:
    """The calls of ``log`` stage by stage, each as it was asked for."""
    return [
        [Call(e["model"], e["messages"], e.get("max_tokens"), e["n"], e.get("seed")) for e in stage]
        for stage in stages(log, key)
    ]


def ideal(log: list[dict[str, Any]], key: StageKey | None = None) -> float:
    """Seconds the stages take at the server, back to back: the sum of their longest calls."""
    return sum(
        max(float(e["finished"] - e["arrived"]) for e in stage) for stage in stages(log, key)
    )


def widest_spread(log: list[dict[str, Any]], key: StageKey | None = None) -> float:
    """The largest gap between the first and the last arrival of one stage's calls."""
    return max(
        (stage[-1]["arrived"] - stage[0]["arrived"] for stage in stages(log, key)), default=0.0
    )


def client(base_url: str) -> openai.AsyncOpenAI:
    """The openai SDK's async client with its defaults, no retries (like pdr's)."""
    return openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)


async def call(api: openai.AsyncOpenAI, request: Call) -> int:
    """Make one request; returns its completion tokens (from the reply's usage)."""
    extra: dict[str, Any] = {"n": request.n} if request.n > 1 else {}
    if request.seed is not None:
        extra["seed"] = request.seed
    reply = await api.chat.completions.create(
        model=request.model,
        messages=request.messages,  # type: ignore[arg-type]
        max_tokens=request.max_tokens,
        temperature=0.7,
        **extra,
    )
    return reply.usage.completion_tokens if reply.usage else 0


async def run_plan(
    api: openai.AsyncOpenAI, plan: Plan, cap: asyncio.Semaphore | None = None
) -> int:
    """Replay ``plan`` stage by stage; ``cap`` bounds the calls in flight. Returns the calls."""

    async def one(request: Call) -> int:
        if cap is None:
            return await call(api, request)
        async with cap:
            return await call(api, request)

    made = 0
    for stage in plan:
        await asyncio.gather(*(one(request) for request in stage))
        made += len(stage)
    return made

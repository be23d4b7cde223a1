"""Batched drafts: one request returns every draft of a round that shares a workspace.

For backends that return n samples from one call (``supports_n``: OpenAI, a vLLM server, the
in-process vLLM engine), the M_r drafts of a round that see the same workspace are asked for in one
request with n = M_r: the provider reads the prompt once (vLLM prefills it once and shares it
through its prefix cache) and reports usage once, so the ledger has one record for the group with
``samples`` = n and, where the backend reports them, per-sample output tokens (the critical path
is then the prompt plus the longest sample). Per-sample workspaces (``topk_per_sample``,
``random_k``) give one group per distinct workspace. Backends without ``supports_n``, and servers
that return fewer samples than asked (llama.cpp's server ignores n), get the missing drafts from
parallel single calls, so the batched graph runs on any model.

Use it with ``build_pdr(batch_drafts=True)``; the node keeps the name "draft".
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, TypedDict

from langgraph.runtime import Runtime
from langgraph.types import Send

from pdr.answers import extract_answer
from pdr.budget import CallRecord
from pdr.calls import CallResult, call_model
from pdr.events import DRAFT_FINISHED, emit
from pdr.graphs.context import RefineContext
from pdr.graphs.state import Draft, State
from pdr.models import get_backend
from pdr.nodes.draft import draft_messages
from pdr.nodes.routing import round_workspaces


class DraftBatchTask(TypedDict):
    """One group of drafts of a round that share a workspace, sent to one batched draft node."""

    problem: str
    round: int
    indices: list[int]
    workspace: str


def next_round_batched(state: State) -> list[Send] | Literal["refine"]:
    """One batched draft task per distinct workspace of the round; the last round refines."""
    planned = round_workspaces(state)
    if planned is None:
        return "refine"
    groups: dict[str, list[int]] = {}
    for index, workspace in enumerate(planned):
        groups.setdefault(workspace, []).append(index)
    return [
        Send(
            "draft",
            DraftBatchTask(
                problem=state["problem"], round=state["round"], indices=indices, workspace=workspace
            ),
        )
        for workspace, indices in groups.items()
    ]


async def draft_batch(task: DraftBatchTask, runtime: Runtime[RefineContext]) -> dict[str, Any]:
    """Write the group's drafts with one n-sample call (single calls for what it lacks)."""
    context = runtime.context
    round_, indices = task["round"], task["indices"]
    messages = draft_messages(task["problem"], task["workspace"], context)
    texts: list[str] = []
    records: list[CallRecord] = []
    tokens: list[tuple[int, int]] = []
    if get_backend(context.model_for("draft")).supports_n and len(indices) > 1:
        result = await call_model(
            context,
            role="draft",
            round_=round_,
            index=indices[0],
            messages=messages,
            n=len(indices),
        )
        generation = result.generation
        texts = generation.texts[: len(indices)]
        records = list(result.records)
        per_sample = generation.sample_output_tokens or [generation.output_tokens] * len(texts)
        tokens = [(generation.input_tokens, out) for out in per_sample[: len(texts)]]
    missing = indices[len(texts) :]
    if missing:
        singles: list[CallResult] = await asyncio.gather(
            *[
                call_model(
                    context,
                    role="draft",
                    round_=round_,
                    index=index,
                    messages=messages,
                )
                for index in missing
            ]
        )
        for single in singles:
            texts.append(single.text)
            records.extend(single.records)
            tokens.append((single.generation.input_tokens, single.generation.output_tokens))
    drafts = []
    for index, text, (input_tokens, output_tokens) in zip(indices, texts, tokens, strict=True):
        answer = extract_answer(text)
        emit(
            DRAFT_FINISHED,
            round=round_,
            index=index,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            answer=answer,
        )
        drafts.append(Draft(round=round_, index=index, text=text, answer=answer))
    return {"drafts": drafts, "calls": records}

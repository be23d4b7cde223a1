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
from typing import Any, NotRequired

from langgraph.runtime import Runtime, get_runtime
from langgraph.types import Send

# typing_extensions' TypedDict: pydantic (LangGraph Studio's schemas) rejects typing's on 3.11.
from typing_extensions import TypedDict

from pdr.answers import extract_answer
from pdr.budget import CallRecord
from pdr.calls import BudgetExhaustedError, CallFailedError, CallResult, call_model
from pdr.caps import Allowance, less, split
from pdr.events import DRAFT_FINISHED, emit
from pdr.graphs.context import RefineContext
from pdr.graphs.state import Draft, State
from pdr.models import get_backend, split_output
from pdr.nodes.draft import draft_messages, plant
from pdr.nodes.halts import call_or_halt, failed, stopped
from pdr.nodes.routing import allowance, planted_candidate, round_workspaces


class DraftBatchTask(TypedDict):
    """One group of drafts of a round that share a workspace, sent to one batched draft node.

    ``allowance`` is the group's share of the token caps (its drafts' shares together).
    """

    problem: str
    round: int
    indices: list[int]
    workspace: str
    allowance: NotRequired[Allowance | None]
    planted: NotRequired[str]


def batched_sends(state: State, calls: list[CallRecord]) -> list[Send] | None:
    """One batched draft task per distinct workspace of the round (None: refining is next)."""
    planned = round_workspaces(state)
    if planned is None:
        return None
    share = allowance(get_runtime(RefineContext).context, calls, len(planned))
    groups: dict[str, list[int]] = {}
    for index, workspace in enumerate(planned):
        groups.setdefault(workspace, []).append(index)
    sends = [
        Send(
            "draft",
            DraftBatchTask(
                problem=state["problem"],
                round=state["round"],
                indices=indices,
                workspace=workspace,
                allowance=_times(share, len(indices)),
            ),
        )
        for workspace, indices in groups.items()
    ]
    planted = planted_candidate(state)
    if planted is not None:
        task = DraftBatchTask(
            problem=state["problem"],
            round=state["round"],
            indices=[len(planned)],
            workspace="",
            planted=planted,
        )
        sends.append(Send("draft", task))
    return sends


def _times(share: Allowance | None, count: int) -> Allowance | None:
    if share is None or share["total"] is None:
        return share
    return Allowance(total=share["total"] * count, sequential=share["sequential"])


async def draft_batch(task: DraftBatchTask, runtime: Runtime[RefineContext]) -> dict[str, Any]:
    """Write the group's drafts with one n-sample call (single calls for what it lacks).

    A failed call leaves its drafts as a failure (a group of the drafts it should have written,
    asked again on resume) beside the drafts that were written; a call the caps refuse stops
    the run.
    """
    context = runtime.context
    round_, indices = task["round"], task["indices"]
    if "planted" in task:
        return plant(task["problem"], round_, indices[0], task["planted"])
    messages = draft_messages(task["problem"], task["workspace"], context)
    texts: list[str] = []
    records: list[CallRecord] = []
    tokens: list[tuple[int, int]] = []
    update: dict[str, Any] = {}
    group = task.get("allowance")
    backend = get_backend(context.model_for("draft"))
    if backend.supports_n and len(indices) > 1:
        result = await call_or_halt(
            "draft",
            dict(task),
            context,
            role="draft",
            round_=round_,
            index=indices[0],
            messages=messages,
            n=len(indices),
            allowance=group,
        )
        if isinstance(result, dict):  # failed, or refused by the token caps
            return result
        generation = result.generation
        texts = generation.texts[: len(indices)]
        records = list(result.records)
        # Each draft's own output (a backend that gives only the total is split by its tokenizer
        # here, for the progress events; the built-in n-sample backends report a split).
        per_sample = generation.sample_output_tokens or split_output(
            generation.output_tokens, [backend.count_tokens(text) for text in generation.texts]
        )
        tokens = [(generation.input_tokens, out) for out in per_sample[: len(texts)]]
    missing = indices[len(texts) :]
    if missing:
        share = split(less(group, records), len(missing))
        singles = await asyncio.gather(
            *[
                call_model(
                    context,
                    role="draft",
                    round_=round_,
                    index=index,
                    messages=messages,
                    allowance=share,
                )
                for index in missing
            ],
            return_exceptions=True,
        )
        written: list[int] = []
        for index, single in zip(missing, singles, strict=True):
            if isinstance(single, CallResult):
                written.append(index)
                texts.append(single.text)
                records.extend(single.records)
                tokens.append((single.generation.input_tokens, single.generation.output_tokens))
            elif isinstance(single, BudgetExhaustedError):
                records.extend(single.records)
                update.setdefault("stopped", stopped(single)["stopped"])
            elif isinstance(single, CallFailedError):
                records.extend(single.records)
                lone = DraftBatchTask(**{**task, "indices": [index], "allowance": share})
                failure = failed("draft", dict(lone), "draft", round_, index, single)
                update.setdefault("failures", []).extend(failure["failures"])
            else:
                raise single
        indices = indices[: len(indices) - len(missing)] + written
    drafts = []
    for index, text, (input_tokens, output_tokens) in zip(indices, texts, tokens, strict=True):
        answer = extract_answer(text, task["problem"])
        emit(
            DRAFT_FINISHED,
            round=round_,
            index=index,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            answer=answer,
        )
        drafts.append(Draft(round=round_, index=index, text=text, answer=answer))
    return {**update, "drafts": drafts, "calls": records}

"""The batched draft path: one n-sample request per round (per shared workspace).

The n-sample backend is the in-process vLLM backend over the stand-in ``vllm`` module of
test_models_vllm_engine (vLLM needs a GPU; see that module's docstring); the fallback cases use
the scripted chat model (one sample per call) and an OpenAI-protocol server replayed through
``httpx.MockTransport`` that, like llama.cpp's server, ignores ``n``.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pdr.budget import critical_tokens
from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import register_model, unregister_model
from pdr.models.providers import OpenAICompatibleBackend
from pdr.models.vllm_engine import VLLMEngineBackend
from pdr.nodes.distill import random_k
from tests.scripted import ScriptedChatModel
from tests.test_models_vllm_engine import LLM, SamplingParams

PROBLEM = {"problem": "What is 17 * 23?"}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[VLLMEngineBackend]:
    module = types.ModuleType("vllm")
    module.LLM = LLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    backend = VLLMEngineBackend("vllm-engine:m", "m")
    register_model("engine", backend)
    yield backend
    unregister_model("engine")


async def test_one_request_per_round_with_usage_counted_once(engine: VLLMEngineBackend) -> None:
    graph = build_pdr(batch_drafts=True).compile()
    out = await graph.ainvoke(
        PROBLEM, context=PDRContext(model="engine", schedule=[4, 3, 1], max_tokens=64)
    )
    drafts = [c for c in out["calls"] if c["role"] == "draft"]
    assert [(c["round"], c["index"], c["samples"]) for c in drafts] == [(1, 0, 4), (2, 0, 3)]
    assert [c["sample_output_tokens"] for c in drafts] == [[5, 8, 11, 14], [5, 8, 11]]
    params = [p for batch in engine._llm.batches for _, p in batch]
    assert [p.n for p in params] == [4, 1, 3, 1, 1]  # drafts, summary, drafts, summary, refine
    for record in drafts:
        assert critical_tokens(record) == record["input_tokens"] + max(
            record["sample_output_tokens"]
        )
    assert out["b_tot"] == sum(c["input_tokens"] + c["output_tokens"] for c in out["calls"])
    # One call per stage here: each adds its prompt plus its longest sample (14, then 11).
    assert out["b_seq"] == sum(
        c["input_tokens"] + max(c["sample_output_tokens"] or [c["output_tokens"]])
        for c in out["calls"]
    )
    assert out["answer"] == "391"


async def test_per_sample_workspaces_make_one_request_per_distinct_workspace(
    engine: VLLMEngineBackend,
) -> None:
    graph = build_pdr(random_k, batch_drafts=True).compile()
    out = await graph.ainvoke(
        PROBLEM, context=PDRContext(model="engine", schedule=[4, 3, 1], k=2, seed=1)
    )
    second = [c for c in out["calls"] if c["role"] == "draft" and c["round"] == 2]
    assert sum(c["samples"] for c in second) == 3
    assert len({c["index"] for c in second}) == len(second)


async def test_backends_without_n_fall_back_to_single_calls(scripted: ScriptedChatModel) -> None:
    graph = build_pdr(batch_drafts=True).compile()
    out = await graph.ainvoke(PROBLEM, context=PDRContext(model="scripted", schedule=[3, 1]))
    drafts = [c for c in out["calls"] if c["role"] == "draft"]
    assert sorted((c["index"], c["samples"]) for c in drafts) == [(0, 1), (1, 1), (2, 1)]
    # each single call has its own draft's seed (round 1, index 0..2)
    assert sorted((c.round, c.index) for c in scripted.calls if c.role == "draft") == [
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert len({call.seed for call in scripted.calls}) == len(scripted.calls)


async def test_a_server_that_ignores_n_gets_the_missing_drafts_singly() -> None:
    asked: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content).get("n", 1))
        return httpx.Response(200, json=_one_choice("Answer: 391", 20, 6))

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    backend = OpenAICompatibleBackend("srv", "m", "http://127.0.0.1:9/v1", http_async_client=client)
    register_model("srv", backend)
    try:
        out = (
            await build_pdr(batch_drafts=True)
            .compile()
            .ainvoke(PROBLEM, context=PDRContext(model="srv", schedule=[3, 1]))
        )
    finally:
        unregister_model("srv")
    drafts = sorted((c["index"], c["samples"]) for c in out["calls"] if c["role"] == "draft")
    assert drafts == [(0, 1), (1, 1), (2, 1)]
    assert asked[0] == 3 and asked[1:3] == [1, 1]
    assert out["b_tot"] == 26 * len(out["calls"])


def _one_choice(text: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }

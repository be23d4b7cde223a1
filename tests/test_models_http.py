"""OpenAI, Gemini and vLLM-server usage parsing at the HTTP level.

The paid APIs cannot be called from tests, so an ``httpx.MockTransport`` replays responses of the
shape the real services return (field names and nesting copied from their API references and
from recorded replies), including reasoning/thinking tokens and n > 1 responses. Everything above
the transport is the real code: LangChain's ChatOpenAI / ChatGoogleGenerativeAI, the official
SDKs, our adapters and ``call_model``. Each test also checks what was sent: the output cap, the
reasoning knobs and n.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pdr.budget import budgets, critical_tokens
from pdr.calls import CallFailedError, call_model
from pdr.graphs.context import RunContext
from pdr.models import (
    BackendError,
    Message,
    SamplingOptions,
    TransientBackendError,
    register_model,
    unregister_model,
)
from pdr.models.providers import GeminiBackend, OpenAIBackend, OpenAICompatibleBackend
from pdr.models.specs import backend_from_spec

MESSAGES: list[Message] = [
    {"role": "system", "content": "Solve the problem."},
    {"role": "user", "content": "What is 17 * 23?"},
]

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that keeps every request body and replies with ``reply``."""

    def __init__(self, reply: dict[str, Any], status: int = 200) -> None:
        self.reply = reply
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content))
        self.urls.append(str(request.url))
        return httpx.Response(self.status, json=self.reply)


def openai_completion(
    texts: list[str], prompt: int, completion: int, reasoning: int, cached: int = 0
) -> dict[str, Any]:
    """A chat.completion object as api.openai.com returns it (o3-mini, n choices)."""
    return {
        "id": "chatcmpl-BbQ8zXvY1kfTh9J2",
        "object": "chat.completion",
        "created": 1748000000,
        "model": "o3-mini-2025-01-31",
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "finish_reason": "stop",
            }
            for i, text in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_42bfad963b",
    }


def openai_backend(model: str, handler: Handler, monkeypatch: pytest.MonkeyPatch) -> OpenAIBackend:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIBackend(f"openai:{model}", model, http_async_client=client)


async def test_openai_reasoning_model_usage_and_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = Recorder(openai_completion(["17 * 23 = 391. Answer: 391"], 52, 1290, 1152, 0))
    backend = openai_backend("o3-mini", server, monkeypatch)
    options = SamplingOptions(max_tokens=4000, temperature=0.7, seed=5, reasoning_effort="high")
    generation = await backend.generate(MESSAGES, options)

    assert generation.texts == ["17 * 23 = 391. Answer: 391"]
    assert (generation.input_tokens, generation.output_tokens) == (52, 1290)
    assert generation.reasoning_tokens == 1152
    assert generation.estimated is False
    sent = server.requests[0]
    assert server.urls == ["https://api.openai.com/v1/chat/completions"]
    assert sent["model"] == "o3-mini"
    assert sent["max_completion_tokens"] == 4000
    assert sent["reasoning_effort"] == "high"
    assert sent["seed"] == 5
    assert "temperature" not in sent  # reasoning models reject it
    assert "n" not in sent
    assert sent["messages"][0] == {"role": "developer", "content": "Solve the problem."}


async def test_openai_n_samples_count_usage_once(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["Answer: 391", "Answer: 391", "Answer: 381"]
    server = Recorder(openai_completion(texts, 40, 3 * 700, 3 * 640, cached=32))
    register_model("openai-n", openai_backend("o4-mini", server, monkeypatch))
    try:
        result = await call_model(
            RunContext(model="openai-n", reasoning_effort="low"),
            role="draft",
            round_=1,
            index=0,
            messages=MESSAGES,
            options=SamplingOptions(max_tokens=1000, temperature=1.0, n=3, reasoning_effort="low"),
        )
    finally:
        unregister_model("openai-n")

    assert result.generation.texts == texts
    (record,) = result.records
    assert record["samples"] == 3
    assert (record["input_tokens"], record["output_tokens"]) == (40, 2100)
    assert record["reasoning_tokens"] == 1920
    assert record["cached_tokens"] == 32
    assert budgets(result.records).b_tot == 2140  # not 3 x 2140
    # OpenAI reports only the total output: each sample's share is its tokenizer count (3 pieces
    # each here) scaled to the total, so the critical path is the prompt plus one sample.
    assert record["sample_output_tokens"] == [700, 700, 700]
    assert record["sample_output_estimated"] is True
    assert critical_tokens(record) == 40 + 700
    assert server.requests[0]["n"] == 3
    assert len(server.requests) == 1


async def test_openai_chat_model_sends_temperature(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Recorder(openai_completion(["391"], 20, 3, 0))
    backend = openai_backend("gpt-4.1-mini", server, monkeypatch)
    generation = await backend.generate(MESSAGES, SamplingOptions(max_tokens=64, temperature=0.3))
    assert (generation.input_tokens, generation.output_tokens, generation.reasoning_tokens) == (
        20,
        3,
        0,
    )
    sent = server.requests[0]
    assert (sent["temperature"], sent["max_completion_tokens"]) == (0.3, 64)
    assert sent["messages"][0]["role"] == "system"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, TransientBackendError), (500, TransientBackendError), (401, BackendError)],
)
async def test_openai_errors_are_classified(
    status: int, kind: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Recorder({"error": {"message": "nope", "type": "x", "code": None}}, status=status)
    backend = openai_backend("o3-mini", server, monkeypatch)
    with pytest.raises(kind, match="openai:o3-mini"):
        await backend.generate(MESSAGES, SamplingOptions(max_tokens=10, temperature=1.0))
    assert len(server.requests) == 1  # the client's own retries are off: call_model retries


async def test_transient_failures_are_retried_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = iter([httpx.Response(503, json={"error": {"message": "overloaded"}})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(replies, httpx.Response(200, json=openai_completion(["Answer: 391"], 9, 4, 0)))

    monkeypatch.setattr("pdr.calls.asyncio.sleep", _no_sleep)
    register_model("openai-flaky", openai_backend("gpt-4.1-mini", handler, monkeypatch))
    try:
        result = await call_model(
            RunContext(model="openai-flaky", max_retries=1),
            role="refine",
            round_=2,
            index=0,
            messages=MESSAGES,
            options=SamplingOptions(max_tokens=10, temperature=0.0),
        )
    finally:
        unregister_model("openai-flaky")
    assert [r["attempt"] for r in result.records] == [0, 1]
    failed = result.records[0]
    assert failed["error"] is not None and "503" in failed["error"]
    # The 503 came after the request was sent: its prompt counts, by the tokenizer (11 pieces).
    assert (failed["reached_model"], failed["estimated"]) == (True, True)
    assert (failed["input_tokens"], failed["output_tokens"]) == (11, 0)
    assert budgets(result.records).b_tot == 11 + 13


async def _no_sleep(seconds: float) -> None:
    return None


async def test_a_bad_request_fails_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Recorder({"error": {"message": "bad max_tokens"}}, status=400)
    register_model("openai-bad", openai_backend("o3-mini", server, monkeypatch))
    try:
        with pytest.raises(CallFailedError) as caught:
            await call_model(
                RunContext(model="openai-bad", max_retries=2),
                role="draft",
                round_=1,
                index=0,
                messages=MESSAGES,
                options=SamplingOptions(max_tokens=10, temperature=1.0),
            )
    finally:
        unregister_model("openai-bad")
    assert len(caught.value.records) == 1
    assert len(server.requests) == 1


def gemini_response(
    texts: list[str], prompt: int, candidates: int, thoughts: int, thought_text: str = ""
) -> dict[str, Any]:
    """A generateContent reply as the Gemini API returns it (gemini-2.5-flash, thinking on)."""
    parts: list[dict[str, Any]] = [{"text": thought_text, "thought": True}] if thought_text else []
    return {
        "candidates": [
            {
                "content": {"parts": [*parts, {"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": i,
            }
            for i, text in enumerate(texts)
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + thoughts,
            "thoughtsTokenCount": thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "Zk8xaPqLBvbQz7IPp4SJ8Ag",
    }


def thinking_budget(config: dict[str, Any]) -> Any:
    """The budget as sent; the SDK writes this nested field in snake_case (the API takes both)."""
    thinking = config["thinkingConfig"]
    return thinking.get("thinkingBudget", thinking.get("thinking_budget"))


def gemini_backend(handler: Handler, monkeypatch: pytest.MonkeyPatch) -> GeminiBackend:
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    return GeminiBackend(
        "google_genai:gemini-2.5-flash",
        "gemini-2.5-flash",
        client_args={"transport": httpx.MockTransport(handler)},
    )


async def test_gemini_thinking_budget_and_thought_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    reply = gemini_response(["Answer: 391"], 17, 6, 412, thought_text="17*20=340, 17*3=51.")
    server = Recorder(reply)
    backend = gemini_backend(server, monkeypatch)
    generation = await backend.generate(
        MESSAGES, SamplingOptions(max_tokens=2048, temperature=0.5, seed=9, thinking_budget=1024)
    )

    assert generation.texts == ["Answer: 391"]
    assert (generation.input_tokens, generation.output_tokens) == (17, 418)  # thoughts included
    assert generation.reasoning_tokens == 412
    assert generation.reasoning_texts == ["17*20=340, 17*3=51."]
    assert server.urls[0].endswith("/models/gemini-2.5-flash:generateContent")
    config = server.requests[0]["generationConfig"]
    assert config["maxOutputTokens"] == 2048
    assert config["temperature"] == 0.5
    assert config["seed"] == 9
    assert thinking_budget(config) == 1024
    assert "candidateCount" not in config or config["candidateCount"] == 1


async def test_gemini_candidates_count_usage_once(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Recorder(gemini_response(["Answer: 391", "Answer: 391"], 17, 12, 800))
    backend = gemini_backend(server, monkeypatch)
    generation = await backend.generate(
        MESSAGES, SamplingOptions(max_tokens=2048, temperature=1.0, n=2, thinking_budget=0)
    )
    assert generation.texts == ["Answer: 391", "Answer: 391"]
    assert (generation.input_tokens, generation.output_tokens) == (17, 812)
    assert generation.reasoning_tokens == 800
    config = server.requests[0]["generationConfig"]
    assert config["candidateCount"] == 2
    assert thinking_budget(config) == 0


def vllm_completion(texts: list[str], reasoning: list[str], prompt: int, completion: int) -> dict:
    """A vLLM server reply: reasoning text beside the content, usage once for all n choices."""
    return {
        "id": "chatcmpl-9f1c0a",
        "object": "chat.completion",
        "created": 1748000000,
        "model": "Qwen/Qwen3-8B",
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "reasoning": thought,
                    "tool_calls": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
            for i, (text, thought) in enumerate(zip(texts, reasoning, strict=True))
        ],
        "usage": {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
            "prompt_tokens_details": None,
        },
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }


async def test_vllm_server_keeps_reasoning_and_sends_the_cap_both_ways() -> None:
    reply = vllm_completion(["Answer: 391", "Answer: 391"], ["think a", "think b"], 30, 250)
    server = Recorder(reply)
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    backend = OpenAICompatibleBackend(
        "vllm:Qwen/Qwen3-8B@http://gpu-box:8000/v1",
        "Qwen/Qwen3-8B",
        "http://gpu-box:8000/v1",
        http_async_client=client,
    )
    generation = await backend.generate(
        MESSAGES, SamplingOptions(max_tokens=300, temperature=0.6, seed=3, n=2)
    )
    assert generation.texts == ["Answer: 391", "Answer: 391"]
    assert generation.reasoning_texts == ["think a", "think b"]
    assert (generation.input_tokens, generation.output_tokens) == (30, 250)
    sent = server.requests[0]
    assert server.urls == ["http://gpu-box:8000/v1/chat/completions"]
    assert (sent["max_tokens"], sent["max_completion_tokens"]) == (300, 300)
    assert (sent["n"], sent["seed"], sent["temperature"]) == (2, 3, 0.6)


def test_vllm_spec_parses_model_and_url() -> None:
    backend = backend_from_spec("vllm:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1")
    assert isinstance(backend, OpenAICompatibleBackend)
    assert backend.base_url == "http://127.0.0.1:8000/v1"
    assert backend.model.model_name == "Qwen/Qwen3-8B"  # type: ignore[attr-defined]
    assert backend.supports_n is True


@pytest.mark.parametrize(
    ("spec", "variables"),
    [
        ("openai:o3-mini", ["OPENAI_API_KEY"]),
        ("google_genai:gemini-2.5-flash", ["GOOGLE_API_KEY", "GEMINI_API_KEY"]),
    ],
)
def test_missing_keys_fail_before_any_call_naming_the_variable(
    spec: str, variables: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [*variables, "GOOGLE_GENAI_USE_VERTEXAI"]:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BackendError) as caught:
        backend_from_spec(spec)
    for name in variables:
        assert name in str(caught.value)
    assert "'embedded'" in str(caught.value)


@pytest.mark.parametrize("spec", ["nonsense", "frobnicate:model-1", "vllm:qwen"])
def test_unknown_specs_list_the_accepted_forms(spec: str) -> None:
    with pytest.raises(BackendError) as caught:
        backend_from_spec(spec)
    message = str(caught.value)
    assert spec in message
    assert "vllm:" in message
    if spec != "vllm:qwen":
        assert "'embedded'" in message and "google_genai:" in message and ".gguf" in message


async def test_a_missing_gguf_file_is_named_by_the_first_use(tmp_path: Any) -> None:
    backend = backend_from_spec(str(tmp_path / "missing.gguf"))  # no file access while building
    with pytest.raises(BackendError, match=r"no GGUF file at .*missing\.gguf"):
        await backend.generate(MESSAGES, SamplingOptions(max_tokens=4, temperature=0.0))
    with pytest.raises(BackendError, match="no GGUF file"):
        backend_from_spec(f"llamacpp:{tmp_path / 'other.gguf'}").count_tokens("x")


def test_sequential_budget_of_n_sample_calls_counts_prompt_once() -> None:
    """An n-sample draft call with per-sample counts puts prompt + longest sample on the path."""
    record: Any = {
        "role": "draft",
        "round": 1,
        "index": 0,
        "attempt": 0,
        "model": "m",
        "input_tokens": 100,
        "output_tokens": 60,
        "reasoning_tokens": 0,
        "cached_tokens": 0,
        "samples": 3,
        "sample_output_tokens": [10, 30, 20],
        "latency_s": 0.1,
        "estimated": False,
        "error": None,
    }
    assert budgets([record]).b_seq == 130
    assert budgets([record]).b_tot == 160


@pytest.mark.parametrize(
    ("n", "output", "samples", "b_seq"),
    [(1, 5, None, 11 + 5), (2, 17, [5, 12], 11 + 12)],
)
async def test_a_server_reply_without_usage_is_counted_and_marked_estimated(
    n: int, output: int, samples: list[int] | None, b_seq: int
) -> None:
    """A server that sends no ``usage`` (some omit it): the offline count, marked estimated.

    Pieces counted: "Solve the proble m ." and "What is 17 * 23 ?" are 11; "Answer : 391" with
    "think a" is 5; "So 17 * 23 = 391 . Answer : 391" with "think b" is 12.
    """
    texts = ["Answer: 391", "So 17 * 23 = 391. Answer: 391"][:n]
    reply = vllm_completion(texts, ["think a", "think b"][:n], 0, 0)
    del reply["usage"]
    client = httpx.AsyncClient(transport=httpx.MockTransport(Recorder(reply)))
    url = "http://gpu-box:8000/v1"
    register_model(
        "no-usage", OpenAICompatibleBackend(f"vllm:m@{url}", "m", url, http_async_client=client)
    )
    try:
        result = await call_model(
            RunContext(model="no-usage"),
            role="draft",
            round_=1,
            index=0,
            messages=MESSAGES,
            options=SamplingOptions(max_tokens=300, temperature=0.6, n=n),
        )
    finally:
        unregister_model("no-usage")
    (record,) = result.records
    assert record["estimated"] is True
    assert (record["input_tokens"], record["output_tokens"]) == (11, output)
    assert record.get("sample_output_tokens") == samples
    assert budgets(result.records) == (b_seq, 11 + output)

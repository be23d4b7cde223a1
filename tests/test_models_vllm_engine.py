"""The in-process vLLM backend, against a stand-in ``vllm`` module.

vLLM needs a CUDA GPU and cannot be installed here, so these tests put a stand-in module named
``vllm`` in ``sys.modules``. It reproduces what the backend relies on: ``LLM(model=..., **kw)``,
``LLM.chat(conversations, sampling_params, use_tqdm=...)`` returning one ``RequestOutput`` per
conversation (fields ``request_id``, ``prompt``, ``prompt_token_ids``, ``prompt_logprobs``,
``outputs``, ``finished``, ``num_cached_tokens``) whose ``outputs`` are ``CompletionOutput``s
(``index``, ``text``, ``token_ids``, ``cumulative_logprob``, ``logprobs``, ``finish_reason``,
``stop_reason``), ``SamplingParams(n, temperature, max_tokens, seed)`` and
``LLM.get_tokenizer().encode``. Like vLLM with prefix caching, a prompt seen before reports its
full 16-token blocks as cached.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from pdr.budget import budgets
from pdr.calls import call_model
from pdr.graphs.context import RunContext
from pdr.models import BackendError, Message, SamplingOptions, register_model, unregister_model
from pdr.models.specs import backend_from_spec
from pdr.models.vllm_engine import VLLMEngineBackend

BLOCK = 16


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: Any
    finish_reason: str | None = "stop"
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool
    num_cached_tokens: int | None = None


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None
    logprobs: int | None = None


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class Tokenizer:
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [len(word) for word in text.split()]
        return [1, *ids] if add_special_tokens else ids


@dataclass
class LLM:
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    batches: list[list[tuple[str, SamplingParams]]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model, self.kwargs, self.batches, self.seen = model, kwargs, [], set()
        self.lock = threading.Lock()

    def get_tokenizer(self) -> Tokenizer:
        return Tokenizer()

    def chat(
        self,
        messages: list[list[dict[str, str]]],
        sampling_params: SamplingParams | list[SamplingParams],
        use_tqdm: bool = True,
    ) -> list[RequestOutput]:
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params]
        prompts = ["<|im_start|> " + " ".join(m["content"] for m in c) for c in messages]
        self.batches.append(list(zip(prompts, params, strict=True)))
        outputs = []
        for number, (prompt, param) in enumerate(zip(prompts, params, strict=True)):
            ids = Tokenizer().encode(prompt)
            cached = (len(ids) // BLOCK) * BLOCK if prompt in self.seen else 0
            self.seen.add(prompt)
            samples = []
            for i in reversed(range(param.n)):  # vLLM may finish samples in any order
                tokens = list(range(min(param.max_tokens or 16, 5 + 3 * i)))
                logprobs = None
                if param.logprobs is not None:  # the sampled token's, at each position
                    logprobs = [{t: Logprob(-0.5 * (t + 1), rank=1)} for t in tokens]
                samples.append(
                    CompletionOutput(i, f"sample {i}: Answer: 391", tokens, -1.5, logprobs)
                )
            outputs.append(RequestOutput(str(number), prompt, ids, None, samples, True, cached))
        return outputs


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.LLM = LLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


MESSAGES: list[Message] = [
    {"role": "system", "content": "Solve the problem step by step and end with Answer: N"},
    {"role": "user", "content": "What is 17 * 23? " + "Be careful. " * 10},
]


def test_spec_builds_without_importing_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    backend = backend_from_spec("vllm-engine:Qwen/Qwen2.5-7B-Instruct")
    assert isinstance(backend, VLLMEngineBackend)
    assert backend.supports_n is True
    assert backend.model_name == "Qwen/Qwen2.5-7B-Instruct"
    assert backend.engine_kwargs == {"enable_prefix_caching": True}
    assert "vllm" not in sys.modules


async def test_n_samples_in_one_request_with_exact_usage(stand_in: types.ModuleType) -> None:
    backend = VLLMEngineBackend("vllm-engine:m", "m")
    options = SamplingOptions(max_tokens=64, temperature=0.8, seed=7, n=4)
    first = await backend.generate(MESSAGES, options)
    second = await backend.generate(MESSAGES, options)

    llm = backend._llm
    assert llm.model == "m" and llm.kwargs == {"enable_prefix_caching": True}
    assert [len(batch) for batch in llm.batches] == [1, 1]
    ((prompt, params),) = llm.batches[0]
    assert params == SamplingParams(n=4, temperature=0.8, max_tokens=64, seed=7)
    prompt_tokens = len(Tokenizer().encode(prompt))
    assert prompt_tokens == 38
    assert first.texts == [f"sample {i}: Answer: 391" for i in range(4)]  # in index order
    assert first.sample_output_tokens == [5, 8, 11, 14]
    assert (first.input_tokens, first.output_tokens, first.cached_tokens) == (38, 38, 0)
    assert (second.input_tokens, second.output_tokens, second.cached_tokens) == (38, 38, 32)
    assert backend.count_tokens("What is 17 * 23?") == 5


async def test_concurrent_calls_go_to_the_engine_as_one_batch(stand_in: types.ModuleType) -> None:
    backend = VLLMEngineBackend("vllm-engine:m", "m", batch_wait_s=0.2)
    generations = await asyncio.gather(
        *[
            backend.generate(MESSAGES, SamplingOptions(max_tokens=6, temperature=0.7, seed=s))
            for s in range(3)
        ]
    )
    assert [len(batch) for batch in backend._llm.batches] == [3]
    assert [p.seed for _, p in backend._llm.batches[0]] == [0, 1, 2]
    assert [g.output_tokens for g in generations] == [5, 5, 5]


async def test_ledger_counts_the_prompt_once_and_the_longest_sample_on_the_path(
    stand_in: types.ModuleType,
) -> None:
    register_model("engine", VLLMEngineBackend("vllm-engine:m", "m"))
    try:
        result = await call_model(
            RunContext(model="engine"),
            role="draft",
            round_=1,
            index=0,
            messages=MESSAGES,
            options=SamplingOptions(max_tokens=64, temperature=0.8, n=3),
        )
    finally:
        unregister_model("engine")
    (record,) = result.records
    assert record["samples"] == 3
    assert record["sample_output_tokens"] == [5, 8, 11]
    assert (record["input_tokens"], record["output_tokens"]) == (38, 24)
    assert budgets(result.records).b_tot == 62
    assert budgets(result.records).b_seq == 38 + 11


async def test_engine_failures_reach_every_waiting_call(stand_in: types.ModuleType) -> None:
    def broken(self: LLM, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("CUDA out of memory")

    stand_in.LLM = type("BrokenLLM", (LLM,), {"chat": broken})  # type: ignore[attr-defined]
    backend = VLLMEngineBackend("vllm-engine:m", "m", batch_wait_s=0.1)
    results = await asyncio.gather(
        *[backend.generate(MESSAGES, SamplingOptions(max_tokens=6, temperature=0.0)) for _ in "ab"],
        return_exceptions=True,
    )
    assert all(isinstance(r, BackendError) and "CUDA out of memory" in str(r) for r in results)


async def test_without_vllm_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    backend = VLLMEngineBackend("vllm-engine:m", "m")
    with pytest.raises(BackendError, match=r'pip install "pdr\[vllm\]"'):
        await backend.generate(MESSAGES, SamplingOptions(max_tokens=6, temperature=0.0))


def test_engine_arguments_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDR_VLLM_ARGS", '{"max_model_len": 8192, "enable_prefix_caching": true}')
    backend = VLLMEngineBackend("vllm-engine:m", "m")
    assert backend.engine_kwargs == {"enable_prefix_caching": True, "max_model_len": 8192}
    monkeypatch.setenv("PDR_VLLM_ARGS", "[1]")
    with pytest.raises(BackendError, match="PDR_VLLM_ARGS"):
        VLLMEngineBackend("vllm-engine:m", "m")


async def test_an_engine_made_elsewhere_returns_token_ids_and_log_probs(
    stand_in: types.ModuleType,
) -> None:
    """pdr train --vllm: the backend drives TRL's colocated engine and keeps every token."""
    engine = LLM("trainer-engine")
    backend = VLLMEngineBackend("policy:t", "m", llm=engine, keep_tokens=True)
    generation = await backend.generate(
        MESSAGES, SamplingOptions(max_tokens=4, temperature=0.7, seed=3)
    )
    assert backend._llm is engine  # no engine of its own was made
    ((prompt, params),) = engine.batches[0]
    assert params == SamplingParams(n=1, temperature=0.7, max_tokens=4, seed=3, logprobs=0)
    [kept] = generation.sampled
    assert kept.prompt_ids == Tokenizer().encode(prompt)
    assert kept.completion_ids == [0, 1, 2, 3]
    assert kept.logprobs == [-0.5, -1.0, -1.5, -2.0]
    assert generation.input_tokens == len(kept.prompt_ids)
    assert generation.output_tokens == 4
    plain = await VLLMEngineBackend("vllm-engine:m", "m").generate(
        MESSAGES, SamplingOptions(max_tokens=4, temperature=0.7)
    )
    assert plain.sampled is None

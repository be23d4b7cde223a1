"""Hosted and served models through LangChain: OpenAI, Gemini and OpenAI-compatible servers.

Every adapter maps the run's sampling options to the provider's own parameter names, reads usage
from the reply's ``usage_metadata`` (reasoning tokens from ``output_token_details``), can return n
samples from one call with the call's usage counted once, and turns provider errors into
TransientBackendError (worth retrying) or BackendError (not). The clients' own retries are off
(``max_retries=0``) so every attempt goes through ``call_model`` and lands in the ledger.

An HTTP connection pool belongs to the event loop that first used it, so a backend keeps its chat
models (and, for the OpenAI client, their ``httpx.AsyncClient``) per event loop: a second
``asyncio.run``, or ``invoke`` after ``ainvoke``, gets its own instead of a pool bound to a closed
loop. (langchain-openai caches its default client process-wide, so the client is passed
explicitly.) The OpenAI backends keep a small ring of clients per loop (``CLIENTS_PER_LOOP``) and
hand calls to them in turn; see ``ProviderBackend.clients_per_loop``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import weakref
from collections.abc import Callable
from typing import Any

import openai
from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import ensure_config
from langchain_openai import ChatOpenAI

from pdr.models.base import (
    BackendError,
    Generation,
    Message,
    SamplingOptions,
    count_pieces,
    prompt_text,
    split_output,
)
from pdr.models.errors import EmptyReplyError, classify_error
from pdr.models.langchain_backend import (
    LangChainBackend,
    message_text,
    refuse_empty,
    stopped_at_cap,
    to_langchain,
)

OPENAI_KEY = "OPENAI_API_KEY"
GOOGLE_KEYS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
VLLM_KEY = "VLLM_API_KEY"

# The OpenAI SDK's connection pool (httpcore) probes every idle connection of the pool, a few
# system calls each, whenever it hands a request a connection or takes one back, so M calls at
# once through one client cost about M * M probes: at M = 64 about 25 ms of CPU here and, under
# `invoke`, a GIL hand-off to LangGraph's waiting executor threads at every probe, which spread
# the start of a round's calls over 0.27 s. Round-robin over 8 clients (each pool then holds about
# M / 8 connections) cut that spread to 0.15 s (benchmarks/, `python -m benchmarks`).
CLIENTS_PER_LOOP = 8

# OpenAI models that think before answering: they take reasoning_effort and reject temperature.
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5(?!-chat))")


def require_key(spec: str, names: tuple[str, ...], provider: str) -> None:
    """Raise BackendError naming the environment variable unless one of ``names`` is set.

    Checked when the backend is built, so a missing key fails before any call is made.
    """
    if any(os.environ.get(name) for name in names):
        return
    options = " or ".join(names)
    raise BackendError(
        f"model {spec!r} needs a {provider} API key: set the environment variable {options} "
        f"(export {names[0]}=...), or run offline with the default model 'embedded'"
    )


class ProviderBackend(LangChainBackend):
    """A LangChain chat model whose provider can return ``n`` samples from one call.

    One sample goes through ``ainvoke``; several through ``agenerate``, which keeps every choice
    (``ainvoke`` keeps only the first). Either way the parent run's callbacks are passed on, so
    tracing and LangGraph's message streaming see the call. ``build`` makes the chat model; it is
    called once at construction (so a missing key or package fails before any call) and then per
    event loop that makes calls, up to ``clients_per_loop`` times on each (calls take the loop's
    models in turn; each is built the first time its turn comes).
    """

    supports_n = True
    clients_per_loop = 1

    def __init__(self, spec: str, build: Callable[[], BaseChatModel]) -> None:
        """Build the first chat model now; more are built per event loop as calls come."""
        super().__init__(spec, build())
        self._build = build
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[BaseChatModel]
        ] = weakref.WeakKeyDictionary()
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
            weakref.WeakKeyDictionary()
        )

    def loop_model(self) -> BaseChatModel:
        """The next chat model of the running event loop's ring (built when first needed)."""
        loop = asyncio.get_running_loop()
        models = self._per_loop.setdefault(loop, [])
        turn = self._turns.get(loop, 0)
        self._turns[loop] = turn + 1
        if len(models) < self.clients_per_loop:
            models.append(self._build())
            return models[-1]
        return models[turn % len(models)]

    async def generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        """One call for ``options.n`` samples; usage is the call's own, counted once."""
        kwargs = self.call_kwargs(options)
        prompt = to_langchain(messages)
        model = self.loop_model()
        try:
            if options.n == 1:
                replies: list[BaseMessage] = [await model.ainvoke(prompt, **kwargs)]
            else:
                config = ensure_config()
                result = await model.agenerate(
                    [prompt],
                    callbacks=config.get("callbacks"),
                    tags=config.get("tags"),
                    metadata=config.get("metadata"),
                    **kwargs,
                )
                replies = [
                    generation.message
                    for generation in result.generations[0]
                    if isinstance(generation, ChatGeneration)
                ]
        except Exception as error:
            classified = classify_error(self.spec, error)
            if classified is error:
                raise
            raise classified from error
        return generation_from_replies(replies, messages, self.count_tokens)

    def count_tokens(self, text: str) -> int:
        """A conservative offline count (hosted tokenizers are not available offline)."""
        return count_pieces(text)


class OpenAIBackend(ProviderBackend):
    """OpenAI chat models; reasoning models get ``reasoning_effort`` and no temperature."""

    clients_per_loop = CLIENTS_PER_LOOP

    def __init__(self, spec: str, model_name: str, **model_kwargs: Any) -> None:
        """Build the OpenAI chat model; BackendError first if no key is set."""
        if "api_key" not in model_kwargs:
            require_key(spec, (OPENAI_KEY,), "OpenAI")
        model_kwargs.setdefault("max_retries", 0)
        model_kwargs.setdefault("stream_usage", True)
        # What init_chat_model("openai:...") builds, as the subclass that checks replies.
        super().__init__(
            spec,
            lambda: ReasoningChatOpenAI(model=model_name, **with_own_client(model_kwargs)),
        )
        self.reasoning = bool(_OPENAI_REASONING.match(model_name))
        self.thinks = self.reasoning

    def call_kwargs(self, options: SamplingOptions) -> dict[str, Any]:
        """``max_tokens`` (sent as max_completion_tokens: thinking plus answer), seed, n."""
        kwargs: dict[str, Any] = {"max_tokens": options.max_tokens}
        if self.reasoning:
            # Reasoning models reject any temperature but the default.
            if options.reasoning_effort:
                kwargs["reasoning_effort"] = options.reasoning_effort
        else:
            kwargs["temperature"] = options.temperature
        if options.seed is not None:
            kwargs["seed"] = options.seed
        if options.n > 1:
            kwargs["n"] = options.n
        return kwargs


class GeminiBackend(ProviderBackend):
    """Google Gemini; ``thinking_budget`` for Gemini 2.5, thoughts counted as reasoning."""

    def __init__(self, spec: str, model_name: str, **model_kwargs: Any) -> None:
        """Build ``ChatGoogleGenerativeAI`` via init_chat_model; BackendError first if no key."""
        vertex = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in {"1", "true"}
        if "api_key" not in model_kwargs and "google_api_key" not in model_kwargs and not vertex:
            require_key(spec, GOOGLE_KEYS, "Google Gemini")
        model_kwargs.setdefault("max_retries", 0)
        super().__init__(
            spec, lambda: init_chat_model(f"google_genai:{model_name}", **model_kwargs)
        )
        self.model_name = model_name
        # Gemini 2.5 and later think unless told not to (thinking_budget 0).
        self.thinks = not model_name.startswith(("gemini-1", "gemini-2.0"))

    def call_kwargs(self, options: SamplingOptions) -> dict[str, Any]:
        """max_output_tokens (thinking included), temperature, seed, candidate_count, thinking."""
        kwargs: dict[str, Any] = {
            "max_output_tokens": options.max_tokens,
            "temperature": options.temperature,
        }
        if options.seed is not None:
            kwargs["seed"] = options.seed
        if options.n > 1:
            kwargs["candidate_count"] = options.n
        if options.thinking_budget is not None:
            kwargs["thinking_budget"] = options.thinking_budget
        elif options.reasoning_effort and not self.model_name.startswith("gemini-2"):
            # Gemini 3 takes a thinking level instead of a budget.
            kwargs["reasoning_effort"] = options.reasoning_effort
        return kwargs


def with_own_client(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``model_kwargs`` with a new async HTTP client (the OpenAI SDK's defaults) unless one is set.

    Called once per event loop: the client's connection pool then belongs to that loop.
    """
    if "http_async_client" in model_kwargs:
        return model_kwargs
    return {**model_kwargs, "http_async_client": openai.DefaultAsyncHttpxClient()}


class ReasoningChatOpenAI(ChatOpenAI):
    """ChatOpenAI that keeps a server's ``reasoning`` / ``reasoning_content`` text.

    vLLM (and llama.cpp with reasoning models) return the thinking text beside the answer in
    fields the official API does not have, which ChatOpenAI drops; here they are copied into
    ``additional_kwargs`` of each message (streamed deltas are concatenated by LangChain).
    Overriding ``_create_chat_result`` is how LangChain's own provider packages (``ChatDeepSeek``)
    keep such fields, as ChatOpenAI's documentation advises. A reply without choices raises
    EmptyReplyError quoting what the server sent (ChatOpenAI would fail on an empty list).
    """

    def _create_chat_result(
        self, response: Any, generation_info: dict[str, Any] | None = None
    ) -> ChatResult:
        raw = response if isinstance(response, dict) else response.model_dump()
        if not raw.get("choices"):
            sent = json.dumps(raw, default=str)
            raise EmptyReplyError(f"the server sent a reply with no choices: {sent[:300]}")
        result = super()._create_chat_result(response, generation_info)
        for generation, choice in zip(result.generations, raw.get("choices") or [], strict=False):
            _copy_reasoning(choice.get("message") or {}, generation.message.additional_kwargs)
        return result

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> Any:
        generation = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        choices = chunk.get("choices") or []
        if generation is not None and choices:
            _copy_reasoning(choices[0].get("delta") or {}, generation.message.additional_kwargs)
        return generation


def _copy_reasoning(source: dict[str, Any], target: dict[str, Any]) -> None:
    for key in ("reasoning", "reasoning_content"):
        value = source.get(key)
        if isinstance(value, str) and value:
            target[key] = value


class OpenAICompatibleBackend(ProviderBackend):
    """A ``vllm serve`` (or llama.cpp server) endpoint through the OpenAI client.

    The output cap is sent twice: as ``max_completion_tokens`` (what ChatOpenAI sends for
    max_tokens, which vLLM honours) and as ``max_tokens`` in the request body, because
    llama-cpp-python's server ignores ``max_completion_tokens`` and would otherwise generate to
    the end of its context. Streamed calls ask for usage (``stream_options.include_usage``).
    """

    clients_per_loop = CLIENTS_PER_LOOP

    def __init__(self, spec: str, model_name: str, base_url: str, **model_kwargs: Any) -> None:
        """Point the OpenAI client at ``base_url``; the key is ``$VLLM_API_KEY`` if set."""
        model_kwargs.setdefault("api_key", os.environ.get(VLLM_KEY) or "EMPTY")
        model_kwargs.setdefault("max_retries", 0)
        model_kwargs.setdefault("stream_usage", True)
        super().__init__(
            spec,
            lambda: ReasoningChatOpenAI(
                model=model_name, base_url=base_url, **with_own_client(model_kwargs)
            ),
        )
        self.base_url = base_url

    def call_kwargs(self, options: SamplingOptions) -> dict[str, Any]:
        """max_tokens both ways, temperature, seed, n."""
        kwargs: dict[str, Any] = {
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "extra_body": {"max_tokens": options.max_tokens},
        }
        if options.seed is not None:
            kwargs["seed"] = options.seed
        if options.n > 1:
            kwargs["n"] = options.n
        return kwargs


def generation_from_replies(
    replies: list[BaseMessage], messages: list[Message], count: Any
) -> Generation:
    """One Generation from the n replies of one call.

    Providers attach the whole call's usage to every reply of an n > 1 call, so it is read from
    the first reply only. Where no usage came back (e.g. a server that omits it when streaming),
    prompt and replies are counted with ``count`` and the result is marked estimated. OpenAI,
    Gemini and vLLM's server report an n-sample call's output only as a total; each sample's
    share is then its ``count`` (thinking text included) scaled to that total
    (``sample_output_estimated``), so the critical path is the prompt plus the longest sample.
    A reply with no text at all raises NoTextError with the usage it reported.
    """
    texts = [message_text(reply) for reply in replies]
    thoughts = [_thinking_text(reply) for reply in replies]
    reasoning_texts = thoughts if any(thoughts) else None
    truncated = any(stopped_at_cap(reply) for reply in replies)
    usage = next((u for r in replies if (u := getattr(r, "usage_metadata", None))), None)
    # What the model wrote per sample, thinking included, in its tokenizer's count: the shares of
    # an n-sample call's output where the provider reports only the total.
    counted = [
        count(text) + (count(thought) if thought else 0)
        for text, thought in zip(texts, thoughts, strict=True)
    ]
    if not usage:
        generation = Generation(
            texts=texts,
            input_tokens=count(prompt_text(messages)),
            output_tokens=sum(counted),
            estimated=True,
            reasoning_texts=reasoning_texts,
            sample_output_tokens=counted if len(texts) > 1 else None,
            sample_output_estimated=len(texts) > 1,
            truncated=truncated,
        )
    else:
        input_details = usage.get("input_token_details") or {}
        output_details = usage.get("output_token_details") or {}
        output_tokens = int(usage.get("output_tokens", 0))
        generation = Generation(
            texts=texts,
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=output_tokens,
            reasoning_tokens=int(output_details.get("reasoning", 0) or 0),
            cached_tokens=int(input_details.get("cache_read", 0) or 0),
            reasoning_texts=reasoning_texts,
            sample_output_tokens=split_output(output_tokens, counted) if len(texts) > 1 else None,
            sample_output_estimated=len(texts) > 1,
            truncated=truncated,
        )
    return refuse_empty(generation)


def _thinking_text(reply: BaseMessage) -> str:
    """Thinking text beside the answer: a server's ``reasoning`` field or Gemini thought blocks."""
    extra = reply.additional_kwargs or {}
    for key in ("reasoning", "reasoning_content"):
        value = extra.get(key)
        if isinstance(value, str) and value:
            return value
    if isinstance(reply.content, list):
        return "".join(
            str(block.get("thinking", ""))
            for block in reply.content
            if isinstance(block, dict) and block.get("type") == "thinking"
        )
    return ""

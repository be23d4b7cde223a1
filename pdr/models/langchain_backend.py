"""Any LangChain chat model as a backend, with usage taken from its ``usage_metadata``."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from pdr.models.base import (
    Generation,
    Message,
    NoTextError,
    SamplingOptions,
    count_pieces,
    prompt_text,
)


def to_langchain(messages: list[Message]) -> list[BaseMessage]:
    """Turn the nodes' plain messages into LangChain messages."""
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def stopped_at_cap(message: BaseMessage) -> bool:
    """True when the provider says the reply stopped at the output cap, not by itself.

    OpenAI-style servers report ``finish_reason`` "length"; Gemini ``finish_reason``
    "MAX_TOKENS".
    """
    metadata = getattr(message, "response_metadata", None) or {}
    reason = str(metadata.get("finish_reason") or "").lower()
    return reason in {"length", "max_tokens"}


def message_text(message: BaseMessage) -> str:
    """The text of a reply, whether its content is a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


class LangChainBackend:
    """Calls a ``BaseChatModel`` once per sample and reads the usage it reports.

    Subclasses adapt the parameters for one provider (``call_kwargs``) and may return several
    samples from one call (``supports_n``).
    """

    supports_n = False
    thinks = False
    """True for models that think before answering (thinking counts in the output cap)."""

    def __init__(self, spec: str, model: BaseChatModel) -> None:
        """Wrap ``model``, recorded in the ledger under ``spec``."""
        self.spec = spec
        self.model = model

    def call_kwargs(self, options: SamplingOptions) -> dict[str, Any]:
        """Invocation parameters for one call; providers override the names they differ on."""
        kwargs: dict[str, Any] = {
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
        }
        if options.seed is not None:
            kwargs["seed"] = options.seed
        return kwargs

    async def generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        """One call; usage comes from the reply's ``usage_metadata``."""
        reply = await self.model.ainvoke(to_langchain(messages), **self.call_kwargs(options))
        return generation_from_reply(reply, messages, self.count_tokens)

    def count_tokens(self, text: str) -> int:
        """The wrapped model's own count when it has one offline, else a conservative count."""
        try:
            return int(self.model.get_num_tokens(text))
        except Exception:
            return count_pieces(text)


def generation_from_reply(reply: BaseMessage, messages: list[Message], count: Any) -> Generation:
    """Build a Generation from one reply, counting with ``count`` only if no usage was reported.

    A reply with no text raises NoTextError (see ``refuse_empty``).
    """
    text = message_text(reply)
    usage = getattr(reply, "usage_metadata", None)
    reasoning_text = _reasoning_text(reply)
    if not usage:
        return refuse_empty(
            Generation(
                texts=[text],
                input_tokens=count(prompt_text(messages)),
                output_tokens=count(text),
                estimated=True,
                reasoning_texts=[reasoning_text] if reasoning_text else None,
                truncated=stopped_at_cap(reply),
            )
        )
    input_details = usage.get("input_token_details") or {}
    output_details = usage.get("output_token_details") or {}
    return refuse_empty(
        Generation(
            texts=[text],
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            reasoning_tokens=int(output_details.get("reasoning", 0) or 0),
            cached_tokens=int(input_details.get("cache_read", 0) or 0),
            reasoning_texts=[reasoning_text] if reasoning_text else None,
            truncated=stopped_at_cap(reply),
        )
    )


def refuse_empty(generation: Generation) -> Generation:
    """``generation`` itself, unless no sample has any text: then NoTextError.

    The request reached the model, so the error carries the usage the call reported (a thinking
    model that spent its whole cap thinking reports it all); ``call_model`` records the attempt
    with those tokens and retries it.
    """
    if any(text.strip() for text in generation.texts):
        return generation
    counted = "counted" if generation.estimated else "reported"
    raise NoTextError(
        f"the model wrote no text ({generation.input_tokens} input and "
        f"{generation.output_tokens} output tokens {counted}, {generation.reasoning_tokens} of "
        "them thinking); raise the output cap if it spent it thinking",
        reached_model=True,
        input_tokens=None if generation.estimated else generation.input_tokens,
        output_tokens=0 if generation.estimated else generation.output_tokens,
    )


def _reasoning_text(reply: BaseMessage) -> str:
    """Thinking text a server returned beside the answer (vLLM's ``reasoning``), if any."""
    extra = getattr(reply, "additional_kwargs", {}) or {}
    for key in ("reasoning", "reasoning_content"):
        value = extra.get(key)
        if isinstance(value, str) and value:
            return value
    return ""

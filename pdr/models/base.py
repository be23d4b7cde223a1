"""What every model backend gives the nodes: generation with exact usage, and token counts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict, runtime_checkable


class Message(TypedDict):
    """One chat message as the nodes build it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Generation:
    """The texts one call returned and the usage its provider reported for the whole call.

    Attributes:
        texts: one text per sample (n of them).
        input_tokens: prompt tokens, counted once for the call, cached ones included.
        output_tokens: completion tokens over all samples, reasoning included.
        reasoning_tokens: the part of output_tokens spent thinking.
        cached_tokens: the part of input_tokens served from a prefix cache.
        sample_output_tokens: output tokens per sample, when the backend reports them.
        estimated: True when the backend reported nothing and a tokenizer counted.
        reasoning_texts: thinking text per sample, where the provider returns it.
        truncated: True when a sample stopped at the output cap (finish reason "length").
    """

    texts: list[str]
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    sample_output_tokens: list[int] | None = None
    estimated: bool = False
    reasoning_texts: list[str] | None = field(default=None)
    truncated: bool = False


@dataclass(frozen=True)
class SamplingOptions:
    """How one call samples: caps and knobs a backend maps to its own parameter names."""

    max_tokens: int
    temperature: float
    seed: int | None = None
    n: int = 1
    reasoning_effort: str | None = None
    thinking_budget: int | None = None


class BackendError(RuntimeError):
    """A backend failed in a way that retrying will not fix (bad model, bad key, bad request)."""


class TransientBackendError(RuntimeError):
    """A backend failed in a way worth retrying (timeout, connection, rate limit, 5xx).

    ``retry_after`` is the wait in seconds the server asked for (``Retry-After``), if it did.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Keep the server's requested wait beside the message."""
        super().__init__(message)
        self.retry_after = retry_after


@runtime_checkable
class ChatBackend(Protocol):
    """A model the nodes can call. Implementations live in pdr.models."""

    spec: str
    """The spec string that named this model (recorded in the ledger)."""

    supports_n: bool
    """True when one call can return several samples with usage reported once."""

    async def generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        """Sample ``options.n`` completions and report the provider's usage for the call."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's tokenizer."""
        ...


# Conservative stand-in for BPE when a provider's tokenizer is not available offline: short word
# pieces, digit groups of three and single symbols, which is at least as many pieces as a modern
# BPE makes of English text and numbers.
_PIECE = re.compile(r"[A-Za-z]{1,6}|\d{1,3}|\S")


def count_pieces(text: str) -> int:
    """Upper-bound style token count used where no tokenizer is available."""
    return len(_PIECE.findall(text))


def truncate_to_tokens(text: str, limit: int, count: Callable[[str], int]) -> str:
    """Longest tail of ``text`` with at most ``limit`` tokens by ``count``.

    The tail is kept because a solution's conclusion and final answer come last. Cuts fall on
    whitespace when possible. Works with any counting function (binary search over the cut).
    """
    if count(text) <= limit:
        return text
    if limit <= 0:
        return ""
    low, high = 0, len(text)  # invariant: text[high:] fits
    while low + 1 < high:
        middle = (low + high) // 2
        if count(text[middle:]) <= limit:
            high = middle
        else:
            low = middle
    tail = text[high:]
    space = tail.find(" ")
    if 0 <= space < len(tail) // 4:
        tail = tail[space + 1 :]
    return tail

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
class SampledTokens:
    """One sample as token ids, with the sampling policy's log-probability of each output token.

    Attributes:
        prompt_ids: the exact prompt the model read (chat template applied), as token ids.
        completion_ids: the tokens it sampled, its end-of-turn token included when it stopped.
        logprobs: log-probability of each completion token under the distribution it was sampled
            from (the model's logits divided by the call's temperature; temperature 0: by 1).
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]


@dataclass(frozen=True)
class Generation:
    """The texts one call returned and the usage its provider reported for the whole call.

    Attributes:
        texts: one text per sample (n of them).
        input_tokens: prompt tokens, counted once for the call, cached ones included.
        output_tokens: completion tokens over all samples, reasoning included.
        reasoning_tokens: the part of output_tokens spent thinking.
        cached_tokens: the part of input_tokens served from a prefix cache.
        sample_output_tokens: output tokens per sample, when the backend reports them or
            counted them (``sample_output_estimated``).
        estimated: True when the backend reported nothing and a tokenizer counted.
        sample_output_estimated: True when only the total output was reported and the
            per-sample split was counted with the model's tokenizer (``split_output``).
        reasoning_texts: thinking text per sample, where the provider returns it.
        truncated: True when a sample stopped at the output cap (finish reason "length").
        sampled: token ids and log-probabilities per sample, from backends that keep them
            (a training policy); None elsewhere.
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
    sample_output_estimated: bool = False
    sampled: list[SampledTokens] | None = field(default=None)


@dataclass(frozen=True)
class SamplingOptions:
    """How one call samples: caps and knobs a backend maps to its own parameter names."""

    max_tokens: int
    temperature: float
    seed: int | None = None
    n: int = 1
    reasoning_effort: str | None = None
    thinking_budget: int | None = None


class ModelCallError(RuntimeError):
    """A failed model call, with what the backend knows of the tokens it consumed.

    Attributes:
        reached_model: True when the request got to the model (a time-out or a 5xx after it was
            sent, an empty or malformed reply), False when it never did (connection refused, a
            429 or an invalid request turned away before processing), None when unknown.
        input_tokens: the prompt tokens the provider reported for the failed call, if any.
        output_tokens: the output tokens the provider reported for it (0 if none).
    """

    def __init__(
        self,
        message: str,
        *,
        reached_model: bool | None = None,
        input_tokens: int | None = None,
        output_tokens: int = 0,
    ) -> None:
        """Keep the message and what is known of the call's usage."""
        super().__init__(message)
        self.reached_model = reached_model
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


class BackendError(ModelCallError):
    """A backend failed in a way that retrying will not fix (bad model, bad key, bad request)."""


class TransientBackendError(ModelCallError):
    """A backend failed in a way worth retrying (timeout, connection, rate limit, 5xx).

    ``retry_after`` is the wait in seconds the server asked for (``Retry-After``), if it did.
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        reached_model: bool | None = None,
        input_tokens: int | None = None,
        output_tokens: int = 0,
    ) -> None:
        """Keep the server's requested wait and what is known of the call's usage."""
        super().__init__(
            message,
            reached_model=reached_model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        self.retry_after = retry_after


class NoTextError(TransientBackendError):
    """The model answered with no text: the call reached it and its usage counts."""


def reached_model(error: BaseException) -> bool:
    """Whether a failed call's request got to the model (see ``ModelCallError``).

    A time-out raised around the call counts as reached (the model was working on it); any other
    error that does not say counts as not reached.
    """
    known = getattr(error, "reached_model", None)
    if known is not None:
        return bool(known)
    return isinstance(error, TimeoutError)


def prompt_text(messages: list[Message]) -> str:
    """The messages' contents as one text, for counting a prompt with a tokenizer."""
    return "\n".join(m["content"] for m in messages)


def split_output(total: int, pieces: list[int]) -> list[int]:
    """``total`` output tokens shared among samples in proportion to ``pieces`` (their counts).

    For a provider that reports only an n-sample call's total output: each sample's share is its
    tokenizer count scaled to the reported total (largest remainders get the leftover tokens),
    so the shares add up to what the provider reported.
    """
    if not pieces:
        return []
    weight = sum(pieces)
    if weight == 0:
        pieces, weight = [1] * len(pieces), len(pieces)
    exact = [total * piece / weight for piece in pieces]
    shares = [int(value) for value in exact]
    leftover = total - sum(shares)
    by_remainder = sorted(range(len(pieces)), key=lambda i: (shares[i] - exact[i], i))
    for i in by_remainder[:leftover]:
        shares[i] += 1
    return shares


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

"""Every model call of every node goes through ``call_model``: cap, retries, timing, records."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from pdr.budget import CallRecord, Role
from pdr.graphs.context import RunContext
from pdr.models import Generation, Message, SamplingOptions, TransientBackendError, get_backend

# Seconds before retry n is 2**n times this; tests set it to 0.
RETRY_BACKOFF_S = 1.0

_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _limit(cap: int) -> asyncio.Semaphore:
    """One semaphore per event loop and cap, shared by every node of every run in this process."""
    per_loop = _limits.setdefault(asyncio.get_running_loop(), {})
    if cap not in per_loop:
        per_loop[cap] = asyncio.Semaphore(cap)
    return per_loop[cap]


CallListener = Callable[[CallRecord], None]
_listeners: list[CallListener] = []


def add_call_listener(listener: CallListener) -> None:
    """Have ``listener`` see every ledger record the moment its call ends (failed attempts too).

    Listeners run inside the node, so ``langgraph.config.get_config()`` tells them the thread.
    """
    _listeners.append(listener)


def remove_call_listener(listener: CallListener) -> None:
    """Stop sending records to ``listener``."""
    if listener in _listeners:
        _listeners.remove(listener)


def _publish(record: CallRecord) -> CallRecord:
    for listener in list(_listeners):
        listener(record)
    return record


@dataclass(frozen=True)
class CallResult:
    """A finished call: what it generated and the ledger records of all its attempts."""

    generation: Generation
    records: list[CallRecord]

    @property
    def text(self) -> str:
        """The first (usually only) sample."""
        return self.generation.texts[0]


class CallFailedError(RuntimeError):
    """A call failed after its retries; ``records`` holds the attempts (their tokens count)."""

    def __init__(self, message: str, records: list[CallRecord]) -> None:
        """Keep the attempts' records beside the message."""
        super().__init__(message)
        self.records = records


def call_seed(context: RunContext, round_: int, index: int) -> int:
    """A distinct, reproducible seed per call, so drafts differ and a resumed run repeats them."""
    return context.seed * 1_000_003 + round_ * 1_000 + index


def sampling_for(
    context: RunContext, role: Role, max_tokens: int, temperature: float, n: int = 1, seed: int = 0
) -> SamplingOptions:
    """Sampling options of one call, with the provider knobs from the run context."""
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        n=n,
        reasoning_effort=context.reasoning_effort,
        thinking_budget=context.thinking_budget,
    )


async def call_model(
    context: RunContext,
    *,
    role: Role,
    round_: int,
    index: int,
    messages: list[Message],
    options: SamplingOptions,
) -> CallResult:
    """Call the model serving ``role`` under the concurrency cap, retrying transient failures.

    Every attempt yields a ledger record, failed ones too (with their error), so B_tot sees all of
    them. Raises CallFailedError when the last attempt fails.
    """
    spec = context.model_for(role)
    backend = get_backend(spec)
    records: list[CallRecord] = []
    for attempt in range(context.max_retries + 1):
        started = time.perf_counter()
        try:
            async with _limit(context.max_concurrency):
                generation = await backend.generate(messages, options)
        except TransientBackendError as error:
            records.append(_publish(_failed(spec, role, round_, index, attempt, started, error)))
            if attempt == context.max_retries:
                raise CallFailedError(f"{role} call failed: {error}", records) from error
            await asyncio.sleep(min(RETRY_BACKOFF_S * 2.0**attempt, 30.0))
            continue
        except Exception as error:
            records.append(_publish(_failed(spec, role, round_, index, attempt, started, error)))
            raise CallFailedError(f"{role} call to {spec!r} failed: {error}", records) from error
        records.append(
            _publish(
                CallRecord(
                    role=role,
                    round=round_,
                    index=index,
                    attempt=attempt,
                    model=spec,
                    input_tokens=generation.input_tokens,
                    output_tokens=generation.output_tokens,
                    reasoning_tokens=generation.reasoning_tokens,
                    cached_tokens=generation.cached_tokens,
                    samples=len(generation.texts),
                    sample_output_tokens=generation.sample_output_tokens,
                    latency_s=round(time.perf_counter() - started, 4),
                    estimated=generation.estimated,
                    error=None,
                )
            )
        )
        return CallResult(generation, records)
    raise AssertionError("unreachable: the loop returns or raises")


def _failed(
    spec: str, role: Role, round_: int, index: int, attempt: int, started: float, error: Exception
) -> CallRecord:
    return CallRecord(
        role=role,
        round=round_,
        index=index,
        attempt=attempt,
        model=spec,
        input_tokens=0,
        output_tokens=0,
        reasoning_tokens=0,
        cached_tokens=0,
        samples=0,
        sample_output_tokens=None,
        latency_s=round(time.perf_counter() - started, 4),
        estimated=False,
        error=f"{type(error).__name__}: {error}",
    )

"""Every model call of every node goes through ``call_model``: cap, retries, timing, records.

Each attempt yields one ledger record (``pdr.budget.CallRecord``). The record leaves here by one
route: a ``call_finished`` event on the graph's custom stream (``pdr.events``), which the runner
writes to the ledger; the node also returns the records in its ``calls`` update, from which the
graph's own output computes B_seq and B_tot.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass

from pdr.budget import CallRecord, Role
from pdr.events import CALL_FINISHED, emit
from pdr.graphs.context import RefineContext, RunContext
from pdr.models import Generation, Message, SamplingOptions, TransientBackendError, get_backend

# Seconds before retry n is 2**n times this; tests set it to 0.
RETRY_BACKOFF_S = 1.0

_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _limit(cap: int) -> asyncio.Semaphore:
    """One semaphore per event loop and cap, shared by every node of every run on that loop."""
    per_loop = _limits.setdefault(asyncio.get_running_loop(), {})
    if cap not in per_loop:
        per_loop[cap] = asyncio.Semaphore(cap)
    return per_loop[cap]


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
    context: RunContext, role: Role, round_: int, index: int, n: int = 1
) -> SamplingOptions:
    """Sampling options of one call of ``role``: its output cap, temperature, seed and knobs.

    Drafts, refinement and long CoT use ``max_tokens`` and ``temperature``; verification uses
    ``verify_max_tokens``; a summary is capped at ``kappa``; both use ``distill_temperature``.
    """
    if role == "verify":
        cap, temperature = context.verify_max_tokens, context.distill_temperature
    elif role == "distill":
        if not isinstance(context, RefineContext):
            raise TypeError("a distill call needs a RefineContext (it is capped at kappa)")
        cap, temperature = context.kappa, context.distill_temperature
    else:
        cap, temperature = context.max_tokens, context.temperature
    return SamplingOptions(
        max_tokens=cap,
        temperature=temperature,
        seed=call_seed(context, round_, index),
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
    n: int = 1,
    options: SamplingOptions | None = None,
) -> CallResult:
    """Call the model serving ``role`` under the concurrency cap, retrying transient failures.

    ``options`` defaults to ``sampling_for(context, role, round_, index, n)``. Every attempt
    yields a ledger record, failed ones too (with their error), so B_tot sees all of them; each is
    emitted as a ``call_finished`` event the moment the attempt ends. Raises CallFailedError when
    the last attempt fails.
    """
    options = options or sampling_for(context, role, round_, index, n)
    spec = context.model_for(role)
    backend = get_backend(spec)
    records: list[CallRecord] = []

    def keep(record: CallRecord) -> None:
        records.append(record)
        emit(CALL_FINISHED, record=record)

    for attempt in range(context.max_retries + 1):
        started = time.perf_counter()
        try:
            async with _limit(context.max_concurrency):
                generation = await backend.generate(messages, options)
        except TransientBackendError as error:
            keep(_failed(spec, role, round_, index, attempt, started, error))
            if attempt == context.max_retries:
                raise CallFailedError(f"{role} call failed: {error}", records) from error
            await asyncio.sleep(min(RETRY_BACKOFF_S * 2.0**attempt, 30.0))
            continue
        except Exception as error:
            keep(_failed(spec, role, round_, index, attempt, started, error))
            raise CallFailedError(f"{role} call to {spec!r} failed: {error}", records) from error
        keep(
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

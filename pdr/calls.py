"""Every model call of every node goes through ``call_model``: cap, retries, timing, records.

Each attempt yields one ledger record (``pdr.budget.CallRecord``). The record leaves here by one
route: a ``call_started`` event just before the request is sent (announced, so the runner has
stored it before the request leaves the process), then a ``call_finished`` event with its final
form, both on the graph's custom stream (``pdr.events``), which the runner writes to the ledger;
the node also returns the records in its ``calls`` update, from which the graph's own output
computes B_seq and B_tot.

An attempt that runs past the context's ``timeout`` is cancelled and retried like any transient
failure; it is recorded as cancelled, with its prompt tokens estimated (the provider reported
nothing). Before each attempt the call's worst case (prompt plus output cap) is checked against the
branch's allowance (``pdr.caps``): a call that does not fit is not made (``BudgetExhaustedError``).

A model spec naming several replicas (``pdr.models.replicas``) gives each attempt the least busy
replica, recorded in the attempt's record (``replica``); an attempt that failed on one replica
for a transient reason or its time-out marks it down, and the retry goes to another at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
import weakref
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from pdr.budget import CallRecord, Role
from pdr.caps import TEMPLATE_TOKENS_PER_MESSAGE, Allowance, BudgetExhaustedError, refusal
from pdr.events import CALL_FINISHED, CALL_STARTED, TOKENS_SAMPLED, announce, emit
from pdr.graphs.context import RefineContext, RunContext
from pdr.models import (
    ChatBackend,
    Generation,
    Message,
    SamplingOptions,
    TransientBackendError,
    get_backend,
    reached_model,
)
from pdr.models.base import count_pieces
from pdr.models.replicas import Route, replica_for
from pdr.redact import redact

__all__ = ["BudgetExhaustedError", "CallFailedError", "CallResult", "call_model", "sampling_for"]

# Seconds before retry n is 2**n times this; tests set it to 0.
RETRY_BACKOFF_S = 1.0
# The longest wait a server's Retry-After is honoured with; a longer one fails the call instead.
MAX_RETRY_AFTER_S = 600.0
IN_FLIGHT = "in flight"
CANCELLED = "cancelled"

_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _limit(cap: int | None) -> AbstractAsyncContextManager[Any]:
    """One semaphore per event loop and cap, shared by every node of every run on that loop.

    No cap (None): nothing to wait for; a run then has at most its widest stage in flight.
    """
    if cap is None:
        return contextlib.nullcontext()
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


def call_seed(context: RunContext, round_: int, index: int, messages: list[Message]) -> int:
    """A distinct, reproducible seed per call: a hash of the run seed, the prompt, round and index.

    The prompt carries the problem (and, after round 1, the workspace), so drafts of different
    problems get unrelated seeds instead of the same few on every problem; the same run seed,
    problem, round and index always give the same seed, so a resumed run repeats its calls. The
    value fits in 31 bits, the narrowest seed a provider takes (llama.cpp: 32-bit unsigned).
    """
    digest = hashlib.sha256(str(context.seed).encode())
    for message in messages:
        digest.update(b"\0" + message["role"].encode() + b"\0" + message["content"].encode())
    digest.update(f"\0{round_}\0{index}".encode())
    return int.from_bytes(digest.digest()[:4], "big") & 0x7FFF_FFFF


def sampling_for(
    context: RunContext,
    role: Role,
    round_: int,
    index: int,
    n: int = 1,
    messages: list[Message] | None = None,
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
        seed=call_seed(context, round_, index, messages or []),
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
    allowance: Allowance | None = None,
) -> CallResult:
    """Call the model serving ``role`` under the concurrency cap, retrying transient failures.

    ``options`` defaults to ``sampling_for(context, role, round_, index, n, messages)``. Every
    attempt yields a ledger record, failed and cancelled ones too, so B_tot sees all of them;
    each is announced as ``call_started`` before its request is sent and emitted as
    ``call_finished`` the moment it ends. ``allowance`` is what this call may spend, all attempts
    together. A backend that keeps token ids and log-probabilities (``Generation.sampled``) has
    them emitted as a ``tokens_sampled`` event.

    Raises:
        CallFailedError: the last attempt failed (or one failed for a reason retrying won't fix).
        BudgetExhaustedError: the next attempt's worst case does not fit ``allowance``; it was
            not made.
    """
    options = options or sampling_for(context, role, round_, index, n, messages)
    spec = context.model_for(role)
    backend = get_backend(spec)
    model = redact(spec)
    prompt = await asyncio.to_thread(estimate_prompt, backend, messages)
    worst_critical = prompt + TEMPLATE_TOKENS_PER_MESSAGE * len(messages) + options.max_tokens
    worst_total = worst_critical + (options.n - 1) * options.max_tokens
    records: list[CallRecord] = []

    def keep(record: CallRecord, attempt_id: str, route: Route) -> None:
        record["attempt_id"] = attempt_id
        if route.name is not None:
            record["replica"] = route.name
        records.append(record)
        emit(CALL_FINISHED, record=record)

    for attempt in range(context.max_retries + 1):
        reason = refusal(allowance, records, worst_total, worst_critical)
        if reason is not None:
            raise BudgetExhaustedError(
                f"{role} call of round {round_} (branch {index}) not made: {reason}", records
            )
        attempt_id = uuid.uuid4().hex
        failure: Exception | None = None
        async with _limit(context.max_concurrency):
            with replica_for(backend) as route:
                in_flight = _cancelled(model, role, round_, index, attempt, prompt, 0.0, IN_FLIGHT)
                in_flight["attempt_id"] = attempt_id
                if route.name is not None:
                    in_flight["replica"] = route.name
                await announce(CALL_STARTED, record=in_flight)
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(context.timeout):
                        generation = await route.backend.generate(messages, options)
                except asyncio.CancelledError:
                    elapsed = time.perf_counter() - started
                    note = f"{CANCELLED}: the run was stopped during the call"
                    keep(
                        _cancelled(model, role, round_, index, attempt, prompt, elapsed, note),
                        attempt_id,
                        route,
                    )
                    raise
                except Exception as error:
                    failure = error
                    route.failed(error)
        if failure is None:
            record = _succeeded(model, role, round_, index, attempt, generation, started)
            keep(record, attempt_id, route)
            if generation.sampled is not None:
                emit(
                    TOKENS_SAMPLED, role=role, round=round_, index=index, samples=generation.sampled
                )
            return CallResult(generation, records)
        last = attempt == context.max_retries
        # Another replica is up: the retry goes there now, whatever this one asked for.
        elsewhere = not last and route.elsewhere()
        if isinstance(failure, TimeoutError):
            elapsed = time.perf_counter() - started
            note = f"{CANCELLED}: no reply within the timeout of {context.timeout:g} s"
            keep(
                _cancelled(model, role, round_, index, attempt, prompt, elapsed, note),
                attempt_id,
                route,
            )
            if last:
                raise CallFailedError(f"{role} call to {model!r}: {note}", records) from failure
            delay = _backoff(attempt)
        elif isinstance(failure, TransientBackendError):
            keep(
                _failed(model, role, round_, index, attempt, started, failure, prompt),
                attempt_id,
                route,
            )
            wait = failure.retry_after
            if not last and not elsewhere and wait is not None and wait > MAX_RETRY_AFTER_S:
                raise CallFailedError(
                    f"{role} call failed: {failure}; the server asked to retry after {wait:g} s, "
                    f"longer than pdr waits ({MAX_RETRY_AFTER_S:g} s)",
                    records,
                ) from failure
            if last:
                raise CallFailedError(f"{role} call failed: {failure}", records) from failure
            delay = max(_backoff(attempt), wait or 0.0)
        else:
            keep(
                _failed(model, role, round_, index, attempt, started, failure, prompt),
                attempt_id,
                route,
            )
            raise CallFailedError(
                f"{role} call to {model!r} failed: {redact(str(failure))}", records
            ) from failure
        await asyncio.sleep(0.0 if elsewhere else delay)
    raise AssertionError("unreachable: the loop returns or raises")


def estimate_prompt(backend: ChatBackend, messages: list[Message]) -> int:
    """The prompt's tokens by the model's tokenizer (pdr's stand-in count if it cannot count)."""
    text = "\n".join(message["content"] for message in messages)
    try:
        return int(backend.count_tokens(text))
    except Exception:  # a model file still missing: the call itself will say so
        return count_pieces(text)


def _backoff(attempt: int) -> float:
    return min(RETRY_BACKOFF_S * 2.0**attempt, 30.0)


def _succeeded(
    model: str,
    role: Role,
    round_: int,
    index: int,
    attempt: int,
    generation: Generation,
    started: float,
) -> CallRecord:
    return CallRecord(
        role=role,
        round=round_,
        index=index,
        attempt=attempt,
        model=model,
        input_tokens=generation.input_tokens,
        output_tokens=generation.output_tokens,
        reasoning_tokens=generation.reasoning_tokens,
        cached_tokens=generation.cached_tokens,
        samples=len(generation.texts),
        sample_output_tokens=generation.sample_output_tokens,
        sample_output_estimated=generation.sample_output_estimated,
        latency_s=round(time.perf_counter() - started, 4),
        estimated=generation.estimated,
        error=None,
        truncated=generation.truncated,
        texts=list(generation.texts),
    )


def _cancelled(
    model: str,
    role: Role,
    round_: int,
    index: int,
    attempt: int,
    prompt: int,
    elapsed: float,
    note: str,
) -> CallRecord:
    """An attempt whose reply never came: its prompt counted (estimated), no output."""
    return _unanswered(
        model, role, round_, index, attempt, prompt, 0, elapsed, True, note, reached=True
    )


def _failed(
    spec: str,
    role: Role,
    round_: int,
    index: int,
    attempt: int,
    started: float,
    error: Exception,
    prompt: int,
) -> CallRecord:
    """The record of a failed attempt: what it consumed, as far as it can be known.

    A request that got to the model (``pdr.models.reached_model``: a 5xx after it was sent, an
    empty or malformed reply) costs its prompt: the provider's count when the error carries one,
    else ``prompt``, the model's tokenizer's count (``estimated``), plus any output the provider
    reported. One that never got there (a refused connection, a 429, a rejected request) costs 0.
    """
    reached = reached_model(error)
    reported_input = getattr(error, "input_tokens", None)
    input_tokens, output_tokens, estimated = 0, 0, False
    if reached:
        output_tokens = int(getattr(error, "output_tokens", 0) or 0)
        if reported_input is not None:
            input_tokens = int(reported_input)
        else:
            input_tokens, estimated = prompt, True
    elapsed = time.perf_counter() - started
    note = f"{type(error).__name__}: {error}"
    return _unanswered(
        spec,
        role,
        round_,
        index,
        attempt,
        input_tokens,
        output_tokens,
        elapsed,
        estimated,
        note,
        reached=reached,
    )


def _unanswered(
    model: str,
    role: Role,
    round_: int,
    index: int,
    attempt: int,
    input_tokens: int,
    output_tokens: int,
    elapsed: float,
    estimated: bool,
    error: str,
    *,
    reached: bool,
) -> CallRecord:
    """The record of an attempt that wrote nothing: no samples, no text, its error."""
    return CallRecord(
        role=role,
        round=round_,
        index=index,
        attempt=attempt,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=0,
        cached_tokens=0,
        samples=0,
        sample_output_tokens=None,
        latency_s=round(elapsed, 4),
        estimated=estimated,
        error=error,
        reached_model=reached,
    )

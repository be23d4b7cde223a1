"""Several OpenAI-compatible servers of one model (replicas): the least busy first, failover.

A spec ``vllm:MODEL@URL1,URL2,...`` names replicas of one model (vLLM's data-parallel servers,
say). Each call goes to the replica with the fewest calls in flight from this process (ties in
turn), among those not marked down. A replica whose attempt fails for a transient reason (no
connection, a 5xx, a rate limit, a reply that is not JSON) or runs past the call's time-out is
marked down for ``DOWN_FOR_S`` seconds (or as long as its ``Retry-After`` asks), and the call's
next attempt goes to another one at once (``pdr.calls.call_model`` retries without its back-off
while another replica is up). When every replica is down, the one that comes back first is tried.
Every attempt remains one ledger row, and the row names the replica that served it.

``call_model`` takes a replica for each attempt with ``replica_for(backend)`` (a backend that is
not a pool is its own single route); the pool's own ``generate`` does the same for callers that
do not record attempts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pdr.models.base import (
    BackendError,
    ChatBackend,
    Generation,
    Message,
    SamplingOptions,
    TransientBackendError,
)
from pdr.redact import redact

DOWN_FOR_S = 30.0
"""How long a replica that failed or timed out is left alone (unless every replica is down)."""
SPEC_FORM = "'vllm:MODEL@http://host1:8000/v1,http://host2:8000/v1'"


def parse_replicas(spec: str, urls: str) -> list[str]:
    """The base URLs of a spec's replica list, checked; raises BackendError naming the fix.

    ``urls`` is what follows ``MODEL@``: one URL, or several separated by commas, each
    ``http://`` or ``https://`` with a host, none repeated.
    """
    parts = urls.split(",")
    shown = redact(spec)
    for number, part in enumerate(parts, start=1):
        if not part:
            raise BackendError(
                f"model {shown!r}: replica {number} of {len(parts)} is empty; separate the base "
                f"URLs with single commas, e.g. {SPEC_FORM}"
            )
        if part != part.strip() or " " in part:
            raise BackendError(
                f"model {shown!r}: replica {number} ({redact(part)!r}) has spaces; write the "
                f"base URLs without spaces, e.g. {SPEC_FORM}"
            )
        scheme, sep, rest = part.partition("://")
        if scheme not in ("http", "https") or not sep or not rest.split("/")[0].split("@")[-1]:
            raise BackendError(
                f"model {shown!r}: replica {number} ({redact(part)!r}) is not an http(s) base "
                f"URL with a host; write each as http://host:port/v1, e.g. {SPEC_FORM}"
            )
    repeated = sorted({part for part in parts if parts.count(part) > 1})
    if repeated:
        raise BackendError(
            f"model {shown!r}: {redact(repeated[0])!r} is named twice; list each replica once, "
            f"e.g. {SPEC_FORM}"
        )
    return parts


@dataclass
class Replica:
    """One server of the pool: its backend, calls in flight, and until when it is down."""

    url: str
    backend: ChatBackend
    in_flight: int = 0
    down_until: float = 0.0  # time.monotonic()
    failures: int = 0

    @property
    def shown(self) -> str:
        """The base URL with its password redacted (what the ledger records)."""
        return redact(self.url)


@dataclass
class Route:
    """The backend one attempt calls, and the replica it is, if it is one of a pool."""

    backend: ChatBackend
    replica: Replica | None = None
    pool: ReplicaPool | None = None

    @property
    def name(self) -> str | None:
        """The replica's redacted base URL (None for a backend that is not a pool)."""
        return None if self.replica is None else self.replica.shown

    def failed(self, error: BaseException) -> None:
        """Mark the replica down when ``error`` is its doing (transient, or a time-out)."""
        if self.pool is not None and self.replica is not None:
            self.pool.failed(self.replica, error)

    def elsewhere(self) -> bool:
        """Whether another replica is up now (a retry can go there without waiting)."""
        return self.pool is not None and self.pool.up_besides(self.replica)


@dataclass
class ReplicaPool:
    """A ChatBackend over several replicas of one model; see the module docstring."""

    spec: str
    replicas: list[Replica]
    supports_n: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _turn: int = 0

    def count_tokens(self, text: str) -> int:
        """The first replica's count (every replica serves the same model)."""
        return self.replicas[0].backend.count_tokens(text)

    def pick(self) -> Replica:
        """The replica for the next call (its in-flight count taken)."""
        now = time.monotonic()
        with self._lock:
            up = [replica for replica in self.replicas if replica.down_until <= now]
            if not up:  # all down: the first to come back
                up = [min(self.replicas, key=lambda replica: replica.down_until)]
            fewest = min(replica.in_flight for replica in up)
            idle = [replica for replica in up if replica.in_flight == fewest]
            chosen = idle[self._turn % len(idle)]
            self._turn += 1
            chosen.in_flight += 1
            return chosen

    def give_back(self, replica: Replica) -> None:
        """The call on ``replica`` ended (however it ended)."""
        with self._lock:
            replica.in_flight -= 1

    def failed(self, replica: Replica, error: BaseException) -> None:
        """Mark ``replica`` down after a transient failure or a time-out of one of its calls."""
        if not isinstance(error, TransientBackendError | TimeoutError):
            return  # a bad request fails on every replica alike
        wait = getattr(error, "retry_after", None)
        with self._lock:
            replica.failures += 1
            replica.down_until = time.monotonic() + (DOWN_FOR_S if wait is None else wait)

    def up_besides(self, replica: Replica | None) -> bool:
        """Whether a replica other than ``replica`` is up now."""
        now = time.monotonic()
        with self._lock:
            return any(r is not replica and r.down_until <= now for r in self.replicas)

    @contextlib.contextmanager
    def route(self) -> Iterator[Route]:
        """A replica for one attempt, given back when the block ends."""
        replica = self.pick()
        try:
            yield Route(replica.backend, replica, self)
        finally:
            self.give_back(replica)

    async def generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        """One call on the least busy replica (no failover: ``call_model`` retries elsewhere)."""
        with self.route() as route:
            try:
                return await route.backend.generate(messages, options)
            except BaseException as error:
                route.failed(error)
                raise


@contextlib.contextmanager
def replica_for(backend: ChatBackend) -> Iterator[Route]:
    """The route of one attempt: a replica of a pool, or the backend itself."""
    if isinstance(backend, ReplicaPool):
        with backend.route() as route:
            yield route
    else:
        yield Route(backend)


def replica_pool(spec: str, model: str, urls: list[str], **model_kwargs: Any) -> ReplicaPool:
    """A pool of OpenAI-compatible backends, one per base URL."""
    from pdr.models.providers import OpenAICompatibleBackend

    return ReplicaPool(
        spec,
        [Replica(url, OpenAICompatibleBackend(spec, model, url, **model_kwargs)) for url in urls],
    )

"""An OpenAI-compatible chat-completions server on loopback, for tests of the real HTTP path.

A double for a vLLM or OpenAI server (which cannot run here): a threaded stdlib HTTP server that
answers ``POST /v1/chat/completions`` with the reply a test chooses, reports ``usage`` the way
vLLM does (prompt tokens once, completion tokens summed over the ``n`` choices; tokens are
whitespace-separated words of the messages and the replies), honours the request's output cap
(a longer reply is cut there, ``finish_reason`` "length"), sleeps an optional latency, and logs
every request with its arrival and finish times, its HTTP status and whether the whole reply was
written (``completed``). Everything between pdr and this server is the real code: the OpenAI SDK,
httpx, LangChain's ChatOpenAI and pdr's backends.

Faults are injected per request by ``fault(served) -> Fault | None``: an HTTP error status with
headers (429 with ``Retry-After``), a raw body (malformed JSON, no choices), a hang, a reply text
(escape sequences), or the death of the client process (``SIGKILL`` on arrival, or a given delay
after the reply was written), so tests can stop pdr at exact points of a run. Each request is
also labelled with the step that sent it (role from the system prompt, round and branch found by
recomputing the per-call seed for its messages), so a test can tell which calls were made twice.

A server can also stand in for one replica of several: ``slots`` caps the requests it works on at
once (the rest queue, as on a GPU server at its batch size), and ``stop()`` takes it down mid-run
(new connections are refused, requests on open connections are dropped unanswered).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.scripted import ROLE_BY_SYSTEM, decode_seed

Reply = Callable[[dict[str, Any], int], str]


def words(text: str) -> int:
    """The server's tokenizer: whitespace-separated words."""
    return len(text.split())


def default_reply(request: dict[str, Any], choice: int) -> str:
    """A short solution that ends with an answer line (a grade for a verify request)."""
    if request_role(request) == "verify":
        return "Checked the steps . Score: 8"
    return "17 * 23 = 391 . Answer: 391"


def request_role(body: dict[str, Any]) -> str:
    """The pdr step that sent a request, from its system prompt (the built-in prompts)."""
    messages = body.get("messages") or [{}]
    return ROLE_BY_SYSTEM.get(str(messages[0].get("content", "")), "unknown")


@dataclass
class Fault:
    """What goes wrong with one request.

    Attributes:
        status: the HTTP status of the answer (200: a normal completion, unless ``body``).
        headers: extra response headers (``Retry-After``).
        body: the raw response body instead of a completion (malformed JSON, no choices).
        hang: seconds to wait before answering (longer than pdr's timeout: a hung server).
        content: the reply text instead of ``reply`` (escape sequences, a malformed answer).
        kill_on_arrival: SIGKILL the client when the request arrives; never answer.
        kill_after: SIGKILL the client this many seconds after the reply was written.
        drop: close the connection without answering (a server that went down).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    hang: float = 0.0
    content: str | None = None
    kill_on_arrival: bool = False
    kill_after: float | None = None
    drop: bool = False


@dataclass
class Served:
    """One request as the server saw it, labelled with the pdr step that sent it."""

    body: dict[str, Any]
    arrived: float
    number: int = 0
    finished: float = 0.0
    status: int = 200
    client: tuple[str, int] = ("", 0)  # the connection's address: one per kept-alive connection
    completed: bool = False
    garbled: bool = False
    role: str = ""
    round: int = 0
    index: int = 0

    @property
    def step(self) -> tuple[str, int, int]:
        """(role, round, index) of the call."""
        return (self.role, self.round, self.index)


class QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print a traceback when a client goes away."""

    # The stdlib's listen backlog is 5: a burst of new connections (a round of 16 drafts over
    # several clients) overflowed it and connections were reset.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclass
class FakeOpenAIServer:
    """The server; use as a context manager (``url`` is the ``/v1`` base URL).

    Attributes:
        reply: the text of choice ``i`` of a request.
        latency: seconds each request waits before answering (a callable may vary it).
        fault: the fault of a request, if any.
        target_pid: the client process that ``kill_*`` faults kill.
        requests: every request, in arrival order.
        slots: requests worked on at once (None: no limit); the others wait their turn.
        stopped: set by ``stop()``: every request from then on is dropped.
    """

    reply: Reply = default_reply
    latency: float | Callable[[Served], float] = 0.0
    fault: Callable[[Served], Fault | None] = lambda served: None
    target_pid: int | None = None
    requests: list[Served] = field(default_factory=list)
    slots: int | None = None
    stopped: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(self.slots) if self.slots else None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                served = server.log(body, self.client_address[:2])
                fault = server.fault(served) or Fault()
                if fault.kill_on_arrival:
                    server.kill()
                    return
                if fault.drop or server.stopped:
                    self.close_connection = True
                    return
                delay = server.latency(served) if callable(server.latency) else server.latency
                if server._slots is not None:
                    with server._slots:
                        time.sleep(delay)
                    time.sleep(fault.hang)
                else:
                    time.sleep(delay + fault.hang)
                if server.stopped:  # went down while working on it
                    self.close_connection = True
                    return
                data = fault.body
                if data is None:
                    payload = (
                        server.completion(body, fault.content)
                        if fault.status == 200
                        else {"error": {"message": f"fault {fault.status}", "type": "fault"}}
                    )
                    data = json.dumps(payload).encode()
                served.status = fault.status
                served.garbled = fault.body is not None or fault.content is not None
                try:
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in fault.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:  # the client went away (cancelled, killed)
                    return
                served.finished = time.monotonic()
                served.completed = True
                if fault.kill_after is not None:
                    time.sleep(fault.kill_after)
                    server.kill()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._http = QuietServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def spec(self, model: str = "fake") -> str:
        """The pdr model spec of this server."""
        return f"vllm:{model}@{self.url}"

    def log(self, body: dict[str, Any], client: tuple[str, int] = ("", 0)) -> Served:
        """Record a request as it arrives, labelled with its step and its connection."""
        sent = [
            {
                "role": "system" if m.get("role") == "developer" else m.get("role"),
                "content": m.get("content"),
            }
            for m in body.get("messages") or []
        ]
        round_, index = decode_seed(body.get("seed"), sent)  # type: ignore[arg-type]
        served = Served(body=body, arrived=time.monotonic(), client=client)
        served.role, served.round, served.index = request_role(body), round_, index
        with self._lock:
            served.number = len(self.requests) + 1
            self.requests.append(served)
        return served

    def stop(self) -> None:
        """Go down: refuse new connections and drop every request from now on."""
        self.stopped = True

        def close() -> None:
            self._http.shutdown()  # up to half a second: meanwhile requests are dropped
            self._http.server_close()

        threading.Thread(target=close, daemon=True).start()

    def kill(self) -> None:
        """SIGKILL the target client process (the test sets ``target_pid``)."""
        for _ in range(200):  # the test sets the pid right after starting the process
            if self.target_pid is not None:
                break
            time.sleep(0.01)
        assert self.target_pid is not None, "a kill fault needs target_pid"
        os.kill(self.target_pid, signal.SIGKILL)

    def completed(self) -> Counter[tuple[str, int, int]]:
        """How many times each step's request was answered in full with a sound completion."""
        with self._lock:
            return Counter(
                s.step for s in self.requests if s.completed and s.status == 200 and not s.garbled
            )

    def completion(self, body: dict[str, Any], content: str | None = None) -> dict[str, Any]:
        """The chat.completion object answering ``body`` (cut at its max_tokens, if any)."""
        n = int(body.get("n") or 1)
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        texts, reasons = [], []
        for choice in range(n):
            text = content if content is not None else self.reply(body, choice)
            pieces = text.split(" ")
            if cap is not None and words(text) > int(cap):
                text, reason = " ".join(pieces[: int(cap)]), "length"
            else:
                reason = "stop"
            texts.append(text)
            reasons.append(reason)
        prompt = sum(words(str(m.get("content", ""))) for m in body.get("messages", []))
        completion = sum(words(text) for text in texts)
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reason,
                }
                for i, (text, reason) in enumerate(zip(texts, reasons, strict=True))
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._http.shutdown()
        self._http.server_close()

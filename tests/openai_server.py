"""An OpenAI-compatible chat-completions server on loopback, for tests of the real HTTP path.

A double for a vLLM or OpenAI server (which cannot run here): a threaded stdlib HTTP server that
answers ``POST /v1/chat/completions`` with the reply a test chooses, reports ``usage`` the way
vLLM does (prompt tokens once, completion tokens summed over the ``n`` choices; tokens are
whitespace-separated words of the messages and the replies), sleeps an optional latency, and logs
every request with its arrival and finish times. Everything between pdr and this server is the
real code: the OpenAI SDK, httpx, LangChain's ChatOpenAI and pdr's backends.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Reply = Callable[[dict[str, Any], int], str]


def words(text: str) -> int:
    """The server's tokenizer: whitespace-separated words."""
    return len(text.split())


def default_reply(request: dict[str, Any], choice: int) -> str:
    """A short solution that ends with an answer line."""
    return "17 * 23 = 391 . Answer: 391"


@dataclass
class Served:
    """One request as the server saw it."""

    body: dict[str, Any]
    arrived: float
    finished: float = 0.0
    status: int = 200


@dataclass
class FakeOpenAIServer:
    """The server; use as a context manager (``url`` is the ``/v1`` base URL).

    Attributes:
        reply: the text of choice ``i`` of a request.
        latency: seconds each request waits before answering.
        requests: every request, in arrival order.
    """

    reply: Reply = default_reply
    latency: float = 0.0
    requests: list[Served] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                served = Served(body=body, arrived=time.monotonic())
                with server._lock:
                    server.requests.append(served)
                time.sleep(server.latency)
                payload = server.completion(body)
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                served.finished = time.monotonic()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat.completion object answering ``body``."""
        n = int(body.get("n") or 1)
        texts = [self.reply(body, choice) for choice in range(n)]
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
                    "finish_reason": "stop",
                }
                for i, text in enumerate(texts)
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

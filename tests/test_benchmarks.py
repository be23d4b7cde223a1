"""The benchmarks' own parts: the simulated server, the floor's replay, the batched decoder, and a
quick run of ``python -m benchmarks`` that must write its files (it asserts nothing about speed).

The simulated server is reached through the real openai SDK over loopback HTTP; the batched
decoder runs the real embedded 0.5B model through llama-cpp-python's low-level API.
"""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from benchmarks import floor
from benchmarks.sim_server import SimServer, Timing
from benchmarks.tools import Cell, Client

ROOT = Path(__file__).resolve().parents[1]
FAST = Timing(ttft=0.05, token=0.001, tokens=20)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(FAST) as running:
        yield running


def ask(sim: SimServer, timing: Timing, **extra: object) -> object:
    async def call() -> object:
        api = openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0)
        return await api.chat.completions.create(
            model=timing.model_name(),
            messages=[{"role": "user", "content": "one two three"}],
            **extra,  # type: ignore[arg-type]
        )

    return asyncio.run(call())


def test_the_server_samples_n_reports_usage_and_logs_the_times(sim: SimServer) -> None:
    sim.reset()
    reply = ask(sim, FAST, n=3, max_tokens=12)
    assert [c.message.content.split()[-2:] for c in reply.choices] == [["Answer:", "391"]] * 3
    assert [len(c.message.content.split()) for c in reply.choices] == [12, 12, 12]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 36)
    [entry] = sim.log()
    assert entry["n"] == 3 and entry["tokens"] == 12 and entry["status"] == 200
    assert entry["arrived"] < entry["first_token"] < entry["finished"]
    assert entry["first_token"] - entry["arrived"] >= FAST.ttft
    assert entry["finished"] - entry["arrived"] >= FAST.seconds(12)


def test_the_server_refuses_or_ignores_n_when_told(sim: SimServer) -> None:
    with pytest.raises(openai.BadRequestError, match="n > 1 is not supported"):
        ask(sim, Timing(ttft=0.0, token=0.0, tokens=4, n="refused"), n=2)
    ignored = ask(sim, Timing(ttft=0.0, token=0.0, tokens=4, n="ignored"), n=2)
    assert len(ignored.choices) == 1 and ignored.usage.completion_tokens == 4


def test_a_streamed_reply_ends_with_its_usage(sim: SimServer) -> None:
    async def stream() -> list[object]:
        api = openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0)
        chunks = await api.chat.completions.create(
            model=FAST.model_name(),
            messages=[{"role": "user", "content": "a b"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        return [chunk async for chunk in chunks]

    chunks = asyncio.run(stream())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == FAST.tokens
    assert chunks[-1].usage.completion_tokens == FAST.tokens


def test_the_floor_replays_exactly_the_calls_pdr_made(sim: SimServer, tmp_path: Path) -> None:
    client = Client(sim.url, sim.spec(), tmp_path)
    try:
        sim.reset()
        client.ainvoke(Cell((4, 2, 1), "summary"))()
        pdr_log = sim.log()
        plan = floor.plan_from_log(pdr_log, floor.pdr_stage)
        # drafts, summary, drafts, summary, refine
        assert [len(stage) for stage in plan] == [4, 1, 2, 1, 1]
        sim.reset()
        client.floor(plan)()
        floor_log = sim.log()
    finally:
        client.close()
    assert [len(s) for s in floor.stages(floor_log, floor.pdr_stage)] == [4, 1, 2, 1, 1]

    def calls(log: list[dict[str, object]]) -> list[str]:
        return sorted(json.dumps([e["messages"], e["seed"], e["n"]]) for e in log)

    assert calls(floor_log) == calls(pdr_log)
    assert floor.ideal(floor_log, floor.pdr_stage) >= 5 * FAST.seconds(FAST.tokens)


def _private_names(path: Path) -> list[str]:
    """Underscore modules imported, and underscore attributes read off anything but self/cls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            if not node.attr.startswith("__") and owner not in {"self", "cls"}:
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
            continue
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] not in {"pdr", "benchmarks"} and any(
                p.startswith("_") and p != "__future__" for p in parts
            ):
                found.append(f"{path.name}:{node.lineno}: {name}")
    return found


def test_llama_cpp_is_used_through_its_public_api_only() -> None:
    files = [*sorted((ROOT / "benchmarks").glob("*.py")), ROOT / "pdr" / "models" / "llama.py"]
    assert [hit for path in files for hit in _private_names(path)] == []


@pytest.mark.slow
def test_batched_decoding_counts_every_drafts_tokens_exactly() -> None:
    import llama_cpp

    from benchmarks.llama_batch import BatchedDecoder, Request
    from pdr.models.embedded import ensure_model_file

    llama = llama_cpp.Llama(
        model_path=str(ensure_model_file("fast")), n_ctx=512, n_threads=1, verbose=False
    )
    decoder = BatchedDecoder(llama, sequences=4, n_ctx=1024, threads=1)
    solve = [
        {"role": "system", "content": "You are careful."},
        {"role": "user", "content": "What is 17 * 23? Explain every step."},
    ]
    short = [{"role": "user", "content": "Reply with the single word OK."}]
    requests = [
        Request(solve, 12, 0.7, 1),
        Request(solve, 12, 0.7, 2),
        Request(short, 40, 0.0, 3),
        Request(solve, 5, 0.0, 4),
    ]
    try:
        drafted = decoder.generate(requests)
        for sequence, (request, draft) in enumerate(zip(requests, drafted, strict=True)):
            reference = llama.create_chat_completion(
                messages=request.messages,
                max_tokens=1,  # type: ignore[arg-type]
            )
            assert draft.input_tokens == reference["usage"]["prompt_tokens"]  # type: ignore[index]
            # llama.cpp's own memory holds exactly the prompt and every counted token
            assert decoder.kv_tokens(sequence) == draft.input_tokens + draft.output_tokens
    finally:
        decoder.close()
    assert [d.output_tokens for d in drafted[:2]] == [12, 12]  # the cap, exactly
    assert drafted[3].output_tokens == 5
    assert 0 < drafted[2].output_tokens < 40  # stopped at its end-of-generation token
    assert [d.shared_prompt for d in drafted] == [False, True, False, True]


@pytest.mark.slow
def test_the_quick_benchmark_runs_and_writes_its_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for section in ("startup", "orchestration", "gc", "profile", "scale", "embedded"):
        assert section in results, section
    main = results["orchestration"]["cells"]["main"]
    assert [cell["cell"] for cell in main] == [
        "[1, 1] topk/vote",
        "[4, 1] topk/vote",
        "[4, 2, 1] topk/vote",
    ]
    assert all(cell["tools"]["pdr ainvoke"]["wall_s"]["n"] == 2 for cell in main)
    table = (tmp_path / "results.md").read_text()
    for heading in ("## Orchestration", "## Memory and scale", "## Start-up"):
        assert heading in table

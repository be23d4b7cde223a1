"""Faults at the HTTP level: one test per fault class, against the fault-injecting server.

The model is the OpenAI-compatible server on loopback (tests/openai_server.py, a double for a
paid API or a vLLM server, which cannot run here), reached through ``vllm:fake@http://...``: pdr's
real OpenAI client, httpx and LangChain sit between. Each test injects one kind of fault into the
server's replies (a hang, a rate limit with Retry-After, a reply that is not JSON or has no
choices, a failing branch beside slow siblings, a reply cut at its output cap, escape sequences,
a password in the model URL) and checks what pdr does, from the server's own request log and
from the ledger.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from pdr import calls
from pdr.cli import app
from pdr.graphs.catalog import make_context
from pdr.models.base import count_pieces
from pdr.nodes.long_cot import long_cot_messages
from pdr.runner import run_problem
from pdr.store.ledger import Ledger
from tests.openai_server import FakeOpenAIServer, Fault, Served
from tests.postgres import PostgresServer

PROBLEM = "What is 17 * 23?"
NOT_JSON = b'{"id": "chatcmpl-1", "choices": [ {"mess'
NO_CHOICES = json.dumps(
    {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}
).encode()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    yield


def on(numbers: set[int], fault: Fault) -> object:
    """A fault hook that injects ``fault`` into the requests numbered ``numbers`` (1-based)."""

    def hook(served: Served) -> Fault | None:
        return fault if served.number in numbers else None

    return hook


def files(tmp_path: Path) -> list[str]:
    return ["--db", str(tmp_path / "ledger.sqlite"), "--checkpoints", str(tmp_path / "cp.sqlite")]


def stored(tmp_path: Path, thread: str) -> object:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.get_run(thread)
    ledger.close()
    assert run is not None
    return run


async def long_cot_run(server: FakeOpenAIServer, tmp_path: Path, **values: object) -> object:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    outcome = await run_problem(
        graph="long_cot",
        problem=PROBLEM,
        context=make_context("long_cot", model=server.spec(), **values),
        thread_id="t",
        ledger=ledger,
        checkpoints=tmp_path / "cp.sqlite",
    )
    ledger.close()
    return outcome


# -- 1. time-outs -----------------------------------------------------------------------------


async def test_a_hung_call_is_cancelled_at_the_timeout_recorded_and_retried(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer(fault=on({1}, Fault(hang=60))) as server:
        outcome = await long_cot_run(server, tmp_path, timeout=0.5, max_retries=1)
        arrived = [served.arrived for served in server.requests]
    assert outcome.status == "done" and outcome.answer == "391"  # type: ignore[attr-defined]
    # The hung request was given up after 0.5 s, not waited out for 60.
    assert len(arrived) == 2 and arrived[1] - arrived[0] < 10
    run = stored(tmp_path, "t")
    first_try, second_try = run.call_records  # type: ignore[attr-defined]
    context = make_context("long_cot", model=server.spec())
    prompt = count_pieces("\n".join(m["content"] for m in long_cot_messages(PROBLEM, context)))
    assert (first_try["attempt"], first_try["error"]) == (
        0,
        "cancelled: no reply within the timeout of 0.5 s",
    )
    # A cancelled attempt counts its prompt, estimated (the server reported nothing).
    assert (first_try["input_tokens"], first_try["output_tokens"], first_try["estimated"]) == (
        prompt,
        0,
        True,
    )
    # The server may have done the cancelled work: the retry is marked a repeat.
    assert (second_try["attempt"], second_try["error"], second_try["repeat"]) == (1, None, True)
    assert run.b_tot == prompt + second_try["input_tokens"] + second_try["output_tokens"]  # type: ignore[attr-defined]


async def test_a_server_that_never_answers_fails_the_run_after_its_retries(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer(fault=lambda served: Fault(hang=60)) as server:
        outcome = await long_cot_run(server, tmp_path, timeout=0.3, max_retries=1)
        assert len(server.requests) == 2
    assert outcome.status == "failed"  # type: ignore[attr-defined]
    assert outcome.error == (  # type: ignore[attr-defined]
        f"long_cot 1.0: long_cot call to '{server.spec()}': cancelled: no reply within the "
        f"timeout of 0.3 s"
    )


# -- 8. retries: Retry-After, malformed JSON, no choices --------------------------------------


async def test_a_rate_limit_is_retried_after_the_wait_the_server_asks_for(
    tmp_path: Path,
) -> None:
    limited = Fault(status=429, headers={"Retry-After": "1"})
    with FakeOpenAIServer(fault=on({1}, limited)) as server:
        outcome = await long_cot_run(server, tmp_path, max_retries=1)
        refused, answered = server.requests
    assert outcome.status == "done"  # type: ignore[attr-defined]
    assert answered.arrived - refused.finished >= 0.95  # the back-off alone would be 0 s
    errors = [r["error"] for r in stored(tmp_path, "t").call_records]  # type: ignore[attr-defined]
    assert errors[1] is None and errors[0] is not None and "RateLimitError" in errors[0]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (NOT_JSON, "the server sent a reply that is not JSON"),
        (NO_CHOICES, "the server sent a reply with no choices"),
    ],
)
async def test_malformed_and_empty_replies_are_retried(
    tmp_path: Path, body: bytes, said: str
) -> None:
    with FakeOpenAIServer(fault=on({1}, Fault(body=body))) as server:
        outcome = await long_cot_run(server, tmp_path, max_retries=1)
        assert len(server.requests) == 2
    assert outcome.status == "done"  # type: ignore[attr-defined]
    errors = [r["error"] for r in stored(tmp_path, "t").call_records]  # type: ignore[attr-defined]
    assert errors[1] is None and errors[0] is not None and said in errors[0]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            NOT_JSON,
            "the server sent a reply that is not JSON (Unterminated string starting at at "
            'character 35): \'{"id": "chatcmpl-1", "choices": [ {"mess\'',
        ),
        (NO_CHOICES, 'the server sent a reply with no choices: {"id": "x", "choices": [],'),
    ],
)
def test_a_server_that_keeps_sending_garbage_fails_in_one_clear_line(
    tmp_path: Path, body: bytes, said: str
) -> None:
    with FakeOpenAIServer(fault=lambda served: Fault(body=body)) as server:
        args = ["run", PROBLEM, "--graph", "long_cot", "--model", server.spec()]
        result = CliRunner().invoke(
            app, [*args, "--max-retries", "1", "--thread-id", "g", "-q", *files(tmp_path)]
        )
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    # Each reply came back from the server, so each attempt costs its prompt (56 tokens by the
    # backend's stand-in tokenizer): the request reached the model.
    long_cot = make_context("long_cot", model=server.spec())
    prompt = count_pieces("\n".join(m["content"] for m in long_cot_messages(PROBLEM, long_cot)))
    assert prompt == 56
    assert line.startswith(
        f"Error: run g failed after 2 calls ({2 * prompt} tokens): long_cot 1.0: long_cot call "
        f"failed: model '{server.spec()}': {said}"
    )
    assert line.endswith("; continue it with: pdr resume g")
    assert "list index out of range" not in line


# -- 6. a failing branch leaves its siblings alone ------------------------------------------


def test_a_failing_branch_lets_its_siblings_finish_and_resume_asks_only_it(
    tmp_path: Path,
) -> None:
    malformed = Fault(body=NOT_JSON)
    with FakeOpenAIServer(fault=lambda s: malformed if s.step == ("draft", 1, 1) else None) as srv:
        # Draft 1.1's reply is malformed at once; drafts 1.0 and 1.2 are still being written.
        srv.latency = lambda served: 0.5 if served.role == "draft" else 0.0
        args = ["run", PROBLEM, "--model", srv.spec(), "--schedule", "3,1", "--max-retries", "0"]
        result = CliRunner().invoke(app, [*args, "--thread-id", "b", "-q", *files(tmp_path)])
        assert result.exit_code == 1
        assert "draft 1.1: draft call failed:" in result.output
        assert srv.completed() == {("draft", 1, 0): 1, ("draft", 1, 2): 1}
        run = stored(tmp_path, "b")
        # The siblings' work is in the ledger (and in the checkpoint: see the resume below).
        assert Counter(
            (r["role"], r["index"], r["error"] is None)
            for r in run.call_records  # type: ignore[attr-defined]
        ) == {("draft", 0, True): 1, ("draft", 2, True): 1, ("draft", 1, False): 1}
        srv.fault = lambda served: None
        resumed = CliRunner().invoke(app, ["resume", "b", "-q", "--db", files(tmp_path)[1]])
        assert resumed.exit_code == 0, resumed.output
        assert srv.completed() == {
            ("draft", 1, 0): 1,
            ("draft", 1, 1): 1,
            ("draft", 1, 2): 1,
            ("distill", 1, 0): 1,
            ("refine", 2, 0): 1,
        }


# -- 7. truncation ---------------------------------------------------------------------------


def test_a_final_answer_cut_at_its_output_cap_says_so(tmp_path: Path) -> None:
    long_refine = "Step " * 40 + "so Answer: 391"
    with FakeOpenAIServer(reply=lambda body, i: long_refine) as server:
        args = ["run", PROBLEM, "--graph", "long_cot", "--model", server.spec()]
        result = CliRunner().invoke(
            app, [*args, "--max-tokens", "20", "--thread-id", "c", "-q", *files(tmp_path)]
        )
    assert result.exit_code == 3, result.output
    assert "Truncated: the final call stopped at its output cap (raise --max-tokens)" in (
        result.output
    )
    run = stored(tmp_path, "c")
    assert run.status == "truncated"  # type: ignore[attr-defined]
    assert [r["truncated"] for r in run.call_records] == [True]  # type: ignore[attr-defined]
    shown = CliRunner().invoke(app, ["runs", "show", "c", "--db", files(tmp_path)[1]])
    assert "status truncated" in shown.output
    assert "Truncated: the final call stopped at its output cap" in shown.output


# -- 9. escape sequences ---------------------------------------------------------------------


def test_escape_sequences_from_the_model_never_reach_the_terminal(tmp_path: Path) -> None:
    hostile = "\x1b]0;PWNED\x07 17 * 23 = 391 .\x1b[2J Answer: 391\x9b"
    with FakeOpenAIServer(reply=lambda body, i: hostile) as server:
        run = CliRunner().invoke(
            app,
            [
                "run",
                PROBLEM,
                "--model",
                server.spec(),
                "--schedule",
                "2,1",
                "--thread-id",
                "e",
                *files(tmp_path),
            ],
        )
    show = CliRunner().invoke(app, ["runs", "show", "e", "--db", files(tmp_path)[1]])
    listed = CliRunner().invoke(app, ["runs", "list", "--db", files(tmp_path)[1]])
    for result in (run, show, listed):
        assert result.exit_code == 0, result.output
        assert not set(result.output) & {"\x1b", "\x07", "\x9b"}, repr(result.output)
    assert "Answer: 391" in run.output and "]0;PWNED" in show.output


# -- 10. secrets ------------------------------------------------------------------------------


def test_a_password_in_the_model_url_is_never_stored_or_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PDR_MODEL", raising=False)
    with FakeOpenAIServer(fault=on({4}, Fault(body=NOT_JSON))) as server:
        secret = server.spec().replace("http://", "http://user:s3cret-pw@")
        args = ["run", PROBLEM, "--model", secret, "--schedule", "2,1", "--max-retries", "0"]
        failed = CliRunner().invoke(app, [*args, "--thread-id", "s", *files(tmp_path)])
        assert failed.exit_code == 1  # the refine call failed: the run waits for a resume
        listed = CliRunner().invoke(app, ["runs", "list", "--db", files(tmp_path)[1]])
        shown = CliRunner().invoke(app, ["runs", "show", "s", "--db", files(tmp_path)[1]])
        refused = CliRunner().invoke(app, ["resume", "s", "--db", files(tmp_path)[1]])
        monkeypatch.setenv("PDR_MODEL", secret)
        resumed = CliRunner().invoke(app, ["resume", "s", "-q", "--db", files(tmp_path)[1]])
    assert refused.exit_code == 2
    assert refused.output.startswith(
        "Error: THREAD_ID: the stored run cannot be resumed: model: the run used "
        "'vllm:fake@http://user:***@127.0.0.1:"
    )
    assert "set PDR_MODEL to the full value (with the password) to resume it" in refused.output
    assert resumed.exit_code == 0, resumed.output
    assert "user:***@" in listed.output and "user:***@" in shown.output
    for result in (failed, listed, shown, refused, resumed):
        assert "s3cret-pw" not in result.output
    for written in tmp_path.iterdir():  # the ledger, the checkpoints and their WAL files
        if written.is_file():
            assert b"s3cret-pw" not in written.read_bytes(), written.name


def test_a_password_in_the_database_url_is_never_stored_or_shown(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ledger and checkpoints in a real PostgreSQL database reached with a password."""
    monkeypatch.delenv("PDR_CHECKPOINTS", raising=False)
    url = postgres.create_schema(password="db-s3cret")
    shown_url = url.replace(":db-s3cret@", ":***@")
    with FakeOpenAIServer(fault=on({4}, Fault(body=NOT_JSON))) as server:
        args = ["run", PROBLEM, "--model", server.spec(), "--schedule", "2,1", "--max-retries", "0"]
        where = ["--db", url, "--checkpoints", url]
        failed = CliRunner().invoke(app, [*args, "--thread-id", "s", *where])
        assert failed.exit_code == 1
        shown = CliRunner().invoke(app, ["runs", "show", "s", "--db", url])
        refused = CliRunner().invoke(app, ["resume", "s", "--db", url])
        monkeypatch.setenv("PDR_CHECKPOINTS", url)
        resumed = CliRunner().invoke(app, ["resume", "s", "-q", "--db", url])
    assert refused.exit_code == 2
    assert refused.output == (
        f"Error: --checkpoints: run s keeps its checkpoints in {shown_url}, whose password pdr "
        f"does not store; give the full URL with --checkpoints or PDR_CHECKPOINTS\n"
    )
    assert resumed.exit_code == 0, resumed.output
    for result in (failed, shown, refused, resumed):
        assert "db-s3cret" not in result.output
    ledger = Ledger(url)
    run = ledger.get_run("s")
    ledger.close()
    assert run is not None and run.status == "done" and run.checkpoints == shown_url
    # Every row of every table, the ledger's and LangGraph's, as text.
    with psycopg.connect(url) as connection:
        names = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        assert len(names) >= 10
        for (name,) in names:
            rows = connection.execute(f'SELECT t::text FROM "{name}" t').fetchall()
            assert not any("db-s3cret" in row[0] for row in rows), name


def test_a_password_in_the_model_url_of_an_experiment_is_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pdr eval` stores its experiment's configuration redacted; the same command resumes it and a
    joining worker takes the full spec from PDR_MODEL (refused, naming it, without)."""
    monkeypatch.delenv("PDR_MODEL", raising=False)
    ledger, checkpoints = tmp_path / "ledger.sqlite", tmp_path / "checkpoints.sqlite"
    where = ["--db", str(ledger), "--checkpoints", str(checkpoints), "--no-progress"]
    with FakeOpenAIServer() as server:
        secret = server.spec().replace("http://", "http://user:s3cret-pw@")
        args = ["eval", "--dataset", "synthetic:level=1,n=2,seed=0", "--method", "long_cot"]
        args += ["--config", "long_cot:max_tokens=32", "--model", secret, "--name", "x", *where]
        first = CliRunner().invoke(app, args)
        again = CliRunner().invoke(app, args)
        join = ["eval", "--join", "x", "--db", str(ledger), "--checkpoints", str(checkpoints)]
        refused = CliRunner().invoke(app, join)
        monkeypatch.setenv("PDR_MODEL", secret)
        joined = CliRunner().invoke(app, join)
        requests = len(server.requests)
    for result in (first, again, joined):
        assert result.exit_code == 0, result.output
    assert requests == 2  # the second command and the join found both runs done
    assert refused.exit_code == 2
    assert "set PDR_MODEL to the full model spec (with the password)" in refused.output
    for result in (first, again, refused, joined):
        assert "s3cret-pw" not in result.output
    for written in tmp_path.iterdir():
        if written.is_file():
            assert b"s3cret-pw" not in written.read_bytes(), written.name

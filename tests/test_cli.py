"""The ``pdr`` command line: help, runs with live progress, one-line errors, the runs commands.

Commands run in-process through Typer's CliRunner with the scripted model registered (and once
as a real process, to see exactly what a shell sees); the ledger and checkpoints are SQLite
files in the test's folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pdr.cli import app
from pdr.graphs.catalog import CONTEXT_TYPES
from pdr.graphs.context import context_fields
from pdr.store.ledger import Ledger
from tests.scripted import ScriptedChatModel
from tests.test_runner import PROBLEM, call_cost, expected_budgets

ROOT = Path(__file__).resolve().parent.parent


def files(tmp_path: Path) -> list[str]:
    return ["--db", str(tmp_path / "ledger.sqlite"), "--checkpoints", str(tmp_path / "cp.sqlite")]


@pytest.mark.parametrize(
    "command",
    [[], ["run"], ["resume"], ["runs"], ["runs", "list"], ["runs", "show"], ["eval"], ["plot"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: pdr" in result.output or "Usage: root" in result.output


def test_run_shows_rounds_and_drafts_then_answer_and_budgets(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "run",
            PROBLEM,
            "--model",
            "scripted",
            "--schedule",
            "3,2,1",
            "--thread-id",
            "cli1",
            *files(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    b_seq, b_tot = expected_budgets(scripted)
    draft_1 = next(c for c in scripted.calls if (c.role, c.round) == ("draft", 1))
    draft_2 = next(c for c in scripted.calls if (c.role, c.round) == ("draft", 2))
    out = 8  # a draft reply is 8 words
    in_1, in_2 = call_cost(scripted, draft_1) - out, call_cost(scripted, draft_2) - out
    lines = result.output.splitlines()
    wall = re.search(r"wall: \d+\.\d s", result.output)
    assert wall is not None
    assert lines[0] == "round 1/3 started: 3 drafts"
    # Drafts of a round finish in any order.
    # (The scripted drafts disagree: round 1 answers 391, 400, 391; round 2 400, 391.)
    assert sorted(lines[1:4]) == [
        f"  draft 1.{i} finished: {in_1} in + {out} out tokens, answer {answer}"
        for i, answer in enumerate(("391", "400", "391"))
    ]
    assert lines[4:6] == [
        "  workspace written after round 1: 12 tokens",
        "round 2/3 started: 2 drafts",
    ]
    assert sorted(lines[6:8]) == [
        f"  draft 2.{i} finished: {in_2} in + {out} out tokens, answer {answer}"
        for i, answer in enumerate(("400", "391"))
    ]
    assert lines[8:] == [
        "  workspace written after round 2: 12 tokens",
        "Answer: 391",
        f"B_seq: {b_seq} tokens   B_tot: {b_tot} tokens   calls: 8   {wall.group(0)}",
        "Thread: cli1  (pdr runs show cli1)",
    ]
    assert len(scripted.calls) == 8


def test_every_run_context_field_is_an_option_of_run() -> None:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = {name for param in command.params for name in param.opts}
    for kind in CONTEXT_TYPES.values():
        for field_name in context_fields(kind):
            assert "--" + field_name.replace("_", "-") in options, field_name
    help_text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    # Help and defaults come from the fields: max_tokens differs per graph.
    assert "(default: pdr 512; sr 512; long_cot 2048)" in help_text
    assert "Retries of a call that failed for a transient reason. (default: 2)" in help_text


def test_a_changed_system_prompt_is_sent_and_recorded(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    custom = "You are terse. End with 'Answer: N'."
    options = ["--schedule", "2,1", "-q", "--thread-id", "p1", "--refine-system-prompt", custom]
    result = CliRunner().invoke(
        app, ["run", PROBLEM, "--model", "scripted", *options, *files(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert [c.prompt.split("\n")[0] for c in scripted.calls if c.role == "unknown"] == [custom]
    ledger = Ledger(tmp_path / "ledger.sqlite")
    stored = ledger.get_run("p1")
    assert stored is not None and stored.context["refine_system_prompt"] == custom
    ledger.close()
    shown = CliRunner().invoke(app, ["runs", "show", "p1", "--db", str(tmp_path / "ledger.sqlite")])
    assert f"Prompt refine_system_prompt (changed): {custom}" in shown.output.splitlines()
    assert "Prompt draft_system_prompt" not in shown.output


def test_run_reads_the_problem_from_a_file(scripted: ScriptedChatModel, tmp_path: Path) -> None:
    problem = tmp_path / "problem.txt"
    problem.write_text(PROBLEM + "\n")
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--file",
            str(problem),
            "--graph",
            "long_cot",
            "--model",
            "scripted",
            "-q",
            *files(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Answer: 391"
    [call] = scripted.calls
    assert call.role == "long_cot" and PROBLEM in call.prompt and call.max_tokens == 2048


BAD_OPTIONS = [
    (
        ["--schedule", "8,4"],
        "Error: --schedule: the last round is the refine step and must be 1, got 8,4; "
        "append 1, e.g. 8,4,1",
    ),
    (["--kappa", "0"], "Error: --kappa: must be a whole number >= 1, got 0"),
    (
        ["--distill", "best"],
        "Error: --distill: unknown operator 'best'; choose one of random_k, summary, topk, "
        "topk_per_sample",
    ),
    (["--graph", "tree"], "Error: --graph: unknown graph 'tree'; choose one of pdr, sr, long_cot"),
    (
        ["--distill", "topk", "--scorer", "judge"],
        "Error: --scorer: unknown scorer 'judge'; choose one of verify, vote",
    ),
    (
        ["--scorer", "verify"],
        "Error: --scorer: the summary operator ranks no drafts, so it takes no scorer; drop the "
        "scorer, or use topk or topk_per_sample",
    ),
    (
        ["--distill", "random_k", "--scorer", "vote"],
        "Error: --scorer: the random_k operator ranks no drafts, so it takes no scorer; drop the "
        "scorer, or use topk or topk_per_sample",
    ),
    (
        ["--schedule", "8,x,1"],
        "Error: --schedule: give drafts per round as whole numbers separated by commas, such as "
        "8,4,1; got '8,x,1'",
    ),
    (
        ["--graph", "sr", "--schedule", "3,1"],
        "Error: --schedule: --graph sr does not take it; it is for --graph pdr",
    ),
    (
        ["--graph", "long_cot", "--kappa", "64"],
        "Error: --kappa: --graph long_cot does not take it; it is for --graph pdr or sr",
    ),
    (
        ["--graph", "sr", "--distill", "topk"],
        "Error: --distill: only the pdr graph distills drafts; drop it",
    ),
    (["--temperature", "3"], "Error: --temperature: must be a number from 0.0 to 2.0, got 3.0"),
    (["--k", "0"], "Error: --k: must be a whole number >= 1, got 0"),
    (["--rounds", "0", "--graph", "sr"], "Error: --rounds: must be a whole number >= 1, got 0"),
    (
        ["--reasoning-effort", "max"],
        "Error: --reasoning-effort: must be 'minimal', 'low', 'medium' or 'high', got 'max'",
    ),
    (
        ["--kappa", "many"],
        "Error: --kappa: must be a whole number, got 'many'",
    ),
    (["--temperature", "hot"], "Error: --temperature: must be a number, got 'hot'"),
    (["--kapa", "3"], "Error: No such option: --kapa (Possible options: --graph, --k, --kappa)"),
]


@pytest.mark.parametrize(("options", "line"), BAD_OPTIONS)
def test_a_bad_option_gives_one_line_and_calls_no_model(
    scripted: ScriptedChatModel, tmp_path: Path, options: list[str], line: str
) -> None:
    result = CliRunner().invoke(
        app, ["run", PROBLEM, "--model", "scripted", *options, *files(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.splitlines() == [line]
    assert scripted.started == []
    assert not (tmp_path / "ledger.sqlite").exists()
    assert not (tmp_path / "cp.sqlite").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["run"], "Error: PROBLEM: give the problem as an argument, or --file PATH"),
        (["run", "   "], "Error: PROBLEM: the problem text is empty"),
        (
            ["run", "--file", "/nonexistent/p.txt"],
            "Error: --file: cannot read '/nonexistent/p.txt': No such file or directory",
        ),
        (["run", PROBLEM, "--model", "nosuch:model"], "Error: --model: model 'nosuch:model': "),
        (
            ["run", PROBLEM, "--draft-model", "  "],
            "Error: --draft-model: must be a model spec string or left unset (None)",
        ),
        (["fly"], "Error: No such command 'fly'."),
    ],
)
def test_other_mistakes_give_one_line(
    scripted: ScriptedChatModel, tmp_path: Path, args: list[str], line: str
) -> None:
    result = CliRunner().invoke(app, [*args, *files(tmp_path)])
    assert result.exit_code == 2
    [only] = result.output.splitlines()
    assert only.startswith(line)
    assert scripted.started == []


@pytest.mark.slow
def test_output_survives_a_library_that_mutes_stdout(tmp_path: Path) -> None:
    """llama.cpp's quiet model loads can leave fds 1 and 2 on /dev/null; the CLI still prints."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.scripted_cli",
            "run",
            PROBLEM,
            "--model",
            "scripted",
            "--graph",
            "sr",
            "--rounds",
            "2",
            "--thread-id",
            "m1",
            *files(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PDR_TEST_MUTE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "round 1/2 started: 1 drafts"
    assert lines[-3] == "Answer: 391"
    assert lines[-1] == "Thread: m1  (pdr runs show m1)"


@pytest.mark.slow
def test_a_real_process_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    """What a shell sees: stderr holds one line, stdout nothing, the status is 2."""
    done = subprocess.run(
        [sys.executable, "-m", "pdr.cli", "run", PROBLEM, "--kappa", "0", *files(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "Error: --kappa: must be a whole number >= 1, got 0\n"


def test_a_failing_model_ends_with_one_line_and_the_resume_command(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    scripted.script.fail = lambda call: (
        RuntimeError("quota exceeded") if call.role == "refine" else None
    )
    result = CliRunner().invoke(
        app,
        [
            "run",
            PROBLEM,
            "--model",
            "scripted",
            "--graph",
            "sr",
            "--rounds",
            "2",
            "-q",
            "--thread-id",
            "f1",
            *files(tmp_path),
        ],
    )
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: run f1 failed after 2 calls (")
    assert "quota exceeded" in line and line.endswith("continue it with: pdr resume f1")

    scripted.script.fail = lambda call: None
    resumed = CliRunner().invoke(app, ["resume", "f1", "-q", *files(tmp_path)])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.splitlines()[0] == "Answer: 391"
    assert [c.role for c in scripted.calls] == ["draft", "refine"]


def test_resume_and_show_of_an_unknown_run_say_so(tmp_path: Path) -> None:
    for args in (["resume", "nope"], ["runs", "show", "nope"]):
        result = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "ledger.sqlite")])
        assert result.exit_code == 1
        [line] = result.output.splitlines()
        assert re.fullmatch(
            r"Error: (THREAD_ID|ID): no run 'nope' in the ledger sqlite:///.*; see pdr runs list",
            line,
        )


def test_runs_list_and_show(scripted: ScriptedChatModel, tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "ledger.sqlite")]
    empty = CliRunner().invoke(app, ["runs", "list", *db])
    assert empty.exit_code == 0
    assert empty.output.startswith("No runs in sqlite:///")
    for thread, graph in (("one", "pdr"), ("two", "long_cot")):
        extra = ["--schedule", "2,1"] if graph == "pdr" else []
        ran = CliRunner().invoke(
            app,
            [
                "run",
                PROBLEM,
                "--model",
                "scripted",
                "--graph",
                graph,
                "--thread-id",
                thread,
                "-q",
                *extra,
                *files(tmp_path),
            ],
        )
        assert ran.exit_code == 0, ran.output
    ledger = Ledger(tmp_path / "ledger.sqlite")
    one, two = ledger.get_run("one"), ledger.get_run("two")
    ledger.close()
    assert one is not None and two is not None

    listed = CliRunner().invoke(app, ["runs", "list", *db])
    assert listed.exit_code == 0
    rows = [line.split("│")[1:-1] for line in listed.output.splitlines() if line.startswith("│")]
    cells = [[cell.strip() for cell in row][:10] for row in rows]
    assert cells == [
        [
            "2",
            "two",
            "long_cot",
            "scripted",
            "done",
            "391",
            str(two.b_seq),
            str(two.b_tot),
            "1",
            f"{two.wall_s:.1f}",
        ],
        [
            "1",
            "one",
            "pdr",
            "scripted",
            "done",
            "391",
            str(one.b_seq),
            str(one.b_tot),
            "4",
            f"{one.wall_s:.1f}",
        ],
    ]
    limited = CliRunner().invoke(app, ["runs", "list", "--limit", "1", *db])
    assert sum(line.startswith("│") for line in limited.output.splitlines()) == 1

    shown = CliRunner().invoke(app, ["runs", "show", "1", *db])
    assert shown.exit_code == 0
    out = shown.output
    assert out.splitlines()[:4] == [
        "Run 1  thread one  pdr (summary)  status done",
        "Models: model scripted",
        "Parameters: schedule=[2, 1], kappa=384, k=2, max_tokens=512, temperature=0.7, seed=0",
        f"Problem: {PROBLEM}",
    ]
    assert "Round 1" in out and "Round 2" in out and "Workspace after round 1: 12 tokens" in out
    assert "Notes: the attempts agree on 391 ; check 17 * 23 ." in out
    call_rows = [
        [cell.strip() for cell in line.split("│")[1:-1]][:8]
        for line in out.splitlines()
        if line.startswith("│ ") and line.split("│")[1].strip() in {"draft", "distill", "refine"}
    ]
    records = one.call_records
    assert call_rows == [
        [
            r["role"],
            str(r["index"]),
            "0",
            str(r["input_tokens"]),
            str(r["output_tokens"]),
            "0",
            "0",
            str(r["input_tokens"] + r["output_tokens"]),
        ]
        for r in records
    ]
    assert [r["role"] for r in records] == ["draft", "draft", "distill", "refine"]
    assert (
        f"B_seq: {one.b_seq} tokens   B_tot: {one.b_tot} tokens   calls: 4 (recorded: "
        f"B_seq {one.b_seq}, B_tot {one.b_tot})"
    ) in out
    by_thread = CliRunner().invoke(app, ["runs", "show", "two", *db])
    assert by_thread.output.splitlines()[0] == "Run 2  thread two  long_cot  status done"

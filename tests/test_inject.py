"""The verification experiment: a planted candidate among round 1's drafts, and its report.

The model is the scripted chat model of tests/scripted.py (a double: runs must be offline and
fast here), scripted so that the verify scorer grades like a perfect verifier and the refine step
copies the best candidate; then a correct plant must win and a wrong one must lose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pdr.cli.evaluate import register
from pdr.evaluation.datasets import load_dataset
from pdr.evaluation.inject import planted_solution, wrong_answer
from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import register_model, unregister_model
from pdr.runner import run_problem
from pdr.store.ledger import Ledger
from tests.scripted import Call, Script, ScriptedChatModel

PROBLEM = "What is 17 * 23?"
PLANT = "Working through each step of the problem gives 391.\nAnswer: 391"


def usage(call: Call, text: str) -> tuple[int, int]:
    """Fixed usage for budgets by hand: drafts 100 + 10 (i + 1), summary 340, refine 200."""
    if call.role == "draft":
        return 100, 10 * (call.index + 1)
    return (300, 40) if call.role == "distill" else (150, 50)


@pytest.mark.parametrize("batch", [False, True])
async def test_a_planted_candidate_joins_round_one_without_a_call(
    batch: bool, scripted: ScriptedChatModel
) -> None:
    scripted.script = Script(usage=usage)
    graph = build_pdr(batch_drafts=batch).compile()
    out = await graph.ainvoke(
        {"problem": PROBLEM},
        context=PDRContext(model="scripted", schedule=[3, 1], injected_draft=PLANT),
    )
    # Three model drafts, then the plant as draft 3: no model call, a 0-token record.
    assert sorted(c.index for c in scripted.calls if c.role == "draft") == [0, 1, 2]
    [planted] = [c for c in out["calls"] if c.get("injected")]
    assert (planted["role"], planted["round"], planted["index"]) == ("draft", 1, 3)
    assert (planted["input_tokens"], planted["output_tokens"], planted["model"]) == (
        0,
        0,
        "injected",
    )
    assert planted["texts"] == [PLANT]
    summary = next(c for c in scripted.calls if c.role == "distill")
    assert f"Attempt 4:\n{PLANT}" in summary.prompt
    # Budgets as without the plant: drafts 110 / 120 / 130, summary 340, refine 200.
    assert (out["b_seq"], out["b_tot"]) == (130 + 340 + 200, 110 + 120 + 130 + 340 + 200)


async def test_the_ledger_keeps_the_plant_marked(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    outcome = await run_problem(
        graph="pdr",
        problem=PROBLEM,
        context=PDRContext(model="scripted", schedule=[2, 1], injected_draft=PLANT),
        distill="topk",
        ledger=ledger,
        checkpoints=tmp_path / "checkpoints.sqlite",
    )
    stored = ledger.get_run(outcome.thread_id)
    assert stored is not None
    drafts = sorted(
        (c["index"], bool(c.get("injected")), c["input_tokens"], c["model"])
        for c in stored.call_records
        if c["role"] == "draft"
    )
    assert drafts == [
        (0, False, drafts[0][2], "scripted"),
        (1, False, drafts[1][2], "scripted"),
        (2, True, 0, "injected"),
    ]
    ledger.close()


def test_planted_solutions() -> None:
    assert planted_solution("12", "correct") == (
        "Working through each step of the problem gives 12.\nAnswer: 12"
    )
    assert planted_solution("12", "incorrect").endswith("Answer: 13")  # 12 + 10%, at least 1
    assert wrong_answer("150") == "165"
    assert wrong_answer("0.5") == "3/2"
    assert wrong_answer("\\frac{1}{2}") == "\\frac{1}{2} + 1"
    with pytest.raises(ValueError, match="inject: choose correct or incorrect"):
        planted_solution("12", "maybe")


DATASET = "synthetic:level=1,n=3,seed=0"
MODEL = "scripted-inject"


@pytest.fixture
def verifier() -> Iterator[ScriptedChatModel]:
    """Drafts always wrong (0); a verifier that knows the gold; a refine step that copies the
    first candidate it is shown."""
    golds = {p.problem: p.answer for p in load_dataset(DATASET).problems}

    def gold_of(call: Call) -> str:
        return next(gold for problem, gold in golds.items() if problem in call.prompt)

    def score(call: Call) -> int:
        shown = re.findall(r"Answer: (\S+)", call.prompt.split("Proposed solution:")[-1])
        return 9 if shown and shown[-1] == gold_of(call) else 2

    def answer(call: Call) -> str:
        if call.role == "draft":
            return "0"
        first = call.prompt.split("Candidate solution 1:")[-1]
        return re.findall(r"Answer: (\S+)", first)[0]

    model = ScriptedChatModel(script=Script(answer=answer, score=score))
    register_model(MODEL, model)
    yield model
    unregister_model(MODEL)


def test_eval_inject_reports_accuracy_with_and_without_the_plant(
    verifier: ScriptedChatModel, tmp_path: Path
) -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--dataset",
            DATASET,
            "--model",
            MODEL,
            "--method",
            "pdr",
            "--config",
            "pdr:schedule=[2,1],max_tokens=64,k=1,distill=topk,scorer=verify",
            "--config",
            "pdr:schedule=[2,1],max_tokens=64,k=1,distill=topk,scorer=vote",
            "--inject",
            "correct",
            "--inject",
            "incorrect",
            "--database",
            str(tmp_path / "ledger.sqlite"),
            "--checkpoints",
            str(tmp_path / "checkpoints.sqlite"),
            "--no-progress",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    # 2 configurations x 3 variants x 3 problems; the plants cost no call.
    drafts = sum(1 for call in verifier.calls if call.role == "draft")
    assert drafts == 2 * 3 * 3 * 2
    text = (tmp_path / "out" / "results.md").read_text()
    table = text.split("Accuracy with a candidate planted among round 1's drafts:\n\n")[1]
    # A perfect verifier takes the right plant and leaves the wrong one; a vote of two wrong
    # drafts that agree outvotes any single plant.
    none, right = "0.0% (0.0-56.1%, n=3)", "100.0% (43.9-100.0%, n=3)"
    assert table.splitlines() == [
        "| configuration | no planted candidate | correct one planted | wrong one planted |",
        "|---|---|---|---|",
        f"| distill=topk k=1 max_tokens=64 schedule=[2,1] scorer=verify | {none} | {right} "
        f"| {none} |",
        f"| distill=topk k=1 max_tokens=64 schedule=[2,1] scorer=vote | {none} | {none} | {none} |",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--inject", "maybe"], "--inject 'maybe': choose correct or incorrect"),
        (["--inject", "correct", "--budget", "100"], "give it without --budget"),
        (["--inject", "correct", "--method", "sr"], "add --method pdr"),
    ],
)
def test_eval_inject_refuses_what_it_cannot_compare(
    extra: list[str], message: str, tmp_path: Path
) -> None:
    app = typer.Typer()
    register(app)
    args: list[Any] = ["eval", "--dataset", DATASET, "--model", "scripted", *extra]
    args += ["--database", str(tmp_path / "ledger.sqlite")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "ledger.sqlite").exists()

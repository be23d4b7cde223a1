"""`pdr eval` and `pdr plot` through Typer's test runner, on the scripted model.

The commands are added to a fresh Typer app with ``register`` (what ``pdr.cli`` does), so these
tests do not depend on the rest of the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pdr.cli.evaluate import register
from pdr.evaluation.datasets import load_dataset
from pdr.evaluation.report import BUDGET_NOTE
from pdr.models import register_model, unregister_model
from pdr.store.ledger import Ledger
from tests.scripted import Call, Script, ScriptedChatModel

MODEL = "scripted-cli"
DATASET = "synthetic:level=1,n=3,seed=0"


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    return application


@pytest.fixture
def model() -> Iterator[ScriptedChatModel]:
    golds = {p.problem: p.answer for p in load_dataset(DATASET).problems}

    def answer(call: Call) -> str:
        return next((gold for problem, gold in golds.items() if problem in call.prompt), "0")

    scripted = ScriptedChatModel(
        script=Script(answer=answer, usage=lambda call, text: (10, int(call.max_tokens or 0)))
    )
    register_model(MODEL, scripted)
    yield scripted
    unregister_model(MODEL)


def eval_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--dataset",
        DATASET,
        "--model",
        MODEL,
        "--database",
        str(tmp_path / "ledger.sqlite"),
        "--checkpoints",
        str(tmp_path / "checkpoints.sqlite"),
        "--no-progress",
        *extra,
    ]


def test_eval_writes_tables_and_figures_then_resumes_with_no_calls(
    app: typer.Typer, model: ScriptedChatModel, tmp_path: Path
) -> None:
    runner = CliRunner()
    args = eval_args(
        tmp_path,
        "--method",
        "long_cot",
        "--method",
        "sr",
        "--config",
        "long_cot:max_tokens=8",
        "--config",
        "long_cot:max_tokens=32",
        "--config",
        "sr:rounds=2,max_tokens=8,kappa=8",
        "--budget",
        "20",
        "--budget",
        "40",
        "--calibrate",
        "1",
        "--out",
        str(tmp_path / "out"),
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "budget matching" in result.output
    # Calibration: 3 configs on 1 item (1 + 1 + 2 calls); then the picks (all three) on 2 more.
    assert len(model.calls) == 4 + 2 * 4
    for name in ("results.md", "results.csv", "accuracy.png", "accuracy.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    table = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert [line.split(" | ")[:7] for line in table[2:5]] == [
        ["| long_cot", "1", "max_tokens=8", "3", "100.0%", "43.9-100.0%", "18"],
        ["| long_cot", "2", "max_tokens=32", "3", "100.0%", "43.9-100.0%", "42"],
        ["| sr", "1", "kappa=8 max_tokens=8 rounds=2", "3", "100.0%", "43.9-100.0%", "36"],
    ]
    assert table[5:10] == ["", BUDGET_NOTE, "", "Budget matching (calibration runs):", ""]
    assert table[12:15] == [
        "| long_cot | max_tokens=8 | 1 | 18 | 20 |",
        "| long_cot | max_tokens=32 | 1 | 42 | 40 |",
        "| sr | kappa=8 max_tokens=8 rounds=2 | 1 | 36 | 20, 40 |",
    ]
    # Every draft gives the gold answer here; long CoT at SR's cap (8) is the check beside it.
    assert table[15:18] == ["", "Round-1 drafts and the final answer:", ""]
    assert table[20:] == [
        "| sr | kappa=8 max_tokens=8 rounds=2 | 3 | 3 | 100.0% | 100.0% | 100.0% | 100.0% "
        "| 100.0% | 0 | 0 |"
    ]

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(model.calls) == 12  # nothing run twice

    ledger = Ledger(str(tmp_path / "ledger.sqlite"))
    experiment = ledger.list_runs(limit=1)[0].experiment_id
    ledger.close()
    plotted = runner.invoke(
        app,
        [
            "plot",
            str(experiment),
            "--out",
            str(tmp_path / "figs"),
            "--stem",
            "reference",
            "--database",
            str(tmp_path / "ledger.sqlite"),
        ],
    )
    assert plotted.exit_code == 0, plotted.output
    for name in ("reference.md", "reference.csv", "reference.png", "reference.svg"):
        assert (tmp_path / "figs" / name).stat().st_size > 0
    assert (tmp_path / "figs" / "reference.md").read_text() == (
        tmp_path / "out" / "results.md"
    ).read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "beam"], "--method 'beam': choose from pdr, sr, long_cot"),
        (["--config", "pdr:schedule=[2,2]"], "the last round is the refine step"),
        (["--config", "sr:rounds=2", "--method", "pdr"], "--config names sr"),
        (["--budget", "0"], "--budget values are token counts >= 1"),
        (["--seeds", "0"], "must be >= 1"),
        (["--distill-temperature", "warm"], "--distill-temperature: must be a number, got 'warm'"),
    ],
)
def test_bad_options_fail_with_one_line(
    app: typer.Typer, model: ScriptedChatModel, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, eval_args(tmp_path, *extra))
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
    assert len(model.calls) == 0


def test_unknown_dataset_model_and_experiment(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--dataset", "nope.txt"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: unknown dataset 'nope.txt'")
    result = runner.invoke(
        app, ["eval", "--dataset", DATASET, "--model", "nosuchprovider:x", "--no-progress"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: model: ")
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["plot", "missing", "--database", str(tmp_path / "ledger.sqlite")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: no experiment 'missing' in the ledger")


def test_progress_lines_when_not_on_a_terminal(
    app: typer.Typer, model: ScriptedChatModel, tmp_path: Path
) -> None:
    args = eval_args(tmp_path, "--method", "long_cot", "--config", "long_cot:max_tokens=8")
    args.remove("--no-progress")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("evaluate:")]
    assert [line.split(" (")[0] for line in lines] == [
        "evaluate: 1/3 acc 100.0% of 1",
        "evaluate: 2/3 acc 100.0% of 2",
        "evaluate: 3/3 acc 100.0% of 3",
    ]


def test_every_shared_context_field_reaches_the_runs(
    app: typer.Typer, model: ScriptedChatModel, tmp_path: Path
) -> None:
    """Context fields that no configuration sets are options of eval, shared by every run."""
    custom = "You are terse. End with 'Answer: N'."
    args = eval_args(
        tmp_path,
        "--method",
        "long_cot",
        "--method",
        "sr",
        "--config",
        "long_cot:max_tokens=8",
        "--config",
        "sr:rounds=2,max_tokens=8,kappa=8",
        "--limit",
        "1",
        "--max-retries",
        "0",
        "--distill-temperature",
        "0.25",
        "--long-cot-system-prompt",
        custom,
    )
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ledger = Ledger(str(tmp_path / "ledger.sqlite"))
    runs = [ledger.get_run(run.thread_id) for run in ledger.list_runs()]
    ledger.close()
    contexts = {run.graph: run.context for run in runs if run is not None}
    assert set(contexts) == {"long_cot", "sr"}
    for context in contexts.values():
        assert (context["max_retries"], context["distill_temperature"]) == (0, 0.25)
    assert contexts["long_cot"]["long_cot_system_prompt"] == custom
    assert "long_cot_system_prompt" not in contexts["sr"]  # each method takes its own fields
    # The long CoT call went out with the custom prompt (the scripted model no longer knows its
    # role from it); SR's two calls kept their built-in prompts.
    unknown = [call for call in model.calls if call.role == "unknown"]
    assert [call.prompt.split("\n")[0] for call in unknown] == [custom]
    assert sorted(call.role for call in model.calls if call.role != "unknown") == [
        "draft",
        "refine",
    ]


def test_configurations_with_their_own_models_compare_two_models_in_one_experiment(
    app: typer.Typer, model: ScriptedChatModel, tmp_path: Path
) -> None:
    """Before and after training as one command: each --config names its model (same problems)."""
    wrong = ScriptedChatModel(script=Script(answer=lambda call: "0"))
    register_model("scripted-wrong", wrong)
    try:
        args = eval_args(
            tmp_path,
            "--method",
            "long_cot",
            "--config",
            "long_cot:max_tokens=8",
            "--config",
            "long_cot:max_tokens=8,model=scripted-wrong",
            "--out",
            str(tmp_path / "out"),
        )
        result = CliRunner().invoke(app, args)
    finally:
        unregister_model("scripted-wrong")
    assert result.exit_code == 0, result.output
    assert (len(model.calls), len(wrong.calls)) == (3, 3)
    table = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert [line.split(" | ")[:5] for line in table[2:4]] == [
        ["| long_cot", "1", "max_tokens=8", "3", "100.0%"],
        ["| long_cot", "2", "max_tokens=8 model=scripted-wrong", "3", "0.0%"],
    ]
    ledger = Ledger(str(tmp_path / "ledger.sqlite"))
    runs = [ledger.get_run(run.thread_id) for run in ledger.list_runs()]
    ledger.close()
    assert sorted(run.context["model"] for run in runs if run is not None) == [
        *[MODEL] * 3,
        *["scripted-wrong"] * 3,
    ]


def test_a_configuration_naming_an_unusable_model_stops_before_any_call(
    app: typer.Typer, model: ScriptedChatModel, tmp_path: Path
) -> None:
    args = eval_args(tmp_path, "--config", "long_cot:max_tokens=8,model=transformers:/nonexistent")
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "model: " in result.output and "/nonexistent" in result.output
    assert model.calls == []

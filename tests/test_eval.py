"""The evaluation harness on the scripted model: grid, ledger, resume, budget matching, report.

The scripted model (tests/scripted.py) stands in for a real one so budgets are exact: every call
reports (10 input, max_tokens output) tokens unless a test says otherwise, and it answers each
generated problem correctly or not as the test decides. Runs, results and checkpoints go to real
SQLite files in the test's folder, and then to the real PostgreSQL server the tests start.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pdr.evaluation.configs import Config, EvalError, EvalSpec, default_ladder, parse_config
from pdr.evaluation.datasets import load_dataset
from pdr.evaluation.harness import Harness, Progress
from pdr.evaluation.matching import Measurement, pick_configs
from pdr.evaluation.problems import Dataset
from pdr.evaluation.report import matching_markdown, stored_report
from pdr.models import register_model, unregister_model
from pdr.store.ledger import Ledger
from tests.conftest import Store
from tests.scripted import Call, Script, ScriptedChatModel

MODEL = "scripted-eval"


def answer_by_item(data: Dataset, right: Callable[[int], bool]) -> Callable[[Call], str]:
    """Answer item i's problem correctly when right(i), else off by one."""
    golds = [(p.problem, int(p.answer)) for p in data.problems]

    def answer(call: Call) -> str:
        for index, (problem, gold) in enumerate(golds):
            if problem in call.prompt:
                return str(gold if right(index) else gold + 1)
        return "0"

    return answer


def cap_usage(call: Call, text: str) -> tuple[int, int]:
    """10 prompt tokens, and an output as long as the call's cap: budgets follow the config."""
    return 10, int(call.max_tokens or 0)


@pytest.fixture
def data() -> Dataset:
    return load_dataset("synthetic:level=1,n=4,seed=0")


@pytest.fixture
def model(data: Dataset) -> Iterator[ScriptedChatModel]:
    scripted = ScriptedChatModel(
        script=Script(answer=answer_by_item(data, lambda i: i % 2 == 0), usage=cap_usage)
    )
    register_model(MODEL, scripted)
    yield scripted
    unregister_model(MODEL)


@pytest.fixture
def ledger(store: Store) -> Iterator[Ledger]:
    """The experiment's ledger: SQLite files, then the real PostgreSQL (``store``)."""
    opened = Ledger(store.ledger)
    CHECKPOINTS[id(opened)] = store.checkpoints
    yield opened
    opened.close()
    del CHECKPOINTS[id(opened)]


CHECKPOINTS: dict[int, str] = {}  # each test ledger's checkpoint location, beside it in the store


LADDER = [
    Config("long_cot", {"max_tokens": 8}),
    Config("sr", {"rounds": 2, "max_tokens": 8, "kappa": 8}),
    Config("pdr", {"schedule": [2, 1], "max_tokens": 8, "kappa": 4, "distill": "summary"}),
]


def harness(spec: EvalSpec, ledger: Ledger, tmp_path: Path, **options: object) -> Harness:
    return Harness(spec, ledger, checkpoints=CHECKPOINTS[id(ledger)], **options)  # type: ignore[arg-type]


async def test_grid_runs_every_cell_and_stores_it(
    data: Dataset, model: ScriptedChatModel, ledger: Ledger, tmp_path: Path
) -> None:
    spec = EvalSpec(dataset=data, model=MODEL, ladders=LADDER, seeds=[0, 1])
    seen: list[Progress] = []
    report = await harness(spec, ledger, tmp_path, on_progress=seen.append).run()

    # 3 configurations x 4 items x 2 seeds, every one in the ledger and linked to the experiment.
    results = ledger.results(report.experiment_id)
    assert len(results) == 24
    assert Counter(r.label for r in results) == {c.label: 8 for c in LADDER}
    assert {r.status for r in results} == {"done"}
    # Model calls: long CoT 1, SR 2 (draft, refine), PDR [2, 1] 4 (2 drafts, summary, refine).
    assert model.count("long_cot") == 8
    assert model.count("draft") == 8 * 1 + 8 * 2
    assert model.count("refine") == 8 + 8
    assert model.count("distill") == 8
    assert len(model.calls) == 8 * (1 + 2 + 4)

    rows = {row.method: row for row in report.rows}
    assert [row.method for row in report.rows] == ["long_cot", "sr", "pdr"]
    for row in report.rows:
        assert (row.n, row.correct, row.failed, row.accuracy) == (8, 4, 0, 0.5)
    # Exact budgets: every call is 10 in + its cap out. Long CoT: 18. SR: draft 18 + refine 18.
    # PDR: drafts (parallel, 18) + summary (10 + kappa 4) + refine 18; B_tot adds the second draft.
    assert (rows["long_cot"].b_seq, rows["long_cot"].b_tot, rows["long_cot"].calls) == (18, 18, 1)
    assert (rows["sr"].b_seq, rows["sr"].b_tot, rows["sr"].calls) == (36, 36, 2)
    assert (rows["pdr"].b_seq, rows["pdr"].b_tot, rows["pdr"].calls) == (50, 68, 4)

    # Runs share the checkpoint file: WAL mode, or concurrent runs hit "database is locked".
    if not CHECKPOINTS[id(ledger)].startswith("postgresql"):
        with closing(sqlite3.connect(CHECKPOINTS[id(ledger)])) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    # Progress: one update before and one after every run, with the running accuracy.
    assert seen[0] == Progress("evaluate", 0, 24)
    assert seen[-1].done == seen[-1].total == seen[-1].finished == 24
    assert seen[-1].accuracy == 0.5
    assert [p.done for p in seen] == list(range(25))

    # The ledger's own rows agree: graded, with gold answers and the experiment's item ids.
    first_item = next(r for r in results if r.item_id == data.problems[0].id)
    run = ledger.get_run(first_item.thread_id)
    assert run is not None
    assert (run.experiment_id, run.item_id, run.gold) == (
        report.experiment_id,
        data.problems[0].id,
        data.problems[0].answer,
    )
    assert run.grade is True


async def test_rerunning_a_finished_experiment_makes_no_call(
    data: Dataset, model: ScriptedChatModel, ledger: Ledger, tmp_path: Path
) -> None:
    spec = EvalSpec(dataset=data, model=MODEL, ladders=LADDER)
    first = await harness(spec, ledger, tmp_path).run()
    calls = len(model.calls)
    assert calls == 4 * 7

    seen: list[Progress] = []
    again = await harness(spec, ledger, tmp_path, on_progress=seen.append).run()
    assert len(model.calls) == calls
    assert again.experiment_id == first.experiment_id
    assert again.rows == first.rows
    assert seen == [Progress("evaluate", 12, 12, skipped=12)]


async def test_a_stopped_evaluation_resumes_without_redoing_finished_items(
    data: Dataset, model: ScriptedChatModel, ledger: Ledger, tmp_path: Path
) -> None:
    spec = EvalSpec(dataset=data, model=MODEL, ladders=LADDER)
    first = harness(spec, ledger, tmp_path, concurrency=1)
    task: asyncio.Task[object] | None = None

    def stop_after_five(progress: Progress) -> None:
        if progress.done == 5 and task is not None:
            task.cancel()  # what Ctrl-C does to `pdr eval`

    first.on_progress = stop_after_five
    task = asyncio.ensure_future(first.run())
    with pytest.raises(asyncio.CancelledError):
        await task
    done_cells = ledger.completed_items(first.experiment_id)
    assert len(done_cells) == 5
    calls_before = len(model.calls)
    # Cells run in order item by item (long CoT, SR, PDR): five cells cost 1+2+4+1+2 calls.
    assert calls_before == 10

    second = harness(spec, ledger, tmp_path, concurrency=2)
    report = await second.run()
    assert second.experiment_id == first.experiment_id
    # Only the seven missing cells ran: item 1's PDR (4 calls), items 2 and 3 (7 calls each).
    assert len(model.calls) - calls_before == 4 + 7 + 7
    assert len(ledger.completed_items(first.experiment_id)) == 12
    assert [(row.n, row.correct) for row in report.rows] == [(4, 2)] * 3


async def test_failed_runs_are_run_again_on_resume(
    data: Dataset, ledger: Ledger, tmp_path: Path
) -> None:
    broken_item = data.problems[3].problem
    scripted = ScriptedChatModel(
        script=Script(
            answer=answer_by_item(data, lambda i: True),
            usage=cap_usage,
            fail=lambda call: ValueError("model down") if broken_item in call.prompt else None,
        )
    )
    register_model(MODEL, scripted)
    try:
        spec = EvalSpec(dataset=data, model=MODEL, ladders=LADDER[:1])
        report = await harness(spec, ledger, tmp_path).run()
        assert [(r.n, r.correct, r.failed) for r in report.rows] == [(4, 3, 1)]
        assert len(scripted.calls) == 3  # the failing attempt is not a finished call

        scripted.script.fail = lambda call: None
        report = await harness(spec, ledger, tmp_path).run()
        assert [(r.n, r.correct, r.failed) for r in report.rows] == [(4, 4, 0)]
        assert len(scripted.calls) == 4
    finally:
        unregister_model(MODEL)


def test_pick_configs_takes_the_nearest_measured_budget() -> None:
    short, middle, long = (Config("long_cot", {"max_tokens": m}) for m in (100, 200, 400))
    two, three = (Config("sr", {"rounds": r}) for r in (2, 3))
    measured = [
        Measurement(short, 150.0, 2),
        Measurement(middle, 260.0, 2),
        Measurement(long, 450.0, 2),
        Measurement(two, 300.0, 2),
        Measurement(three, 500.0, 0),  # never measured: not a candidate
    ]
    picks = pick_configs(measured, [100, 205, 355, 1000])
    chosen = [(p.method, p.target, p.config, p.measured_b_seq) for p in picks]
    assert chosen == [
        ("long_cot", 100, short, 150.0),
        ("long_cot", 205, short, 150.0),  # 55 from both 150 and 260: the cheaper one
        ("long_cot", 355, middle, 260.0),  # 95 from both 260 and 450: the cheaper one
        ("long_cot", 1000, long, 450.0),
        ("sr", 100, two, 300.0),
        ("sr", 205, two, 300.0),
        ("sr", 355, two, 300.0),
        ("sr", 1000, two, 300.0),
    ]


async def test_budget_matching_runs_the_nearest_configuration_on_every_item(
    data: Dataset, model: ScriptedChatModel, ledger: Ledger, tmp_path: Path
) -> None:
    # Measured B_seq (10 in + cap out per call): long CoT 18, 26, 42; SR 2/3/4 rounds 36, 54, 72.
    ladder = [Config("long_cot", {"max_tokens": m}) for m in (8, 16, 32)] + [
        Config("sr", {"rounds": r, "max_tokens": 8, "kappa": 8}) for r in (2, 3, 4)
    ]
    spec = EvalSpec(dataset=data, model=MODEL, ladders=ladder, budgets=[21, 50], calibrate=2)
    phases: list[Progress] = []
    report = await harness(spec, ledger, tmp_path, on_progress=phases.append).run()

    assert [(m.config.label, m.b_seq, m.runs) for m in report.measurements] == [
        ("long_cot max_tokens=8", 18.0, 2),
        ("long_cot max_tokens=16", 26.0, 2),
        ("long_cot max_tokens=32", 42.0, 2),
        ("sr kappa=8 max_tokens=8 rounds=2", 36.0, 2),
        ("sr kappa=8 max_tokens=8 rounds=3", 54.0, 2),
        ("sr kappa=8 max_tokens=8 rounds=4", 72.0, 2),
    ]
    assert [(p.method, p.target, p.config.label) for p in report.picks] == [
        ("long_cot", 21, "long_cot max_tokens=8"),  # 3 from 18, 5 from 26
        ("long_cot", 50, "long_cot max_tokens=32"),
        ("sr", 21, "sr kappa=8 max_tokens=8 rounds=2"),
        ("sr", 50, "sr kappa=8 max_tokens=8 rounds=3"),
    ]
    # Only the picks ran beyond calibration; their calibration runs were not repeated.
    results = ledger.results(report.experiment_id)
    per_label = Counter(r.label for r in results)
    assert per_label == {
        "long_cot max_tokens=8": 4,
        "long_cot max_tokens=16": 2,
        "long_cot max_tokens=32": 4,
        "sr kappa=8 max_tokens=8 rounds=2": 4,
        "sr kappa=8 max_tokens=8 rounds=3": 4,
        "sr kappa=8 max_tokens=8 rounds=4": 2,
    }
    calibration_calls = 2 * (1 + 1 + 1 + 2 + 3 + 4)
    evaluation_calls = 2 * (1 + 1 + 2 + 3)
    assert len(model.calls) == calibration_calls + evaluation_calls
    assert [(p.phase, p.total) for p in phases if p.done == 0] == [("calibrate", 12)]
    assert next((p.phase, p.total) for p in phases if p.phase == "evaluate") == ("evaluate", 16)
    # The report shows the picks' achieved budgets over all four items, never the targets.
    assert [(r.method, r.level, r.b_seq, r.n) for r in report.rows] == [
        ("long_cot", 1, 18.0, 4),
        ("long_cot", 2, 42.0, 4),
        ("sr", 1, 36.0, 4),
        ("sr", 2, 54.0, 4),
    ]
    assert matching_markdown(report).splitlines()[2:5] == [
        "| long_cot | max_tokens=8 | 2 | 18 | 21 |",
        "| long_cot | max_tokens=16 | 2 | 26 | - |",
        "| long_cot | max_tokens=32 | 2 | 42 | 50 |",
    ]
    # The same report comes back from the ledger alone (what `pdr plot` uses).
    stored = stored_report(ledger, report.name)
    assert (stored.rows, stored.picks) == (report.rows, report.picks)


async def test_an_experiment_with_other_settings_is_not_resumed(
    data: Dataset, model: ScriptedChatModel, ledger: Ledger, tmp_path: Path
) -> None:
    spec = EvalSpec(dataset=data, model=MODEL, ladders=LADDER[:1])
    harness(spec, ledger, tmp_path, name="mine")
    other = EvalSpec(dataset=data, model=MODEL, ladders=LADDER[:2])
    with pytest.raises(
        EvalError, match=r"experiment 'mine' exists with other settings \(ladders differ\)"
    ):
        harness(other, ledger, tmp_path, name="mine")
    assert spec.default_name() != other.default_name()
    assert (
        spec.default_name()
        == EvalSpec(dataset=data, model=MODEL, ladders=LADDER[:1]).default_name()
    )


def test_configurations_from_text() -> None:
    config = parse_config("pdr:schedule=[4,2,1],max_tokens=128,kappa=64,distill=topk")
    assert config == Config(
        "pdr", {"schedule": [4, 2, 1], "max_tokens": 128, "kappa": 64, "distill": "topk"}
    )
    assert config.label == "pdr distill=topk kappa=64 max_tokens=128 schedule=[4,2,1]"
    assert parse_config("sr:rounds=3").params == {"rounds": 3}
    for bad, message in [
        ("beam:width=2", "start with a method"),
        ("sr:schedule=[2,1]", "not KEY=VALUE with a key of sr"),
        ("pdr:schedule=[2,2]", "the last round is the refine step"),
        ("long_cot:max_tokens=0", "max_tokens: must be a whole number >= 1"),
        ("pdr:distill=magic", "distill: unknown operator 'magic'; choose one of random_k"),
        ("pdr:scorer=verify", "scorer: the summary operator ranks no drafts"),
    ]:
        with pytest.raises(EvalError, match=message):
            parse_config(bad)


def test_default_ladders() -> None:
    assert [c.label for c in default_ladder("long_cot", 100)] == [
        "long_cot max_tokens=100",
        "long_cot max_tokens=200",
        "long_cot max_tokens=400",
    ]
    assert [c.params["rounds"] for c in default_ladder("sr", 100)] == [2, 3, 4]
    assert [c.params["schedule"] for c in default_ladder("pdr", 100)] == [[2, 1], [4, 1], [4, 2, 1]]
    with pytest.raises(EvalError):
        default_ladder("beam", 100)


async def test_an_instruction_is_appended_to_every_problem(
    data: Dataset, model: ScriptedChatModel, ledger: Ledger, tmp_path: Path
) -> None:
    instruction = "Write one line per step, then 'Answer: N'."
    spec = EvalSpec(dataset=data, model=MODEL, ladders=LADDER[1:2], instruction=instruction)
    assert spec.prompt(data.problems[0]) == f"{data.problems[0].problem}\n\n{instruction}"
    assert (
        spec.default_name()
        != EvalSpec(dataset=data, model=MODEL, ladders=LADDER[1:2]).default_name()
    )
    report = await harness(spec, ledger, tmp_path).run()
    assert len(model.calls) == 8
    assert all(instruction in call.prompt for call in model.calls)
    assert [(row.n, row.correct) for row in report.rows] == [(4, 2)]

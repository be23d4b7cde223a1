"""A few seeded updates of the tiny policy on the toy task, end to end, through the real parts.

The tiny Qwen2 policy (tests/toy_policy.py: the embedded model's tokenizer, a config, no download)
is trained by ``pdr.training.train``: rollouts from the long_cot graph and the one-round pdr graph,
graded by pdr's grader, CISPO + 0.1 SFT with TRL's GRPOTrainer, every rollout in a SQLite ledger.
The trained folder is then evaluated with the evaluation harness (``transformers:<folder>``, as
``pdr eval --model`` takes it) beside the untrained one, on the same seeds.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.toy_policy import NO_TRAIN_EXTRA

torch = pytest.importorskip("torch", reason=NO_TRAIN_EXTRA)

from typer.testing import CliRunner  # noqa: E402

from pdr.cli import app  # noqa: E402
from pdr.evaluation.configs import Config, EvalSpec  # noqa: E402
from pdr.evaluation.datasets import load_dataset  # noqa: E402
from pdr.evaluation.harness import run_eval  # noqa: E402
from pdr.evaluation.report import stored_report  # noqa: E402
from pdr.store.ledger import Ledger  # noqa: E402
from pdr.store.rollouts import list_rollouts, rollout_of  # noqa: E402
from pdr.training import TrainResult, TrainSettings, train  # noqa: E402
from tests.toy_policy import SHORT_PROMPTS, write_dataset  # noqa: E402

STEPS, PROBLEMS, GROUP = 3, 2, 8


@pytest.fixture(scope="module")
def single_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(
    toy_policy_dir: Path, tmp_path_factory: pytest.TempPathFactory, single_thread: Any
) -> tuple[TrainResult, Ledger, Path]:
    folder = tmp_path_factory.mktemp("toy-training")
    ledger = Ledger(folder / "ledger.sqlite")
    settings = TrainSettings(
        model=f"transformers:{toy_policy_dir}",
        dataset=str(write_dataset(folder / "toy.jsonl")),
        out=folder / "trained",
        steps=STEPS,
        problems_per_step=PROBLEMS,
        group_size=GROUP,
        max_tokens=6,
        kappa=64,
        learning_rate=3e-3,
        train_embeddings=True,
        name="toy",
        context=SHORT_PROMPTS,
    )
    return train(settings, ledger=ledger, progress=False), ledger, folder


def mean_reward(policy: Path, folder: Path, name: str) -> float:
    """The harness's accuracy of long CoT (the toy's reward) over 32 seeds of the toy problem."""
    spec = EvalSpec(
        dataset=load_dataset(str(folder / "toy.jsonl")),
        model=f"transformers:{policy}",
        ladders=[Config("long_cot", {"max_tokens": 6})],
        seeds=list(range(32)),
        context={"long_cot_system_prompt": SHORT_PROMPTS["long_cot_system_prompt"]},
    )
    ledger = Ledger(folder / f"{name}.sqlite")
    report = run_eval(spec, ledger, checkpoints=folder / f"{name}-cp.sqlite", concurrency=8)
    [row] = report.rows
    assert row.n == 32 and row.failed == 0
    return row.accuracy


def test_a_few_seeded_updates_raise_the_mean_reward(
    trained: tuple[TrainResult, Ledger, Path], toy_policy_dir: Path
) -> None:
    result, _, folder = trained
    before = mean_reward(toy_policy_dir, folder, "before")
    after = mean_reward(result.out, folder, "after")
    assert 0.2 <= before <= 0.8  # the untrained policy is right about half the time
    assert after >= before + 0.15, (before, after)


def test_every_update_is_half_long_trace_and_half_operator(
    trained: tuple[TrainResult, Ledger, Path],
) -> None:
    result, ledger, _ = trained
    rows = list_rollouts(ledger, result.experiment_id)
    assert len(rows) == STEPS * PROBLEMS * GROUP
    per_update = Counter((row.step, row.mode) for row in rows)
    half = PROBLEMS // 2 * GROUP
    assert per_update == {(step, mode): half for step in (1, 2, 3) for mode in ("long", "operator")}
    assert result.steps == STEPS
    assert [(r.step, r.mode, r.rollouts) for r in result.rewards] == [
        (step, mode, half) for step in (1, 2, 3) for mode in ("long", "operator")
    ]


def test_every_rollout_is_in_the_ledger_with_its_role_mode_and_reward(
    trained: tuple[TrainResult, Ledger, Path],
) -> None:
    result, ledger, _ = trained
    rows = list_rollouts(ledger, result.experiment_id)
    assert {(row.mode, row.role) for row in rows} == {("long", "long_cot"), ("operator", "refine")}
    assert all(row.training == "toy" and row.reward in (0.0, 1.0) for row in rows)
    for row in rows:
        run = ledger.get_run(row.thread_id)
        assert run is not None and run.status == "done"
        assert run.grade == (row.reward == 1.0)
        roles = Counter(call["role"] for call in run.call_records)
        # long CoT: one call; one PDR round with topk (vote): 2 drafts, no distill call, a refine
        assert roles == ({"long_cot": 1} if row.mode == "long" else {"draft": 2, "refine": 1})
        trained_call = run.call_records[-1]
        assert trained_call["role"] == row.role
        assert trained_call["output_tokens"] == row.trained_tokens
    # the curves are the ledger's figures
    for step_reward in result.rewards:
        scored = [r for r in rows if r.step == step_reward.step and r.mode == step_reward.mode]
        assert step_reward.correct == sum(r.reward == 1.0 for r in scored)
    assert [path.name for path in result.files] == ["history.csv", "rewards.png"]
    lines = (result.out / "history.csv").read_text().splitlines()
    assert len(lines) == 1 + STEPS


def test_the_harness_and_pdr_runs_read_the_rollouts(
    trained: tuple[TrainResult, Ledger, Path],
) -> None:
    result, ledger, folder = trained
    report = stored_report(ledger, "toy")
    assert {(row.method, row.n) for row in report.rows} == {("long_cot", 24), ("pdr", 24)}
    correct = sum(row.correct for row in report.rows)
    assert correct == sum(r.correct for r in result.rewards)
    rows = list_rollouts(ledger, result.experiment_id)
    shown = CliRunner().invoke(
        app, ["runs", "show", rows[-1].thread_id, "--db", str(folder / "ledger.sqlite")]
    )
    assert shown.exit_code == 0, shown.output
    reward = f"{rows[-1].reward:g}"
    assert (
        f"Training rollout of toy: update {STEPS}, mode operator, trained call refine "
        f"({rows[-1].trained_tokens} tokens), reward {reward}"
    ) in " ".join(shown.output.split())
    assert rollout_of(ledger, "not-a-thread") is None


def test_the_trained_folder_holds_weights_tokenizer_settings_and_curves(
    trained: tuple[TrainResult, Ledger, Path],
) -> None:
    result, _, _ = trained
    names = {path.name for path in result.out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "settings.json"} <= names
    assert {"history.csv", "rewards.png"} <= names

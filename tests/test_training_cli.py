"""``pdr train`` on the command line: one-line errors before anything loads, and a real run.

The errors need no train extra; the run trains the tiny policy of tests/toy_policy.py for one
update (the train extra).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdr.cli import app
from pdr.store.ledger import Ledger
from pdr.store.rollouts import list_rollouts
from tests.toy_policy import NO_TRAIN_EXTRA, SHORT_PROMPTS, write_dataset

HAS_TORCH = importlib.util.find_spec("torch") is not None


def train(tmp_path: Path, *options: str) -> tuple[int, str]:
    db = str(tmp_path / "ledger.sqlite")
    out = str(tmp_path / "out")
    result = CliRunner().invoke(app, ["train", "--out", out, "--db", db, *options])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--problems-per-step", "3"],
            "Error: --problems-per-step: must be even and >= 2 (half long-trace, half operator), "
            "got 3",
        ),
        (
            ["--group-size", "1"],
            "Error: --group-size: advantages are normalised within a group, so it needs >= 2 "
            "rollouts, got 1",
        ),
        (["--distill", "best"], "Error: --distill: unknown operator 'best'; choose one of"),
        (["--draft-system-prompt", ""], "Error: --draft-system-prompt: must be a non-empty text"),
        (["--temperature", "0"], "Error: --temperature: the trained calls must sample"),
        (
            ["--gradient-accumulation-steps", "3"],
            "Error: --gradient-accumulation-steps: must divide the 8 rollouts of a step",
        ),
    ],
)
def test_a_bad_option_is_one_line_naming_it_before_anything_runs(
    tmp_path: Path, options: list[str], message: str
) -> None:
    code, output = train(tmp_path, *options)
    assert code == 2
    assert output.startswith(message), output
    assert len(output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_missing_dataset_stops_the_run_before_the_ledger_gets_a_training(
    tmp_path: Path,
) -> None:
    code, output = train(tmp_path, "--dataset", str(tmp_path / "none.jsonl"))
    assert code == 2
    assert "no such dataset file" in output
    assert Ledger(tmp_path / "ledger.sqlite").find_experiment("anything") is None


@pytest.mark.skipif(not HAS_TORCH, reason=NO_TRAIN_EXTRA)
def test_vllm_without_a_gpu_is_refused(tmp_path: Path) -> None:
    code, output = train(tmp_path, "--vllm")
    assert code == 2
    assert output.strip() == (
        "Error: --vllm: TRL's vLLM engine needs a CUDA GPU; leave --vllm out here"
    )


@pytest.mark.skipif(not HAS_TORCH, reason=NO_TRAIN_EXTRA)
def test_one_update_of_the_tiny_policy_from_the_command_line(
    tmp_path: Path, toy_policy_dir: Path
) -> None:
    prompts = [f"--{name.replace('_', '-')}={text}" for name, text in SHORT_PROMPTS.items()]
    code, output = train(
        tmp_path,
        "--model", f"transformers:{toy_policy_dir}",
        "--dataset", str(write_dataset(tmp_path / "toy.jsonl")),
        "--steps", "1", "--group-size", "2", "--max-tokens", "6", "--kappa", "64",
        "--name", "cli-toy", "--threads", "1", "--no-progress",
        *prompts,
    )  # fmt: skip
    assert code == 0, output
    assert "cli-toy: mean reward of each update's rollouts (ledger)" in output
    assert "1 updates in" in output and "trained weights in" in output
    assert f"evaluate: pdr eval --model transformers:{tmp_path / 'out'}" in " ".join(output.split())
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert not (tmp_path / "out" / "rollout-checkpoints").exists()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    experiment = ledger.find_experiment("cli-toy")
    assert experiment is not None
    config = ledger.experiment_config(experiment)
    assert config["training"]["context"] == SHORT_PROMPTS
    assert len(ledger.results(experiment)) == 4
    code, output = train(tmp_path, "--name", "cli-toy", "--dataset", str(tmp_path / "toy.jsonl"))
    assert code == 2
    taken = "Error: --name: the ledger already has a training or experiment 'cli-toy'"
    assert output.strip() == taken


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason=NO_TRAIN_EXTRA)
def test_two_processes_under_accelerate_launch_share_one_training(
    tmp_path: Path, toy_policy_dir: Path
) -> None:
    """The multi-GPU route, on the CPU: ``accelerate launch`` starts two real processes (gloo).

    The main process creates the training in the ledger and saves the weights; each update's
    rollouts, from both processes together, are half long-trace and half operator.
    """
    prompts = [f"--{name.replace('_', '-')}={text}" for name, text in SHORT_PROMPTS.items()]
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "pdr.cli", "train",
        "--model", f"transformers:{toy_policy_dir}",
        "--dataset", str(write_dataset(tmp_path / "toy.jsonl")),
        "--steps", "2", "--group-size", "2", "--max-tokens", "6", "--kappa", "64",
        "--name", "two-processes", "--threads", "1", "--no-progress",
        "--db", str(tmp_path / "ledger.sqlite"), "--out", str(tmp_path / "out"),
        *prompts,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("2 updates in") == 1  # the main process reports
    ledger = Ledger(tmp_path / "ledger.sqlite")
    experiment = ledger.find_experiment("two-processes")
    assert experiment is not None
    rows = list_rollouts(ledger, experiment)
    assert Counter((row.step, row.mode) for row in rows) == {
        (step, mode): 2 for step in (1, 2) for mode in ("long", "operator")
    }
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert len((tmp_path / "out" / "history.csv").read_text().splitlines()) == 3

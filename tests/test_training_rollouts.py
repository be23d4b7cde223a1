"""Rollouts (TRL's rollout function) with the tiny policy: what a stopped-at-the-cap run trains."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.toy_policy import NO_TRAIN_EXTRA

torch = pytest.importorskip("torch", reason=NO_TRAIN_EXTRA)

from pdr.evaluation.problems import Problem  # noqa: E402
from pdr.models import register_model, unregister_model  # noqa: E402
from pdr.models.transformers_backend import (  # noqa: E402
    TransformersBackend,
    load_model,
    load_tokenizer,
)
from pdr.store.ledger import Ledger  # noqa: E402
from pdr.store.rollouts import list_rollouts  # noqa: E402
from pdr.training import TrainSettings  # noqa: E402
from pdr.training.mixture import mixture  # noqa: E402
from pdr.training.rollouts import Rollouts  # noqa: E402
from tests.toy_policy import GOLD, PROBLEM, SHORT_PROMPTS  # noqa: E402


def test_a_rollout_stopped_at_its_output_cap_is_graded_and_trained(
    toy_policy_dir: Path, tmp_path: Path
) -> None:
    """Two tokens cannot hold "Answer: 7": each run ends "truncated", reward 0, both tokens kept.

    A truncated run is a sample of the policy like any other (the evaluation counts it as
    finished), so it is trained with its reward; only a failed run is left out.
    """
    policy = TransformersBackend(
        "toy",
        model=load_model(toy_policy_dir),
        tokenizer=load_tokenizer(toy_policy_dir),
        keep_tokens=True,
    )
    register_model("toy-rollouts", policy)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    settings = TrainSettings(
        out=tmp_path / "out", max_tokens=2, group_size=2, kappa=64, context=SHORT_PROMPTS
    )
    schedule = mixture([Problem("toy", PROBLEM, GOLD)], steps=1, per_step=2, seed=0)
    experiment_id = ledger.create_experiment("cap", {})
    (tmp_path / "cp").mkdir()
    rollouts = Rollouts(
        settings,
        schedule,
        policy="toy-rollouts",
        ledger=ledger,
        experiment_id=experiment_id,
        checkpoints=tmp_path / "cp",
        pad_token=0,
    )
    try:
        made = asyncio.run(rollouts.run_batch([row.key for row in schedule for _ in range(2)]))
    finally:
        unregister_model("toy-rollouts")
    assert [(r.scheduled.mode, r.reward) for r in made] == [
        ("long", 0.0),
        ("long", 0.0),
        ("operator", 0.0),
        ("operator", 0.0),
    ]
    for rollout in made:
        run = ledger.get_run(rollout.thread_id)
        assert run is not None and run.status == "truncated"
        assert rollout.trained is not None and len(rollout.trained.completion_ids) == 2
    packed = rollouts.pack(made)
    assert packed["env_mask"] == [[1, 1]] * 4
    assert [row.trained_tokens for row in list_rollouts(ledger, experiment_id)] == [2, 2, 2, 2]

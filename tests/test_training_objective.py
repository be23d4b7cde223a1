"""J = J_CISPO + alpha * J_SFT, checked against numbers worked out by hand.

The loss goes through the real code path: ``OperatorTrainer._compute_loss`` (TRL's CISPO term, the
weight against the sampling policy, pdr's SFT term). A stand-in policy whose per-token
log-probabilities are one learnable tensor replaces the language model, so the loss and its
gradient with respect to those log-probabilities can be written down by hand.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.toy_policy import NO_TRAIN_EXTRA

torch = pytest.importorskip("torch", reason=NO_TRAIN_EXTRA)

from pdr.training.api import grpo_config  # noqa: E402
from pdr.training.objective import OperatorTrainer, sft_loss  # noqa: E402
from pdr.training.rollouts import pdr_reward  # noqa: E402
from pdr.training.settings import TrainSettings  # noqa: E402
from tests.toy_policy import tiny_model  # noqa: E402

LN2, LN4 = math.log(2.0), math.log(4.0)


class LogProbPolicy(torch.nn.Module):
    """Returns fixed per-token log-probabilities (a learnable tensor) in TRL's fused-head format."""

    def __init__(self, logps: list[list[float]]) -> None:
        super().__init__()
        self.logps = torch.nn.Parameter(torch.tensor(logps))

    def forward(self, input_ids: Any, attention_mask: Any, **kwargs: Any) -> SimpleNamespace:
        rows, width = input_ids.shape
        prompt = torch.zeros(rows, width - self.logps.shape[1])
        log_probs = torch.cat([prompt, self.logps], dim=1)
        return SimpleNamespace(log_probs=log_probs, entropy=torch.zeros_like(log_probs))


@pytest.fixture(scope="module")
def trainer(tiny_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> OperatorTrainer:
    from datasets import Dataset

    from pdr.models.transformers_backend import load_tokenizer

    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    out = tmp_path_factory.mktemp("objective")
    settings = TrainSettings(out=out, problems_per_step=2, group_size=2, epsilon_high=1.5)
    built = OperatorTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[pdr_reward],
        args=grpo_config(settings, out),
        train_dataset=Dataset.from_dict({"prompt": ["a", "a", "b", "b"]}),
        processing_class=tokenizer,
        rollout_func=lambda prompts, trainer: {},
        alpha=0.1,
    )
    # Set by transformers' training loop, which these tests do not run.
    built.current_gradient_accumulation_steps = 1
    built.model.train()
    return built


def batch(sampling: list[list[float]]) -> dict[str, Any]:
    """Two rollouts: A = +1 (correct, 2 tokens) and A = -1 (wrong, 1 token and a pad)."""
    return {
        "prompt_ids": torch.tensor([[5], [6]]),
        "prompt_mask": torch.ones(2, 1, dtype=torch.long),
        "completion_ids": torch.tensor([[7, 8], [9, 0]]),
        "completion_mask": torch.tensor([[1, 1], [1, 0]]),
        "advantages": torch.tensor([1.0, -1.0]),
        "num_items_in_batch": torch.tensor(3.0),
        "sampling_per_token_logps": torch.tensor(sampling),
        "sft_mask": torch.tensor([[1, 1], [0, 0]]),
        "sft_tokens_in_batch": torch.tensor(2.0),
    }


# The policy's log-probabilities, and the sampler's: importance weights r = 2, 1/2 (row 0) and 4.
POLICY = [[-1.0, -2.0], [-0.5, -3.0]]
SAMPLER = [[-1.0 - LN2, -2.0 + LN2], [-0.5 - LN4, -3.0]]


def loss_and_gradient(trainer: OperatorTrainer, epsilon_high: float, alpha: float) -> Any:
    policy = LogProbPolicy(POLICY)
    trainer.epsilon_high, trainer.alpha = epsilon_high, alpha
    loss = trainer._compute_loss(policy, batch(SAMPLER))
    loss.backward()
    return loss.item(), policy.logps.grad.tolist()


def test_cispo_with_clipping_active_matches_the_hand_computation(trainer: OperatorTrainer) -> None:
    # epsilon_high 1.5 clips r = 2 and r = 4 to 1.5 and leaves r = 1/2: weights 1.5, 0.5, 1.5.
    # J_CISPO = -(1/3) [1.5 * 1 * (-1) + 0.5 * 1 * (-2) + 1.5 * (-1) * (-0.5)] = 1.75 / 3.
    # The weight is detached, so d J / d logp = -w A / 3: -0.5, -1/6 (row 0) and +0.5 (row 1).
    loss, gradient = loss_and_gradient(trainer, epsilon_high=1.5, alpha=0.0)
    assert loss == pytest.approx(1.75 / 3, abs=1e-6)
    assert gradient[0] == pytest.approx([-0.5, -1 / 6], abs=1e-6)
    assert gradient[1] == pytest.approx([0.5, 0.0], abs=1e-6)


def test_cispo_with_clipping_inactive_matches_the_hand_computation(
    trainer: OperatorTrainer,
) -> None:
    # epsilon_high 5 clips nothing: weights 2, 0.5, 4.
    # J_CISPO = -(1/3) [2 * (-1) + 0.5 * (-2) + 4 * (-1) * (-0.5)] = 1 / 3.
    loss, gradient = loss_and_gradient(trainer, epsilon_high=5.0, alpha=0.0)
    assert loss == pytest.approx(1 / 3, abs=1e-6)
    assert gradient[0] == pytest.approx([-2 / 3, -1 / 6], abs=1e-6)
    assert gradient[1] == pytest.approx([4 / 3, 0.0], abs=1e-6)


def test_the_weight_is_taken_against_the_sampling_policy(trainer: OperatorTrainer) -> None:
    # With the sampler's log-probabilities equal to the policy's, every weight is 1:
    # J_CISPO = -(1/3) [(-1) + (-2) + (-1)(-0.5)] = 2.5 / 3.
    policy = LogProbPolicy(POLICY)
    trainer.epsilon_high, trainer.alpha = 5.0, 0.0
    loss = trainer._compute_loss(policy, batch(POLICY))
    assert loss.item() == pytest.approx(2.5 / 3, abs=1e-6)


def test_the_sft_term_averages_the_correct_rollouts_tokens_and_alpha_scales_it(
    trainer: OperatorTrainer,
) -> None:
    # J_SFT = -(1/2) (-1 - 2) = 1.5: the two tokens of the correct rollout only.
    # d J_SFT / d logp = -1/2 on those tokens, 0 on the wrong rollout's.
    base, base_gradient = loss_and_gradient(trainer, epsilon_high=1.5, alpha=0.0)
    for alpha in (0.1, 0.2):
        loss, gradient = loss_and_gradient(trainer, epsilon_high=1.5, alpha=alpha)
        assert loss - base == pytest.approx(alpha * 1.5, abs=1e-6)
        assert gradient[0][0] - base_gradient[0][0] == pytest.approx(-alpha / 2, abs=1e-6)
        assert gradient[0][1] - base_gradient[0][1] == pytest.approx(-alpha / 2, abs=1e-6)
        assert gradient[1] == pytest.approx(base_gradient[1], abs=1e-6)


def test_sft_loss_counts_only_the_masked_tokens() -> None:
    logps = torch.tensor([[-1.0, -3.0, -9.0], [-2.0, -9.0, -9.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert sft_loss(logps, mask, torch.tensor(3.0)).item() == pytest.approx(2.0)
    assert sft_loss(logps, torch.zeros_like(mask), torch.tensor(0.0)).item() == 0.0


def test_the_sft_mask_keeps_the_tokens_of_correct_rollouts_only(trainer: OperatorTrainer) -> None:
    """The rollout function's rewards decide J_SFT's tokens: 1 keeps them, 0 and None do not."""

    def rollouts(prompts: list[str], _: Any) -> dict[str, list[Any]]:
        assert prompts == ["a", "a", "b", "b"]
        return {
            "prompt_ids": [[5, 6], [5, 6], [7], [7]],
            "completion_ids": [[11, 12, 13], [14, 15], [16], [0]],
            "logprobs": [[-0.1, -0.2, -0.3], [-0.4, -0.5], [-0.6], [0.0]],
            "env_mask": [[1, 1, 1], [1, 1], [1], [0]],
            "pdr_reward": [1.0, 0.0, 1.0, None],
            "pdr_mode": ["long", "long", "operator", "operator"],
        }

    trainer.rollout_func = rollouts
    out = trainer._generate_and_score_completions([{"prompt": key} for key in "aabb"])
    assert out["sft_mask"].tolist() == [[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert out["sft_tokens_in_batch"].item() == 4
    # the failed rollout's placeholder token is out of the CISPO term too
    assert out["num_items_in_batch"].item() == 6
    assert out["advantages"][3].item() == 0.0

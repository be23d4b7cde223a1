"""J = J_CISPO + alpha * J_SFT on TRL's GRPOTrainer: what TRL lacks, and nothing else.

TRL carries: the rollout loop (``rollout_func``), group-normalised advantages
(``scale_rewards="group"``), the CISPO term (``loss_type="cispo"``: the importance-sampling weight
clipped at ``epsilon_high`` and detached, times the advantage and the token's log-probability,
summed over the update's completion tokens and divided by their number), the optimizer, gradient
accumulation, logging and ``accelerate``.

``OperatorTrainer`` adds, by overriding three of GRPOTrainer's methods the way TRL's own variants
(``GMPOTrainer`` and others) do:

- the importance-sampling weight against the *sampling* policy: TRL's CPU path computes the weight
  against its own recomputed log-probabilities (exactly 1 when generation and update alternate);
  here the rollouts bring the log-probabilities their tokens were sampled with, and the weight is
  pi_theta / pi_sampler, as CISPO defines it.
- J_SFT: the token-averaged negative log-likelihood of the correct rollouts' trained completions
  only (reward 1; wrong and failed rollouts contribute nothing), on the same forward pass as the
  CISPO term, normalised over the whole update like TRL's CISPO term.
- the mean reward of each mode and both loss terms in the logs.
"""

from __future__ import annotations

from typing import Any

import torch
from trl.trainer.grpo_trainer import GRPOTrainer

from pdr.training.mixture import MODES


def sft_loss(
    per_token_logps: torch.Tensor, sft_mask: torch.Tensor, normalizer: torch.Tensor
) -> torch.Tensor:
    """One micro-batch's share of J_SFT: minus its kept tokens' log-probabilities / normalizer.

    ``sft_mask`` is 1 for the completion tokens of correct rollouts and 0 elsewhere;
    ``normalizer`` is the number of such tokens in the whole update (so the shares of an update's
    micro-batches add up to the token average). No correct token: 0.
    """
    return -(per_token_logps * sft_mask).sum() / normalizer.clamp(min=1.0)


class OperatorTrainer(GRPOTrainer):
    """GRPOTrainer with ``loss_type="cispo"``, the sampling policy's weight and the SFT term."""

    def __init__(self, *args: Any, alpha: float, **kwargs: Any) -> None:
        """GRPOTrainer's arguments, plus ``alpha``, the weight of the SFT term."""
        super().__init__(*args, **kwargs)
        if self.loss_type != "cispo":
            raise ValueError(f"OperatorTrainer needs loss_type='cispo', got {self.loss_type!r}")
        self.alpha = alpha
        self._policy_logps: torch.Tensor | None = None

    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any) -> Any:
        """TRL's log-probabilities; the ones computed with gradients are kept for J_SFT."""
        logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if torch.is_grad_enabled():
            self._policy_logps = logps
        return logps, entropies, aux

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's batch, plus which tokens J_SFT reads and how many there are in the update."""
        output: dict[str, Any] = super()._generate_and_score_completions(inputs)
        # TRL has copied the rollout function's extra fields into the rows (for the reward
        # functions), in the order of the batch.
        rewards = [row["pdr_reward"] for row in inputs]
        modes = [row["pdr_mode"] for row in inputs]
        device = output["completion_mask"].device
        correct = torch.tensor([reward == 1.0 for reward in rewards], device=device)
        mask = output["completion_mask"] * output.get("tool_mask", 1)
        sft_mask = (mask * correct.unsqueeze(1)).to(mask.dtype)
        output["sft_mask"] = sft_mask
        output["sft_tokens_in_batch"] = self.accelerator.gather(sft_mask.sum()).sum()
        mode_name = self._mode()
        for mode in MODES:
            scored = [r for r, m in zip(rewards, modes, strict=True) if m == mode and r is not None]
            totals = torch.tensor([sum(scored), len(scored)], dtype=torch.float32, device=device)
            total, count = self.accelerator.gather(totals).view(-1, 2).sum(dim=0).tolist()
            if count:
                self._metrics[mode_name][f"reward/{mode}"].append(total / count)
        return output

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """TRL's CISPO term against the sampling policy, plus alpha times J_SFT."""
        inputs = {**inputs, "old_per_token_logps": inputs["sampling_per_token_logps"]}
        self._policy_logps = None
        policy_loss: torch.Tensor = super()._compute_loss(model, inputs)  # type: ignore[no-untyped-call]
        if self._policy_logps is None:
            raise RuntimeError("TRL computed no log-probabilities with gradients for this batch")
        mode = self._mode()
        normalizer = inputs["sft_tokens_in_batch"] / self.accelerator.num_processes
        if mode == "train":  # the same rescaling TRL gives its CISPO normalizer
            accumulation = self.current_gradient_accumulation_steps
            normalizer = normalizer * accumulation / self.args.steps_per_generation
        sft = sft_loss(self._policy_logps, inputs["sft_mask"], normalizer)
        self._policy_logps = None
        for name, value in (("loss/cispo", policy_loss), ("loss/sft", sft)):
            self._metrics[mode][name].append(self.accelerator.gather(value.detach()).mean().item())
        return policy_loss + self.alpha * sft

    def _mode(self) -> str:
        """TRL's name for the metrics of the current phase."""
        return "train" if getattr(self.model, "training", False) else "eval"

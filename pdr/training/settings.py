"""What a training run is given: the policy, the problems, the mixture and the objective's knobs.

Every field has a default and a description (``TrainSettings.describe``), and ``check`` refuses a
value that cannot be used with a ``TrainError`` naming the field and the fix, before any model is
loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pdr.evaluation.configs import shared_values
from pdr.graphs.catalog import DISTILL_NAMES, make_context
from pdr.graphs.context import ContextError

DEFAULT_MODEL = "transformers:embedded:fast"
DEFAULT_DATASET = "synthetic:level=1-2,n=64,seed=1"
# Run-context fields the training sets itself: the policy serves every call, the mode's
# configuration sets the budgets, and each rollout has its own seed.
CONTEXT_SET_BY_TRAINING = (
    "model",
    "draft_model",
    "distill_model",
    "verify_model",
    "refine_model",
    "temperature",
    "max_tokens",
    "schedule",
    "rounds",
    "kappa",
    "k",
    "seed",
    "max_concurrency",
    "max_retries",
)


class TrainError(ValueError):
    """A training that cannot run as asked; the message names the setting and the fix."""


def _setting(description: str, default: Any) -> Any:
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class TrainSettings:
    """The settings of one training run (``pdr train``'s options, one to one)."""

    model: str = _setting(
        "Policy to train: 'transformers:SOURCE' (a save_pretrained folder, a .gguf file, or "
        "'embedded:fast'); a bare folder or .gguf path means the same.",
        DEFAULT_MODEL,
    )
    dataset: str = _setting(
        "Training problems: a dataset spec as pdr eval takes it (a .jsonl file, 'synthetic:...', "
        "a preset).",
        DEFAULT_DATASET,
    )
    instruction: str = _setting("Text appended to every problem (as pdr eval --instruction).", "")
    out: Path | None = field(
        default=None,
        metadata={"description": "Folder the trained weights, tokenizer and curves go to."},
    )
    steps: int = _setting("Optimizer updates.", 4)
    problems_per_step: int = _setting(
        "Problems per update, an even number: half get long-trace rollouts, half operator "
        "rollouts.",
        2,
    )
    group_size: int = _setting(
        "Rollouts per problem (G); advantages are normalised within each group.", 4
    )
    alpha: float = _setting("Weight of the SFT term: J = J_CISPO + alpha * J_SFT.", 0.1)
    epsilon_high: float = _setting(
        "CISPO's cap on the importance-sampling weight (TRL's epsilon_high; 5.0 as TRL "
        "recommends).",
        5.0,
    )
    learning_rate: float = _setting("AdamW learning rate (constant).", 1e-6)
    temperature: float = _setting(
        "Sampling temperature of the trained calls (and of the log-probabilities).", 0.7
    )
    max_tokens: int = _setting(
        "Output cap of every long-trace, draft and refine call of a rollout.", 128
    )
    drafts: int = _setting("Drafts M of the operator rollout's one PDR round (schedule [M, 1]).", 2)
    distill: str = _setting(
        f"Distill operator of the operator rollouts: {', '.join(DISTILL_NAMES)}.", "topk"
    )
    k: int = _setting("Drafts kept by topk and random_k.", 2)
    kappa: int = _setting("Workspace bound of the operator rollouts, in tokens.", 192)
    train_embeddings: bool = _setting(
        "Also train the input embeddings and the output head (about a third more memory).", False
    )
    gradient_accumulation_steps: int = _setting(
        "Micro-batches per update (each update still covers the whole step's rollouts).", 1
    )
    seed: int = _setting("Seed of the mixture, the rollouts and the trainer.", 0)
    max_concurrency: int = _setting("Model calls at once during a step's rollouts.", 16)
    name: str | None = _setting(
        "Name of the training in the ledger (default: train-<time>); must be new.", None
    )
    vllm: bool = _setting(
        "Generate the rollouts with TRL's colocated vLLM engine (CUDA only; TRL keeps its "
        "weights in sync with the policy's).",
        False,
    )
    context: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "description": "Other run-context fields of the rollouts (system prompts, "
            "distill_temperature, ...), as pdr eval shares them; see CONTEXT_SET_BY_TRAINING."
        },
    )

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Each setting's description, by name."""
        return {item.name: str(item.metadata["description"]) for item in fields(cls)}

    def check(self) -> None:
        """Raise TrainError naming the first setting that cannot be used."""
        self.folder  # noqa: B018  (raises when out is missing)
        for name in ("steps", "max_tokens", "drafts", "k", "kappa", "max_concurrency"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TrainError(f"{name}: must be a whole number >= 1, got {value!r}")
        if self.problems_per_step < 2 or self.problems_per_step % 2:
            raise TrainError(
                f"problems_per_step: must be even and >= 2 (half long-trace, half operator), "
                f"got {self.problems_per_step!r}"
            )
        if self.group_size < 2:
            raise TrainError(
                f"group_size: advantages are normalised within a group, so it needs >= 2 "
                f"rollouts, got {self.group_size!r}"
            )
        if self.alpha < 0:
            raise TrainError(f"alpha: must be >= 0 (0 turns the SFT term off), got {self.alpha}")
        if self.epsilon_high <= 0:
            raise TrainError(
                f"epsilon_high: must be > 0 (TRL recommends 5.0), got {self.epsilon_high}"
            )
        if not 0 < self.learning_rate < 1:
            raise TrainError(f"learning_rate: must be between 0 and 1, got {self.learning_rate}")
        if not 0 < self.temperature <= 2:
            raise TrainError(
                f"temperature: the trained calls must sample, so 0 < temperature <= 2, "
                f"got {self.temperature}"
            )
        if self.distill not in DISTILL_NAMES:
            raise TrainError(
                f"distill: unknown operator {self.distill!r}; choose one of "
                f"{', '.join(DISTILL_NAMES)}"
            )
        for name in self.context:
            if name in CONTEXT_SET_BY_TRAINING:
                raise TrainError(f"context: {name} is set by the training itself; drop it")
        for graph in ("long_cot", "pdr"):
            try:
                make_context(graph, model="check", **shared_values(graph, self.context))
            except ContextError as error:
                raise TrainError(f"context: {error}") from error
        rollouts = self.problems_per_step * self.group_size
        accumulation = self.gradient_accumulation_steps
        if accumulation < 1 or rollouts % accumulation:
            raise TrainError(
                f"gradient_accumulation_steps: must divide the {rollouts} rollouts of a step "
                f"(problems_per_step x group_size), got {accumulation!r}"
            )

    @property
    def folder(self) -> Path:
        """The output folder (``out``); TrainError when it is not set."""
        if self.out is None:
            raise TrainError("out: give the folder the trained weights go to, e.g. --out trained")
        return Path(self.out)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the training in the ledger and beside the weights)."""
        values = asdict(self)
        values["out"] = str(self.out)
        return values

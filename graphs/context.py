"""Run parameters: what a caller chooses per run, read by nodes from ``runtime.context``.

Parameters live here and never in state. Every field has a default (overridable by an environment
variable ``PDR_<FIELD>``) so the graphs run with nothing configured; every field is checked when the
context is built, so a bad value fails with a message naming the field before any model call.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from pdr.budget import Role

DEFAULT_MODEL = "embedded"


class ContextError(ValueError):
    """A run parameter the graphs cannot use; the message names the field and the fix."""


def _env(name: str, default: Any) -> Any:
    """Read ``PDR_<NAME>`` from the environment, parsed like the default's type."""
    raw = os.environ.get(f"PDR_{name.upper()}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, list):
        return json.loads(raw) if raw.strip().startswith("[") else [int(x) for x in raw.split(",")]
    return raw


def _meta(description: str) -> dict[str, str]:
    return {"description": description}


@dataclass(kw_only=True)
class RunContext:
    """Parameters shared by every graph: models, sampling, output caps, seed and concurrency."""

    model: str = field(
        default_factory=lambda: _env("model", DEFAULT_MODEL),
        metadata=_meta(
            "Model for every role unless a role names its own: 'embedded', 'embedded:fast', a "
            ".gguf path, 'openai:o3-mini', 'google_genai:gemini-2.5-flash', "
            "'vllm:MODEL@http://host:port/v1' or 'vllm-engine:MODEL'."
        ),
    )
    draft_model: str | None = field(default=None, metadata=_meta("Model for drafts."))
    distill_model: str | None = field(default=None, metadata=_meta("Model for summaries."))
    verify_model: str | None = field(default=None, metadata=_meta("Model grading drafts."))
    refine_model: str | None = field(
        default=None,
        metadata=_meta("Model writing the final answer; its tokenizer measures kappa."),
    )
    temperature: float = field(
        default_factory=lambda: _env("temperature", 0.7),
        metadata=_meta("Sampling temperature of drafts and refinement."),
    )
    distill_temperature: float = field(
        default=0.0, metadata=_meta("Sampling temperature of summaries and verification.")
    )
    max_tokens: int = field(
        default_factory=lambda: _env("max_tokens", 512),
        metadata=_meta("Output cap of each draft and refine call, thinking included."),
    )
    verify_max_tokens: int = field(default=256, metadata=_meta("Output cap of each verify call."))
    reasoning_effort: str | None = field(
        default=None, metadata=_meta("OpenAI reasoning models: 'low', 'medium' or 'high'.")
    )
    thinking_budget: int | None = field(
        default=None, metadata=_meta("Gemini 2.5: thinking tokens per call (0 turns it off).")
    )
    seed: int = field(
        default_factory=lambda: _env("seed", 0),
        metadata=_meta(
            "Seed of every call and of the random workspaces. Workspaces repeat exactly; samples "
            "repeat where the backend is deterministic (llama.cpp's can vary with its prompt "
            "cache and thread count)."
        ),
    )
    max_concurrency: int = field(
        default_factory=lambda: _env("max_concurrency", 16),
        metadata=_meta("At most this many model calls at once in this process."),
    )
    max_retries: int = field(
        default=2, metadata=_meta("Retries of a call that failed for a transient reason.")
    )

    def __post_init__(self) -> None:
        """Check every field, so bad input fails before the first model call."""
        self.validate()

    def validate(self) -> None:
        """Raise ContextError naming the first field whose value cannot be used."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise ContextError("model: must be a model spec such as 'embedded' or 'openai:o3-mini'")
        for name in ("draft_model", "distill_model", "verify_model", "refine_model"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ContextError(f"{name}: must be a model spec string or left unset (None)")
        _check_range("temperature", self.temperature, 0.0, 2.0)
        _check_range("distill_temperature", self.distill_temperature, 0.0, 2.0)
        _check_positive_int("max_tokens", self.max_tokens)
        _check_positive_int("verify_max_tokens", self.verify_max_tokens)
        _check_positive_int("max_concurrency", self.max_concurrency)
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ContextError(f"max_retries: must be an integer >= 0, got {self.max_retries!r}")
        if not isinstance(self.seed, int):
            raise ContextError(f"seed: must be an integer, got {self.seed!r}")
        if self.reasoning_effort not in (None, "minimal", "low", "medium", "high"):
            raise ContextError(
                f"reasoning_effort: must be 'minimal', 'low', 'medium' or 'high', "
                f"got {self.reasoning_effort!r}"
            )
        if self.thinking_budget is not None and (
            not isinstance(self.thinking_budget, int) or self.thinking_budget < -1
        ):
            raise ContextError(
                f"thinking_budget: must be an integer >= -1 (-1 lets Gemini decide), "
                f"got {self.thinking_budget!r}"
            )

    def model_for(self, role: Role) -> str:
        """The model spec serving ``role`` (the role's own, else ``model``)."""
        own: str | None = {
            "draft": self.draft_model,
            "distill": self.distill_model,
            "verify": self.verify_model,
            "refine": self.refine_model,
        }.get(role)
        return own or self.model

    def round_sizes(self) -> list[int]:
        """Drafts per round, the last entry being the refine step (always 1)."""
        return [1]


@dataclass(kw_only=True)
class RefineContext(RunContext):
    """Parameters of the graphs that refine through a bounded workspace (PDR and SR)."""

    kappa: int = field(
        default_factory=lambda: _env("kappa", 384),
        metadata=_meta("Workspace bound in tokens of the refine model's tokenizer."),
    )
    distill_input_tokens: int = field(
        default=0,
        metadata=_meta(
            "Token budget of all drafts shown to one summary or verify prompt, shared evenly "
            "(0: whole drafts). Set it for models with a small context window."
        ),
    )

    def validate(self) -> None:
        """Check the shared fields, then kappa."""
        super().validate()
        _check_positive_int("kappa", self.kappa)
        if not isinstance(self.distill_input_tokens, int) or self.distill_input_tokens < 0:
            raise ContextError(
                f"distill_input_tokens: must be an integer >= 0 (0 = whole drafts), "
                f"got {self.distill_input_tokens!r}"
            )


@dataclass(kw_only=True)
class PDRContext(RefineContext):
    """Parameters of Parallel-Distill-Refine."""

    schedule: list[int] = field(
        default_factory=lambda: _env("schedule", [4, 2, 1]),
        metadata=_meta(
            "Drafts per round, e.g. [8, 4, 1]; the last entry must be 1 (the refine step)."
        ),
    )
    k: int = field(default=2, metadata=_meta("Drafts kept by the top-k and random-k distillers."))

    def validate(self) -> None:
        """Check the shared fields, then the schedule and k."""
        super().validate()
        schedule = self.schedule
        if not isinstance(schedule, list) or not schedule:
            raise ContextError(
                f"schedule: must be a non-empty list of drafts per round such as [8, 4, 1], "
                f"got {schedule!r}"
            )
        if any(not isinstance(m, int) or isinstance(m, bool) or m < 1 for m in schedule):
            raise ContextError(
                f"schedule: every round needs at least 1 draft (whole numbers >= 1), "
                f"got {schedule!r}"
            )
        if schedule[-1] != 1:
            raise ContextError(
                f"schedule: the last round is the refine step and must be 1, got {schedule!r}; "
                f"append 1, e.g. {[*schedule, 1]!r}"
            )
        _check_positive_int("k", self.k)

    def round_sizes(self) -> list[int]:
        """The schedule itself."""
        return list(self.schedule)


@dataclass(kw_only=True)
class SRContext(RefineContext):
    """Parameters of Sequential Refine: one answer improved ``rounds - 1`` times."""

    rounds: int = field(
        default_factory=lambda: _env("rounds", 3),
        metadata=_meta("Answers written in sequence: the first draft plus rounds - 1 refinements."),
    )

    def validate(self) -> None:
        """Check the shared fields and the number of rounds."""
        super().validate()
        _check_positive_int("rounds", self.rounds)

    def round_sizes(self) -> list[int]:
        """One draft per round."""
        return [1] * self.rounds


@dataclass(kw_only=True)
class LongCoTContext(RunContext):
    """Parameters of the long chain-of-thought baseline: one call with a large budget."""

    max_tokens: int = field(
        default_factory=lambda: _env("max_tokens", 2048),
        metadata=_meta("Output cap of the single call, thinking included."),
    )


def context_fields(context_type: type[RunContext]) -> list[str]:
    """Names of the parameters a context type accepts (for error messages and the CLI)."""
    return [f.name for f in fields(context_type)]


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ContextError(f"{name}: must be a whole number >= 1, got {value!r}")


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    if not isinstance(value, int | float) or not low <= float(value) <= high:
        raise ContextError(f"{name}: must be a number from {low} to {high}, got {value!r}")

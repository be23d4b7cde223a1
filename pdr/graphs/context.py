"""Run parameters: what a caller chooses per run, read by nodes from ``runtime.context``.

Parameters live here and never in state. Every field has a default and a description, and every
field can take its default from an environment variable ``PDR_<FIELD>`` (``PDR_SCHEDULE=8,4,1``,
``PDR_K=3``, ``PDR_DRAFT_SYSTEM_PROMPT=...``) when the caller leaves it out; a value passed
explicitly always wins. Every field is checked when the context is built, so a bad value fails with
a message naming the field before any model call. The system prompts are fields too (defaults from
``pdr.prompts``), so a run can change one, and the ledger keeps the context each run used.
"""

from __future__ import annotations

from dataclasses import fields
from typing import dataclass_transform

from pdr.budget import Role
from pdr.graphs.fields import (
    ContextError,
    check_positive_int,
    check_range,
    check_text,
    run_context,
    setting,
)
from pdr.prompts import distill as distill_prompts
from pdr.prompts import draft as draft_prompts
from pdr.prompts import long_cot as long_cot_prompts
from pdr.prompts import refine as refine_prompts
from pdr.prompts import verify as verify_prompts

__all__ = [
    "ContextError",
    "LongCoTContext",
    "PDRContext",
    "RefineContext",
    "RunContext",
    "SRContext",
    "context_fields",
]

DEFAULT_MODEL = "embedded"
MODEL_FIELDS = ("model", "draft_model", "distill_model", "verify_model", "refine_model")
REASONING_EFFORTS = (None, "minimal", "low", "medium", "high")


@dataclass_transform(kw_only_default=True, field_specifiers=(setting,))
def _context(cls: type) -> type:
    return run_context(cls)


@_context
class RunContext:
    """Parameters shared by every graph: models, sampling, output caps, seed and concurrency."""

    model: str = setting(
        "Model for every role unless a role names its own: 'embedded', 'embedded:fast', a "
        ".gguf path, 'openai:o3-mini', 'google_genai:gemini-2.5-flash', "
        "'vllm:MODEL@http://host:port/v1' or 'vllm-engine:MODEL'.",
        default=DEFAULT_MODEL,
    )
    draft_model: str | None = setting("Model for drafts.", default=None)
    distill_model: str | None = setting("Model for summaries.", default=None)
    verify_model: str | None = setting("Model grading drafts.", default=None)
    refine_model: str | None = setting(
        "Model writing the final answer; its tokenizer measures kappa.",
        default=None,
    )
    temperature: float = setting("Sampling temperature of drafts and refinement.", default=0.7)
    distill_temperature: float = setting(
        "Sampling temperature of summaries and verification.",
        default=0.0,
    )
    max_tokens: int = setting(
        "Output cap of each draft and refine call, thinking included.", default=512
    )
    verify_max_tokens: int = setting("Output cap of each verify call.", default=256)
    reasoning_effort: str | None = setting(
        "OpenAI reasoning models: 'minimal', 'low', 'medium' or 'high'.",
        default=None,
    )
    thinking_budget: int | None = setting(
        "Gemini 2.5: thinking tokens per call (0 turns it off, -1 lets Gemini decide).",
        default=None,
    )
    seed: int = setting(
        "Seed of every call and of the random workspaces. Workspaces repeat exactly; samples "
        "repeat where the backend is deterministic (llama.cpp's can vary with its prompt "
        "cache and thread count).",
        default=0,
    )
    max_concurrency: int | None = setting(
        "At most this many model calls at once in this process, shared by every run that sets "
        "the same cap (wider rounds run in waves); unset: no cap, so all the calls of a stage "
        "(the drafts of a round, its verify calls) start together.",
        default=None,
    )
    max_retries: int = setting("Retries of a call that failed for a transient reason.", default=2)
    timeout: float = setting(
        "Seconds one model call may take; a call still running then is cancelled (recorded as a "
        "cancelled attempt) and retried like any transient failure.",
        default=600.0,
    )
    max_total_tokens: int | None = setting(
        "Cap on B_tot (all tokens of all calls): a call whose worst case (prompt plus output "
        "cap) does not fit what is left is not made, and the run ends as budget_exhausted.",
        default=None,
    )
    max_sequential_tokens: int | None = setting(
        "Cap on B_seq (tokens on the critical path), checked before each call like "
        "max_total_tokens.",
        default=None,
    )

    def __post_init__(self) -> None:
        """Check every field, so bad input fails before the first model call."""
        self.validate()

    def validate(self) -> None:
        """Raise ContextError naming the first field whose value cannot be used."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise ContextError("model: must be a model spec such as 'embedded' or 'openai:o3-mini'")
        for name in MODEL_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ContextError(f"{name}: must be a model spec string or left unset (None)")
        check_range("temperature", self.temperature, 0.0, 2.0)
        check_range("distill_temperature", self.distill_temperature, 0.0, 2.0)
        check_positive_int("max_tokens", self.max_tokens)
        check_positive_int("verify_max_tokens", self.verify_max_tokens)
        if self.max_concurrency is not None:
            check_positive_int("max_concurrency", self.max_concurrency)
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ContextError(f"max_retries: must be an integer >= 0, got {self.max_retries!r}")
        if (
            not isinstance(self.timeout, int | float)
            or isinstance(self.timeout, bool)
            or not self.timeout > 0
        ):
            raise ContextError(
                f"timeout: must be a number of seconds > 0, such as 600, got {self.timeout!r}"
            )
        for name in ("max_total_tokens", "max_sequential_tokens"):
            value = getattr(self, name)
            if value is not None:
                check_positive_int(name, value)
        if not isinstance(self.seed, int):
            raise ContextError(f"seed: must be an integer, got {self.seed!r}")
        if self.reasoning_effort not in REASONING_EFFORTS:
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
        for item in fields(self):
            if item.name.endswith("_system_prompt"):
                check_text(item.name, getattr(self, item.name))

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


@_context
class RefineContext(RunContext):
    """Parameters of the graphs that refine through a bounded workspace (PDR and SR)."""

    kappa: int = setting("Workspace bound in tokens of the refine model's tokenizer.", default=384)
    distill_input_tokens: int = setting(
        "Token budget of all drafts shown to one summary or verify prompt, shared evenly "
        "(0: whole drafts). Set it for models with a small context window.",
        default=0,
    )
    draft_system_prompt: str = setting(
        "System prompt of every draft.", default=draft_prompts.SYSTEM
    )
    refine_system_prompt: str = setting(
        "System prompt of the refine step (the final answer).",
        default=refine_prompts.SYSTEM,
    )

    def validate(self) -> None:
        """Check the shared fields, then kappa."""
        super().validate()
        check_positive_int("kappa", self.kappa)
        if not isinstance(self.distill_input_tokens, int) or self.distill_input_tokens < 0:
            raise ContextError(
                f"distill_input_tokens: must be an integer >= 0 (0 = whole drafts), "
                f"got {self.distill_input_tokens!r}"
            )


@_context
class PDRContext(RefineContext):
    """Parameters of Parallel-Distill-Refine."""

    schedule: list[int] = setting(
        "Drafts per round, e.g. [8, 4, 1]; the last entry must be 1 (the refine step).",
        text_hint="give drafts per round as whole numbers separated by commas, such as 8,4,1",
        default=[4, 2, 1],
    )
    k: int = setting("Drafts kept by the top-k and random-k distillers.", default=2)
    summary_thinking_tokens: int | None = setting(
        "Output tokens a summary call may spend thinking on top of kappa: its cap is kappa plus "
        "this, while the summary it writes is still cut to kappa. None: max_tokens when the "
        "summary model thinks (OpenAI o-series and gpt-5, Gemini 2.5 and later, or "
        "reasoning_effort or thinking_budget set), else 0.",
        default=None,
    )
    injected_draft: str | None = setting(
        "A candidate solution planted among round 1's drafts, after the model's (the "
        "verification experiment of `pdr eval --inject`): no model call, 0 tokens, recorded in "
        "the ledger as injected.",
        default=None,
    )
    summary_system_prompt: str = setting(
        "System prompt of the summary distiller.",
        default=distill_prompts.SUMMARY_SYSTEM,
    )
    verify_system_prompt: str = setting(
        "System prompt of the verify scorer (grading one draft).",
        default=verify_prompts.SYSTEM,
    )

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
        check_positive_int("k", self.k)
        thinking = self.summary_thinking_tokens
        if thinking is not None and (not isinstance(thinking, int) or thinking < 0):
            raise ContextError(
                f"summary_thinking_tokens: must be a whole number >= 0, or None for the "
                f"model's default, got {thinking!r}"
            )
        if self.injected_draft is not None:
            check_text("injected_draft", self.injected_draft)

    def round_sizes(self) -> list[int]:
        """The schedule itself."""
        return list(self.schedule)


@_context
class SRContext(RefineContext):
    """Parameters of Sequential Refine: one answer improved ``rounds - 1`` times."""

    rounds: int = setting(
        "Answers written in sequence: the first draft plus rounds - 1 refinements.",
        default=3,
    )

    def validate(self) -> None:
        """Check the shared fields and the number of rounds."""
        super().validate()
        check_positive_int("rounds", self.rounds)

    def round_sizes(self) -> list[int]:
        """One draft per round."""
        return [1] * self.rounds


@_context
class LongCoTContext(RunContext):
    """Parameters of the long chain-of-thought baseline: one call with a large budget."""

    max_tokens: int = setting("Output cap of the single call, thinking included.", default=2048)
    long_cot_system_prompt: str = setting(
        "System prompt of the single long chain-of-thought call.",
        default=long_cot_prompts.SYSTEM,
    )


def context_fields(context_type: type[RunContext]) -> list[str]:
    """Names of the parameters a context type accepts (for error messages and the CLI)."""
    return [f.name for f in fields(context_type)]

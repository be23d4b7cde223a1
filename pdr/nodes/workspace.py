"""Bounding text in tokens of the refine model's tokenizer (the unit of kappa)."""

from __future__ import annotations

from pdr.graphs.context import RefineContext, RunContext
from pdr.models import get_backend, truncate_to_tokens


def count_tokens(text: str, context: RunContext) -> int:
    """Tokens of ``text`` in the refine model's tokenizer."""
    return get_backend(context.model_for("refine")).count_tokens(text)


def bound_text(text: str, limit: int, context: RunContext) -> str:
    """The tail of ``text`` that fits in ``limit`` tokens of the refine model's tokenizer."""
    backend = get_backend(context.model_for("refine"))
    return truncate_to_tokens(text, limit, backend.count_tokens)


def bound_workspace(text: str, context: RefineContext) -> str:
    """``text`` cut to at most kappa tokens."""
    return bound_text(text, context.kappa, context)


def excerpt_limit(context: RefineContext, drafts: int) -> int | None:
    """Per-draft token limit when drafts are shown to a summary or verify prompt (None: whole)."""
    if context.distill_input_tokens == 0 or drafts == 0:
        return None
    return max(1, context.distill_input_tokens // drafts)


def excerpt(text: str, context: RefineContext, drafts: int) -> str:
    """A draft as shown to a summary or verify prompt, within ``distill_input_tokens``."""
    limit = excerpt_limit(context, drafts)
    return text if limit is None else bound_text(text, limit, context)

"""Bounding text in tokens of the refine model's tokenizer (the unit of kappa).

A text that does not fit keeps its end, where a solution's conclusion and final answer are, and a
label it starts with ("Your previous solution:", "Candidate solution 2:"); what was cut is
replaced by a visible elision mark, so the next call knows it reads an excerpt.
"""

from __future__ import annotations

from collections.abc import Callable

from pdr.graphs.context import RefineContext, RunContext
from pdr.models import get_backend, truncate_to_tokens
from pdr.prompts.distill import ELISION


def count_tokens(text: str, context: RunContext) -> int:
    """Tokens of ``text`` in the refine model's tokenizer."""
    return get_backend(context.model_for("refine")).count_tokens(text)


def cut_to_tokens(text: str, limit: int, count: Callable[[str], int], label: str = "") -> str:
    """``label + text`` within ``limit`` tokens by ``count``, keeping the label and the end.

    Whole when it fits; else the label, the elision mark and the longest tail of ``text`` that
    fits with them. When not even the label and the mark fit, the longest tail of the whole.
    """
    whole = label + text
    if count(whole) <= limit:
        return whole
    prefix = label + ELISION
    room = limit - count(prefix)
    while room > 0:
        cut = prefix + truncate_to_tokens(text, room, count)
        over = count(cut) - limit  # a tokenizer may merge across the seam
        if over <= 0:
            return cut
        room -= over
    return truncate_to_tokens(whole, limit, count)


def bound_text(text: str, limit: int, context: RunContext, label: str = "") -> str:
    """``label + text`` cut to ``limit`` tokens of the refine model's tokenizer.

    The cut itself is ``cut_to_tokens``.
    """
    backend = get_backend(context.model_for("refine"))
    return cut_to_tokens(text, limit, backend.count_tokens, label)


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

"""Scorers that rank a round's drafts for top-k distillers: vote (free) or verify (model calls).

The verify scorer's calls are a graph stage of their own (``pdr.nodes.verify``); the scorer reads
the grades that stage wrote.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable

from pdr.answers import normalize_answer
from pdr.budget import CallRecord
from pdr.graphs.context import PDRContext
from pdr.graphs.state import Draft
from pdr.models import Message
from pdr.prompts import verify as prompts

Scores = list[float]
Scorer = Callable[[str, list[Draft], PDRContext], Awaitable[tuple[Scores, list[CallRecord]]]]

_SCORE = re.compile(r"score\s*[:=]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_SCORE_LINE = re.compile(r"^[\s>*_#-]*score\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
# What a verdict quotes is not its own verdict: fenced blocks, blockquote lines, quoted spans.
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_QUOTED_SPAN = re.compile(r'"[^"\n]*"|\u201c[^\u201d\n]*\u201d|`[^`\n]*`')


async def vote(
    problem: str, drafts: list[Draft], context: PDRContext
) -> tuple[Scores, list[CallRecord]]:
    """Score = how many drafts reached the same final answer (0 without an answer); no calls."""
    keys = [normalize_answer(d["answer"]) for d in drafts]
    counts = Counter(key for key in keys if key is not None)
    return [float(counts[key]) if key is not None else 0.0 for key in keys], []


def verify_messages(problem: str, draft_text: str, context: PDRContext) -> list[Message]:
    """The verify prompt for one draft."""
    return [
        {"role": "system", "content": context.verify_system_prompt},
        {"role": "user", "content": prompts.VERIFY.format(problem=problem, draft=draft_text)},
    ]


def parse_score(text: str) -> float:
    """The verdict's own score, clamped to 0..10; 0 when it gives none.

    The verdict's score is its last line that starts with ``Score: N`` (the form the prompt asks
    for), else the last ``Score: N`` anywhere in it. Scores it quotes (from the solution it
    grades, say) do not count: fenced code blocks, ``>`` blockquote lines and spans in double
    quotes or backticks are skipped.
    """
    own = _QUOTED_SPAN.sub(" ", _FENCED.sub("\n", text))
    lines = [line for line in own.splitlines() if not line.lstrip().startswith(">")]
    starts = [found.group(1) for line in lines if (found := _SCORE_LINE.match(line))]
    anywhere = [score for line in lines for score in _SCORE.findall(line)]
    chosen = starts or anywhere
    return min(10.0, max(0.0, float(chosen[-1]))) if chosen else 0.0


async def verify(
    problem: str, drafts: list[Draft], context: PDRContext
) -> tuple[Scores, list[CallRecord]]:
    """Score = the grade the model gave the draft in the verify stage (0 without one).

    The grading calls are a stage of their own (``pdr.nodes.verify``: one branch per draft, run
    in parallel after the drafts), so here the grades are only read from the drafts.
    """
    return [float(d.get("score", 0.0)) for d in drafts], []


SCORERS: dict[str, Scorer] = {"vote": vote, "verify": verify}

"""Find the final answer in a solution text and put it in a comparable form (no model call)."""

from __future__ import annotations

import re

_ANSWER_LABEL = re.compile(r"(?:final answer|answer)\s*(?:is)?\s*[:=]", re.IGNORECASE)
# Markdown emphasis around labels and values ("**Final Answer:** 391") is not part of the answer.
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)\*(?!\s)|(?<!\s)\*(?!\w)")


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``), nested braces included."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for position in range(brace, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : position].strip()
    return None


def extract_answer(text: str) -> str | None:
    """The final answer: the last boxed expression, else the last ``Answer: ...`` line."""
    boxed = last_boxed(text)
    if boxed:
        return boxed
    for line in reversed(_EMPHASIS.sub("", text).splitlines()):
        labels = list(_ANSWER_LABEL.finditer(line))
        if not labels:
            continue
        answer = re.sub(r"^[\s$]+|[\s$.]+$", "", line[labels[-1].end() :])
        if answer:
            return answer
    return None


def normalize_answer(answer: str | None) -> str | None:
    """A key under which equal answers agree: no spaces, $, thousands commas or leading zeros."""
    if answer is None:
        return None
    value = answer.strip().strip("$").strip()
    value = re.sub(r"^\\text\{(.*)\}$", r"\1", value)
    value = value.replace(" ", "").rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", value):
        value = value.replace(",", "")
    if re.fullmatch(r"-?\d+\.0+", value):
        value = value.split(".")[0]
    if re.fullmatch(r"-?\d+", value):
        value = str(int(value))
    return value or None

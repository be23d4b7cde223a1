r"""Find the final answer in a solution text and put it in a comparable form (no model call).

A solution commits to an answer in one of three forms: ``\boxed{...}`` (or ``\fbox{...}``), a
labelled line (``Answer: 42``, ``Final answer: 42``, ``the answer is: 42``) or GSM8K's ``#### 42``.
The last commitment in the solution wins, whatever its form: a ``\boxed{999}`` the model copied
from the problem does not outrank the ``Answer: 42`` it ends with.

Two kinds of text are not the solution's own. (1) Text after the solution ended: once it has
committed to an answer, a model that goes on to write another draft or problem ("Draft 2:",
"Attempt 3:", "Candidate solution 2:", "Problem:") has run on, and nothing from there on counts.
(2) The problem itself, when the caller passes it: restated verbatim (whole or line by line), it
is masked before anything is read, so no text placed in a problem can change the answer of a
solution whose final line is an answer.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_ANSWER_LABEL = re.compile(r"(?:final answer|answer)\s*(?:is)?\s*[:=]", re.IGNORECASE)
# GSM8K's final line is ``#### <number>``; a Markdown heading (``#### Step 1: ...``) is not one.
_GSM8K = re.compile(r"^\s*####\s*([-+]?\$?\s*\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s*\.?\s*$")
# Markdown emphasis around labels and values ("**Final Answer:** 391") is not part of the answer.
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)\*(?!\s)|(?<!\s)\*(?!\w)")
# A line that starts another piece of work: any of these words with a number ("Draft 2:"), or a
# new problem or draft without one ("Problem:").
_RUN_ON = re.compile(
    r"^[\s#>*_]*(?:(?:draft|attempt|candidate(?:\s+solution)?|solution|problem|question)"
    r"\s*#?\s*\d+|draft|attempt|candidate\s+solution|problem|question)[\s*_]*[:.)]",
    re.IGNORECASE,
)


class Commitment(NamedTuple):
    """One place where a solution states an answer: its offset in the text and the answer."""

    position: int
    answer: str


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``), nested braces included."""
    found = _boxed(text)
    return found[-1].answer if found else None


def _boxed(text: str) -> list[Commitment]:
    commitments = []
    for match in re.finditer(r"\\(?:boxed|fbox)", text):
        brace = text.find("{", match.end())
        if brace < 0 or text[match.end() : brace].strip():
            continue
        depth = 0
        for position in range(brace, len(text)):
            if text[position] == "{":
                depth += 1
            elif text[position] == "}":
                depth -= 1
                if depth == 0:
                    content = text[brace + 1 : position].strip()
                    if content:
                        commitments.append(Commitment(match.start(), content))
                    break
    return commitments


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, line) of every line of ``text``, line breaks excluded."""
    lines, offset = [], 0
    for line in text.splitlines(keepends=True):
        lines.append((offset, line.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")))
        offset += len(line)
    return lines


def _labelled(text: str) -> list[Commitment]:
    commitments = []
    for offset, line in _lines(text):
        gsm8k = _GSM8K.match(line)
        if gsm8k and gsm8k.group(1):
            commitments.append(Commitment(offset, gsm8k.group(1)))
            continue
        plain = _EMPHASIS.sub("", line)
        for label in reversed(list(_ANSWER_LABEL.finditer(plain))):
            answer = re.sub(r"^[\s$]+|[\s$.]+$", "", plain[label.end() :])
            if answer:
                # (Dropping emphasis moves the label left inside its line, never to another line.)
                commitments.append(Commitment(offset + label.start(), answer))
                break
    return commitments


def commitments(text: str) -> list[Commitment]:
    """Every answer ``text`` commits to, in order of position (all forms together)."""
    return sorted([*_boxed(text), *_labelled(text)])


def solution_part(text: str, problem: str | None = None) -> str:
    """The part of ``text`` that is the solution's own (see the module docstring).

    The problem, restated verbatim (as a whole, or as any of its lines), is blanked out, except on
    the last non-empty line, which is always the solution's own; then the text is cut before the
    first line that starts another draft or problem after an answer has been committed.
    """
    lines = _lines(text)
    last = max((offset for offset, line in lines if line.strip()), default=len(text))
    if problem and problem.strip():
        head = text[:last].replace(problem.strip(), "\n")
        quoted = {line.strip() for line in problem.splitlines() if line.strip()}
        kept = [line for _, line in _lines(head) if line.strip() not in quoted]
        text = "\n".join([*kept, text[last:]]) if kept else text[last:]
    for offset, line in _lines(text):
        if _RUN_ON.match(line) and commitments(text[:offset]):
            return text[:offset]
    return text


def extract_answer(text: str, problem: str | None = None) -> str | None:
    r"""The final answer of a solution: its last commitment (``\boxed{}``, ``Answer:``, ``####``).

    Args:
        text: the solution.
        problem: the problem it solves; where given, a verbatim restatement of it is not read.

    Returns:
        The answer as written (emphasis, ``$`` and a final period dropped), or None.
    """
    found = commitments(solution_part(text, problem))
    return found[-1].answer if found else None


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

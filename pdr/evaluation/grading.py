r"""Grade a solution against a gold answer with math-verify, safely off the main thread.

The predicted answer is the last ``\boxed{...}`` of the solution, else its last ``Answer: ...``
line (``pdr.answers.extract_answer``); a solution with neither is wrong. Integer gold answers are
compared as integers once both sides are cleaned of dollars, thousands commas and units, so "025"
equals 25 and "12 dollars" equals 12. Everything else (fractions, roots, expressions, intervals)
goes to math-verify.

math-verify bounds its own time with ``signal.alarm``, which only works on the main thread; the
harness grades from worker threads, so its timeouts are switched off here and every math-verify
call runs in a daemon thread that is abandoned after ``timeout_s`` (the answer then counts as
wrong, with ``timed_out`` set).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pdr.answers import extract_answer

T = TypeVar("T")

Gold = str | int | float

GradeMethod = Literal["integer", "math_verify", "no_answer", "timeout"]

DEFAULT_TIMEOUT_S = 5.0

# Units and currency words that may follow a number in a plain-text answer ("12 dollars").
_PLAIN_UNITS = re.compile(r"^([-+]?[\d.,]*\d)\s*[A-Za-z][A-Za-z .]*$")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_INTEGER = re.compile(r"[-+]?\d+")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?")


@dataclass(frozen=True)
class Grade:
    """The verdict on one solution.

    Attributes:
        correct: whether the predicted answer equals the gold one.
        predicted: the answer found in the solution (None if there was none).
        gold: the gold answer as text.
        method: how the verdict was reached: "integer" (both sides whole numbers), "math_verify",
            "no_answer" (nothing to compare) or "timeout" (math-verify ran past its bound).
    """

    correct: bool
    predicted: str | None
    gold: str
    method: GradeMethod

    @property
    def timed_out(self) -> bool:
        """True when math-verify did not finish in time (the answer counts as wrong)."""
        return self.method == "timeout"


class GradingTimeoutError(TimeoutError):
    """math-verify did not finish within the bound."""


class _DropTimeoutNotice(logging.Filter):
    """math-verify warns once that its timeouts are off; they are, on purpose (see module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutNotice())


def gold_text(gold: Gold) -> str:
    """The gold answer as text: integral floats (AMC's 27.0) become integers ("27")."""
    if isinstance(gold, bool):
        raise TypeError(f"a gold answer must be a number or text, got {gold!r}")
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    return str(gold).strip()


def clean_answer(answer: str) -> str:
    r"""An answer without the decorations that do not change its value.

    Drops surrounding ``$``, ``\$`` and dollar signs, ``\text{...}``-style units, LaTeX spacing,
    ``{,}`` and thousands commas, a trailing period, and plain unit words after a number
    ("5 cm" -> "5"). Anything else is left for math-verify.
    """
    value = answer.strip()
    value = re.sub(r"^\\boxed\s*\{(.*)\}$", r"\1", value)
    value = value.replace("\\$", "").replace("$", "")
    value = value.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    value = value.replace("\\left", "").replace("\\right", "")
    whole_text = _TEXT_COMMAND.fullmatch(value)
    if whole_text:
        # The whole answer is text ("\text{(C)}"): keep what it says.
        value = value[value.index("{") + 1 : -1].strip()
    else:
        # Text after a value is a unit ("5\text{ cm}"): drop it.
        value = _TEXT_COMMAND.sub("", value).strip()
    choice = re.fullmatch(r"\(([A-Ea-e])\)", value)
    if choice:
        value = choice.group(1).upper()
    value = value.rstrip(".").strip()
    unit = _PLAIN_UNITS.fullmatch(value)
    if unit:
        value = unit.group(1)
    if _THOUSANDS.fullmatch(value):
        value = value.replace(",", "")
    return value.strip()


def as_integer(value: str) -> int | None:
    """The whole number ``value`` spells ("025", "+7", "12.00"), else None."""
    text = value.strip()
    if re.fullmatch(r"[-+]?\d+\.0*", text):
        text = text.split(".")[0]
    return int(text) if _INTEGER.fullmatch(text) else None


def run_bounded(function: Callable[[], T], timeout_s: float) -> T:
    """Run ``function`` in a daemon thread and wait at most ``timeout_s`` seconds for it.

    A daemon thread because a runaway sympy simplification cannot be interrupted: it is left
    behind (and dies with the process) instead of blocking the caller or the interpreter's exit.
    Raises GradingTimeoutError when it does not finish in time; re-raises its exception otherwise.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=target, name="pdr-grade", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise GradingTimeoutError(f"math-verify took longer than {timeout_s} s")
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def _math_verify_equal(gold: str, predicted: str) -> bool:
    """math-verify's verdict, with its signal-based timeouts off (the caller bounds the time)."""
    from math_verify import parse, verify

    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    if not gold_parsed:
        gold_parsed = parse(gold, parsing_timeout=None)
    candidates = [parse(f"${predicted}$", parsing_timeout=None)]
    if "\\" not in predicted:
        # Plain text ("the total is 42"): math-verify's plain extraction finds the number; a
        # LaTeX answer is not re-read this way, since plain parsing reads "2\sqrt{3}" as 2.
        candidates.append(parse(predicted, parsing_timeout=None))
    return any(
        bool(verify(gold_parsed, candidate, timeout_seconds=None))
        for candidate in candidates
        if candidate
    )


def answers_equal(gold: Gold, predicted: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Grade:
    """Compare an extracted answer with the gold one (see ``grade`` for the rules).

    Args:
        gold: the gold answer (text, int or float).
        predicted: the answer a solution gave, already extracted.
        timeout_s: bound on math-verify's time.

    Returns:
        The Grade.
    """
    gold_value = gold_text(gold)
    gold_clean, predicted_clean = clean_answer(gold_value), clean_answer(predicted)
    gold_int, predicted_int = as_integer(gold_clean), as_integer(predicted_clean)
    if gold_int is not None and predicted_int is not None:
        return Grade(gold_int == predicted_int, predicted, gold_value, "integer")
    try:
        correct = run_bounded(lambda: _math_verify_equal(gold_clean, predicted_clean), timeout_s)
    except GradingTimeoutError:
        return Grade(False, predicted, gold_value, "timeout")
    return Grade(correct, predicted, gold_value, "math_verify")


def grade(solution: str, gold: Gold, timeout_s: float = DEFAULT_TIMEOUT_S) -> Grade:
    r"""Grade a whole solution text: find its final answer, then compare it with ``gold``.

    Args:
        solution: the model's solution; its last ``\boxed{}`` or ``Answer:`` value is graded.
        gold: the gold answer (text, int or float; "#### N" forms are resolved by the loaders).
        timeout_s: bound on math-verify's time; past it the solution counts as wrong.

    Returns:
        The Grade; ``correct`` is False when the solution states no answer.
    """
    predicted = extract_answer(solution)
    if predicted is None:
        return Grade(False, None, gold_text(gold), "no_answer")
    return answers_equal(gold, predicted, timeout_s)


def grade_answer(answer: str | None, gold: Gold, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether an already extracted answer (None: none given) equals ``gold``.

    The shape the runner's ``grade`` hook takes: ``(answer, gold) -> bool``.
    """
    if answer is None:
        return False
    return answers_equal(gold, answer, timeout_s).correct

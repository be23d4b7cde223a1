"""Final answers are found in the forms models write them, and equal answers agree when voting."""

from __future__ import annotations

import pytest

from pdr.answers import extract_answer, normalize_answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("17 * 23 = 391.\nAnswer: 391", "391"),
        ("Answer: **Final Answer:** 391", "391"),
        ("**Final Answer:** 391", "391"),
        ("so the answer is: $42$.", "42"),
        ("The final answer is \\boxed{\\frac{1}{2}} indeed", "\\frac{1}{2}"),
        ("\\boxed{3}\nlater \\boxed{x^{2}+1}", "x^{2}+1"),
        ("Answer: 7\nWait, that is wrong.\nAnswer: 8", "8"),
        ("Answer: *12*", "12"),
        ("2 * 3 = 6\nAnswer: 2 * 3", "2 * 3"),
        ("no conclusion here", None),
        ("Answer:", None),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("025", "25"),
        ("1,000", "1000"),
        ("$391$", "391"),
        ("27.0", "27"),
        (" x + 1 ", "x+1"),
        ("\\text{seven}", "seven"),
        (None, None),
    ],
)
def test_normalize_answer(raw: str | None, key: str | None) -> None:
    assert normalize_answer(raw) == key

"""The grader: math-verify with our own time bound, integers as integers, tricky answer forms."""

from __future__ import annotations

import threading
import time

import pytest

from pdr.evaluation.grading import (
    Grade,
    GradingTimeoutError,
    answers_equal,
    as_integer,
    clean_answer,
    grade,
    grade_answer,
    run_bounded,
)

CORRECT = [
    # leading zeros (AIME) in either place
    ("Answer: 025", "25"),
    ("Answer: 25", "025"),
    ("so \\boxed{025}", 25),
    ("Answer: 007", "7"),
    # AMC floats
    ("Answer: 27", 27.0),
    ("\\boxed{3159}", 3159.0),
    # units and currency
    ("Answer: 12 dollars", "12"),
    ("Answer: 5 cm", "5"),
    ("Answer: $5\\text{ cm}$", "5"),
    ("Answer: 3 \\text{ hours}", 3),
    ("Answer: $18", 18),
    ("Answer: \\$12.00", "12"),
    ("Answer: 18 eggs.", "18"),
    # thousands separators
    ("Answer: 1,000", "1000"),
    ("Answer: $1{,}000$", 1000),
    ("Answer: 70,000", "70000"),
    # fractions and decimals
    ("\\boxed{\\frac{1}{2}}", "1/2"),
    ("Answer: 0.5", "\\frac12"),
    ("\\boxed{\\dfrac{3}{4}}", "0.75"),
    ("\\boxed{\\frac{14}{3}}", "\\frac{14}{3}"),
    # boxed expressions
    ("\\boxed{2\\sqrt{3}}", "2\\sqrt3"),
    ("\\boxed{x^2+1}", "1+x^2"),
    ("the answer is \\boxed{\\text{(C)}}", "C"),
    # prose and equations after Answer:
    ("Answer: The total is 42.", "42"),
    ("Answer: x = 3", "3"),
    ("Answer: -7", "-7"),
    ("Answer: 50%", "50"),
    # the last answer the solution commits to wins, whatever its form
    ("first \\boxed{11}, corrected: \\boxed{12}", "12"),
    ("\\boxed{12} and later Answer: 13", "13"),
    ("Answer: 13, or rather \\boxed{12}", "12"),
    ("#### 1,800", "1800"),
]

WRONG = [
    ("Answer: 26", "25"),
    ("Answer: 7", "-7"),
    ("\\boxed{2\\sqrt{3}}", "2"),
    ("\\boxed{\\frac{1}{3}}", "0.33"),
    ("\\boxed{11} then \\boxed{12}", "11"),
    ("Answer: 250", "25"),
]


@pytest.mark.parametrize(("solution", "gold"), CORRECT)
def test_tricky_correct_answers(solution: str, gold: str | int | float) -> None:
    verdict = grade(solution, gold)
    assert verdict.correct, verdict


@pytest.mark.parametrize(("solution", "gold"), WRONG)
def test_tricky_wrong_answers(solution: str, gold: str | int | float) -> None:
    verdict = grade(solution, gold)
    assert not verdict.correct, verdict


def test_integer_answers_compare_as_integers_without_math_verify() -> None:
    assert grade("Answer: 025", "25") == Grade(True, "025", "25", "integer")
    assert grade("Answer: 12 dollars", 12.0) == Grade(True, "12 dollars", "12", "integer")
    assert grade("\\boxed{\\frac{50}{2}}", 25).method == "math_verify"


def test_no_answer_is_wrong() -> None:
    assert grade("I think it is 25 but I am not sure", "25") == Grade(
        False, None, "25", "no_answer"
    )
    assert grade_answer(None, "25") is False


def test_cleaning_and_integers() -> None:
    assert clean_answer("$1{,}234$") == "1234"
    assert clean_answer("\\$12.50") == "12.50"
    assert clean_answer("5 \\text{ cm}") == "5"
    assert clean_answer("7 apples.") == "7"
    assert clean_answer("\\text{(B)}") == "B"
    assert as_integer("025") == 25
    assert as_integer("+7") == 7
    assert as_integer("12.00") == 12
    assert as_integer("12.5") is None
    assert as_integer("x") is None


def test_math_verify_works_off_the_main_thread() -> None:
    """math-verify's own timeouts use signal.alarm (main thread only); ours must not."""
    verdicts: list[bool] = []

    def work() -> None:
        verdicts.append(grade("\\boxed{\\frac{1}{2}}", "0.5").correct)
        verdicts.append(grade("\\boxed{\\sqrt{8}}", "2\\sqrt{2}").correct)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert verdicts == [True, True]


def test_time_bound_abandons_a_runaway_computation() -> None:
    started = time.perf_counter()
    with pytest.raises(GradingTimeoutError):
        run_bounded(lambda: time.sleep(5), timeout_s=0.2)
    assert time.perf_counter() - started < 2


def test_bounded_call_returns_values_and_raises_errors() -> None:
    assert run_bounded(lambda: 41 + 1, timeout_s=5) == 42
    with pytest.raises(ZeroDivisionError):
        run_bounded(lambda: 1 // 0, timeout_s=5)


def test_a_timeout_grades_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    import pdr.evaluation.grading as grading

    monkeypatch.setattr(grading, "_math_verify_equal", lambda gold, predicted: time.sleep(5))
    verdict = answers_equal("\\frac12", "\\frac{1}{2}", timeout_s=0.2)
    assert verdict == Grade(False, "\\frac{1}{2}", "\\frac12", "timeout")
    assert verdict.timed_out

"""The generated offline set: deterministic, exact integer answers, levels = number of steps."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pdr.evaluation.datasets import load_dataset
from pdr.evaluation.problems import DatasetError
from pdr.evaluation.synthetic import MAX_VALUE, generate, make_problem, parse_spec


def solve(text: str) -> int:
    """An independent solver of the generated sentences (a check on the generator)."""
    sentences = re.split(r"(?<=[.?])\s+", text)
    value = int(re.search(r"has (\d+) ", sentences[0]).group(1))  # type: ignore[union-attr]
    times = {"twice": 2, "three times": 3, "four times": 4, "five times": 5}
    for sentence in sentences[1:-1]:
        number = re.search(r"(\d+)", sentence)
        if "times" in sentence or "twice" in sentence:
            value *= next(v for k, v in times.items() if k in sentence)
        elif "equally into" in sentence:
            value //= int(number.group(1))  # type: ignore[union-attr]
        elif re.search(r"gives \w+ \d+|buys|finds", sentence) and "gives away" not in sentence:
            value += int(number.group(1))  # type: ignore[union-attr]
        else:
            value -= int(number.group(1))  # type: ignore[union-attr]
    return value


def test_first_problems_are_fixed() -> None:
    """Pinned texts: a change to the generator changes every stored experiment's dataset."""
    first = make_problem(seed=0, level=1, index=0)
    assert first.problem == (
        "Omar has 34 marbles. Omar buys 7 more marbles. How many marbles does Omar have now?"
    )
    assert (first.id, first.answer, first.level) == ("L1-s0-0000", "41", 1)
    second = make_problem(seed=0, level=2, index=1)
    assert second.problem == (
        "Liam has 40 shells. Then Liam ends up with three times as many shells as before. "
        "Liam gives 19 shells to a neighbour. How many shells does Liam have now?"
    )
    assert second.answer == "101"


@pytest.mark.parametrize("level", [1, 2, 3, 5, 8])
def test_answers_are_exact_and_steps_match_the_level(level: int) -> None:
    for problem in generate([level], n=60, seed=7):
        sentences = re.split(r"(?<=[.?])\s+", problem.problem)
        assert len(sentences) == level + 2  # the start, one per step, the question
        answer = int(problem.answer)
        assert 1 <= answer <= MAX_VALUE
        assert solve(problem.problem) == answer, problem.problem


def test_deterministic_and_prefix_stable() -> None:
    assert generate([1, 2], n=20, seed=3) == generate([1, 2], n=20, seed=3)
    assert generate([2], n=10, seed=3) == generate([2], n=30, seed=3)[:10]
    assert generate([2], n=10, seed=3) != generate([2], n=10, seed=4)


def test_same_problems_in_a_fresh_interpreter() -> None:
    """String seeds are hashed with SHA-512, not Python's per-process hash: same in any process."""
    code = (
        "from pdr.evaluation.synthetic import generate; "
        "print(generate([3], n=5, seed=11)[4].problem)"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert fresh == generate([3], n=5, seed=11)[4].problem


def test_spec_parsing() -> None:
    assert parse_spec("synthetic").name == "synthetic:level=2,n=50,seed=0"
    spec = parse_spec("synthetic:level=1-3,n=9,seed=2")
    assert (spec.levels, spec.n, spec.seed) == ((1, 2, 3), 9, 2)
    assert parse_spec("synthetic:level=1+3").levels == (1, 3)
    data = load_dataset("synthetic:level=1-3,n=6,seed=0")
    assert [p.level for p in data.problems] == [1, 2, 3, 1, 2, 3]
    assert len({p.id for p in data.problems}) == 6


@pytest.mark.parametrize(
    "spec",
    [
        "synthetic:level=0",
        "synthetic:level=9",
        "synthetic:n=0",
        "synthetic:colour=red",
        "synthetic:n=x",
    ],
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(DatasetError, match="synthetic"):
        parse_spec(spec)

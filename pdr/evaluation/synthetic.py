"""A generated offline problem set: seeded multi-step arithmetic word problems.

Each problem starts with a quantity and applies ``level`` operations (add, take away, multiply,
share equally), one sentence each, then asks for the final quantity. Answers are exact integers;
every intermediate value stays a positive whole number of at most ``MAX_VALUE``, and divisions
are exact. Problem ``i`` depends only on (seed, level, i), so a larger ``n`` extends a smaller one
and the same spec always gives the same problems on every machine.

Spec strings (for ``pdr eval --dataset``): ``synthetic`` or ``synthetic:level=2,n=50,seed=0``;
``level`` also takes a range ``1-3`` or a list ``1+3``, and the problems then cycle through them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pdr.evaluation.problems import Dataset, DatasetError, Problem

MAX_VALUE = 200
MAX_LEVEL = 8
PREFIX = "synthetic"

_NAMES = [
    ("Mia", "she", "her"),
    ("Noah", "he", "his"),
    ("Ava", "she", "her"),
    ("Liam", "he", "his"),
    ("Zoe", "she", "her"),
    ("Omar", "he", "his"),
    ("Lena", "she", "her"),
    ("Ravi", "he", "his"),
    ("Sara", "she", "her"),
    ("Tom", "he", "his"),
]
_ITEMS = [
    "apples",
    "marbles",
    "stickers",
    "pencils",
    "cookies",
    "stamps",
    "shells",
    "cards",
    "books",
    "beads",
]
_OTHERS = ["a friend", "a neighbour", "a cousin", "the teacher", "a classmate"]
_TIMES = {2: "twice", 3: "three times", 4: "four times", 5: "five times"}


@dataclass(frozen=True)
class SyntheticSpec:
    """What ``synthetic:...`` asks for.

    Attributes:
        levels: difficulty levels (operations per problem), cycled over the problems.
        n: how many problems.
        seed: the generator seed.
    """

    levels: tuple[int, ...] = (2,)
    n: int = 50
    seed: int = 0

    @property
    def name(self) -> str:
        """The canonical spec string (what experiments are keyed by)."""
        levels = "+".join(str(level) for level in self.levels)
        if len(self.levels) > 1 and list(self.levels) == list(
            range(self.levels[0], self.levels[-1] + 1)
        ):
            levels = f"{self.levels[0]}-{self.levels[-1]}"
        return f"{PREFIX}:level={levels},n={self.n},seed={self.seed}"


def parse_spec(text: str) -> SyntheticSpec:
    """Read ``synthetic[:level=L,n=N,seed=S]``; raises DatasetError naming the bad part."""
    if text != PREFIX and not text.startswith(PREFIX + ":"):
        raise DatasetError(f"not a synthetic spec: {text!r} (use 'synthetic:level=2,n=50,seed=0')")
    body = text[len(PREFIX) + 1 :] if ":" in text else ""
    values: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in body.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in {"level", "n", "seed"}:
            raise DatasetError(
                f"synthetic: unknown option {part!r}; options are level=L (or 1-3, 1+3), n=N, "
                "seed=S, e.g. 'synthetic:level=2,n=50,seed=0'"
            )
        values[key.strip()] = value.strip()
    try:
        levels = _parse_levels(values.get("level", "2"))
        n = int(values.get("n", "50"))
        seed = int(values.get("seed", "0"))
    except ValueError as error:
        raise DatasetError(f"synthetic: {error}") from error
    if n < 1:
        raise DatasetError(f"synthetic: n must be >= 1, got {n}")
    return SyntheticSpec(levels=levels, n=n, seed=seed)


def _parse_levels(text: str) -> tuple[int, ...]:
    if "-" in text:
        low, high = (int(part) for part in text.split("-", 1))
        levels = tuple(range(low, high + 1))
    else:
        levels = tuple(int(part) for part in text.split("+"))
    if not levels or any(not 1 <= level <= MAX_LEVEL for level in levels):
        raise ValueError(f"level must be from 1 to {MAX_LEVEL} (or a range like 1-3), got {text!r}")
    return levels


Step = tuple[str, int]  # (sentence, value after the step)


def _add(rng: random.Random, value: int, who: tuple[str, str, str], item: str) -> Step | None:
    if value >= MAX_VALUE - 2:
        return None
    amount = rng.randint(2, min(30, MAX_VALUE - value))
    name, pronoun, _ = who
    sentence = rng.choice(
        [
            f"{name} buys {amount} more {item}.",
            f"Then {pronoun} finds {amount} more {item}.",
            f"{rng.choice(_OTHERS).capitalize()} gives {name} {amount} {item}.",
        ]
    )
    return sentence, value + amount


def _take(rng: random.Random, value: int, who: tuple[str, str, str], item: str) -> Step | None:
    if value < 3:
        return None
    amount = rng.randint(1, min(30, value - 1))
    name, pronoun, _ = who
    sentence = rng.choice(
        [
            f"{name} gives {amount} {item} to {rng.choice(_OTHERS)}.",
            f"Then {pronoun} loses {amount} {item}.",
            f"{name} uses {amount} of the {item}.",
        ]
    )
    return sentence, value - amount


def _multiply(rng: random.Random, value: int, who: tuple[str, str, str], item: str) -> Step | None:
    factors = [k for k in _TIMES if value * k <= MAX_VALUE]
    if not factors:
        return None
    factor = rng.choice(factors)
    name, _, possessive = who
    sentence = rng.choice(
        [
            f"Then {name} ends up with {_TIMES[factor]} as many {item} as before.",
            f"{name} collects more until {possessive} number of {item} is {_TIMES[factor]} "
            "what it was.",
        ]
    )
    return sentence, value * factor


def _share(rng: random.Random, value: int, who: tuple[str, str, str], item: str) -> Step | None:
    parts = [k for k in range(2, 6) if value % k == 0 and value // k >= 1]
    if not parts:
        return None
    count = rng.choice(parts)
    name, pronoun, _ = who
    sentence = rng.choice(
        [
            f"{name} splits the {item} equally into {count} bags and keeps only one bag.",
            f"Then {pronoun} packs the {item} equally into {count} boxes and gives away every "
            "box but one.",
        ]
    )
    return sentence, value // count


_OPERATIONS: list[Callable[[random.Random, int, tuple[str, str, str], str], Step | None]] = [
    _add,
    _take,
    _multiply,
    _share,
]


def make_problem(seed: int, level: int, index: int) -> Problem:
    """Problem ``index`` of level ``level`` for ``seed``: the same on every machine and run."""
    # A string seed is hashed with SHA-512 by random.Random: stable across processes and versions.
    rng = random.Random(f"pdr-synthetic:{seed}:{level}:{index}")
    who = rng.choice(_NAMES)
    item = rng.choice(_ITEMS)
    value = rng.randint(6, 40)
    sentences = [f"{who[0]} has {value} {item}."]
    previous: Callable[..., Step | None] | None = None
    for _ in range(level):
        # Not the same kind of step twice in a row, so each step is a new kind of reasoning.
        choices = [op for op in _OPERATIONS if op is not previous]
        rng.shuffle(choices)
        for operation in choices:
            step = operation(rng, value, who, item)
            if step is not None:
                sentences.append(step[0])
                value = step[1]
                previous = operation
                break
        else:  # pragma: no cover - _add or _take always applies within MAX_VALUE
            raise AssertionError("no operation applies")
    sentences.append(f"How many {item} does {who[0]} have now?")
    return Problem(
        id=f"L{level}-s{seed}-{index:04d}",
        problem=" ".join(sentences),
        answer=str(value),
        level=level,
    )


def generate(levels: Sequence[int] = (2,), n: int = 50, seed: int = 0) -> list[Problem]:
    """``n`` problems cycling through ``levels`` (operations per problem).

    Args:
        levels: difficulty levels, 1 to MAX_LEVEL.
        n: number of problems.
        seed: generator seed.

    Returns:
        The problems, each with an exact integer answer.
    """
    if not levels:
        raise DatasetError("synthetic: give at least one level")
    return [make_problem(seed, levels[i % len(levels)], i) for i in range(n)]


def load(spec: str) -> Dataset:
    """The dataset a ``synthetic:...`` spec names."""
    parsed = parse_spec(spec)
    return Dataset(name=parsed.name, problems=generate(parsed.levels, parsed.n, parsed.seed))

"""A problem set's types: problems with gold answers, and the set they form."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message says what to change."""


@dataclass(frozen=True)
class Problem:
    """One problem with its gold answer.

    Attributes:
        id: stable identifier inside its dataset (results are keyed by it).
        problem: the problem statement given to the model.
        answer: the gold answer as text.
        level: difficulty level where the dataset has one (the generated set), else None.
    """

    id: str
    problem: str
    answer: str
    level: int | None = None


@dataclass(frozen=True)
class Dataset:
    """A loaded problem set.

    Attributes:
        name: the canonical spec it was loaded from (experiments are keyed by it).
        problems: the problems, in file order.
    """

    name: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """A short hash of ids, problems and answers: the same text gives the same fingerprint."""
        digest = hashlib.sha256()
        for problem in self.problems:
            for part in (problem.id, problem.problem, problem.answer):
                digest.update(part.encode())
                digest.update(b"\0")
        return digest.hexdigest()[:16]

    def head(self, limit: int | None) -> Dataset:
        """The first ``limit`` problems (all of them for None)."""
        if limit is None:
            return self
        if limit < 1:
            raise DatasetError(f"limit must be >= 1, got {limit}")
        return Dataset(
            name=f"{self.name}[:{limit}]" if limit < len(self.problems) else self.name,
            problems=self.problems[:limit],
        )

    def __len__(self) -> int:
        return len(self.problems)

"""An experiment's cells and a worker's progress through them (what the harness hands out)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pdr.evaluation.configs import Config
from pdr.evaluation.problems import Problem

Phase = Literal["calibrate", "evaluate"]


@dataclass(frozen=True)
class Cell:
    """One run to make: a configuration on an item with a seed."""

    config: Config
    problem: Problem
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        """The (label, item id, seed) key of the ledger's results."""
        return (self.config.label, self.problem.id, self.seed)


@dataclass
class Progress:
    """Where an evaluation phase stands (handed to ``on_progress`` after every run).

    Attributes:
        phase: "calibrate" or "evaluate".
        done: cells finished in this phase, the already completed ones included.
        total: cells of the phase.
        correct: correct answers among the runs finished in this session.
        finished: runs finished in this session.
        failed: runs of this session that ended in an error.
        skipped: cells found completed in the ledger (not run again).
    """

    phase: Phase
    done: int
    total: int
    correct: int = 0
    finished: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def accuracy(self) -> float | None:
        """Running accuracy of this session's runs (None before the first one)."""
        return self.correct / self.finished if self.finished else None


ProgressHandler = Callable[[Progress], None]

"""Budget matching: measure each ladder configuration's B_seq, then pick one per target.

Each method has a ladder of configurations. On the calibration items every configuration is run
with the first seed and its mean B_seq measured; for every method and target B_seq the
configuration whose measured B_seq is nearest is picked (ties go to the cheaper one). Matching on
measured budgets, not on caps, keeps a method that stops early from being credited with a budget
it never used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pdr.evaluation.configs import Config
from pdr.store.rows import ResultRow


@dataclass(frozen=True)
class Measurement:
    """A configuration's mean B_seq on the calibration items."""

    config: Config
    b_seq: float
    runs: int


@dataclass(frozen=True)
class Pick:
    """The configuration picked for one method and target B_seq."""

    method: str
    target: int
    config: Config
    measured_b_seq: float


def pick_configs(measurements: Sequence[Measurement], targets: Sequence[int]) -> list[Pick]:
    """For every method and target, the configuration whose measured B_seq is nearest.

    Ties go to the cheaper configuration, then to the earlier one in the ladder.
    """
    picks: list[Pick] = []
    methods = list(dict.fromkeys(m.config.method for m in measurements))
    for method in methods:
        candidates = [m for m in measurements if m.config.method == method and m.runs > 0]
        if not candidates:
            continue
        for target in targets:
            best = min(
                enumerate(candidates),
                key=lambda pair: (abs(pair[1].b_seq - target), pair[1].b_seq, pair[0]),
            )[1]
            picks.append(Pick(method, target, best.config, best.b_seq))
    return picks


def measure(
    results: Sequence[ResultRow], ladders: Sequence[Config], items: set[str], seed: int
) -> list[Measurement]:
    """Mean B_seq of each ladder configuration over its finished runs on the calibration cells."""
    measured: list[Measurement] = []
    for config in ladders:
        values = [
            row.b_seq
            for row in results
            if row.label == config.label
            and row.item_id in items
            and row.seed == seed
            and row.status == "done"
            and row.b_seq is not None
        ]
        mean = sum(values) / len(values) if values else float("nan")
        measured.append(Measurement(config, mean, len(values)))
    return measured

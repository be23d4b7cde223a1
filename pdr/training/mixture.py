"""The 50/50 mixture: which problems each update trains on, and in which mode.

Every update draws ``problems_per_step`` problems, half for long-trace rollouts and half for
operator rollouts, alternating (long, operator, long, ...). TRL's trainer reads the schedule in
order (``shuffle_dataset=False``) and takes exactly one update's problems per generation batch, so
each update's rollouts are exactly half of each mode (``group_size`` rollouts per problem). The
problems are taken from a seeded shuffle of the dataset, cycling when it runs out.

A schedule row's prompt is its key, ``"<mode>:<step>:<slot>:<item id>"``: TRL hands the rollout
function only the prompts, and the key finds the row again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pdr.evaluation.problems import Problem

Mode = Literal["long", "operator"]
MODES: tuple[Mode, Mode] = ("long", "operator")


@dataclass(frozen=True)
class ScheduledProblem:
    """One problem of one update, in one mode.

    Attributes:
        key: the prompt TRL sees, unique in the schedule.
        step: the update (1-based).
        slot: the problem's place in its update.
        mode: "long" (long chain-of-thought rollouts) or "operator" (one PDR round).
        problem: the problem and its gold answer.
    """

    key: str
    step: int
    slot: int
    mode: Mode
    problem: Problem


def mixture(
    problems: Sequence[Problem], *, steps: int, per_step: int, seed: int
) -> list[ScheduledProblem]:
    """The schedule of ``steps`` updates of ``per_step`` problems each, modes alternating.

    Within an update no problem appears twice while the dataset has enough problems.

    Raises:
        ValueError: no problems, or an odd ``per_step``.
    """
    if not problems:
        raise ValueError("the training dataset has no problems")
    if per_step < 2 or per_step % 2:
        raise ValueError(f"per_step must be even and >= 2, got {per_step}")
    rng = random.Random(f"pdr-mixture:{seed}")
    order: list[Problem] = []
    schedule: list[ScheduledProblem] = []
    for step in range(1, steps + 1):
        for slot in range(per_step):
            if not order:
                order = list(problems)
                rng.shuffle(order)
            problem = order.pop()
            mode = MODES[slot % 2]
            key = f"{mode}:{step}:{slot}:{problem.id}"
            schedule.append(ScheduledProblem(key, step, slot, mode, problem))
    return schedule


def modes_of(keys: Sequence[str]) -> list[Mode]:
    """The mode of each prompt key."""
    found: list[Mode] = []
    for key in keys:
        mode = key.partition(":")[0]
        if mode not in MODES:
            raise ValueError(f"not a schedule key: {key!r}")
        found.append("long" if mode == "long" else "operator")
    return found

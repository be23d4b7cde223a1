"""Interval estimates for the reports."""

from __future__ import annotations

import math

# The normal quantile of a two-sided 95% interval (scipy.stats.norm.ppf(0.975)).
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion.

    Args:
        successes: correct answers.
        trials: answers graded.
        z: normal quantile (1.96 for 95%).

    Returns:
        (low, high); (0.0, 1.0) when there are no trials.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)

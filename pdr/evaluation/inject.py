"""The paper's verification experiment: plant a known-correct or known-wrong candidate.

``pdr eval --inject correct`` (or ``incorrect``; repeat it for both) runs every PDR configuration
twice or three times: as it is, and with one planted candidate among round 1's drafts, after the
model's own (``PDRContext.injected_draft``: no model call, 0 tokens, recorded as injected). The
candidate is a one-line solution that ends with the gold answer, or with a plausible wrong one
(``wrong_answer``); both read the same apart from the answer. A model that verifies well gains
from a correct plant and shrugs off a wrong one; ``injection_rows`` sets the accuracies side by
side per configuration (distill operator and scorer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from pdr.evaluation.configs import INJECT_VALUES, Config
from pdr.evaluation.stats import wilson_interval
from pdr.prompts.draft import PLANTED

INJECT_MODES: tuple[str, ...] = INJECT_VALUES


def wrong_answer(gold: str) -> str:
    """A plausible wrong answer: a whole number off by about 10% (at least 1), else gold + 1."""
    text = gold.strip().replace(",", "")
    if re.fullmatch(r"[-+]?\d+", text):
        value = int(text)
        return str(value + max(1, round(abs(value) * 0.1)))
    try:
        return str(Fraction(text) + 1)
    except (ValueError, ZeroDivisionError):
        return f"{gold} + 1"


def planted_solution(gold: str, mode: str) -> str:
    """The candidate planted for ``mode`` ("correct": the gold answer, "incorrect": a wrong one)."""
    if mode not in INJECT_MODES:
        raise ValueError(f"inject: choose {' or '.join(INJECT_MODES)}, got {mode!r}")
    return PLANTED.format(answer=gold if mode == "correct" else wrong_answer(gold))


def with_injections(ladders: Sequence[Config], modes: Sequence[str]) -> list[Config]:
    """The ladders plus, after each PDR configuration, one copy per inject mode."""
    expanded: list[Config] = []
    for config in ladders:
        expanded.append(config)
        if config.method == "pdr" and config.inject is None:
            expanded += [Config("pdr", {**config.params, "inject": mode}) for mode in modes]
    return expanded


@dataclass(frozen=True)
class InjectionRow:
    """One configuration's accuracy without a planted candidate and with each kind.

    Attributes:
        label: the configuration (without ``inject``).
        runs: mode ("none", "correct", "incorrect") -> (correct, runs).
    """

    label: str
    runs: dict[str, tuple[int, int]]

    def cell(self, mode: str) -> str:
        """Accuracy with its 95% Wilson interval and n, or "-" when that mode did not run."""
        if mode not in self.runs:
            return "-"
        correct, n = self.runs[mode]
        low, high = wilson_interval(correct, n)
        return f"{100 * correct / n:.1f}% ({100 * low:.1f}-{100 * high:.1f}%, n={n})"


def injection_rows(
    results: Sequence[tuple[str, bool]], ladders: Sequence[Config]
) -> list[InjectionRow]:
    """Per PDR configuration: accuracy without and with each planted candidate.

    Args:
        results: (configuration label, correct) of every reported run.
        ladders: the experiment's configurations (empty result when none plants a candidate).
    """
    if not any(config.inject for config in ladders):
        return []
    planted = [config for config in ladders if config.method == "pdr"]
    base_of = {
        config.label: replace(
            config, params={k: v for k, v in config.params.items() if k != "inject"}
        ).label
        for config in planted
    }
    mode_of = {config.label: config.inject or "none" for config in planted}
    # One row per configuration without its plant, in the order of the ladders.
    counts: dict[str, dict[str, tuple[int, int]]] = {b: {} for b in base_of.values()}
    for label, correct_run in results:
        if label not in base_of:
            continue
        row = counts[base_of[label]]
        correct, n = row.get(mode_of[label], (0, 0))
        row[mode_of[label]] = (correct + int(correct_run), n + 1)
    return [InjectionRow(label, runs) for label, runs in counts.items() if runs]


def injection_markdown(rows: Sequence[InjectionRow]) -> str:
    """The injection table as Markdown ("" without rows)."""
    if not rows:
        return ""
    lines = [
        "| configuration | no planted candidate | correct one planted | wrong one planted |",
        "|---|---|---|---|",
    ]
    for row in rows:
        shown = row.label.removeprefix("pdr").strip()
        cells = [row.cell(mode) for mode in ("none", *INJECT_MODES)]
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""A training's curves: mean reward per mode and update (from the ledger) and the loss terms.

The rewards are read back from the ledger's ``rollouts`` rows, so the figure shows exactly what
the ledger holds; the loss terms come from the trainer's logs (the history ``TrainingProgress``
kept). ``write_curves`` writes ``history.csv`` and ``rewards.png`` into the output folder.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pdr.evaluation.report import wilson_interval
from pdr.store.rollouts import RolloutRow
from pdr.training.mixture import MODES


@dataclass(frozen=True)
class StepReward:
    """The rollouts of one mode in one update."""

    step: int
    mode: str
    rollouts: int
    correct: int
    failed: int

    @property
    def mean(self) -> float:
        """Mean reward of the scored rollouts (failed ones have no reward)."""
        scored = self.rollouts - self.failed
        return self.correct / scored if scored else 0.0


def step_rewards(rows: Sequence[RolloutRow]) -> list[StepReward]:
    """Per update and mode: rollouts, correct ones and failed ones."""
    table: dict[tuple[int, str], list[RolloutRow]] = {}
    for row in rows:
        table.setdefault((row.step, row.mode), []).append(row)
    return [
        StepReward(
            step=step,
            mode=mode,
            rollouts=len(group),
            correct=sum(1 for row in group if row.reward == 1.0),
            failed=sum(1 for row in group if row.reward is None),
        )
        for (step, mode), group in sorted(table.items())
    ]


def history_csv(rewards: Sequence[StepReward], history: Sequence[dict[str, float]]) -> str:
    """One line per update: its rollouts' rewards per mode (ledger) and its loss terms (logs)."""
    logs = {int(row["step"]): row for row in history}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["step"]
    for mode in MODES:
        header += [f"{mode}_rollouts", f"{mode}_correct", f"{mode}_failed", f"{mode}_reward"]
    header += ["loss", "loss_cispo", "loss_sft", "cispo_clip_ratio", "step_time"]
    writer.writerow(header)
    steps = sorted({reward.step for reward in rewards} | set(logs))
    by_key = {(reward.step, reward.mode): reward for reward in rewards}
    for step in steps:
        line: list[str] = [str(step)]
        for mode in MODES:
            found = by_key.get((step, mode))
            if found is None:
                line += ["0", "0", "0", ""]
            else:
                line += [str(found.rollouts), str(found.correct), str(found.failed)]
                line.append(f"{found.mean:.4f}")
        log = logs.get(step, {})
        for key in ("loss", "loss_cispo", "loss_sft", "cispo_clip_ratio", "step_time"):
            line.append(f"{log[key]:.6g}" if key in log else "")
        writer.writerow(line)
    return buffer.getvalue()


def write_curves(
    out: Path,
    rewards: Sequence[StepReward],
    history: Sequence[dict[str, float]],
    title: str | None = None,
) -> list[Path]:
    """``history.csv`` and ``rewards.png`` (reward per mode with 95% intervals; loss terms)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    out.mkdir(parents=True, exist_ok=True)
    table = out / "history.csv"
    table.write_text(history_csv(rewards, history))
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    for mode, marker in zip(MODES, ("o", "s"), strict=True):
        points = [r for r in rewards if r.mode == mode]
        if not points:
            continue
        steps = [r.step for r in points]
        means = [r.mean for r in points]
        bounds = [wilson_interval(r.correct, max(1, r.rollouts - r.failed)) for r in points]
        below = [mean - low for mean, (low, _) in zip(means, bounds, strict=True)]
        above = [high - mean for mean, (_, high) in zip(means, bounds, strict=True)]
        label = "long-trace (long_cot)" if mode == "long" else "operator (PDR, 1 round)"
        left.errorbar(steps, means, yerr=[below, above], marker=marker, capsize=3, label=label)
    left.set_xlabel("update")
    left.set_ylabel("mean reward of the update's rollouts")
    left.set_ylim(-0.05, 1.05)
    left.legend()
    logged = [row for row in history if "loss_cispo" in row]
    if logged:
        updates = [row["step"] for row in logged]
        right.plot(updates, [row["loss_cispo"] for row in logged], marker="o", label="J_CISPO")
        right.plot(updates, [row.get("loss_sft", 0.0) for row in logged], marker="s", label="J_SFT")
        right.axhline(0.0, color="grey", linewidth=0.5)
        right.legend()
    right.set_xlabel("update")
    right.set_ylabel("loss term (minimised)")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    picture = out / "rewards.png"
    figure.savefig(picture, dpi=110)
    pyplot.close(figure)
    return [table, picture]

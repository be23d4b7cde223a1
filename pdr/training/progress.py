"""The progress of a training: a Rich bar (updates done, mean reward per mode, loss terms).

``TrainingProgress`` is a transformers ``TrainerCallback`` (the trainer's documented hook): it
reads the logs of every update (``logging_steps=1``) and keeps them as the training's history. Off
a terminal (a log file, CI) it prints one plain line per update instead of redrawing a bar.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback

# What each update's row of the history holds (TRL's log keys and pdr's own).
HISTORY_KEYS = {
    "reward_long": "reward/long",
    "reward_operator": "reward/operator",
    "reward": "reward",
    "loss": "loss",
    "loss_cispo": "loss/cispo",
    "loss_sft": "loss/sft",
    "cispo_clip_ratio": "cispo_clip_ratio",
    "completion_length": "completions/mean_length",
    "step_time": "step_time",
}


def describe(row: dict[str, float]) -> str:
    """One update's figures as a short line."""
    parts = []
    for label, key in (("long", "reward_long"), ("operator", "reward_operator")):
        if key in row:
            parts.append(f"reward {label} {row[key]:.2f}")
    for label, key in (("J_CISPO", "loss_cispo"), ("J_SFT", "loss_sft")):
        if key in row:
            parts.append(f"{label} {row[key]:+.4f}")
    return "  ".join(parts)


class TrainingProgress(TrainerCallback):
    """A progress bar over the updates and the history of their logs."""

    def __init__(self, console: Console | None = None, *, show: bool = True) -> None:
        """Show on ``console`` (None or ``show=False``: keep the history only)."""
        self.console = console
        self.show = show and console is not None
        self.history: list[dict[str, float]] = []
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the bar over ``max_steps`` updates."""
        if not self.show or self.console is None or not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[figures]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = self._progress.add_task("training", total=state.max_steps, figures="")
        self._progress.start()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
    ) -> None:
        """Keep the update's figures and show them."""
        if not logs or "loss" not in logs:
            return
        row = {"step": float(state.global_step)}
        row.update({name: float(logs[key]) for name, key in HISTORY_KEYS.items() if key in logs})
        self.history.append(row)
        figures = describe(row)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=state.global_step, figures=figures)
        elif self.show and self.console is not None:
            self.console.print(
                f"step {state.global_step}/{state.max_steps}  {figures}", highlight=False
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

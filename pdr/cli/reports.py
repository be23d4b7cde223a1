"""What ``pdr eval`` and ``pdr plot`` show and write: progress, tables, Markdown, CSV, figures."""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress, TaskID
from rich.table import Table

from pdr.cli.terminal import LiveConsole
from pdr.evaluation.cells import Progress as HarnessProgress
from pdr.evaluation.drafts import drafts_markdown
from pdr.evaluation.inject import injection_markdown
from pdr.evaluation.report import (
    BUDGET_NOTE,
    EvalReport,
    csv_text,
    markdown_table,
    matching_markdown,
    rich_table,
)

console = LiveConsole("stdout")


class ProgressBar:
    """A Rich progress bar per phase: items done/total and the running accuracy.

    Off a terminal (a log file, CI) a live bar cannot redraw, so a plain line is printed instead
    every twentieth of the phase and at its end.
    """

    def __init__(self, progress: Progress, lines: bool = False) -> None:
        self.progress = progress
        self.lines = lines
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, state: HarnessProgress) -> None:
        """Show ``state`` (the harness calls this after every run)."""
        if state.phase not in self.tasks:
            title = "calibrating" if state.phase == "calibrate" else "evaluating"
            self.tasks[state.phase] = self.progress.add_task(title, total=state.total, acc="")
        accuracy = state.accuracy
        acc = f"acc {100 * accuracy:.1f}% of {state.finished}" if accuracy is not None else ""
        if state.failed:
            acc += f", {state.failed} failed"
        if state.skipped:
            acc += f", {state.skipped} done before"
        self.progress.update(self.tasks[state.phase], completed=state.done, acc=acc)
        step = max(1, state.total // 20)
        if self.lines and state.finished and (state.done % step == 0 or state.done == state.total):
            elapsed = self.progress.tasks[self.tasks[state.phase]].elapsed or 0.0
            console.print(
                f"{state.phase}: {state.done}/{state.total} {acc} ({elapsed:.0f} s)",
                highlight=False,
            )


def print_report(report: EvalReport) -> None:
    """The budget-matching table (with budgets), the results, the drafts and injection tables."""
    if report.measurements:
        table = Table(title="budget matching (calibration runs)")
        for header in (
            "method",
            "configuration",
            "calibration runs",
            "measured B_seq",
            "picked for",
        ):
            table.add_column(header, justify="left" if header != "measured B_seq" else "right")
        for measurement in report.measurements:
            targets = [
                str(pick.target) for pick in report.picks if pick.config == measurement.config
            ]
            measured = f"{measurement.b_seq:,.0f}" if measurement.runs else "-"
            table.add_row(
                measurement.config.method,
                measurement.config.label.removeprefix(measurement.config.method).strip(),
                str(measurement.runs),
                measured,
                ", ".join(targets),
            )
        console.print(table)
    if report.rows:
        console.print(rich_table(report.rows, title=f"{report.name} (achieved budgets, means)"))
        console.print(BUDGET_NOTE, highlight=False)
    else:
        console.print("no finished runs yet")
    for title, text in (
        ("Round-1 drafts and the final answer", drafts_markdown(report.drafts)),
        ("Accuracy with a planted candidate", injection_markdown(report.injections)),
    ):
        if text:
            console.print(f"\n{title}:\n{text}", highlight=False, markup=False)


def markdown(report: EvalReport) -> str:
    """The results table and what its budgets count; then budget matching, drafts, injection."""
    parts = [markdown_table(report.rows), BUDGET_NOTE + "\n"]
    matching = matching_markdown(report)
    if matching:
        parts.append(f"Budget matching (calibration runs):\n\n{matching}")
    drafts = drafts_markdown(report.drafts)
    if drafts:
        parts.append(f"Round-1 drafts and the final answer:\n\n{drafts}")
    injections = injection_markdown(report.injections)
    if injections:
        parts.append(f"Accuracy with a candidate planted among round 1's drafts:\n\n{injections}")
    return "\n".join(parts)


def write_outputs(report: EvalReport, out: Path) -> list[Path]:
    """Write results.md, results.csv and the figures into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown(report))
    (out / "results.csv").write_text(csv_text(report.rows))
    from pdr.evaluation.plot import write_figures  # matplotlib: only when a figure is written

    return [out / "results.md", out / "results.csv", *write_figures(report.rows, out)]

"""Tables of an experiment: accuracy with a 95% Wilson interval and the budgets actually spent.

One row per method and budget level (one configuration). Every budget in a row is a mean of what
the runs measured (B_seq, B_tot, wall time, calls); a requested budget never appears as a number
spent. Runs that failed count as wrong answers (they are also counted in ``failed``), and their
budgets (the tokens they consumed) are part of the means.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from pdr.evaluation.configs import Config, EvalError
from pdr.evaluation.drafts import DraftRow, draft_rows
from pdr.evaluation.inject import InjectionRow, injection_rows
from pdr.evaluation.matching import Measurement, Pick, measure, pick_configs

# The interval lives in stats (inject uses it too); re-exported for the report's readers.
from pdr.evaluation.stats import Z_95 as Z_95
from pdr.evaluation.stats import wilson_interval as wilson_interval
from pdr.store.ledger import ENDED, FINISHED, Ledger, LedgerError
from pdr.store.rows import ResultRow


@dataclass(frozen=True)
class RunResult:
    """What the report needs of one run (a result of an experiment)."""

    method: str
    label: str
    item_id: str
    seed: int
    correct: bool
    failed: bool
    b_seq: int
    b_tot: int
    wall_s: float
    calls: int
    b_tot_per_draft: int | None = None


@dataclass(frozen=True)
class ReportRow:
    """One method at one budget level.

    Attributes:
        method: pdr, sr or long_cot.
        level: 1-based budget level within the method (by increasing achieved B_seq).
        label: the configuration behind the level.
        n: runs (items x seeds).
        correct: runs graded correct.
        failed: runs that ended in an error (counted as wrong).
        accuracy: correct / n.
        ci_low: lower end of the 95% Wilson interval.
        ci_high: upper end of the 95% Wilson interval.
        b_seq: mean achieved B_seq (tokens on the critical path).
        b_tot: mean achieved B_tot, billed (an n-sample call's prompt counted once).
        wall_s: mean wall time of a run in seconds.
        calls: mean model calls (attempts) per run.
        b_tot_per_draft: mean B_tot with that prompt counted once per draft (equal to b_tot
            unless drafts were batched).
    """

    method: str
    level: int
    label: str
    n: int
    correct: int
    failed: int
    accuracy: float
    ci_low: float
    ci_high: float
    b_seq: float
    b_tot: float
    wall_s: float
    calls: float
    b_tot_per_draft: float | None = None


def summarize(
    results: Iterable[RunResult], method_order: Sequence[str] = ("long_cot", "sr", "pdr")
) -> list[ReportRow]:
    """Group runs by (method, configuration) into report rows.

    Levels number each method's configurations by increasing mean B_seq. Rows are ordered by
    method (``method_order`` first, others after, by name) and then by level.
    """
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.method, result.label), []).append(result)
    rows: list[ReportRow] = []
    for (method, label), runs in groups.items():
        n = len(runs)
        correct = sum(run.correct for run in runs)
        low, high = wilson_interval(correct, n)
        rows.append(
            ReportRow(
                method=method,
                level=0,
                label=label,
                n=n,
                correct=correct,
                failed=sum(run.failed for run in runs),
                accuracy=correct / n,
                ci_low=low,
                ci_high=high,
                b_seq=sum(run.b_seq for run in runs) / n,
                b_tot=sum(run.b_tot for run in runs) / n,
                wall_s=sum(run.wall_s for run in runs) / n,
                calls=sum(run.calls for run in runs) / n,
                b_tot_per_draft=sum(
                    run.b_tot if run.b_tot_per_draft is None else run.b_tot_per_draft
                    for run in runs
                )
                / n,
            )
        )

    def method_rank(method: str) -> tuple[int, str]:
        order = list(method_order)
        return (order.index(method), "") if method in order else (len(order), method)

    rows.sort(key=lambda row: (method_rank(row.method), row.b_seq, row.label))
    numbered: list[ReportRow] = []
    for row in rows:
        level = 1 + sum(1 for earlier in numbered if earlier.method == row.method)
        numbered.append(ReportRow(**{**asdict(row), "level": level}))
    return numbered


HEADERS = (
    "method",
    "level",
    "configuration",
    "n",
    "accuracy",
    "95% CI",
    "B_seq",
    "B_tot billed",
    "B_tot per draft",
    "wall s",
    "calls",
)


def _cells(row: ReportRow) -> list[str]:
    return [
        row.method,
        str(row.level),
        # The method has its own column; the configuration column shows the parameters.
        row.label.removeprefix(row.method).strip() or row.label,
        str(row.n) + (f" ({row.failed} failed)" if row.failed else ""),
        f"{100 * row.accuracy:.1f}%",
        f"{100 * row.ci_low:.1f}-{100 * row.ci_high:.1f}%",
        f"{row.b_seq:,.0f}",
        f"{row.b_tot:,.0f}",
        f"{row.b_tot if row.b_tot_per_draft is None else row.b_tot_per_draft:,.0f}",
        f"{row.wall_s:.1f}",
        f"{row.calls:.1f}",
    ]


# What the budget columns count, printed under every results table.
BUDGET_NOTE = (
    "Budgets are means of what the runs spent. B_seq: tokens on the critical path (per round, the "
    "longest draft, then the longest verification, the summary, the refine call; an n-sample "
    "call costs its prompt plus its longest sample). B_tot billed: every token of every call, "
    "failed attempts included, a prompt shared by n batched drafts counted once (what a "
    "provider bills). B_tot per draft: that prompt counted once per draft, as if each draft "
    "were its own call; it equals B_tot billed unless drafts were batched."
)


def markdown_table(rows: Sequence[ReportRow]) -> str:
    """The rows as a GitHub Markdown table (budgets are achieved means)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += [
        "| " + " | ".join(cell.replace("|", "/") for cell in _cells(row)) + " |" for row in rows
    ]
    return "\n".join(lines) + "\n"


def rich_table(rows: Sequence[ReportRow], title: str | None = None) -> Table:
    """The rows as a Rich table for the terminal."""
    table = Table(title=title)
    for header in HEADERS:
        justify = "left" if header in {"method", "configuration"} else "right"
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*_cells(row))
    return table


def csv_text(rows: Sequence[ReportRow]) -> str:
    """The rows as CSV with full precision (for other tools)."""
    buffer = io.StringIO()
    names = list(ReportRow.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buffer.getvalue()


@dataclass(frozen=True)
class EvalReport:
    """An experiment's outcome: its rows, and for budget matching the measurements and picks."""

    experiment_id: int
    name: str
    rows: list[ReportRow]
    measurements: list[Measurement]
    picks: list[Pick]
    config: dict[str, Any]
    drafts: list[DraftRow] = field(default_factory=list)
    injections: list[InjectionRow] = field(default_factory=list)


def matching_markdown(report: EvalReport) -> str:
    """The budget-matching table of a report as Markdown ("" without budgets).

    One row per ladder configuration: its mean B_seq on the calibration items and the targets
    that picked it.
    """
    if not report.measurements:
        return ""
    lines = [
        "| method | configuration | calibration runs | measured B_seq | picked for target B_seq |",
        "|---|---|---|---|---|",
    ]
    for measurement in report.measurements:
        config = measurement.config
        targets = ", ".join(str(p.target) for p in report.picks if p.config == config)
        measured = f"{measurement.b_seq:,.0f}" if measurement.runs else "-"
        shown = config.label.removeprefix(config.method).strip()
        lines.append(
            f"| {config.method} | {shown} | {measurement.runs} | {measured} | {targets or '-'} |"
        )
    return "\n".join(lines) + "\n"


def to_run_result(row: ResultRow) -> RunResult:
    """A ledger result as the report sees it (a failed run is a wrong answer)."""
    return RunResult(
        method=row.method,
        label=row.label,
        item_id=row.item_id,
        seed=row.seed,
        correct=bool(row.grade) and row.status in FINISHED,
        failed=row.status not in FINISHED,
        b_seq=row.b_seq or 0,
        b_tot=row.b_tot or 0,
        wall_s=row.wall_s or 0.0,
        calls=row.calls,
        b_tot_per_draft=row.b_tot_per_draft,
    )


def analyses(
    ledger: Ledger,
    experiment_id: int,
    results: Sequence[ResultRow],
    runs: Sequence[RunResult],
    ladders: Sequence[Config],
) -> tuple[list[DraftRow], list[InjectionRow]]:
    """The draft analysis and the injection table of the reported runs."""
    reported = {(run.label, run.item_id, run.seed) for run in runs}
    chosen = [row for row in results if (row.label, row.item_id, row.seed) in reported]
    drafts = draft_rows(chosen, ledger.call_outputs(experiment_id), ladders)
    return drafts, injection_rows([(run.label, run.correct) for run in runs], ladders)


def stored_report(ledger: Ledger, experiment: str | int) -> EvalReport:
    """The report of an experiment already in the ledger, by name or id, without its dataset.

    The cells to report are those of the stored config: the picked configurations (recomputed
    from the calibration runs) or every configuration of the ladders.

    Raises:
        EvalError: no such experiment.
    """
    experiment_id = experiment_id_of(ledger, experiment)
    config = ledger.experiment_config(experiment_id)
    results = ledger.results(experiment_id)
    ladders = [Config(c["method"], dict(c["params"])) for c in config["ladders"]]
    budgets = [int(b) for b in config.get("budgets", [])]
    seeds = [int(s) for s in config.get("seeds", [0])]
    measurements: list[Measurement] = []
    picks: list[Pick] = []
    if budgets:
        items = {str(item) for item in config.get("calibration_items", [])}
        measurements = measure(results, ladders, items, seeds[0])
        picks = pick_configs(measurements, budgets)
        chosen = {pick.config.label for pick in picks}
    else:
        chosen = {config.label for config in ladders}
    runs = [
        to_run_result(row)
        for row in results
        if row.label in chosen and row.seed in seeds and row.status in ENDED
    ]
    name = str(experiment) if not str(experiment).isdigit() else f"experiment {experiment_id}"
    drafts, injections = analyses(ledger, experiment_id, results, runs, ladders)
    return EvalReport(
        experiment_id, name, summarize(runs), measurements, picks, config, drafts, injections
    )


def experiment_id_of(ledger: Ledger, experiment: str | int) -> int:
    """The id of an experiment named by name or id; raises EvalError when there is none."""
    if isinstance(experiment, int) or str(experiment).isdigit():
        try:
            ledger.experiment_config(int(experiment))
            return int(experiment)
        except LedgerError:
            pass
    found = ledger.find_experiment(str(experiment))
    if found is None:
        raise EvalError(f"no experiment {experiment!r} in the ledger {ledger.url}")
    return found

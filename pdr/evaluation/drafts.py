"""What the drafts knew: round-1 draft accuracy beside the final answer, per configuration.

From the ledger's stored draft answers (``Ledger.call_outputs``), for each PDR or SR
configuration of an experiment:

- mean draft accuracy: the share of round-1 drafts (the model's own; planted candidates left
  out) whose answer is right; these are the same task as one long chain-of-thought call, so the
  table also shows long CoT's accuracy at the same output cap where the experiment has it;
- majority accuracy: how often the most common answer of a run's round-1 drafts is right (a tie
  goes to the earliest draft, as top-k vote picks);
- oracle accuracy: how often at least one round-1 draft is right;
- final accuracy, and how often the steps after round 1 turned a right majority into a wrong
  final answer (``lost``) or a wrong majority into a right one (``rescued``).

Read together they say what to change: drafts rarely right means the drafts need more room or a
better prompt; a right majority lost means the distill or refine step is what fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pdr.answers import normalize_answer
from pdr.evaluation.configs import Config
from pdr.evaluation.grading import grade_answer
from pdr.graphs.catalog import context_type
from pdr.store.ledger import ENDED, FINISHED
from pdr.store.rows import CallOutput, ResultRow

Grader = Callable[[str | None, str], bool]


@dataclass(frozen=True)
class DraftRow:
    """The draft analysis of one configuration (see the module docstring).

    Attributes:
        method: pdr or sr.
        label: the configuration.
        runs: runs analysed.
        drafts: round-1 drafts graded.
        draft_accuracy: right drafts / drafts.
        majority_accuracy: runs whose majority answer is right / runs.
        oracle_accuracy: runs with at least one right draft / runs.
        final_accuracy: runs whose final answer is right / runs.
        lost: runs with a right majority and a wrong final answer.
        rescued: runs with a wrong majority and a right final answer.
        long_cot_accuracy: long CoT's accuracy at the same max_tokens in this experiment, if any.
    """

    method: str
    label: str
    runs: int
    drafts: int
    draft_accuracy: float
    majority_accuracy: float
    oracle_accuracy: float
    final_accuracy: float
    lost: int
    rescued: int
    long_cot_accuracy: float | None = None


def round_one_answers(outputs: Sequence[CallOutput]) -> list[str | None]:
    """The answers of a run's round-1 model drafts, in draft order (one per sample)."""
    drafts = [
        output
        for output in outputs
        if output.role == "draft" and output.round == 1 and output.error is None
    ]
    return [
        answer
        for output in sorted(drafts, key=lambda o: (o.index, o.attempt))
        if not output.injected
        for answer in output.answers or [None] * len(output.texts)
    ]


def majority(answers: Sequence[str | None]) -> str | None:
    """The most common answer (the earliest of those tied); None without any answer."""
    keys = [normalize_answer(answer) for answer in answers]
    counts = Counter(key for key in keys if key is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(a for a, key in zip(answers, keys, strict=True) if key and counts[key] == top)


def output_cap(config: Config) -> int:
    """The max_tokens a configuration's calls run with (its own, else its method's default)."""
    cap = config.params.get("max_tokens")
    return int(cap) if cap is not None else int(context_type(config.method)().max_tokens)


def draft_rows(
    results: Sequence[ResultRow],
    outputs: dict[str, list[CallOutput]],
    ladders: Sequence[Config],
    grade: Grader = grade_answer,
) -> list[DraftRow]:
    """The draft analysis per PDR/SR configuration of ``results`` (finished runs only).

    Rows follow the order of ``ladders``.
    """
    caps = {config.label: output_cap(config) for config in ladders}
    verdicts: dict[tuple[str | None, str], bool] = {}

    def right(answer: str | None, gold: str) -> bool:
        if (answer, gold) not in verdicts:
            verdicts[(answer, gold)] = answer is not None and bool(grade(answer, gold))
        return verdicts[(answer, gold)]

    groups: dict[tuple[str, str], list[ResultRow]] = {}
    long_cot: dict[int | None, list[bool]] = {}
    for row in results:
        if row.status not in ENDED or row.gold is None:
            continue
        final = row.status in FINISHED and bool(row.grade)
        if row.method == "long_cot":
            long_cot.setdefault(caps.get(row.label), []).append(final)
        else:
            groups.setdefault((row.method, row.label), []).append(row)
    table = []
    order = {config.label: position for position, config in enumerate(ladders)}
    ranked = sorted(groups.items(), key=lambda item: order.get(item[0][1], len(order)))
    for (method, label), rows in ranked:
        drafts = right_drafts = majority_right = oracle = final_right = lost = rescued = 0
        for row in rows:
            gold = row.gold or ""
            answers = round_one_answers(outputs.get(row.thread_id, []))
            marks = [right(answer, gold) for answer in answers]
            drafts += len(marks)
            right_drafts += sum(marks)
            voted = right(majority(answers), gold)
            final = row.status in FINISHED and bool(row.grade)
            majority_right += voted
            oracle += any(marks)
            final_right += final
            lost += voted and not final
            rescued += final and not voted
        same_cap = long_cot.get(caps.get(label))
        table.append(
            DraftRow(
                method=method,
                label=label,
                runs=len(rows),
                drafts=drafts,
                draft_accuracy=right_drafts / drafts if drafts else 0.0,
                majority_accuracy=majority_right / len(rows),
                oracle_accuracy=oracle / len(rows),
                final_accuracy=final_right / len(rows),
                lost=lost,
                rescued=rescued,
                long_cot_accuracy=sum(same_cap) / len(same_cap) if same_cap else None,
            )
        )
    return table


def drafts_markdown(rows: Sequence[DraftRow]) -> str:
    """The draft analysis as Markdown ("" without rows)."""
    if not rows:
        return ""
    lines = [
        "| method | configuration | runs | drafts | draft accuracy | long CoT, same cap "
        "| majority of drafts | any draft right | final | right majority lost "
        "| wrong majority rescued |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    for row in rows:
        shown = row.label.removeprefix(row.method).strip()
        lines.append(
            f"| {row.method} | {shown} | {row.runs} | {row.drafts} | {pct(row.draft_accuracy)} "
            f"| {pct(row.long_cot_accuracy)} | {pct(row.majority_accuracy)} "
            f"| {pct(row.oracle_accuracy)} | {pct(row.final_accuracy)} | {row.lost} "
            f"| {row.rescued} |"
        )
    return "\n".join(lines) + "\n"

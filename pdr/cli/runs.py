"""``pdr runs list`` and ``pdr runs show``: the runs recorded in the ledger."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pdr.budget import call_tokens
from pdr.cli.run import DbOption, open_ledger
from pdr.cli.terminal import CommandError, console
from pdr.graphs.catalog import context_type
from pdr.graphs.fields import field_default
from pdr.store.rows import RunDetail

SHOWN_PARAMETERS = ("schedule", "rounds", "kappa", "k", "max_tokens", "temperature", "seed")


def _number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits else str(value)


def list_runs(
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many runs.")] = 20,
    db: DbOption = None,
) -> None:
    """The most recent runs: graph, model, status, answer, B_seq, B_tot, calls, wall time."""
    ledger = open_ledger(db)
    try:
        runs = ledger.list_runs(limit)
    finally:
        ledger.close()
    out = console()
    if not runs:
        out.print(Text(f"No runs in {ledger.url} yet; start one with pdr run."))
        return
    table = Table(title=f"Runs in {ledger.url}", title_justify="left")
    for column in ("ID", "Thread", "Graph", "Model", "Status", "Answer", "B_seq", "B_tot"):
        table.add_column(column, justify="right" if column.startswith(("B_", "ID")) else "left")
    table.add_column("Calls", justify="right")
    table.add_column("Wall s", justify="right")
    table.add_column("Started (UTC)")
    for item in runs:
        table.add_row(
            str(item.id),
            item.thread_id,
            item.graph,
            Text(item.models.get("model", "")),
            item.status,
            Text(item.answer or "-"),
            _number(item.b_seq),
            _number(item.b_tot),
            str(item.calls),
            _number(item.wall_s, 1),
            item.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def show_run(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Ledger id or thread id of the run.")],
    db: DbOption = None,
) -> None:
    """One run: parameters, each round's calls with their tokens, workspaces, the answer."""
    ledger = open_ledger(db)
    try:
        found = ledger.get_run(run_id)
    finally:
        ledger.close()
    if found is None:
        raise CommandError(
            f"ID: no run {run_id!r} in the ledger {ledger.url}; see pdr runs list", 1
        )
    render_run(console(), found)


def changed_prompts(found: RunDetail) -> dict[str, str]:
    """The system prompts a run used that differ from the built-in ones (its stored context)."""
    defaults = {
        item.name: field_default(item)
        for item in dataclasses.fields(context_type(found.graph))
        if item.name.endswith("_system_prompt")
    }
    return {
        name: str(found.context[name])
        for name, default in defaults.items()
        if name in found.context and found.context[name] != default
    }


def render_run(out: Console, found: RunDetail) -> None:
    """Print a run as ``pdr runs show`` does."""
    operator = ", ".join(name for name in (found.distill, found.scorer) if name)
    method = found.graph + (f" ({operator})" if operator else "")
    out.print(Text(f"Run {found.id}  thread {found.thread_id}  {method}  status {found.status}"))
    models = ", ".join(f"{role} {spec}" for role, spec in found.models.items())
    out.print(Text(f"Models: {models}"), soft_wrap=True)
    params = ", ".join(
        f"{name}={found.context[name]}" for name in SHOWN_PARAMETERS if name in found.context
    )
    out.print(Text(f"Parameters: {params}"), soft_wrap=True)
    for name, text in changed_prompts(found).items():
        out.print(Text(f"Prompt {name} (changed): {text}"), soft_wrap=True)
    out.print(Text(f"Problem: {found.problem}"), soft_wrap=True)
    records = found.call_records
    rounds = sorted({r["round"] for r in records} | {w.round for w in found.workspaces})
    several_models = len({r["model"] for r in records}) > 1
    for number in rounds:
        table = Table(title=f"Round {number}", title_justify="left")
        for column in ("Role", "Branch", "Attempt", "Model", "In", "Out", "Reasoning"):
            if column != "Model" or several_models:
                table.add_column(column, justify="left" if column in ("Role", "Model") else "right")
        for column in ("Cached", "Total", "Seconds", "Note"):
            table.add_column(column, justify="left" if column == "Note" else "right")
        for record in (r for r in records if r["round"] == number):
            note = record["error"] or ("estimated" if record["estimated"] else "")
            model = [Text(record["model"])] if several_models else []
            table.add_row(
                record["role"],
                str(record["index"]),
                str(record["attempt"]),
                *model,
                str(record["input_tokens"]),
                str(record["output_tokens"]),
                str(record["reasoning_tokens"]),
                str(record["cached_tokens"]),
                str(call_tokens(record)),
                f"{record['latency_s']:.2f}",
                Text(note),
            )
        out.print(table)
        for space in (w for w in found.workspaces if w.round == number):
            label = "" if space.index == 0 else f" {space.index}"
            out.print(
                Panel(
                    Text(space.text),
                    title=f"Workspace{label} after round {number}: {space.tokens} tokens",
                    title_align="left",
                )
            )
    if found.final_text is not None:
        out.print(Panel(Text(found.final_text), title="Final solution", title_align="left"))
    out.print(Text(f"Answer: {found.answer}" + (f"   gold: {found.gold}" if found.gold else "")))
    recorded = found.recorded_budgets
    out.print(
        Text(
            f"B_seq: {_number(found.b_seq)} tokens   B_tot: {_number(found.b_tot)} tokens   "
            f"calls: {len(records)} (recorded: B_seq {recorded.b_seq}, "
            f"B_tot {recorded.b_tot})   wall: {_number(found.wall_s, 1)} s"
        ),
        soft_wrap=True,
    )
    if found.error:
        out.print(Text(f"Error: {found.error}"), soft_wrap=True)

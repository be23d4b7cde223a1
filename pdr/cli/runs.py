"""``pdr runs list`` and ``pdr runs show``: the runs recorded in the ledger."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pdr.budget import call_tokens
from pdr.cli.run import DbOption, open_ledger
from pdr.cli.terminal import CommandError, console, shown
from pdr.graphs.catalog import context_type
from pdr.graphs.fields import field_default

if TYPE_CHECKING:
    from pdr.store.rows import RunDetail

SHOWN_PARAMETERS = ("schedule", "rounds", "kappa", "k", "max_tokens", "temperature", "seed")


def text(value: str) -> Text:
    """Stored text as printed: URL passwords redacted, no control characters, no markup."""
    return Text(shown(value))


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
        out.print(text(f"No runs in {ledger.url} yet; start one with pdr run."))
        return
    table = Table(title=text(f"Runs in {ledger.url}"), title_justify="left")
    for column in ("ID", "Thread", "Graph", "Model", "Status", "Answer", "B_seq", "B_tot"):
        table.add_column(column, justify="right" if column.startswith(("B_", "ID")) else "left")
    table.add_column("Calls", justify="right")
    table.add_column("Wall s", justify="right")
    table.add_column("Started (UTC)")
    for item in runs:
        table.add_row(
            str(item.id),
            text(item.thread_id),
            item.graph,
            text(item.models.get("model", "")),
            item.status,
            text(item.answer or "-"),
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
    from pdr.store.rollouts import rollout_of  # the store loads on use (import time)

    ledger = open_ledger(db)
    try:
        found = ledger.get_run(run_id)
        holder = ledger.lease_holder(found.thread_id) if found is not None else None
        rollout = rollout_of(ledger, found.thread_id) if found is not None else None
    finally:
        ledger.close()
    if found is None:
        raise CommandError(
            f"ID: no run {run_id!r} in the ledger {ledger.url}; see pdr runs list", 1
        )
    out = console()
    render_run(out, found)
    if holder is not None:
        out.print(text(f"Being executed now by {holder.describe()}"), soft_wrap=True)
    if rollout is not None:
        reward = "none (the run failed)" if rollout.reward is None else f"{rollout.reward:g}"
        out.print(
            text(
                f"Training rollout of {rollout.training}: update {rollout.step}, mode "
                f"{rollout.mode}, trained call {rollout.role} ({rollout.trained_tokens} tokens), "
                f"reward {reward}"
            ),
            soft_wrap=True,
        )


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
    out.print(text(f"Run {found.id}  thread {found.thread_id}  {method}  status {found.status}"))
    models = ", ".join(f"{role} {spec}" for role, spec in found.models.items())
    out.print(text(f"Models: {models}"), soft_wrap=True)
    params = ", ".join(
        f"{name}={found.context[name]}" for name in SHOWN_PARAMETERS if name in found.context
    )
    out.print(text(f"Parameters: {params}"), soft_wrap=True)
    for name, prompt in changed_prompts(found).items():
        out.print(text(f"Prompt {name} (changed): {prompt}"), soft_wrap=True)
    out.print(text(f"Problem: {found.problem}"), soft_wrap=True)
    records = found.call_records
    rounds = sorted({r["round"] for r in records} | {w.round for w in found.workspaces})
    several_models = len({r["model"] for r in records}) > 1
    replicas = any(r.get("replica") for r in records)
    for number in rounds:
        table = Table(title=f"Round {number}", title_justify="left")
        for column in ("Role", "Branch", "Attempt", "Model", "Replica", "In", "Out", "Reasoning"):
            if (column != "Model" or several_models) and (column != "Replica" or replicas):
                left = column in ("Role", "Model", "Replica")
                table.add_column(column, justify="left" if left else "right")
        for column in ("Cached", "Total", "Seconds", "Note"):
            table.add_column(column, justify="left" if column == "Note" else "right")
        for record in (r for r in records if r["round"] == number):
            notes = [record["error"] or ("estimated" if record["estimated"] else "")]
            notes += ["truncated"] * bool(record.get("truncated"))
            notes += ["repeat"] * bool(record.get("repeat"))
            note = ", ".join(n for n in notes if n)
            model = [text(record["model"])] if several_models else []
            model += [text(record.get("replica") or "")] if replicas else []
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
                text(note),
            )
        out.print(table)
        for space in (w for w in found.workspaces if w.round == number):
            label = "" if space.index == 0 else f" {space.index}"
            out.print(
                Panel(
                    text(space.text),
                    title=f"Workspace{label} after round {number}: {space.tokens} tokens",
                    title_align="left",
                )
            )
    if found.final_text is not None:
        out.print(Panel(text(found.final_text), title="Final solution", title_align="left"))
    label = "Best answer so far" if found.status == "budget_exhausted" else "Answer"
    gold = f"   gold: {found.gold}" if found.gold else ""
    out.print(text(f"{label}: {found.answer}{gold}"), soft_wrap=True)
    if found.status == "truncated":
        out.print(text("Truncated: the final call stopped at its output cap"), soft_wrap=True)
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
        out.print(text(f"Error: {found.error}"), soft_wrap=True)

"""``pdr run`` and ``pdr resume``: one problem through one graph, with live progress."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from pdr.cli.options import (
    context_error,
    context_options,
    context_values,
    graph_hint,
    with_context_options,
)
from pdr.cli.terminal import CommandError, console, shown
from pdr.graphs.catalog import (
    DISTILL_NAMES,
    GRAPHS,
    SCORER_NAMES,
    check_models,
    make_context,
    method_names,
)
from pdr.graphs.context import ContextError
from pdr.redact import redact
from pdr.signals import RunInterruptedError

if TYPE_CHECKING:  # imported where a run starts, so `pdr --help` loads none of them
    from pdr.outcome import RunOutcome
    from pdr.store.ledger import Ledger

# Exit statuses of a run that ended without a full answer (1: failed, 2: bad input or busy run).
TRUNCATED_EXIT = 3
BUDGET_EXHAUSTED_EXIT = 4

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Ledger database: a SQLAlchemy URL or a SQLite file path "
        "(default: PDR_DATABASE_URL, else ledger.sqlite in the per-user data dir).",
    ),
]
CheckpointsOption = Annotated[
    str | None,
    typer.Option(
        "--checkpoints",
        help="LangGraph checkpoints: a SQLite file or a postgresql:// URL (default: "
        "PDR_CHECKPOINTS, else checkpoints.sqlite in the per-user data dir).",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Do not show progress.")]

CONTEXT_OPTIONS = context_options()


def open_ledger(db: str | None) -> Ledger:
    """The ledger at ``--db`` (or the default), as a one-line error if it cannot be opened."""
    from pdr.store.ledger import Ledger, LedgerError

    try:
        return Ledger(db)
    except LedgerError as error:
        raise CommandError(f"--db: {error}") from error
    except Exception as error:
        raise CommandError(f"--db: cannot open the ledger: {redact(str(error))}", 1) from error


def read_problem(problem: str | None, file: Path | None) -> str:
    """The problem from the argument or from ``--file`` (exactly one of them)."""
    if problem is not None and file is not None:
        raise CommandError("PROBLEM: give the problem as an argument or with --file, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"--file: cannot read {str(file)!r}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise CommandError(
                f"--file: {str(file)!r} is not UTF-8 text (byte {error.object[error.start]:#04x} "
                f"at position {error.start}); give a plain-text problem file saved as UTF-8"
            ) from None
        if "\x00" in text:
            raise CommandError(f"--file: {str(file)!r} is a binary file; give a plain-text problem")
    elif problem is not None:
        text = problem
    else:
        raise CommandError("PROBLEM: give the problem as an argument, or --file PATH")
    if not text.strip():
        raise CommandError("PROBLEM: the problem text is empty")
    return text


def print_outcome(out: Console, outcome: RunOutcome) -> None:
    """The end of a run: answer, budgets, calls, wall time and how to look at it again.

    A failed run is one error line (exit 1); a run whose final call hit its output cap prints its
    answer and says so (exit 3); a run a token cap stopped prints the best answer so far and why
    (exit 4).
    """
    if outcome.status in ("failed", "interrupted"):
        raise CommandError(
            f"run {outcome.thread_id} failed after {len(outcome.calls)} calls "
            f"({outcome.b_tot} tokens): {outcome.error}; continue it with: "
            f"pdr resume {outcome.thread_id}",
            1,
        )
    label = "Best answer so far" if outcome.status == "budget_exhausted" else "Answer"
    out.print(Text(shown(f"{label}: {outcome.answer}")), soft_wrap=True)
    out.print(
        Text(
            f"B_seq: {outcome.b_seq} tokens   B_tot: {outcome.b_tot} tokens   "
            f"calls: {len(outcome.calls)}   wall: {outcome.wall_s:.1f} s"
        ),
        soft_wrap=True,
    )
    out.print(Text(f"Thread: {outcome.thread_id}  (pdr runs show {outcome.thread_id})"))
    if outcome.status == "truncated":
        out.print(
            Text("Truncated: the final call stopped at its output cap (raise --max-tokens)"),
            soft_wrap=True,
        )
        raise typer.Exit(TRUNCATED_EXIT)
    if outcome.status == "budget_exhausted":
        out.print(Text(shown(f"Stopped: {outcome.error}")), soft_wrap=True)
        raise typer.Exit(BUDGET_EXHAUSTED_EXIT)


def interrupted(ledger: Ledger, stop: RunInterruptedError) -> CommandError:
    """The line for a run a signal stopped, with the resume command and 128 + the signal."""
    stored = ledger.get_run(stop.thread_id)
    calls = f" after {stored.calls} calls" if stored is not None else ""
    return CommandError(
        f"{stop}{calls}; its calls in flight were recorded as cancelled; continue it with: "
        f"pdr resume {stop.thread_id}",
        stop.exit_code,
    )


def run_errors(error: Exception) -> CommandError:
    """A refused run as one line naming the option: a busy thread, a bad checkpoint file."""
    from pdr.store.checkpoints import CheckpointError
    from pdr.store.leases import LeaseHeldError

    if isinstance(error, LeaseHeldError):
        return CommandError(f"THREAD_ID: {error}")
    if isinstance(error, CheckpointError):
        return CommandError(f"--checkpoints: {error}")
    if isinstance(error, ContextError):
        return context_error(error)
    return CommandError(f"--thread-id: {error}")


def run(
    problem: Annotated[
        str | None, typer.Argument(help="The problem text (or use --file).", show_default=False)
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the problem from this file.")
    ] = None,
    graph: Annotated[str, typer.Option(help=f"Method: {', '.join(GRAPHS)}.")] = "pdr",
    distill: Annotated[
        str | None,
        typer.Option(
            help=f"pdr: distill operator, one of {', '.join(DISTILL_NAMES)} (default: summary)."
        ),
    ] = None,
    scorer: Annotated[
        str | None,
        typer.Option(
            help=f"pdr with topk or topk_per_sample: {', '.join(SCORER_NAMES)} (default: vote)."
        ),
    ] = None,
    thread_id: Annotated[
        str | None, typer.Option(help="Thread id of the run (default: a new uuid).")
    ] = None,
    db: DbOption = None,
    checkpoints: CheckpointsOption = None,
    quiet: QuietOption = False,
    **values: Any,
) -> None:
    """Run one problem and print its answer, B_seq and B_tot.

    Every run-context field is an option (--schedule 8,4,1, --kappa, --draft-system-prompt, ...).
    """
    text = read_problem(problem, file)
    if graph not in GRAPHS:
        raise CommandError(f"--graph: unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    fields = context_values(CONTEXT_OPTIONS, values)
    try:
        context = make_context(graph, **fields)
        distill, scorer = method_names(graph, distill, scorer)
    except ContextError as error:
        raise context_error(graph_hint(error, graph), values) from error
    try:
        check_models(context)
    except ContextError as error:
        raise context_error(error, values) from error
    from pdr.heap import freeze_imports
    from pdr.live import LiveView
    from pdr.runner import run_problem_sync
    from pdr.store.checkpoints import CheckpointError
    from pdr.store.ledger import LedgerError

    ledger = open_ledger(db)
    out = console()
    freeze_imports()
    try:
        with LiveView(out, title=redact(f"{graph} on {context.model}"), quiet=quiet) as view:
            outcome = run_problem_sync(
                graph=graph,
                problem=text,
                context=context,
                distill=distill,
                scorer=scorer,
                thread_id=thread_id,
                ledger=ledger,
                checkpoints=checkpoints,
                on_event=view.handle,
            )
    except RunInterruptedError as stop:
        raise interrupted(ledger, stop) from None
    except (LedgerError, CheckpointError, ContextError) as error:
        raise run_errors(error) from error
    finally:
        ledger.close()
    print_outcome(out, outcome)


with_context_options(run, CONTEXT_OPTIONS)


def resume(
    thread_id: Annotated[str, typer.Argument(help="Thread id of the stopped run.")],
    db: DbOption = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="LangGraph checkpoint SQLite file or postgresql:// URL (default: where the run "
            "was started).",
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Run it again from the start when its checkpoint is gone (its recorded calls "
            "stay in the ledger; calls made again are marked repeats).",
        ),
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Continue a stopped run from its last checkpoint; completed calls are not made again."""
    from pdr.heap import freeze_imports
    from pdr.live import LiveView
    from pdr.runner import resume_problem_sync
    from pdr.store.checkpoints import CheckpointError
    from pdr.store.ledger import LedgerError

    ledger = open_ledger(db)
    out = console()
    freeze_imports()
    try:
        stored = ledger.get_run(thread_id)
        if stored is None:
            raise CommandError(
                f"THREAD_ID: no run {thread_id!r} in the ledger {redact(ledger.url)}; see pdr "
                f"runs list",
                1,
            )
        with LiveView(out, title=f"resuming {stored.graph} run {thread_id}", quiet=quiet) as view:
            outcome = resume_problem_sync(
                thread_id,
                ledger=ledger,
                checkpoints=checkpoints,
                on_event=view.handle,
                restart=restart,
            )
    except RunInterruptedError as stop:
        raise interrupted(ledger, stop) from None
    except ContextError as error:
        raise CommandError(f"THREAD_ID: the stored run cannot be resumed: {error}") from error
    except (LedgerError, CheckpointError) as error:
        raise run_errors(error) from error
    finally:
        ledger.close()
    print_outcome(out, outcome)

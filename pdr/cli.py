"""The ``pdr`` command line: run a problem, resume a run, inspect the run ledger.

Every bad option ends the command with one line that names the option and the fix, and a
non-zero exit status, before any model is called; nothing prints a traceback.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TextIO

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer import Abort
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from pdr.budget import call_tokens, sequential_budget, total_budget
from pdr.graphs.context import ContextError
from pdr.live import LiveView
from pdr.runner import (
    DISTILL_NAMES,
    GRAPHS,
    SCORER_NAMES,
    RunOutcome,
    build_graph,
    check_models,
    make_context,
    resume_problem_sync,
    run_problem_sync,
)
from pdr.settings import checkpoints_path
from pdr.store.ledger import Ledger, LedgerError, RunDetail

USAGE_ERROR = 2


class CommandError(Exception):
    """A problem the user can fix; shown as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = USAGE_ERROR) -> None:
        """Keep the message and exit status."""
        super().__init__(message)
        self.code = code


def one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(text.split())


_own: dict[str, tuple[TextIO, TextIO]] = {}


def own_stream(name: Literal["stdout", "stderr"]) -> TextIO:
    """The command line's own handle on the process's stdout or stderr.

    llama.cpp's quiet mode (``verbose=False``) points file descriptors 1 and 2 and
    ``sys.stdout``/``sys.stderr`` at /dev/null while a model loads in a worker thread, and two
    overlapping loads can leave them there; progress lines, the answer and error lines printed
    meanwhile would be lost. Writing through a duplicate of the descriptor, taken before any model
    loads, keeps them. Where the stream is not the process's own (captured by a test runner) it is
    used as it is.
    """
    current = sys.stdout if name == "stdout" else sys.stderr
    original = sys.__stdout__ if name == "stdout" else sys.__stderr__
    if original is None or current is not original:
        return current
    cached = _own.get(name)
    if cached is not None and cached[0] is original:
        return cached[1]
    try:
        duplicate = os.dup(original.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return current
    stream = os.fdopen(duplicate, "w", encoding=original.encoding, errors="replace", buffering=1)
    _own[name] = (original, stream)
    return stream


class OneLineErrors(TyperGroup):
    """The top-level command group: every error becomes one ``Error: ...`` line on stderr."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; map usage errors, command errors and crashes to one line."""
        own_stream("stdout"), own_stream("stderr")  # before any model loads
        code = 0
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
            code = result if isinstance(result, int) else 0
        except ClickException as error:  # bad option, missing argument, unknown command
            print(f"Error: {one_line(error.format_message())}", file=own_stream("stderr"))
            code = error.exit_code
        except CommandError as error:
            print(f"Error: {one_line(str(error))}", file=own_stream("stderr"))
            code = error.code
        except Abort:
            print("Error: aborted", file=own_stream("stderr"))
            code = 1
        except Exception as error:  # never a traceback: one line, and a failing status
            print(
                f"Error: {type(error).__name__}: {one_line(str(error))}", file=own_stream("stderr")
            )
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    cls=OneLineErrors,
    name="pdr",
    help="Parallel-Distill-Refine, Sequential Refine and long chain-of-thought, with exact "
    "token budgets (B_seq: latency, B_tot: cost).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Look at runs recorded in the ledger.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Ledger database: a SQLAlchemy URL or a SQLite file path "
        "(default: PDR_DATABASE_URL, else ledger.sqlite in the per-user data dir).",
    ),
]
CheckpointsOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="LangGraph checkpoint SQLite file (default: PDR_CHECKPOINTS, else "
        "checkpoints.sqlite in the per-user data dir).",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Do not show progress.")]

OPTION_OF_FIELD = {"problem": "PROBLEM"}


def option_name(field_name: str) -> str:
    """The command-line option that sets a run-context field."""
    return OPTION_OF_FIELD.get(field_name, "--" + field_name.replace("_", "-"))


def context_error(error: ContextError) -> CommandError:
    """A ContextError ('field: reason') restated with the option's name ('--field: reason')."""
    message = str(error)
    name, separator, reason = message.partition(": ")
    if not separator or " " in name:
        return CommandError(message)
    if name == "schedule":  # show the fix in the option's own syntax, 8,4,1
        reason = re.sub(r"\[(\d+(?:, \d+)*)\]", lambda m: m.group(1).replace(", ", ","), reason)
    return CommandError(f"{option_name(name)}: {reason}")


def parse_schedule(value: str | None) -> list[int] | None:
    """'8,4,1' -> [8, 4, 1]."""
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",")]
    if not all(re.fullmatch(r"\d+", part) for part in parts):
        raise CommandError(
            f"--schedule: give drafts per round as whole numbers separated by commas, "
            f"such as 8,4,1; got {value!r}"
        )
    return [int(part) for part in parts]


def read_problem(problem: str | None, file: Path | None) -> str:
    """The problem from the argument or from ``--file`` (exactly one of them)."""
    if problem is not None and file is not None:
        raise CommandError("PROBLEM: give the problem as an argument or with --file, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"--file: cannot read {str(file)!r}: {error.strerror}") from error
    elif problem is not None:
        text = problem
    else:
        raise CommandError("PROBLEM: give the problem as an argument, or --file PATH")
    if not text.strip():
        raise CommandError("PROBLEM: the problem text is empty")
    return text


def open_ledger(db: str | None) -> Ledger:
    """The ledger at ``--db`` (or the default), as a one-line error if it cannot be opened."""
    try:
        return Ledger(db)
    except Exception as error:
        raise CommandError(f"--db: cannot open the ledger: {one_line(str(error))}", 1) from error


def console() -> Console:
    """A console on the current stdout (created per command, so captured output works).

    Piped or captured output gets a wide page (unless COLUMNS says otherwise), so tables of
    runs and calls stay readable in logs instead of being cut to 80 columns.
    """
    stream = own_stream("stdout")
    probe = Console(file=stream, highlight=False)
    if probe.is_terminal or os.environ.get("COLUMNS"):
        return probe
    return Console(file=stream, highlight=False, width=160)


def print_outcome(out: Console, outcome: RunOutcome) -> None:
    """The end of a run: answer, budgets, calls, wall time and how to look at it again."""
    if outcome.status != "done":
        raise CommandError(
            f"run {outcome.thread_id} failed after {len(outcome.calls)} calls "
            f"({outcome.b_tot} tokens): {outcome.error}; continue it with: "
            f"pdr resume {outcome.thread_id}",
            1,
        )
    out.print(Text(f"Answer: {outcome.answer}"), soft_wrap=True)
    out.print(
        Text(
            f"B_seq: {outcome.b_seq} tokens   B_tot: {outcome.b_tot} tokens   "
            f"calls: {len(outcome.calls)}   wall: {outcome.wall_s:.1f} s"
        ),
        soft_wrap=True,
    )
    out.print(Text(f"Thread: {outcome.thread_id}  (pdr runs show {outcome.thread_id})"))


@app.command()
def run(
    problem: Annotated[
        str | None, typer.Argument(help="The problem text (or use --file).", show_default=False)
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the problem from this file.")
    ] = None,
    graph: Annotated[str, typer.Option(help=f"Method: {', '.join(GRAPHS)}.")] = "pdr",
    model: Annotated[
        str | None,
        typer.Option(
            help="Model for every role: 'embedded' (default), a .gguf path, "
            "'openai:o3-mini', 'google_genai:gemini-2.5-flash', 'vllm:MODEL@URL', ..."
        ),
    ] = None,
    draft_model: Annotated[str | None, typer.Option(help="Model for drafts.")] = None,
    distill_model: Annotated[str | None, typer.Option(help="Model for summaries.")] = None,
    verify_model: Annotated[str | None, typer.Option(help="Model grading drafts.")] = None,
    refine_model: Annotated[
        str | None, typer.Option(help="Model for the final answer (its tokenizer measures kappa).")
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help="PDR: drafts per round, the last being 1, e.g. 8,4,1 (default: 4,2,1)."),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(help="SR: answers written in sequence (default: 3).")
    ] = None,
    distill: Annotated[
        str | None,
        typer.Option(
            help=f"PDR: distill operator, one of {', '.join(DISTILL_NAMES)} (default: summary)."
        ),
    ] = None,
    scorer: Annotated[
        str | None,
        typer.Option(help=f"PDR top-k operators: {', '.join(SCORER_NAMES)} (default: vote)."),
    ] = None,
    kappa: Annotated[
        int | None, typer.Option(help="Workspace bound in tokens (default: 384).")
    ] = None,
    k: Annotated[
        int | None, typer.Option("--k", help="Drafts kept by topk / random_k (default: 2).")
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            help="Output cap per draft/refine call; long_cot: its one call "
            "(default: 512; long_cot 2048)."
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (default: 0.7).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed repeats a run.")] = None,
    max_concurrency: Annotated[
        int | None, typer.Option(help="At most this many model calls at once (default: 16).")
    ] = None,
    reasoning_effort: Annotated[
        str | None, typer.Option(help="OpenAI reasoning models: low, medium or high.")
    ] = None,
    thinking_budget: Annotated[
        int | None, typer.Option(help="Gemini 2.5: thinking tokens per call.")
    ] = None,
    distill_input_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens of drafts shown to one summary/verify prompt (0: whole)."),
    ] = None,
    thread_id: Annotated[
        str | None, typer.Option(help="Thread id of the run (default: a new uuid).")
    ] = None,
    db: DbOption = None,
    checkpoints: CheckpointsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run one problem and print its answer, B_seq and B_tot."""
    text = read_problem(problem, file)
    if graph not in GRAPHS:
        raise CommandError(f"--graph: unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    if graph != "pdr":
        for name, value in (("--distill", distill), ("--scorer", scorer)):
            if value is not None:
                raise CommandError(f"{name}: only --graph pdr distills drafts; drop {name}")
    values: dict[str, Any] = {
        "model": model,
        "draft_model": draft_model,
        "distill_model": distill_model,
        "verify_model": verify_model,
        "refine_model": refine_model,
        "schedule": parse_schedule(schedule),
        "rounds": rounds,
        "kappa": kappa,
        "k": k,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
        "max_concurrency": max_concurrency,
        "reasoning_effort": reasoning_effort,
        "thinking_budget": thinking_budget,
        "distill_input_tokens": distill_input_tokens,
    }
    try:
        context = make_context(graph, **values)
        build_graph(graph, distill or "summary", scorer or "vote")
    except ContextError as error:
        raise context_error(_graph_hint(error, graph)) from error
    except ValueError as error:  # a PDR_<FIELD> environment value that does not parse
        raise CommandError(one_line(str(error))) from error
    try:
        check_models(context)
    except ContextError as error:
        raise context_error(error) from error
    ledger = open_ledger(db)
    out = console()
    title = f"{graph} on {context.model}"
    try:
        with LiveView(out, title=title, quiet=quiet) as view:
            outcome = run_problem_sync(
                graph=graph,
                problem=text,
                context=context,
                distill=distill or "summary",
                scorer=scorer or "vote",
                thread_id=thread_id,
                ledger=ledger,
                checkpoints=checkpoints_path(checkpoints),
                on_event=view.handle,
            )
    except LedgerError as error:
        raise CommandError(f"--thread-id: {error}") from error
    finally:
        ledger.close()
    print_outcome(out, outcome)


def _graph_hint(error: ContextError, graph: str) -> ContextError:
    """Point at the graph that takes a parameter given to a graph that does not."""
    message = str(error)
    name, _, reason = message.partition(": ")
    if "does not take this parameter" not in reason:
        return error
    takers = [other for other in GRAPHS if other != graph and name in _fields_of(other)]
    hint = f"; it is for --graph {' or '.join(takers)}" if takers else ""
    return ContextError(f"{name}: --graph {graph} does not take it{hint}")


def _fields_of(graph: str) -> list[str]:
    from pdr.graphs.context import context_fields
    from pdr.runner import context_type

    return context_fields(context_type(graph))


@app.command()
def resume(
    thread_id: Annotated[str, typer.Argument(help="Thread id of the stopped run.")],
    db: DbOption = None,
    checkpoints: CheckpointsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Continue a stopped run from its last checkpoint; completed calls are not made again."""
    ledger = open_ledger(db)
    out = console()
    try:
        stored = ledger.get_run(thread_id)
        if stored is None:
            raise CommandError(
                f"THREAD_ID: no run {thread_id!r} in the ledger {ledger.url}; see pdr runs list",
                1,
            )
        with LiveView(out, title=f"resuming {stored.graph} run {thread_id}", quiet=quiet) as view:
            outcome = resume_problem_sync(
                thread_id,
                ledger=ledger,
                checkpoints=checkpoints_path(checkpoints),
                on_event=view.handle,
            )
    except ContextError as error:
        raise CommandError(f"THREAD_ID: the stored run cannot be resumed: {error}", 1) from error
    finally:
        ledger.close()
    print_outcome(out, outcome)


def _number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits else str(value)


@runs_app.command("list")
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


@runs_app.command("show")
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


def render_run(out: Console, found: RunDetail) -> None:
    """Print a run as ``pdr runs show`` does."""
    method = found.graph + (f" ({found.distill}, {found.scorer})" if found.distill else "")
    out.print(Text(f"Run {found.id}  thread {found.thread_id}  {method}  status {found.status}"))
    models = ", ".join(f"{role} {spec}" for role, spec in found.models.items())
    out.print(Text(f"Models: {models}"), soft_wrap=True)
    shown = ("schedule", "rounds", "kappa", "k", "max_tokens", "temperature", "seed")
    params = ", ".join(f"{n}={found.context[n]}" for n in shown if n in found.context)
    out.print(Text(f"Parameters: {params}"), soft_wrap=True)
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
    out.print(
        Text(
            f"B_seq: {_number(found.b_seq)} tokens   B_tot: {_number(found.b_tot)} tokens   "
            f"calls: {len(records)} (recorded: B_seq {sequential_budget(records)}, "
            f"B_tot {total_budget(records)})   wall: {_number(found.wall_s, 1)} s"
        ),
        soft_wrap=True,
    )
    if found.error:
        out.print(Text(f"Error: {found.error}"), soft_wrap=True)


def _register_extensions(target: typer.Typer) -> None:
    """HOOK for `pdr eval` and `pdr plot`: pdr/evaluation/commands.py provides ``register(app)``.

    The evaluation commands live with the evaluation harness; until that module exists the rest
    of the command line works without them.
    """
    try:
        from pdr.evaluation.commands import register as register_eval
    except ModuleNotFoundError as error:
        if error.name not in {"pdr.evaluation", "pdr.evaluation.commands"}:
            raise
        return
    register_eval(target)


_register_extensions(app)


def main() -> NoReturn:
    """Entry point for ``python -m pdr.cli``."""
    app()
    raise SystemExit(0)


if __name__ == "__main__":
    main()

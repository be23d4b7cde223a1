"""``pdr eval`` and ``pdr plot``: the evaluation harness and its figures on the command line.

``register(app)`` adds both commands to a Typer app (``pdr.cli`` builds the ``pdr`` one with it).
Every expected failure (a bad option, an unknown dataset, an unreachable model) ends with one line
on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pdr.cli.options import context_options, context_values, with_context_options
from pdr.cli.terminal import CommandError, LiveConsole, print_error
from pdr.evaluation.configs import (
    METHODS,
    Config,
    EvalError,
    EvalSpec,
    default_ladder,
    parse_config,
    shared_values,
)
from pdr.evaluation.datasets import FieldMap, load_dataset
from pdr.evaluation.inject import INJECT_MODES, with_injections
from pdr.evaluation.problems import DatasetError
from pdr.graphs.catalog import check_models, make_context
from pdr.graphs.context import ContextError, RunContext
from pdr.redact import redact
from pdr.signals import SIGNAL_NAMES, RunInterruptedError, until_signal

if TYPE_CHECKING:  # imported where a command runs, so `pdr --help` loads none of them
    from pdr.evaluation import harness as h
    from pdr.evaluation.report import EvalReport

console = LiveConsole("stdout")
errors = LiveConsole("stderr")


# Context fields shared by every run of an experiment: all but those a configuration sets per
# method (--config) and the seed (--seeds).
PER_CONFIGURATION = ("schedule", "rounds", "max_tokens", "kappa", "k", "seed", "injected_draft")
SHARED_OPTIONS = [o for o in context_options() if o.name not in PER_CONFIGURATION]


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn an expected failure into one line on stderr and exit status 2."""
    try:
        yield
    except Exception as error:
        from pdr.models import BackendError  # the ledger's and models' errors: on first use
        from pdr.store.ledger import LedgerError

        expected = (EvalError, DatasetError, ContextError, LedgerError, BackendError, CommandError)
        if not isinstance(error, expected):
            raise
        # One line even when a library's message spans several (LangChain's provider list).
        print_error(str(error))
        raise typer.Exit(error.code if isinstance(error, CommandError) else 2) from None


def _ladders(methods: list[str], configs: list[str], max_tokens: int) -> list[Config]:
    custom = [parse_config(text) for text in configs]
    ladders: list[Config] = []
    for method in methods:
        own = [config for config in custom if config.method == method]
        ladders += own or default_ladder(method, max_tokens)
    stray = sorted({c.method for c in custom} - set(methods))
    if stray:
        raise EvalError(f"--config names {', '.join(stray)}, which --method does not include")
    return ladders


def eval_command(
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="A .jsonl file, 'synthetic:level=2,n=50,seed=0', a preset (aime24, aime25, "
            "amc23, gsm8k) or 'hf:OWNER/NAME[:CONFIG][@SPLIT]'.",
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", "-m", help="pdr, sr or long_cot; repeat it (default: all three)."),
    ] = None,
    budget: Annotated[
        list[int] | None,
        typer.Option(
            "--budget",
            "-b",
            help="Target B_seq in tokens; repeat it. Each method runs the ladder configuration "
            "whose measured B_seq is nearest. Without it every ladder configuration runs.",
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            help="A ladder entry 'METHOD:key=value,...', e.g. 'pdr:schedule=[2,1],max_tokens=128,"
            "kappa=96'; repeat it. A method with entries uses them instead of its default ladder.",
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(help="Base output cap T of the default ladders (T, 2T, 4T, ...).")
    ] = 512,
    seeds: Annotated[int, typer.Option(help="Seeds per item (0, 1, ...).")] = 1,
    calibrate: Annotated[
        int, typer.Option(help="Items each ladder configuration is measured on for --budget.")
    ] = 2,
    limit: Annotated[int | None, typer.Option(help="Use the first N problems only.")] = None,
    concurrency: Annotated[
        int, typer.Option(help="Runs (problems) in flight at once (per worker).")
    ] = 4,
    workers: Annotated[
        int, typer.Option(help="Worker processes on this machine sharing the experiment.")
    ] = 1,
    join: Annotated[
        str | None,
        typer.Option(
            help="Add a worker to a stored experiment (name or id) from any machine that "
            "reaches --db; nothing else is needed."
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Show an experiment's cells done, in flight per worker, accuracy."),
    ] = None,
    lease_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds after a worker's last heartbeat when its cells go to another worker "
            "(stored with a new experiment; default 60)."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Experiment name (default: derived from the settings, so the same "
            "command resumes the same experiment)."
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--db", "--database", help="Ledger URL or SQLite file (default: PDR_DATABASE_URL)."
        ),
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            help="LangGraph checkpoints: a SQLite file or a postgresql:// URL (default: "
            "PDR_CHECKPOINTS)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write results.md, results.csv, accuracy.png and accuracy.svg here."),
    ] = None,
    problem_field: Annotated[str | None, typer.Option(help="JSONL field of the problem.")] = None,
    answer_field: Annotated[str | None, typer.Option(help="JSONL field of the answer.")] = None,
    id_field: Annotated[str | None, typer.Option(help="JSONL field of the item id.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder of preset files (default: PDR_DATASETS_DIR).")
    ] = None,
    instruction: Annotated[
        str | None,
        typer.Option(
            help="Text appended to every problem, e.g. an answer format for a small model."
        ),
    ] = None,
    inject: Annotated[
        list[str] | None,
        typer.Option(
            help="correct or incorrect; repeat it for both. Each PDR configuration also runs "
            "with one planted candidate among round 1's drafts (the gold answer, or a wrong "
            "one); the report compares the accuracies."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    **values: Any,
) -> None:
    """Evaluate methods x configurations x seeds on a dataset, resumably, into the ledger.

    Every run-context field that a configuration does not set is an option shared by all runs
    (--model, --temperature, --max-concurrency, --distill-temperature, ...); a --config entry's
    own values win over them.
    """
    from pdr.cli.reports import ProgressBar, print_report, write_outputs
    from pdr.cli.workers import print_status, start_workers, wait_for
    from pdr.evaluation import harness as h
    from pdr.evaluation.workers import joined_harness
    from pdr.heap import freeze_imports
    from pdr.store.ledger import Ledger

    with _one_line_errors():
        if status is not None:
            ledger = Ledger(database)
            try:
                print_status(console, ledger, status)
            finally:
                ledger.close()
            return
        bar_view = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[acc]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not progress or not console.is_terminal,
        )
        on_progress = ProgressBar(bar_view, lines=progress and not console.is_terminal)
        if join is not None:
            harness = joined_harness(
                Ledger(database),
                join,
                checkpoints=checkpoints or os.environ.get("PDR_CHECKPOINTS"),
                concurrency=concurrency,
                on_progress=on_progress,
            )
            console.print(f"worker pid {os.getpid()} joined {harness.name}", highlight=False)
            freeze_imports()
            with bar_view:
                _interruptible(harness)
            console.print(
                f"worker pid {os.getpid()}: every cell of {harness.name} is done "
                f"({harness.taken_over} taken over from workers that stopped)",
                highlight=False,
            )
            return
        if dataset is None:
            raise EvalError(
                "--dataset: name the problems to evaluate (or --join EXPERIMENT to add a worker, "
                "--status EXPERIMENT to see one)"
            )
        if workers < 1:
            raise EvalError(f"--workers must be >= 1, got {workers}")
        fields = None
        if problem_field or answer_field or id_field:
            fields = FieldMap(problem_field, answer_field, id_field)
        data = load_dataset(dataset, fields=fields, limit=limit, data_dir=data_dir)
        methods = list(dict.fromkeys(method or METHODS))
        for chosen in methods:
            if chosen not in METHODS:
                raise EvalError(f"--method {chosen!r}: choose from {', '.join(METHODS)}")
        if max_tokens < 1 or seeds < 1 or calibrate < 1:
            raise EvalError("--max-tokens, --seeds and --calibrate must be >= 1")
        if any(b < 1 for b in budget or []):
            raise EvalError("--budget values are token counts >= 1")
        modes = list(dict.fromkeys(inject or []))
        for mode in modes:
            if mode not in INJECT_MODES:
                raise EvalError(f"--inject {mode!r}: choose {' or '.join(INJECT_MODES)}")
        if modes and budget:
            raise EvalError(
                "--inject compares each configuration with and without a planted candidate; "
                "give it without --budget"
            )
        if modes and "pdr" not in methods:
            raise EvalError("--inject plants a candidate among PDR's drafts; add --method pdr")
        shared = context_values(SHARED_OPTIONS, values)
        model_spec = str(shared.pop("model", None) or RunContext().model)
        spec = EvalSpec(
            dataset=data,
            model=model_spec,
            ladders=with_injections(_ladders(methods, config or [], max_tokens), modes),
            budgets=sorted(set(budget or [])),
            seeds=list(range(seeds)),
            calibrate=min(calibrate, len(data)),
            context=shared,
            instruction=(instruction or "").strip(),
        )
        for model in {model_spec, *(str(c.params.get("model", model_spec)) for c in spec.ladders)}:
            check_models(
                make_context("long_cot", **{**shared_values("long_cot", shared), "model": model})
            )
        ledger = Ledger(database)
        harness = h.Harness(
            spec,
            ledger,
            name=name,
            concurrency=concurrency,
            checkpoints=checkpoints,
            on_progress=on_progress,
            lease_timeout_s=lease_timeout,
        )
        console.print(
            f"experiment [bold]{harness.name}[/bold] (id {harness.experiment_id}): "
            f"{len(data)} problems of {data.name}, model {redact(model_spec)}, ledger {ledger.url}",
            highlight=False,
        )
        freeze_imports()
        if workers > 1:
            children = start_workers(harness, workers, concurrency, checkpoints)
            console.print(
                f"{workers} workers started (pids {', '.join(str(c.pid) for c in children)})"
            )
            try:
                wait_for(children, harness, errors)
            except KeyboardInterrupt:
                errors.print(
                    "stopped; run the same command again to resume (finished runs are kept)"
                )
                raise typer.Exit(130) from None
            report = harness.report()
        else:
            with bar_view:
                report = _interruptible(harness)
        print_report(report)
        if out is not None and report.rows:
            for path in write_outputs(report, out):
                console.print(f"wrote {path}", highlight=False)


def _interruptible(harness: h.Harness) -> EvalReport:
    # Ctrl-C or SIGTERM cancel the harness, which gives its cells back (their runs resumable).
    try:
        return until_signal(harness.run(), f"experiment {harness.name}")
    except RunInterruptedError as stopped:
        errors.print(
            f"stopped by {SIGNAL_NAMES[stopped.signal]}; run the same command again to resume "
            f"(finished runs are kept)",
            highlight=False,
        )
        raise typer.Exit(stopped.exit_code) from None


with_context_options(eval_command, SHARED_OPTIONS)


def plot_command(
    experiment: Annotated[str, typer.Argument(help="Experiment name or id (see `pdr eval`).")],
    out: Annotated[Path, typer.Option(help="Folder for the figure and tables.")] = Path("."),
    stem: Annotated[str, typer.Option(help="File name of the figure, without extension.")] = (
        "accuracy"
    ),
    title: Annotated[str | None, typer.Option(help="Figure title.")] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--db", "--database", help="Ledger URL or SQLite file (default: PDR_DATABASE_URL)."
        ),
    ] = None,
) -> None:
    """Plot accuracy against B_seq and B_tot (log scale, one line per method) as PNG and SVG."""
    from pdr.cli.reports import markdown, print_report
    from pdr.evaluation.report import csv_text, stored_report
    from pdr.store.ledger import Ledger

    with _one_line_errors():
        ledger = Ledger(database)
        report = stored_report(ledger, experiment)
        if not report.rows:
            raise EvalError(f"experiment {experiment!r} has no finished runs to plot yet")
        print_report(report)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.md").write_text(markdown(report))
        (out / f"{stem}.csv").write_text(csv_text(report.rows))
        from pdr.evaluation.plot import write_figures  # matplotlib: only when plotting

        paths = [out / f"{stem}.md", out / f"{stem}.csv"]
        paths += write_figures(report.rows, out, stem=stem, title=title or report.name)
        for path in paths:
            console.print(f"wrote {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``eval`` and ``plot`` to the ``pdr`` command line."""
    app.command("eval")(eval_command)
    app.command("plot")(plot_command)

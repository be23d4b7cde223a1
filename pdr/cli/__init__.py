"""The ``pdr`` command line: run a problem, resume a run, inspect the ledger, evaluate, plot.

One module per command group: ``run`` (``pdr run``, ``pdr resume``), ``runs`` (``pdr runs list``,
``pdr runs show``), ``evaluate`` (``pdr eval``, ``pdr plot``), ``train`` (``pdr train``);
``options`` generates ``pdr run``'s options from the run contexts' fields and ``terminal`` holds
what they share (output handles, one-line errors). Every bad option ends the command with one
line that names the option and the fix, and a non-zero exit status, before any model is called;
nothing prints a traceback.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from pdr.cli import evaluate, run, runs, train
from pdr.cli.terminal import OneLineErrors

app = typer.Typer(
    cls=OneLineErrors,
    name="pdr",
    help="Parallel-Distill-Refine, Sequential Refine and long chain-of-thought, with exact "
    "token budgets (B_seq: latency, B_tot: cost).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("resume")(run.resume)
runs_app = typer.Typer(help="Look at runs recorded in the ledger.", no_args_is_help=True)
runs_app.command("list")(runs.list_runs)
runs_app.command("show")(runs.show_run)
app.add_typer(runs_app, name="runs")
evaluate.register(app)
app.command("train")(train.train_command)


def main() -> NoReturn:
    """Entry point for ``python -m pdr.cli``."""
    app()
    raise SystemExit(0)

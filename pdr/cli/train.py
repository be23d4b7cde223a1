"""``pdr train``: operator-consistent training of a transformers policy (the ``train`` extra).

Every setting of ``pdr.training.TrainSettings`` is an option; the run-context fields a training
does not set itself (the system prompts, ``--distill-temperature``, ...) are generated options as
in ``pdr eval``, shared by every rollout. A bad option ends the command with one line naming it,
before any model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pdr.cli.options import context_error, context_options, context_values, with_context_options
from pdr.cli.run import DbOption, open_ledger
from pdr.cli.terminal import CommandError, console
from pdr.evaluation.problems import DatasetError
from pdr.graphs.context import ContextError
from pdr.training.settings import CONTEXT_SET_BY_TRAINING, TrainError, TrainSettings

DEFAULTS = TrainSettings()
HELP = TrainSettings.describe()
CONTEXT_OPTIONS = [o for o in context_options() if o.name not in CONTEXT_SET_BY_TRAINING]


def _option(name: str) -> Any:
    return typer.Option(help=HELP[name])


def train_command(
    out: Annotated[Path, typer.Option("--out", "-o", help=HELP["out"])],
    model: Annotated[str, _option("model")] = DEFAULTS.model,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=HELP["dataset"])] = (
        DEFAULTS.dataset
    ),
    instruction: Annotated[str, _option("instruction")] = DEFAULTS.instruction,
    steps: Annotated[int, _option("steps")] = DEFAULTS.steps,
    problems_per_step: Annotated[int, _option("problems_per_step")] = DEFAULTS.problems_per_step,
    group_size: Annotated[int, _option("group_size")] = DEFAULTS.group_size,
    alpha: Annotated[float, _option("alpha")] = DEFAULTS.alpha,
    epsilon_high: Annotated[float, _option("epsilon_high")] = DEFAULTS.epsilon_high,
    learning_rate: Annotated[float, _option("learning_rate")] = DEFAULTS.learning_rate,
    temperature: Annotated[float, _option("temperature")] = DEFAULTS.temperature,
    max_tokens: Annotated[int, _option("max_tokens")] = DEFAULTS.max_tokens,
    drafts: Annotated[int, _option("drafts")] = DEFAULTS.drafts,
    distill: Annotated[str, _option("distill")] = DEFAULTS.distill,
    k: Annotated[int, _option("k")] = DEFAULTS.k,
    kappa: Annotated[int, _option("kappa")] = DEFAULTS.kappa,
    train_embeddings: Annotated[bool, _option("train_embeddings")] = DEFAULTS.train_embeddings,
    gradient_accumulation_steps: Annotated[int, _option("gradient_accumulation_steps")] = (
        DEFAULTS.gradient_accumulation_steps
    ),
    seed: Annotated[int, _option("seed")] = DEFAULTS.seed,
    max_concurrency: Annotated[int, _option("max_concurrency")] = DEFAULTS.max_concurrency,
    name: Annotated[str | None, _option("name")] = None,
    vllm: Annotated[bool, _option("vllm")] = DEFAULTS.vllm,
    threads: Annotated[
        int | None,
        typer.Option(help="torch threads of this process (default: torch's own choice)."),
    ] = None,
    db: DbOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    **values: Any,
) -> None:
    """Train a policy with CISPO + alpha * SFT on a 50/50 mix of long-trace and PDR rollouts.

    Writes the trained weights into --out; evaluate them with
    pdr eval --model transformers:OUT.
    """
    try:
        shared = context_values(CONTEXT_OPTIONS, values)
    except ContextError as error:
        raise context_error(error) from error
    settings = TrainSettings(
        model=model,
        dataset=dataset,
        instruction=instruction,
        out=out,
        steps=steps,
        problems_per_step=problems_per_step,
        group_size=group_size,
        alpha=alpha,
        epsilon_high=epsilon_high,
        learning_rate=learning_rate,
        temperature=temperature,
        max_tokens=max_tokens,
        drafts=drafts,
        distill=distill,
        k=k,
        kappa=kappa,
        train_embeddings=train_embeddings,
        gradient_accumulation_steps=gradient_accumulation_steps,
        seed=seed,
        max_concurrency=max_concurrency,
        name=name,
        vllm=vllm,
        context=shared,
    )
    try:
        settings.check()
    except TrainError as error:
        raise _option_error(error) from error
    if threads is not None and threads < 1:
        raise CommandError(f"--threads: must be >= 1, got {threads}")
    from pdr.models import BackendError  # the ledger's and models' errors: on first use
    from pdr.store.ledger import LedgerError

    expected = (TrainError, DatasetError, ContextError, BackendError, LedgerError)
    ledger = open_ledger(db)
    out_console = console()
    try:
        from pdr.training.api import train

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        result = train(settings, ledger=ledger, console=out_console, progress=progress)
    except expected as error:
        raise _option_error(error) from error
    finally:
        ledger.close()
    table = Table(title=f"{result.name}: mean reward of each update's rollouts (ledger)")
    for column in ("update", "mode", "rollouts", "correct", "failed", "mean reward"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for row in result.rewards:
        table.add_row(
            str(row.step),
            row.mode,
            str(row.rollouts),
            str(row.correct),
            str(row.failed),
            f"{row.mean:.3f}",
        )
    out_console.print(table)
    out_console.print(
        f"{result.steps} updates in {result.wall_s:.0f} s; trained weights in {result.out}",
        highlight=False,
    )
    for path in result.files:
        out_console.print(f"wrote {path}", highlight=False)
    out_console.print(
        f"evaluate: pdr eval --model transformers:{result.out} ...;  rollouts: pdr plot "
        f"{result.name}",
        highlight=False,
    )


def _option_error(error: Exception) -> CommandError:
    """'setting: reason' restated with the option's name ('--setting: reason')."""
    message = str(error)
    field, separator, reason = message.partition(": ")
    if separator and field in HELP and field != "context":
        return CommandError(f"--{field.replace('_', '-')}: {reason}")
    if separator and field == "context":
        return context_error(ContextError(reason))
    return CommandError(message)


with_context_options(train_command, CONTEXT_OPTIONS)

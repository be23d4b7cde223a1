"""Evaluation workers: joining an experiment from its ledger alone, and where it stands.

``joined_harness`` rebuilds an experiment's Harness from what the ledger stores (its config, its
problems, where its checkpoints are), so a worker on another machine needs only the database URL
and the experiment's name or id. ``queue_status`` is what ``pdr eval --status`` shows: cells done
of each phase, the cells each worker holds, and the accuracy of the runs finished so far.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pdr.evaluation.cells import ProgressHandler
from pdr.evaluation.configs import Config, EvalError, EvalSpec
from pdr.evaluation.harness import Harness
from pdr.evaluation.problems import Dataset, Problem
from pdr.evaluation.report import experiment_id_of
from pdr.redact import is_redacted, redact, restored
from pdr.store.cells import WorkerLoad
from pdr.store.ledger import ENDED, Ledger
from pdr.store.queue import WorkQueue


def joined_harness(
    ledger: Ledger,
    experiment: str | int,
    *,
    checkpoints: str | Path | None = None,
    concurrency: int = 4,
    on_progress: ProgressHandler | None = None,
) -> Harness:
    """The Harness of a stored experiment, for one more worker.

    Args:
        ledger: the ledger holding the experiment (the database URL every worker shares).
        experiment: its name or id.
        checkpoints: where the runs' checkpoints are (default: the location stored with the
            experiment; a PostgreSQL URL stored without its password is taken from the ledger's
            URL when they are the same database).
        concurrency: runs this worker has in flight at once.
        on_progress: as for Harness.

    Raises:
        EvalError: no such experiment, one stored without its problems, or a checkpoint
            location that needs its password.
    """
    experiment_id = experiment_id_of(ledger, experiment)
    queue = WorkQueue(ledger, experiment_id)
    settings = queue.settings()
    items = queue.items()
    if not items:
        raise EvalError(
            f"experiment {settings.name!r} has no stored problems (it was started by an older "
            f"pdr); run its `pdr eval --dataset ...` command once, then join it"
        )
    config = ledger.experiment_config(experiment_id)
    dataset = Dataset(
        str(config["dataset"]), [Problem(i.item_id, i.problem, i.answer, i.level) for i in items]
    )
    budgets = [int(b) for b in config.get("budgets", [])]
    spec = EvalSpec(
        dataset=dataset,
        model=_model(str(config["model"]), settings.name),
        ladders=[Config(c["method"], dict(c["params"])) for c in config["ladders"]],
        budgets=budgets,
        seeds=[int(s) for s in config.get("seeds", [0])],
        calibrate=int(config.get("calibrate") or 0) if budgets else 2,
        context=dict(config.get("context", {})),
        instruction=str(config.get("instruction", "")),
    )
    if spec.as_config() != config:
        raise EvalError(
            f"experiment {settings.name!r} was stored by another version of pdr; join it with "
            f"the pdr that started it"
        )
    return Harness(
        spec,
        ledger,
        name=settings.name,
        concurrency=concurrency,
        checkpoints=checkpoints or _checkpoints(ledger, settings.checkpoints),
        on_progress=on_progress,
        joining=True,
    )


def _model(stored: str, experiment: str) -> str:
    """The experiment's model spec, with its password from PDR_MODEL when the ledger lacks it."""
    full = restored(stored, os.environ.get("PDR_MODEL"))
    if full is None:
        raise EvalError(
            f"experiment {experiment!r} uses the model {stored}, whose password pdr does not "
            f"store; set PDR_MODEL to the full model spec (with the password) to join it"
        )
    return full


def _checkpoints(ledger: Ledger, stored: str | None) -> str | None:
    if stored is None or not is_redacted(stored):
        return stored
    if redact(ledger.url) == stored:
        return ledger.url  # the same database, with the password the worker was given
    raise EvalError(
        f"the experiment's checkpoints are in {stored}, whose password is not stored; give "
        f"--checkpoints with the full URL"
    )


@dataclass(frozen=True)
class QueueStatus:
    """Where an experiment stands in its ledger (``pdr eval --status``).

    Attributes:
        name: the experiment's name.
        phases: (phase, done, running, waiting) per phase of the queue, calibration first.
        workers: the workers holding cells now.
        finished: runs of the experiment that ended (done, truncated, out of budget, failed).
        correct: those graded correct.
        lease_timeout_s: how long a silent worker's claims last.
    """

    name: str
    phases: list[tuple[str, int, int, int]]
    workers: list[WorkerLoad]
    finished: int
    correct: int
    lease_timeout_s: float

    @property
    def accuracy(self) -> float | None:
        """Correct among the finished runs (None before the first)."""
        return self.correct / self.finished if self.finished else None


def queue_status(ledger: Ledger, experiment: str | int) -> QueueStatus:
    """The status of an experiment; raises EvalError when there is no such experiment."""
    experiment_id = experiment_id_of(ledger, experiment)
    queue = WorkQueue(ledger, experiment_id)
    phases: list[tuple[str, int, int, int]] = []
    for phase in ("calibrate", "evaluate"):
        state = queue.state(phase)
        if state.total:
            phases.append((phase, state.done, state.running, state.waiting))
    ended = [r for r in ledger.results(experiment_id) if r.status in ENDED]
    settings = queue.settings()
    return QueueStatus(
        name=settings.name,
        phases=phases,
        workers=queue.workers(),
        finished=len(ended),
        correct=sum(1 for r in ended if r.grade),
        lease_timeout_s=settings.lease_timeout_s,
    )

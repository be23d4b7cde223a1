"""Training rollouts in the ledger: which run each rollout was, its mode, its reward.

A training (``pdr train``) is an experiment of the ledger; each of its rollouts is an ordinary run
(its calls, workspaces and grade are written by the runner like any other run) plus one row of the
``rollouts`` table that says what the trainer made of it. ``pdr runs show`` prints that row beside
the run, and the evaluation report (``pdr plot``) reads the training's runs as its results.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdr.store.ledger import Ledger, LedgerError
from pdr.store.ledger_models import Experiment, Rollout, Run


@dataclass(frozen=True)
class RolloutRow:
    """One stored rollout with its run's thread and its training's name."""

    training: str
    thread_id: str
    step: int
    mode: str
    role: str
    reward: float | None
    trained_tokens: int


def record_rollout(
    ledger: Ledger,
    *,
    experiment_id: int,
    thread_id: str,
    step: int,
    mode: str,
    role: str,
    reward: float | None,
    trained_tokens: int,
) -> None:
    """Store what the trainer made of the run on ``thread_id``.

    Raises:
        LedgerError: no run with that thread id.
    """
    with Session(ledger.engine) as session, session.begin():
        run_id = session.scalar(select(Run.id).where(Run.thread_id == thread_id))
        if run_id is None:
            raise LedgerError(f"no run with thread id {thread_id!r} in the ledger {ledger.url}")
        session.add(
            Rollout(
                experiment_id=experiment_id,
                run_id=run_id,
                step=step,
                mode=mode,
                role=role,
                reward=reward,
                trained_tokens=trained_tokens,
            )
        )


def list_rollouts(ledger: Ledger, experiment_id: int) -> list[RolloutRow]:
    """Every rollout of a training, in the order they were stored."""
    query = (
        select(Rollout, Run.thread_id, Experiment.name)
        .join(Run, Run.id == Rollout.run_id)
        .join(Experiment, Experiment.id == Rollout.experiment_id)
        .where(Rollout.experiment_id == experiment_id)
        .order_by(Rollout.id)
    )
    with Session(ledger.engine) as session:
        return [_row(rollout, thread, name) for rollout, thread, name in session.execute(query)]


def rollout_of(ledger: Ledger, thread_id: str) -> RolloutRow | None:
    """The rollout a run was, or None for a run that no training made."""
    query = (
        select(Rollout, Run.thread_id, Experiment.name)
        .join(Run, Run.id == Rollout.run_id)
        .join(Experiment, Experiment.id == Rollout.experiment_id)
        .where(Run.thread_id == thread_id)
    )
    with Session(ledger.engine) as session:
        found = session.execute(query).first()
    return None if found is None else _row(*found)


def _row(rollout: Rollout, thread_id: str, training: str) -> RolloutRow:
    return RolloutRow(
        training=training,
        thread_id=thread_id,
        step=rollout.step,
        mode=rollout.mode,
        role=rollout.role,
        reward=rollout.reward,
        trained_tokens=rollout.trained_tokens,
    )

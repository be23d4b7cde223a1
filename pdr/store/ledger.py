"""The run ledger: every run, model call, workspace and evaluation result, written as runs go.

``Ledger`` wraps one SQLAlchemy engine (a SQLite file in the per-user data directory by default,
any SQLAlchemy URL otherwise, e.g. PostgreSQL for a team). It is written by one caller, the runner
(``pdr.runner``), which stores each call attempt the moment it starts (so a killed process leaves
every call it made behind, at worst with its prompt tokens estimated) and completes the row when
the attempt ends. A run's B_seq and B_tot are computed from its call rows when the run is closed
(``finish_run``), so the stored budgets always equal the rows. A successful call of a step that
already had a success or an attempt whose reply never arrived is marked ``repeat``: the provider
may have done that work twice, and both count. Runs are executed under a lease
(``pdr.store.leases``). Reads return the plain dataclasses of ``pdr.store.rows``, never ORM
objects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pdr.answers import extract_answer
from pdr.budget import Budgets, CallRecord, budgets, per_draft_total
from pdr.settings import database_url
from pdr.store import leases
from pdr.store.call_rows import close_unfinished, outputs_of, write_call
from pdr.store.database import LedgerError, open_engine
from pdr.store.ledger_models import Call, Experiment, Result, Run, Workspace, utcnow
from pdr.store.rows import (
    CallOutput,
    ResultRow,
    RunDetail,
    RunSummary,
    WorkspaceInfo,
    call_record,
    models_of,
    run_summary,
)

__all__ = ["ANSWERING_ROLES", "ENDED", "FINISHED", "Ledger", "LedgerError", "Status"]

Status = Literal["running", "done", "truncated", "budget_exhausted", "failed", "interrupted"]
FINISHED: Final = ("done", "truncated", "budget_exhausted")
"""Statuses of runs that ended by themselves (nothing left to resume)."""
ENDED: Final = (*FINISHED, "failed")
"""Statuses an evaluation reports (a failed run counts as wrong; running ones are not over)."""
ANSWERING_ROLES: Final = ("draft", "refine", "long_cot")
"""Roles whose output is a solution with a final answer (stored beside its text)."""


class Ledger:
    """The run ledger on one database; see the module docstring."""

    def __init__(self, url: str | Path | None = None) -> None:
        """Open (and create the tables of) the ledger at ``url``.

        Args:
            url: any SQLAlchemy URL or a SQLite file path; None: ``PDR_DATABASE_URL``, else a
                SQLite file in the per-user data directory.
        """
        self.url = database_url(url)
        self.engine = open_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.Lock()
        # thread id -> (run id, problem) of the runs written here (answers are read with it)
        self._runs: dict[str, tuple[int, str]] = {}

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def start_run(
        self,
        *,
        thread_id: str,
        graph: str,
        context: dict[str, Any],
        problem: str,
        gold: str | None = None,
        experiment_id: int | None = None,
        item_id: str | None = None,
        seed: int = 0,
        distill: str | None = None,
        scorer: str | None = None,
        checkpoints: str | None = None,
    ) -> int:
        """Record a new run (status 'running'); returns its id.

        Raises:
            LedgerError: the thread id is already in the ledger (resume it instead).
        """
        with self._session() as session:
            if session.scalar(select(Run.id).where(Run.thread_id == thread_id)) is not None:
                raise LedgerError(
                    f"thread {thread_id!r} is already in the ledger; resume it or pick a new id"
                )
            run = Run(
                thread_id=thread_id,
                graph=graph,
                distill=distill,
                scorer=scorer,
                models=models_of(context),
                context=context,
                problem=problem,
                gold=gold,
                experiment_id=experiment_id,
                item_id=item_id,
                seed=seed,
                status="running",
                checkpoints=checkpoints,
            )
            session.add(run)
            session.flush()
            run_id = run.id
        with self._lock:
            self._runs[thread_id] = (run_id, problem)
        return run_id

    def reopen_run(self, thread_id: str, checkpoints: str | None = None) -> RunDetail:
        """Mark a stopped run 'running' again (for a resume), in ``checkpoints`` if given."""
        with self._session() as session:
            run = self._run(session, thread_id)
            run.status = "running"
            run.error = None
            run.finished_at = None
            if checkpoints is not None:
                run.checkpoints = checkpoints
        detail = self.get_run(thread_id)
        assert detail is not None
        return detail

    def record_call(self, thread_id: str, record: CallRecord) -> bool:
        """Commit one call record of the run on ``thread_id`` now; returns whether it is a repeat.

        A record whose attempt already has a row (written when it started) completes that row;
        see ``pdr.store.call_rows.write_call`` for the repeat mark. A draft, refine or long CoT
        call's answers are extracted from its texts as the nodes do (``pdr.answers.extract_answer``
        with the run's problem) and stored beside them.
        """
        run_id, problem = self._known_run(thread_id)
        texts = record.get("texts")
        answers = None
        if texts is not None and record["role"] in ANSWERING_ROLES:
            answers = [extract_answer(text, problem) for text in texts]
        with self._session() as session:
            return write_call(session, run_id, record, answers)

    def close_unfinished_calls(self, thread_id: str, note: str) -> int:
        """Mark the run's attempts still 'in flight' as ended with ``note``; returns how many.

        Their rows keep the prompt tokens estimated when they started (the reply never came).
        """
        run_id = self._run_id(thread_id)
        with self._session() as session:
            return close_unfinished(session, run_id, note)

    # -- leases ----------------------------------------------------------------------------

    def take_lease(self, thread_id: str, holder: leases.Holder) -> leases.LeaseInfo | None:
        """Take the right to execute ``thread_id`` (see ``pdr.store.leases.take``)."""
        return leases.take(self._sessions, thread_id, holder)

    def renew_lease(self, thread_id: str, holder: leases.Holder) -> bool:
        """Renew ``holder``'s heartbeat; False when another process took the lease over."""
        return leases.renew(self._sessions, thread_id, holder)

    def release_lease(self, thread_id: str, holder: leases.Holder) -> None:
        """Give the lease back."""
        leases.release(self._sessions, thread_id, holder)

    def lease_holder(self, thread_id: str) -> leases.LeaseInfo | None:
        """The live holder of ``thread_id``'s lease, if one is executing it now."""
        return leases.held_by(self._sessions, thread_id)

    def record_workspace(
        self, thread_id: str, round_: int, text: str, tokens: int, index: int = 0
    ) -> None:
        """Store the workspace written after round ``round_`` (replacing one stored before)."""
        run_id = self._run_id(thread_id)
        with self._session() as session:
            found = session.scalar(
                select(Workspace).where(
                    Workspace.run_id == run_id, Workspace.round == round_, Workspace.index == index
                )
            )
            if found is None:
                session.add(
                    Workspace(run_id=run_id, round=round_, index=index, text=text, tokens=tokens)
                )
            else:
                found.text, found.tokens = text, tokens

    def finish_run(
        self,
        thread_id: str,
        *,
        answer: str | None,
        final_text: str | None,
        wall_s: float | None,
        status: Status,
        grade: bool | None = None,
        error: str | None = None,
    ) -> Budgets:
        """Close a run with its outcome; its B_seq and B_tot come from its call rows (returned)."""
        with self._session() as session:
            run = self._run(session, thread_id)
            rows = session.scalars(select(Call).where(Call.run_id == run.id).order_by(Call.id))
            records = [call_record(row) for row in rows]
            figures = budgets(records)
            run.answer, run.final_text = answer, final_text
            run.b_seq, run.b_tot, run.wall_s = figures.b_seq, figures.b_tot, wall_s
            run.b_tot_per_draft = per_draft_total(records)
            run.status, run.grade, run.error = status, grade, error
            run.finished_at = utcnow()
        return figures

    def set_grade(self, thread_id: str, grade: bool | None) -> None:
        """Store (or replace) a run's grade."""
        with self._session() as session:
            self._run(session, thread_id).grade = grade

    def create_experiment(self, name: str, config: dict[str, Any]) -> int:
        """Record a new experiment; returns its id. Raises LedgerError if the name is taken."""
        with self._session() as session:
            if session.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
                raise LedgerError(f"experiment {name!r} already exists; resume it or rename it")
            experiment = Experiment(name=name, config=config)
            session.add(experiment)
            session.flush()
            return experiment.id

    def find_experiment(self, name: str) -> int | None:
        """The id of the experiment called ``name``, or None."""
        with self._sessions() as session:
            return session.scalar(select(Experiment.id).where(Experiment.name == name))

    def experiment_config(self, experiment_id: int) -> dict[str, Any]:
        """The config an experiment was created with."""
        with self._sessions() as session:
            experiment = session.get(Experiment, experiment_id)
            if experiment is None:
                raise LedgerError(f"no experiment with id {experiment_id}")
            return dict(experiment.config)

    def add_result(
        self,
        experiment_id: int,
        *,
        label: str,
        method: str,
        seed: int,
        item_id: str,
        thread_id: str,
    ) -> None:
        """Link a run to its cell (label, item, seed) of an experiment, replacing an older run."""
        with self._session() as session:
            run_id = self._run(session, thread_id).id
            found = session.scalar(
                select(Result).where(
                    Result.experiment_id == experiment_id,
                    Result.label == label,
                    Result.item_id == item_id,
                    Result.seed == seed,
                )
            )
            if found is None:
                session.add(
                    Result(
                        experiment_id=experiment_id,
                        method=method,
                        label=label,
                        seed=seed,
                        item_id=item_id,
                        run_id=run_id,
                    )
                )
            else:
                found.method, found.run_id = method, run_id

    # -- reading ---------------------------------------------------------------------------

    def completed_items(self, experiment_id: int) -> set[tuple[str, str, int]]:
        """(label, item id, seed) of the experiment's cells whose run finished ('done')."""
        with self._sessions() as session:
            rows = session.execute(
                select(Result.label, Result.item_id, Result.seed)
                .join(Run, Run.id == Result.run_id)
                .where(Result.experiment_id == experiment_id, Run.status.in_(FINISHED))
            )
            return {(label, item_id, seed) for label, item_id, seed in rows}

    def results(self, experiment_id: int) -> list[ResultRow]:
        """Every result of an experiment with its run's outcome, in insertion order."""
        calls = select(Call.run_id, func.count(Call.id).label("n")).group_by(Call.run_id).subquery()
        with self._sessions() as session:
            rows = session.execute(
                select(Result, Run, func.coalesce(calls.c.n, 0))
                .join(Run, Run.id == Result.run_id)
                .outerjoin(calls, calls.c.run_id == Run.id)
                .where(Result.experiment_id == experiment_id)
                .order_by(Result.id)
            ).all()
            return [
                ResultRow(
                    experiment_id=result.experiment_id,
                    method=result.method,
                    label=result.label,
                    seed=result.seed,
                    item_id=result.item_id,
                    thread_id=run.thread_id,
                    status=run.status,
                    answer=run.answer,
                    gold=run.gold,
                    grade=run.grade,
                    b_seq=run.b_seq,
                    b_tot=run.b_tot,
                    wall_s=run.wall_s,
                    calls=int(count),
                    error=run.error,
                    b_tot_per_draft=run.b_tot_per_draft,
                )
                for result, run, count in rows
            ]

    def call_outputs(self, experiment_id: int, role: str = "draft") -> dict[str, list[CallOutput]]:
        """What the calls of ``role`` wrote in each run of an experiment, by thread id."""
        with self._sessions() as session:
            return outputs_of(session, experiment_id, role)

    def list_runs(self, limit: int = 20, experiment_id: int | None = None) -> list[RunSummary]:
        """The most recent runs first (optionally those of one experiment)."""
        calls = select(Call.run_id, func.count(Call.id).label("n")).group_by(Call.run_id).subquery()
        query = (
            select(Run, func.coalesce(calls.c.n, 0))
            .outerjoin(calls, calls.c.run_id == Run.id)
            .order_by(Run.id.desc())
            .limit(limit)
        )
        if experiment_id is not None:
            query = query.where(Run.experiment_id == experiment_id)
        with self._sessions() as session:
            return [run_summary(run, int(count)) for run, count in session.execute(query).all()]

    def get_run(self, key: str | int) -> RunDetail | None:
        """A run by thread id, or by its numeric ledger id (an int or a string of digits)."""
        with self._sessions() as session:
            run = session.scalar(select(Run).where(Run.thread_id == str(key)))
            if run is None and (isinstance(key, int) or str(key).isdigit()):
                run = session.get(Run, int(key))
            if run is None:
                return None
            records = [call_record(call) for call in run.calls]
            spaces = [WorkspaceInfo(w.round, w.index, w.text, w.tokens) for w in run.workspaces]
            summary = run_summary(run, len(records))
            return RunDetail(
                **{name: getattr(summary, name) for name in summary.__dataclass_fields__},
                distill=run.distill,
                scorer=run.scorer,
                context=dict(run.context),
                final_text=run.final_text,
                error=run.error,
                call_records=records,
                workspaces=spaces,
                checkpoints=run.checkpoints,
            )

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # -- internals -------------------------------------------------------------------------

    def _run(self, session: Session, thread_id: str) -> Run:
        run = session.scalar(select(Run).where(Run.thread_id == thread_id))
        if run is None:
            raise LedgerError(f"no run with thread id {thread_id!r} in the ledger {self.url}")
        return run

    def _known_run(self, thread_id: str) -> tuple[int, str]:
        """(run id, problem) of the run on ``thread_id``, looked up once per ledger."""
        with self._lock:
            known = self._runs.get(thread_id)
        if known is not None:
            return known
        with self._sessions() as session:
            run = self._run(session, thread_id)
            known = (run.id, run.problem)
        with self._lock:
            self._runs[thread_id] = known
        return known

    def _run_id(self, thread_id: str) -> int:
        return self._known_run(thread_id)[0]

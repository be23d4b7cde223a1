"""Run one problem through one graph, with checkpoints, the ledger and live progress events.

``run_problem`` builds the chosen graph ("pdr", "sr" or "long_cot") with the chosen distill
operator, compiles it with the async SQLite checkpointer and streams it. The runner is the one
reader of the graph's custom stream (``pdr.events``) and the one writer of the ledger: every
``call_finished`` event becomes a call row the moment it arrives, every ``workspace_written``
event the round's workspace rows, and every event also goes to ``on_event`` (progress). When the
run ends, the ledger closes it and computes B_seq and B_tot from its rows; the returned
``RunOutcome`` reports exactly those figures. ``resume_problem`` continues a stopped run from its
last checkpoint with the context stored in the ledger; calls that completed before the stop are
not made again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StreamMode

from pdr.budget import CallRecord, budgets
from pdr.events import CALL_FINISHED, WORKSPACE_WRITTEN
from pdr.graphs.catalog import build_graph, check_models, context_type, method_names
from pdr.graphs.context import ContextError, RunContext, context_fields
from pdr.settings import checkpoints_path
from pdr.store.checkpoints import open_async_graph
from pdr.store.ledger import Ledger, LedgerError, Status
from pdr.store.rows import RunDetail

STREAM_MODES: list[StreamMode] = ["custom"]

EventHandler = Callable[[dict[str, Any]], None]
Grader = Callable[[str | None, str], bool]


@dataclass(frozen=True)
class RunOutcome:
    """What a run ended with.

    Attributes:
        thread_id: the LangGraph thread (and ledger key) of the run.
        answer: the extracted final answer (None if none was found or the run failed).
        final_text: the final solution text.
        b_seq: tokens on the critical path, over every call of the run.
        b_tot: tokens of every call of the run, failed attempts included.
        wall_s: wall time in seconds (summed over the sessions of a resumed run).
        calls: the ledger records of the run's calls.
        status: 'done' or 'failed'.
        error: why a failed run failed.
        grade: the grader's verdict when a gold answer and a grader were given.
    """

    thread_id: str
    answer: str | None
    final_text: str | None
    b_seq: int
    b_tot: int
    wall_s: float
    calls: list[CallRecord] = field(default_factory=list)
    status: Literal["done", "failed"] = "done"
    error: str | None = None
    grade: bool | None = None


class _Recorder:
    """The ledger side of one run's stream: call and workspace events become rows as they come."""

    def __init__(self, thread_id: str, ledger: Ledger | None, earlier: list[CallRecord]) -> None:
        self.thread_id = thread_id
        self.ledger = ledger
        self.records = list(earlier)

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == CALL_FINISHED:
            record: CallRecord = event["record"]
            self.records.append(record)
            if self.ledger is not None:
                self.ledger.record_call(self.thread_id, record)
        elif kind == WORKSPACE_WRITTEN and self.ledger is not None:
            written = zip(event["texts"], event["tokens"], strict=True)
            for index, (text, tokens) in enumerate(written):
                self.ledger.record_workspace(
                    self.thread_id, int(event["round"]), text, int(tokens), index
                )

    def close(
        self,
        *,
        answer: str | None,
        final_text: str | None,
        wall_s: float,
        status: Status,
        grade: bool | None = None,
        error: str | None = None,
    ) -> RunOutcome:
        """Close the run in the ledger (which computes its budgets from its rows) and report it."""
        if self.ledger is None:
            b_seq, b_tot = budgets(self.records)
            calls = self.records
        else:
            b_seq, b_tot = self.ledger.finish_run(
                self.thread_id,
                answer=answer,
                final_text=final_text,
                wall_s=wall_s,
                status=status,
                grade=grade,
                error=error,
            )
            stored = self.ledger.get_run(self.thread_id)
            calls = stored.call_records if stored is not None else self.records
        return RunOutcome(
            thread_id=self.thread_id,
            answer=answer,
            final_text=final_text,
            b_seq=b_seq,
            b_tot=b_tot,
            wall_s=wall_s,
            calls=calls,
            status="done" if status == "done" else "failed",
            error=error,
            grade=grade,
        )


async def _stream(
    compiled: CompiledStateGraph[Any, Any, Any, Any],
    payload: dict[str, Any] | None,
    config: RunnableConfig,
    context: RunContext,
    recorder: _Recorder,
    on_event: EventHandler | None,
) -> dict[str, Any]:
    """Stream the graph to its end, handing every event on; returns the final state values."""
    async for chunk in compiled.astream(
        payload,
        config,
        context=context,
        stream_mode=STREAM_MODES,
        # "sync": every finished node's writes are on disk before the next step starts, so a
        # process killed mid-round resumes without repeating a completed call.
        durability="sync",
    ):
        _mode, event = chunk
        if isinstance(event, dict):
            recorder.take(event)
            if on_event is not None:
                on_event(event)
    snapshot = await compiled.aget_state(config)
    if snapshot.next:
        raise RuntimeError(f"the run stopped before its end, at {', '.join(snapshot.next)}")
    return dict(snapshot.values)


async def _execute(
    *,
    builder: StateGraph[Any, Any, Any, Any],
    graph: str,
    payload: dict[str, Any] | None,
    context: RunContext,
    recorder: _Recorder,
    checkpoints: str | Path | None,
    on_event: EventHandler | None,
    gold: str | None,
    grade: Grader | None,
    earlier_wall_s: float = 0.0,
) -> RunOutcome:
    """Run (or continue) the thread to its end, closing its ledger row either way."""
    config: RunnableConfig = {"configurable": {"thread_id": recorder.thread_id}}
    started = time.perf_counter()

    def elapsed() -> float:
        return round(earlier_wall_s + time.perf_counter() - started, 3)

    try:
        async with open_async_graph(builder, checkpoints_path(checkpoints), name=graph) as app:
            snapshot = await app.aget_state(config)
            if payload is None and not snapshot.next and "final_text" in snapshot.values:
                values = dict(snapshot.values)  # finished, but the process died before the ledger
            else:
                values = await _stream(app, payload, config, context, recorder, on_event)
    except (asyncio.CancelledError, KeyboardInterrupt):
        if recorder.ledger is not None:
            recorder.close(
                answer=None,
                final_text=None,
                wall_s=elapsed(),
                status="failed",
                error=f"interrupted; continue it with: pdr resume {recorder.thread_id}",
            )
        raise
    except Exception as error:
        return recorder.close(
            answer=None,
            final_text=None,
            wall_s=elapsed(),
            status="failed",
            error=f"{type(error).__name__}: {error}",
        )
    answer = values.get("answer")
    verdict: bool | None = None
    error_text: str | None = None
    if gold is not None and grade is not None:
        try:
            verdict = bool(grade(answer, gold))
        except Exception as error:  # a grader bug must not lose the run
            error_text = f"grading failed: {type(error).__name__}: {error}"
    return recorder.close(
        answer=answer,
        final_text=values.get("final_text"),
        wall_s=elapsed(),
        status="done",
        grade=verdict,
        error=error_text,
    )


async def run_problem(
    *,
    graph: str,
    problem: str,
    context: RunContext,
    distill: str | None = None,
    scorer: str | None = None,
    thread_id: str | None = None,
    ledger: Ledger | None = None,
    checkpoints: str | Path | None = None,
    on_event: EventHandler | None = None,
    gold: str | None = None,
    grade: Grader | None = None,
    experiment_id: int | None = None,
    item_id: str | None = None,
) -> RunOutcome:
    """Run ``problem`` through ``graph`` and return its outcome.

    Args:
        graph: "pdr", "sr" or "long_cot".
        problem: the problem text.
        context: the graph's run context (PDRContext, SRContext or LongCoTContext).
        distill: PDR's distill operator by name (summary, topk, topk_per_sample, random_k;
            default summary).
        scorer: the scorer of the top-k operators (vote or verify; default vote); refused for
            operators that rank no drafts.
        thread_id: the LangGraph thread and ledger key (a fresh uuid when None).
        ledger: where the run, its calls and workspaces are written (nothing when None).
        checkpoints: the checkpoint SQLite file (None: ``PDR_CHECKPOINTS`` or the data dir).
        on_event: receives each event of the graph's custom stream (``pdr.events``).
        gold: the reference answer, stored with the run and given to ``grade``.
        grade: ``grade(answer, gold) -> bool``; its verdict is stored with the run.
        experiment_id: the experiment the run belongs to.
        item_id: the dataset item of the run.

    Returns:
        The outcome; a run whose model calls failed returns status 'failed' with the error and
        the tokens its calls consumed (it can be resumed). With a ledger, B_seq and B_tot are the
        ledger's own figures for the run.

    Raises:
        ContextError: a parameter (graph, distill, scorer, context, model) cannot be used; raised
            before any model call and before anything is written.
    """
    if not isinstance(problem, str) or not problem.strip():
        raise ContextError("problem: give a non-empty problem text")
    kind = context_type(graph)
    if not isinstance(context, kind):
        raise ContextError(
            f"context: the {graph} graph needs a {kind.__name__}, got {type(context).__name__}"
        )
    context.validate()
    distill, scorer = method_names(graph, distill, scorer)
    builder = build_graph(graph, distill, scorer)
    check_models(context)
    thread_id = thread_id or uuid.uuid4().hex
    if ledger is not None:
        ledger.start_run(
            thread_id=thread_id,
            graph=graph,
            context=asdict(context),
            problem=problem,
            gold=gold,
            experiment_id=experiment_id,
            item_id=item_id,
            seed=context.seed,
            distill=distill,
            scorer=scorer,
        )
    return await _execute(
        builder=builder,
        graph=graph,
        payload={"problem": problem},
        context=context,
        recorder=_Recorder(thread_id, ledger, []),
        checkpoints=checkpoints,
        on_event=on_event,
        gold=gold,
        grade=grade,
    )


def stored_context(run: RunDetail) -> RunContext:
    """The run context a ledger row was started with."""
    kind = context_type(run.graph)
    accepted = set(context_fields(kind))
    return kind(**{name: value for name, value in run.context.items() if name in accepted})


async def resume_problem(
    thread_id: str,
    *,
    ledger: Ledger | None = None,
    checkpoints: str | Path | None = None,
    on_event: EventHandler | None = None,
    grade: Grader | None = None,
) -> RunOutcome:
    """Continue a stopped run from its last checkpoint, with the context stored in the ledger.

    Drafts and other calls that completed before the stop are kept (LangGraph's pending writes)
    and not made again. A run that is already 'done' is returned as stored.

    Raises:
        LedgerError: the ledger has no run with this thread id.
    """
    ledger = ledger or Ledger()
    stored = ledger.get_run(thread_id)
    if stored is None:
        raise LedgerError(f"no run with thread id {thread_id!r} in the ledger {ledger.url}")
    if stored.status == "done":
        return RunOutcome(
            thread_id=thread_id,
            answer=stored.answer,
            final_text=stored.final_text,
            b_seq=stored.b_seq or 0,
            b_tot=stored.b_tot or 0,
            wall_s=stored.wall_s or 0.0,
            calls=stored.call_records,
            status="done",
            error=stored.error,
            grade=stored.grade,
        )
    context = stored_context(stored)
    builder = build_graph(stored.graph, stored.distill, stored.scorer)
    check_models(context)
    async with open_async_graph(builder, checkpoints_path(checkpoints)) as app:
        snapshot = await app.aget_state({"configurable": {"thread_id": thread_id}})
        started = bool(snapshot.values) or bool(snapshot.next)
    ledger.reopen_run(thread_id)
    return await _execute(
        builder=builder,
        graph=stored.graph,
        # Killed before the first checkpoint: nothing to continue, so start the problem over.
        payload=None if started else {"problem": stored.problem},
        context=context,
        recorder=_Recorder(thread_id, ledger, stored.call_records),
        checkpoints=checkpoints,
        on_event=on_event,
        gold=stored.gold,
        grade=grade,
        earlier_wall_s=stored.wall_s or 0.0,
    )


def run_problem_sync(**kwargs: Any) -> RunOutcome:
    """``run_problem`` for synchronous callers (the command line); same keyword arguments."""
    return asyncio.run(run_problem(**kwargs))


def resume_problem_sync(thread_id: str, **kwargs: Any) -> RunOutcome:
    """``resume_problem`` for synchronous callers; same arguments."""
    return asyncio.run(resume_problem(thread_id, **kwargs))

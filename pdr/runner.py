"""Run one problem through one graph, with checkpoints, the ledger and live progress events.

``run_problem`` builds the chosen graph ("pdr", "sr" or "long_cot") with the chosen distill
operator, compiles it with the async SQLite checkpointer and streams it. The runner is the one
reader of the graph's custom stream (``pdr.events``) and, through its ``Recorder``, the one writer
of the ledger: every call attempt is stored when it starts and completed when it ends, every
workspace when it is written, and every event also goes to ``on_event`` (progress). A run is
executed under a lease, so no two processes execute one run at once. When the run ends, the ledger
closes it and computes B_seq and B_tot from its rows; the returned ``RunOutcome`` reports exactly
those figures.

``resume_problem`` continues a stopped run from its last checkpoint with the context stored in the
ledger: steps whose results the checkpoint holds are not asked again; a step paused after a failed
call is asked again; attempts a killed process left in flight are closed as interrupted. A run
whose checkpoint is gone is refused unless ``restart`` is asked for.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StreamMode

from pdr.events import ACKNOWLEDGED
from pdr.graphs.catalog import build_graph, check_fits, check_models, context_type, method_names
from pdr.graphs.context import ContextError, RunContext
from pdr.outcome import RunOutcome
from pdr.recorder import LeaseLostError, Recorder
from pdr.redact import redacted
from pdr.settings import checkpoints_location
from pdr.signals import until_signal
from pdr.store.checkpoints import (
    CheckpointError,
    Location,
    check_checkpoints,
    describe,
    open_async_graph,
    resume_location,
    stored_form,
)
from pdr.store.ledger import FINISHED, Ledger, LedgerError, Status
from pdr.stored_context import stored_context

STREAM_MODES: list[StreamMode] = ["custom"]
INTERRUPTED_NOTE = "cancelled: the run was interrupted during the call (prompt tokens estimated)"
DIED_NOTE = (
    "interrupted: the process ended during the call; its reply was not recorded (prompt tokens "
    "estimated)"
)

__all__ = [
    "RunOutcome",
    "resume_problem",
    "resume_problem_sync",
    "run_problem",
    "run_problem_sync",
]

EventHandler = Callable[[dict[str, Any]], None]
Grader = Callable[[str | None, str], bool]


class RunPausedError(RuntimeError):
    """The graph paused on failed steps (a LangGraph interrupt); the message names them."""


async def _stream(
    compiled: CompiledStateGraph[Any, Any, Any, Any],
    payload: dict[str, Any] | Command[Any] | None,
    config: RunnableConfig,
    context: RunContext,
    recorder: Recorder,
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
            shown = recorder.take(event)
            if on_event is not None:
                on_event(shown)
    snapshot = await compiled.aget_state(config)
    if snapshot.interrupts:
        failed = [
            line
            for pause in snapshot.interrupts
            for line in (pause.value or {}).get("failed", [str(pause.value)])
        ]
        raise RunPausedError("; ".join(failed))
    if snapshot.next:
        raise RuntimeError(f"the run stopped before its end, at {', '.join(snapshot.next)}")
    return dict(snapshot.values)


def _status(values: dict[str, Any]) -> Status:
    if values.get("stopped"):
        return "budget_exhausted"
    if values.get("truncated"):
        return "truncated"
    return "done"


async def _execute(
    *,
    builder: StateGraph[Any, Any, Any, Any],
    graph: str,
    payload: dict[str, Any] | None,
    context: RunContext,
    recorder: Recorder,
    checkpoints: Location,
    on_event: EventHandler | None,
    gold: str | None,
    grade: Grader | None,
    earlier_wall_s: float = 0.0,
) -> RunOutcome:
    """Run (or continue) the thread to its end, closing its ledger row either way."""
    thread_id = recorder.thread_id
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id, ACKNOWLEDGED: recorder.ledger is not None}
    }
    started = time.perf_counter()

    def elapsed() -> float:
        return round(earlier_wall_s + time.perf_counter() - started, 3)

    def ended(status: Status, error: str | None, values: dict[str, Any]) -> RunOutcome:
        answer = values.get("answer")
        verdict: bool | None = None
        if status in FINISHED and gold is not None and grade is not None:
            try:
                verdict = bool(grade(answer, gold))
            except Exception as failure:  # a grader bug must not lose the run
                error = f"grading failed: {type(failure).__name__}: {failure}"
        b_seq, b_tot, calls = recorder.close(
            answer=answer,
            final_text=values.get("final_text"),
            wall_s=elapsed(),
            status=status,
            grade=verdict,
            error=error,
        )
        return RunOutcome(
            thread_id=thread_id,
            answer=answer,
            final_text=values.get("final_text"),
            b_seq=b_seq,
            b_tot=b_tot,
            wall_s=elapsed(),
            calls=calls,
            status=status,
            error=error,
            grade=verdict,
        )

    try:
        async with (
            open_async_graph(builder, checkpoints, name=graph) as app,
            recorder.heartbeat(asyncio.current_task()),
        ):
            snapshot = await app.aget_state(config)
            if payload is None and not snapshot.next and "final_text" in snapshot.values:
                values = dict(snapshot.values)  # finished, but the process died before the ledger
            else:
                request: dict[str, Any] | Command[Any] | None = payload
                if payload is None and snapshot.interrupts:
                    request = Command(resume=True)  # ask the failed steps again
                values = await _stream(app, request, config, context, recorder, on_event)
    except (asyncio.CancelledError, KeyboardInterrupt):
        if recorder.lease_lost:
            raise LeaseLostError(
                f"run {thread_id}: another process took its lease over; this one stopped"
            ) from None
        recorder.close_unfinished(INTERRUPTED_NOTE)
        ended("interrupted", f"interrupted; continue it with: pdr resume {thread_id}", {})
        raise
    except RunPausedError as paused:
        return ended("failed", str(paused), {})
    except Exception as error:
        recorder.close_unfinished(f"cancelled: the run failed during the call ({error})")
        return ended("failed", f"{type(error).__name__}: {error}", {})
    return ended(_status(values), values.get("stopped"), values)


async def run_problem(
    *,
    graph: str,
    problem: str,
    context: RunContext,
    distill: str | None = None,
    scorer: str | None = None,
    thread_id: str | None = None,
    ledger: Ledger | None = None,
    checkpoints: Location | None = None,
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
        checkpoints: the checkpoint SQLite file or ``postgresql://`` URL (None:
            ``PDR_CHECKPOINTS`` or the data dir's file).
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
        ContextError: a parameter (graph, distill, scorer, context, model, a problem too large for
            the model) cannot be used; raised before any model call and before anything is
            written.
        CheckpointError: the checkpoint file or database cannot be used (before anything is
            written).
        LeaseHeldError: another live process executes this thread.
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
    await asyncio.to_thread(check_fits, graph, context, problem)
    where = checkpoints_location(checkpoints)
    await asyncio.to_thread(check_checkpoints, where)
    thread_id = thread_id or uuid.uuid4().hex
    recorder = Recorder(thread_id, ledger, [])
    if ledger is not None:
        recorder.take_lease()
    try:
        if ledger is not None:
            ledger.start_run(
                thread_id=thread_id,
                graph=graph,
                context=redacted(asdict(context)),
                problem=problem,
                gold=gold,
                experiment_id=experiment_id,
                item_id=item_id,
                seed=context.seed,
                distill=distill,
                scorer=scorer,
                checkpoints=stored_form(where),
            )
        return await _execute(
            builder=builder,
            graph=graph,
            payload={"problem": problem},
            context=context,
            recorder=recorder,
            checkpoints=where,
            on_event=on_event,
            gold=gold,
            grade=grade,
        )
    finally:
        recorder.release_lease()


async def resume_problem(
    thread_id: str,
    *,
    ledger: Ledger | None = None,
    checkpoints: Location | None = None,
    on_event: EventHandler | None = None,
    grade: Grader | None = None,
    restart: bool = False,
) -> RunOutcome:
    """Continue a stopped run from its last checkpoint, with the context stored in the ledger.

    Steps whose results the checkpoint holds are kept (LangGraph's pending writes) and not asked
    again; steps paused after a failed call are asked again. A run that ended by itself ('done',
    'truncated', 'budget_exhausted') is returned as stored. ``checkpoints`` defaults to the file
    the run was started with. With ``restart`` the run starts over from its problem on the same
    thread (its earlier calls stay in the ledger; calls made again are marked repeats).

    Raises:
        LedgerError: the ledger has no run with this thread id.
        LeaseHeldError: another live process executes this thread.
        CheckpointError: the checkpoint file lacks the run (missing, emptied, another file) and
            ``restart`` was not asked for, or another file than the run's was named.
        ContextError: the stored context cannot be rebuilt (a redacted password not supplied).
    """
    ledger = ledger or Ledger()
    if ledger.get_run(thread_id) is None:
        raise LedgerError(f"no run with thread id {thread_id!r} in the ledger {ledger.url}")
    recorder = Recorder(thread_id, ledger, [])
    recorder.take_lease()
    try:
        stored = ledger.get_run(thread_id)
        assert stored is not None
        if stored.status in FINISHED:
            kept = ("answer", "final_text", "error", "grade", "status")
            return RunOutcome(
                thread_id=thread_id,
                b_seq=stored.b_seq or 0,
                b_tot=stored.b_tot or 0,
                wall_s=stored.wall_s or 0.0,
                calls=stored.call_records,
                **{name: getattr(stored, name) for name in kept},
            )
        context = stored_context(stored)
        builder = build_graph(stored.graph, stored.distill, stored.scorer)
        check_models(context)
        where = await asyncio.to_thread(
            resume_location, stored.checkpoints, checkpoints, thread_id, restart
        )
        ledger.close_unfinished_calls(thread_id, DIED_NOTE)
        async with open_async_graph(builder, where) as app:
            snapshot = await app.aget_state({"configurable": {"thread_id": thread_id}})
        saved = bool(snapshot.values) or bool(snapshot.next)
        if not saved and not restart and stored.calls:
            raise CheckpointError(
                f"{describe(where)} has no checkpoint of run {thread_id} (missing, "
                f"emptied or replaced?); restore the file, or start the run over with --restart "
                f"(its {stored.calls} recorded calls stay in the ledger)"
            )
        ledger.reopen_run(thread_id, checkpoints=stored_form(where))
        recorder.records = list(stored.call_records)
        return await _execute(
            builder=builder,
            graph=stored.graph,
            payload={"problem": stored.problem} if restart or not saved else None,
            context=context,
            recorder=recorder,
            checkpoints=where,
            on_event=on_event,
            gold=stored.gold,
            grade=grade,
            earlier_wall_s=stored.wall_s or 0.0,
        )
    finally:
        recorder.release_lease()


def run_problem_sync(**kwargs: Any) -> RunOutcome:
    """``run_problem`` for synchronous callers (the command line); same keyword arguments.

    Raises:
        RunInterruptedError: Ctrl-C or SIGTERM stopped the run (recorded as interrupted).
    """
    kwargs["thread_id"] = kwargs.get("thread_id") or uuid.uuid4().hex
    return until_signal(run_problem(**kwargs), kwargs["thread_id"])


def resume_problem_sync(thread_id: str, **kwargs: Any) -> RunOutcome:
    """``resume_problem`` for synchronous callers; same arguments (see run_problem_sync)."""
    return until_signal(resume_problem(thread_id, **kwargs), thread_id)

"""Run one problem through one graph, with checkpoints, the ledger and live progress events.

``run_problem`` builds the chosen graph ("pdr", "sr" or "long_cot") with the chosen distill
operator, compiles it with the async SQLite checkpointer, streams it (progress events go to
``on_event``), writes the run, its calls (as they end) and its workspaces to the ledger, and
returns a ``RunOutcome``. ``resume_problem`` continues a stopped run from its last checkpoint with
the context stored in the ledger; calls that completed before the stop are not made again.
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
from langgraph.config import get_config
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StreamMode

from pdr.budget import CallRecord, sequential_budget, total_budget
from pdr.calls import add_call_listener, remove_call_listener
from pdr.graphs.context import (
    ContextError,
    LongCoTContext,
    PDRContext,
    RunContext,
    SRContext,
    context_fields,
)
from pdr.graphs.long_cot import build_long_cot
from pdr.graphs.pdr import build_pdr
from pdr.graphs.sr import build_sr
from pdr.models import get_backend
from pdr.nodes.distill import DISTILLERS, distiller
from pdr.nodes.scoring import SCORERS
from pdr.nodes.workspace import count_tokens
from pdr.settings import checkpoints_path
from pdr.store.checkpoints import open_async_graph
from pdr.store.ledger import Ledger, LedgerError, RunDetail

GraphName = Literal["pdr", "sr", "long_cot"]
CONTEXT_TYPES: dict[str, type[RunContext]] = {
    "pdr": PDRContext,
    "sr": SRContext,
    "long_cot": LongCoTContext,
}
GRAPHS: tuple[str, ...] = tuple(CONTEXT_TYPES)
DISTILL_NAMES: tuple[str, ...] = tuple(sorted(DISTILLERS))
SCORER_NAMES: tuple[str, ...] = tuple(sorted(SCORERS))
MODEL_FIELDS = ("model", "draft_model", "distill_model", "verify_model", "refine_model")

STREAM_MODES: list[StreamMode] = ["updates", "custom"]

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


def context_type(graph: str) -> type[RunContext]:
    """The run context class of ``graph``; raises ContextError naming the valid graphs."""
    if graph not in CONTEXT_TYPES:
        raise ContextError(f"graph: unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    return CONTEXT_TYPES[graph]


def make_context(graph: str, **values: Any) -> RunContext:
    """The run context of ``graph`` from ``values``; None values keep the field's default.

    Raises:
        ContextError: naming the field, for a value the graph cannot use or does not take.
    """
    kind = context_type(graph)
    accepted = context_fields(kind)
    for name, value in values.items():
        if value is not None and name not in accepted:
            raise ContextError(f"{name}: the {graph} graph does not take this parameter")
    return kind(**{name: value for name, value in values.items() if value is not None})


def build_graph(
    graph: str, distill: str = "summary", scorer: str = "vote"
) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled builder of ``graph`` (the distill operator and scorer matter for PDR)."""
    context_type(graph)
    if distill not in DISTILLERS:
        raise ContextError(
            f"distill: unknown operator {distill!r}; choose one of {', '.join(DISTILL_NAMES)}"
        )
    if scorer not in SCORERS:
        raise ContextError(
            f"scorer: unknown scorer {scorer!r}; choose one of {', '.join(SCORER_NAMES)}"
        )
    if graph == "pdr":
        return build_pdr(distill=distiller(distill, scorer))
    if graph == "sr":
        return build_sr()
    return build_long_cot()


def check_models(context: RunContext) -> None:
    """Build the backend of every model the context names, before any call is made.

    Raises:
        ContextError: naming the field whose model spec cannot be used, with the backend's reason.
    """
    for name in MODEL_FIELDS:
        spec = getattr(context, name)
        if spec is None:
            continue
        try:
            get_backend(spec)
        except Exception as error:
            raise ContextError(f"{name}: {error}") from error


class _Collector:
    """Keeps the call records of one thread made in this process (for failed runs' budgets)."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.records: list[CallRecord] = []

    def __call__(self, record: CallRecord) -> None:
        try:
            thread_id = get_config()["configurable"]["thread_id"]
        except (RuntimeError, KeyError):
            return
        if thread_id == self.thread_id:
            self.records.append(record)


async def _stream(
    compiled: CompiledStateGraph[Any, Any, Any, Any],
    payload: dict[str, Any] | None,
    config: RunnableConfig,
    context: RunContext,
    ledger: Ledger | None,
    thread_id: str,
    on_event: EventHandler | None,
) -> dict[str, Any]:
    """Stream the graph to its end; returns the final state values."""
    async for mode, chunk in compiled.astream(
        payload,
        config,
        context=context,
        stream_mode=STREAM_MODES,
        # "sync": every finished node's writes are on disk before the next step starts, so a
        # process killed mid-round resumes without repeating a completed call.
        durability="sync",
    ):
        if mode == "custom" and on_event is not None and isinstance(chunk, dict):
            on_event(chunk)
        elif mode == "updates" and ledger is not None and isinstance(chunk, dict):
            update = chunk.get("distill")
            if isinstance(update, dict) and "workspaces" in update:
                written_round = int(update["round"]) - 1
                for index, text in enumerate(update["workspaces"]):
                    ledger.record_workspace(
                        thread_id, written_round, text, count_tokens(text, context), index
                    )
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
    thread_id: str,
    ledger: Ledger | None,
    checkpoints: str | Path | None,
    on_event: EventHandler | None,
    gold: str | None,
    grade: Grader | None,
    earlier_wall_s: float = 0.0,
    earlier_calls: list[CallRecord] | None = None,
) -> RunOutcome:
    """Run (or continue) the thread to its end, closing its ledger row either way."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    collector = _Collector(thread_id)
    add_call_listener(collector)
    started = time.perf_counter()
    try:
        async with open_async_graph(builder, checkpoints_path(checkpoints), name=graph) as app:
            snapshot = await app.aget_state(config)
            if payload is None and not snapshot.next and "final_text" in snapshot.values:
                values = dict(snapshot.values)  # finished, but the process died before the ledger
            else:
                values = await _stream(app, payload, config, context, ledger, thread_id, on_event)
    except (asyncio.CancelledError, KeyboardInterrupt):
        if ledger is not None:
            calls = [*(earlier_calls or []), *collector.records]
            ledger.finish_run(
                thread_id,
                answer=None,
                final_text=None,
                b_seq=sequential_budget(calls),
                b_tot=total_budget(calls),
                wall_s=earlier_wall_s + time.perf_counter() - started,
                status="failed",
                error=f"interrupted; continue it with: pdr resume {thread_id}",
            )
        raise
    except Exception as error:
        calls = [*(earlier_calls or []), *collector.records]
        outcome = RunOutcome(
            thread_id=thread_id,
            answer=None,
            final_text=None,
            b_seq=sequential_budget(calls),
            b_tot=total_budget(calls),
            wall_s=round(earlier_wall_s + time.perf_counter() - started, 3),
            calls=calls,
            status="failed",
            error=f"{type(error).__name__}: {error}",
        )
        _close(ledger, outcome)
        return outcome
    finally:
        remove_call_listener(collector)
    answer = values.get("answer")
    verdict: bool | None = None
    error_text: str | None = None
    if gold is not None and grade is not None:
        try:
            verdict = bool(grade(answer, gold))
        except Exception as error:  # a grader bug must not lose the run
            error_text = f"grading failed: {type(error).__name__}: {error}"
    outcome = RunOutcome(
        thread_id=thread_id,
        answer=answer,
        final_text=values.get("final_text"),
        b_seq=int(values.get("b_seq", 0)),
        b_tot=int(values.get("b_tot", 0)),
        wall_s=round(earlier_wall_s + time.perf_counter() - started, 3),
        calls=list(values.get("calls") or []),
        status="done",
        error=error_text,
        grade=verdict,
    )
    _close(ledger, outcome)
    return outcome


def _close(ledger: Ledger | None, outcome: RunOutcome) -> None:
    if ledger is not None:
        ledger.finish_run(
            outcome.thread_id,
            answer=outcome.answer,
            final_text=outcome.final_text,
            b_seq=outcome.b_seq,
            b_tot=outcome.b_tot,
            wall_s=outcome.wall_s,
            status=outcome.status,
            grade=outcome.grade,
            error=outcome.error,
        )


async def run_problem(
    *,
    graph: str,
    problem: str,
    context: RunContext,
    distill: str = "summary",
    scorer: str = "vote",
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
        distill: PDR's distill operator by name (summary, topk, topk_per_sample, random_k).
        scorer: the scorer of the top-k operators (vote or verify).
        thread_id: the LangGraph thread and ledger key (a fresh uuid when None).
        ledger: where the run, its calls and workspaces are written (nothing when None).
        checkpoints: the checkpoint SQLite file (None: ``PDR_CHECKPOINTS`` or the data dir).
        on_event: receives each progress event (round_started, draft_finished, ...).
        gold: the reference answer, stored with the run and given to ``grade``.
        grade: ``grade(answer, gold) -> bool``; its verdict is stored with the run.
        experiment_id: the experiment the run belongs to.
        item_id: the dataset item of the run.

    Returns:
        The outcome; a run whose model calls failed returns status 'failed' with the error and
        the tokens its calls consumed (it can be resumed).

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
            distill=distill if graph == "pdr" else None,
            scorer=scorer if graph == "pdr" else None,
        )
    return await _execute(
        builder=builder,
        graph=graph,
        payload={"problem": problem},
        context=context,
        thread_id=thread_id,
        ledger=ledger,
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
    builder = build_graph(stored.graph, stored.distill or "summary", stored.scorer or "vote")
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
        thread_id=thread_id,
        ledger=ledger,
        checkpoints=checkpoints,
        on_event=on_event,
        gold=stored.gold,
        grade=grade,
        earlier_wall_s=stored.wall_s or 0.0,
        earlier_calls=stored.call_records,
    )


def run_problem_sync(**kwargs: Any) -> RunOutcome:
    """``run_problem`` for synchronous callers (the command line); same keyword arguments."""
    return asyncio.run(run_problem(**kwargs))


def resume_problem_sync(thread_id: str, **kwargs: Any) -> RunOutcome:
    """``resume_problem`` for synchronous callers; same arguments."""
    return asyncio.run(resume_problem(thread_id, **kwargs))

"""The tools a benchmark compares, each a callable that runs one problem once.

A ``Cell`` is one workload: a PDR schedule, a distill operator (with its scorer) and separate or
batched (n = M) drafts. ``Client`` owns the benchmark process's one event loop (an
``asyncio.Runner``; the async tools all run on it, the way a long-lived application would) and
builds the tools of a cell: pdr's compiled graph through ``ainvoke`` and ``invoke``, each with
and without a SQLite checkpointer, pdr's runner (ledger and checkpoints, what ``pdr run`` and
``pdr eval`` use), and the floor (``benchmarks.floor``) replaying the same calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig

from benchmarks import floor
from pdr.aio import SYNC_FAN_OUT
from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.nodes.distill import distiller
from pdr.runner import run_problem
from pdr.store.checkpoints import compile_with_sqlite, open_async_graph
from pdr.store.ledger import Ledger

PROBLEM = "What is 17 * 23?"
Tool = Callable[[], None]


@dataclass(frozen=True)
class Cell:
    """One workload: schedule, distill operator ("topk/vote", "summary", ...), batched drafts."""

    schedule: tuple[int, ...]
    operator: str = "topk/vote"
    batched: bool = False

    @property
    def label(self) -> str:
        shape = ", ".join(str(m) for m in self.schedule)
        return f"[{shape}] {self.operator}" + (" batched" if self.batched else "")

    @property
    def distill(self) -> tuple[str, str | None]:
        name, _, scorer = self.operator.partition("/")
        return name, scorer or None

    def builder(self) -> Any:
        return build_pdr(distill=distiller(*self.distill), batch_drafts=self.batched)


class Client:
    """The client side of the benchmarks: one event loop, one floor client, the pdr tools."""

    def __init__(self, base_url: str, spec: str, workdir: Path, **context: Any) -> None:
        """Tools for the server at ``base_url``; pdr reaches it through the model ``spec``."""
        self.base_url = base_url
        self.spec = spec
        self.workdir = workdir
        self.context_values = {"max_retries": 0, **context}  # max_concurrency: the default
        self.runner = asyncio.Runner()
        self.api = self.runner.run(self._client())
        self.exits = contextlib.AsyncExitStack()
        self._threads = itertools.count()
        self._sync_closers: list[Callable[[], None]] = []

    async def _client(self) -> Any:
        return floor.client(self.base_url)

    def context(self, cell: Cell) -> PDRContext:
        return PDRContext(model=self.spec, schedule=list(cell.schedule), **self.context_values)

    def thread(self) -> RunnableConfig:
        return {"configurable": {"thread_id": f"bench-{next(self._threads)}"}}

    def ainvoke(self, cell: Cell, sqlite: bool = False) -> Tool:
        """pdr's graph through ``ainvoke`` on the benchmark's loop."""
        context = self.context(cell)
        if sqlite:  # one file for every cell, as one application would keep
            path = self.workdir / "ainvoke.sqlite"
            graph = self.runner.run(
                self.exits.enter_async_context(open_async_graph(cell.builder(), path))
            )
        else:
            graph = cell.builder().compile()

        def run() -> None:
            self.runner.run(graph.ainvoke({"problem": PROBLEM}, self.thread(), context=context))

        return run

    def invoke(self, cell: Cell, sqlite: bool = False) -> Tool:
        """pdr's graph through ``invoke`` (LangGraph's sync executor, pdr's background loop)."""
        context = self.context(cell)
        if sqlite:
            graph = compile_with_sqlite(cell.builder(), self.workdir / "invoke.sqlite")
        else:
            graph = cell.builder().compile().with_config(SYNC_FAN_OUT)

        def run() -> None:
            graph.invoke({"problem": PROBLEM}, self.thread(), context=context)

        return run

    def run_problem(self, cell: Cell) -> Tool:
        """pdr's runner: ledger rows as calls finish, checkpoints with durability 'sync'."""
        context = self.context(cell)
        ledger = Ledger(self.workdir / "ledger.sqlite")
        self._sync_closers.append(ledger.close)
        name, scorer = cell.distill
        if cell.batched:
            raise ValueError("the runner has no batched-drafts option")

        def run() -> None:
            outcome = self.runner.run(
                run_problem(
                    graph="pdr",
                    problem=PROBLEM,
                    context=context,
                    distill=name,
                    scorer=scorer,
                    ledger=ledger,
                    checkpoints=self.workdir / "runner.sqlite",
                )
            )
            if outcome.status != "done":
                raise RuntimeError(f"pdr runner failed: {outcome.error}")

        return run

    def floor(self, plan: floor.Plan, api: Any = None) -> Tool:
        """The same calls from a plain asyncio loop with the openai client."""
        client = api or self.api

        def run() -> None:
            self.runner.run(floor.run_plan(client, plan))

        return run

    def other_client(self, base_url: str) -> Any:
        """An openai client for another server (the peer's proxy), on this loop."""

        async def make() -> Any:
            return floor.client(base_url)

        return self.runner.run(make())

    def close(self) -> None:
        self.runner.run(self.exits.aclose())
        for close in self._sync_closers:
            close()
        self.runner.close()

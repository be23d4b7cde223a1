"""Run the async nodes from LangGraph's synchronous API (``invoke``/``stream``).

Every node is an async function. For the sync API, each node also gets a synchronous face that
hands the coroutine to one process-wide background event loop, so model clients, the concurrency
cap and the local model's worker threads all live on a single loop, whichever API started the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable

T = TypeVar("T")

# LangGraph's sync executor runs at most cpu + 4 branches at once unless the config raises
# max_concurrency; with nodes that only wait on the background loop, a wide pool costs little and
# lets every draft of a round start together. The model-call cap stays the context's own.
SYNC_FAN_OUT: RunnableConfig = {"max_concurrency": 256}

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared event loop, started on first use in a daemon thread."""
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="pdr-loop", daemon=True).start()
            _loop = loop
        return _loop


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the background loop and wait for it, keeping the caller's contextvars.

    LangGraph keeps the run's config, runtime and stream writer in contextvars; copying the
    context into the task lets ``get_stream_writer()`` and ``get_runtime()`` work inside it.
    """
    loop = background_loop()
    context = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start() -> None:
        task = loop.create_task(coroutine, context=context)

        def settle(finished: asyncio.Task[T]) -> None:
            if finished.cancelled():
                done.cancel()
            elif finished.exception() is not None:
                done.set_exception(finished.exception())
            else:
                done.set_result(finished.result())

        task.add_done_callback(settle)

    loop.call_soon_threadsafe(start)
    return done.result()


def node(function: Callable[..., Awaitable[Any]]) -> RunnableCallable:
    """An async node usable from both ``ainvoke`` (directly) and ``invoke`` (background loop)."""

    @functools.wraps(function)
    def sync_face(*args: Any, **kwargs: Any) -> Any:
        return run_sync(function(*args, **kwargs))  # type: ignore[arg-type]

    return RunnableCallable(sync_face, function, name=function.__name__)

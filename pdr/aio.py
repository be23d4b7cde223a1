"""Run the async nodes from LangGraph's synchronous API (``invoke``/``stream``) as well.

Every node is an async function ``(state, runtime) -> update``. ``node`` wraps one in
langchain-core's public ``RunnableLambda`` with both faces: ``ainvoke`` awaits the function on the
caller's event loop; ``invoke`` hands the coroutine to one process-wide background event loop, so
the concurrency cap and the local model's worker threads live on a single loop whichever thread
LangGraph's sync executor runs the node in. Model clients are per event loop (``pdr.models``), so
any sequence of ``invoke``, ``ainvoke`` and ``asyncio.run`` in one process works.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.runtime import Runtime, get_runtime

T = TypeVar("T")

# LangGraph's sync executor runs at most cpu + 4 branches at once unless the config raises
# max_concurrency; with nodes that only wait on the background loop, a wide pool costs little and
# lets every draft of a round start together. The model-call cap stays the context's own.
SYNC_FAN_OUT: RunnableConfig = {"max_concurrency": 256}

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared event loop of the sync API, started on first use in a daemon thread."""
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
            elif (error := finished.exception()) is not None:
                done.set_exception(error)
            else:
                done.set_result(finished.result())

        task.add_done_callback(settle)

    loop.call_soon_threadsafe(start)
    return done.result()


NodeFunction = Callable[[Any, Runtime[Any]], Awaitable[Any]]


def node(function: NodeFunction) -> RunnableLambda[Any, Any]:
    """An async ``(state, runtime)`` node usable from ``ainvoke`` and from ``invoke``.

    The runtime comes from LangGraph's public ``get_runtime()`` inside the running node.
    """

    async def run_async(state: Any) -> Any:
        return await function(state, get_runtime())

    def run_blocking(state: Any) -> Any:
        return run_sync(function(state, get_runtime()))  # type: ignore[arg-type]

    return RunnableLambda(run_blocking, afunc=run_async, name=function.__name__)

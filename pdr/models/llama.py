"""A GGUF model run in-process by llama.cpp (llama-cpp-python), with llama.cpp's own token counts.

One ``Llama`` object is not safe to call from several threads at once, but separate instances in
separate threads do run in parallel (on 2 cores, 2 instances x 1 thread gave +28% throughput over
1 instance x 2 threads). So the backend keeps a pool of worker threads, each owning its own
``Llama`` (created on first use; the weights are memory-mapped, so instances share them), and runs
every call off the event loop in that pool. At every sampled token a call sets its instance's
thread count to the thread budget divided by the calls running at that moment (at least 1):
parallel drafts share the budget, a lone summary or refine call gets all of it, and a call that
outlives its siblings takes their threads back.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdr.models.base import BackendError, Generation, Message, SamplingOptions

if TYPE_CHECKING:
    from llama_cpp import Llama

DEFAULT_N_CTX = 4096

# llama-cpp-python silences a load by pointing the process's stdout/stderr descriptors at
# /dev/null and back; two loads at once can restore each other's /dev/null and silence the
# process for good, so loads take turns.
_loading = threading.Lock()


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment; BackendError naming the variable if malformed."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BackendError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise BackendError(f"{name} must be at least 1, got {value}")
    return value


def default_instances() -> int:
    """``$PDR_LLAMA_INSTANCES``, else one instance per core up to 2."""
    return env_int("PDR_LLAMA_INSTANCES", min(2, os.cpu_count() or 1))


def default_threads() -> int:
    """``$PDR_LLAMA_THREADS``'s default: half the logical cores, at least 1 (llama-cpp-python's).

    More threads than free cores makes llama.cpp's spinning workers crawl: on 2 busy cores one
    2-thread call ran at 0.2 tokens/s where a 1-thread call ran at 7.6, so on a 2-core machine
    every instance runs single-threaded and parallel calls use the cores side by side.
    """
    return max(1, (os.cpu_count() or 1) // 2)


class LlamaBackend:
    """A local GGUF file served by a pool of ``llama_cpp.Llama`` instances.

    Building one does no I/O: the file is located (for the embedded models: assembled and
    verified), llama-cpp-python imported and the instances loaded on first use, in the worker
    threads, so no blocking call runs on an event loop (``langgraph dev`` refuses those).

    Attributes:
        spec: the spec string recorded in the ledger.
        instances: how many ``Llama`` instances (and worker threads) at most.
        n_ctx: context window of each instance (prompt plus output), ``$PDR_N_CTX`` by default.
        threads: threads shared by the running calls (each gets at least 1),
            ``$PDR_LLAMA_THREADS`` or half the logical cores.
    """

    supports_n = False

    def __init__(
        self,
        spec: str,
        model: Path | str | Callable[[], Path],
        *,
        instances: int | None = None,
        n_ctx: int | None = None,
        threads: int | None = None,
    ) -> None:
        """Describe the pool; ``model`` is the GGUF path or a function that returns it."""
        self.spec = spec
        self._locate = model if callable(model) else _existing_file(spec, Path(model))
        self._path: Path | None = None
        self.instances = instances or default_instances()
        self.n_ctx = n_ctx or env_int("PDR_N_CTX", DEFAULT_N_CTX)
        if self.n_ctx < 256:  # llama.cpp pads smaller windows, and llama-cpp-python then breaks
            raise BackendError(f"PDR_N_CTX must be at least 256, got {self.n_ctx}")
        self.threads = threads or env_int("PDR_LLAMA_THREADS", default_threads())
        self._executor = ThreadPoolExecutor(self.instances, thread_name_prefix="pdr-llama")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._path_lock = threading.Lock()
        self._running = 0
        self._loaded: list[Llama] = []
        self._vocab: Llama | None = None

    @property
    def context_window(self) -> int:
        """Tokens one call may hold, prompt and output together (``n_ctx``)."""
        return self.n_ctx

    @property
    def model_path(self) -> Path:
        """The GGUF file, located on first use (blocking: the embedded models are assembled).

        Raises:
            BackendError: no such file, or the embedded model's parts are missing or corrupted.
        """
        with self._path_lock:
            if self._path is None:
                self._path = self._locate()
            return self._path

    async def generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        """One chat completion on a free instance; usage is llama.cpp's own prompt/completion count.

        Raises:
            BackendError: n > 1 (one sample per call here), the prompt does not fit n_ctx, or
                the model file or llama-cpp-python is missing.
        """
        if options.n != 1:
            raise BackendError(
                f"model {self.spec!r} returns one sample per call (supports_n is False); "
                f"asked for n={options.n}"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._generate, messages, options)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's own tokenizer.

        Uses a loaded instance's tokenizer (read-only in llama.cpp, so safe beside a running
        generation); before any call has loaded one, a vocabulary-only load of the file.
        """
        with self._lock:
            tokenizer: Llama | None = self._loaded[0] if self._loaded else None
            if tokenizer is None:
                if self._vocab is None:
                    self._vocab = _load_vocabulary(self.model_path)
                tokenizer = self._vocab
        return len(tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def close(self) -> None:
        """Stop the worker threads and free the instances."""
        self._executor.shutdown(wait=True)
        with self._lock:
            for llama in self._loaded:
                llama.close()
            self._loaded.clear()
            if self._vocab is not None:
                self._vocab.close()
                self._vocab = None

    def _instance(self) -> Llama:
        """This worker thread's own ``Llama``, loaded on its first call."""
        llama: Llama | None = getattr(self._local, "llama", None)
        if llama is None:
            llama_type = _import_llama_cpp()
            path = self.model_path
            with _loading:
                llama = llama_type(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    verbose=False,
                )
            self._local.llama = llama
            with self._lock:
                self._loaded.append(llama)
        return llama

    def _generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        from llama_cpp import LogitsProcessorList, llama_set_n_threads

        with self._lock:
            self._running += 1
        try:
            llama = self._instance()
            applied = [0]

            def rebalance(input_ids: Any, scores: Any) -> Any:
                # Called once per sampled token on this thread, between decodes: the cores are
                # re-shared as sibling calls start and finish (a lone call gets them all).
                share = max(1, self.threads // max(1, self._running))
                if share != applied[0]:
                    llama_set_n_threads(llama.ctx, share, share)
                    applied[0] = share
                return scores

            rebalance(None, None)  # the prompt is evaluated with the share at the start
            before = _evaluated_tokens(llama)
            try:
                response: Any = llama.create_chat_completion(
                    messages=[dict(m) for m in messages],  # type: ignore[misc]
                    max_tokens=options.max_tokens,
                    temperature=options.temperature,
                    seed=options.seed,
                    logits_processor=LogitsProcessorList([rebalance]),
                )
            except ValueError as error:
                if "context window" in str(error):
                    raise BackendError(
                        f"model {self.spec!r}: {error}. Raise PDR_N_CTX (now {self.n_ctx}) or "
                        f"shorten prompts (distill_input_tokens, kappa, max_tokens)"
                    ) from error
                raise
        finally:
            with self._lock:
                self._running -= 1
        usage = response["usage"]
        prompt_tokens = int(usage["prompt_tokens"])
        text = response["choices"][0]["message"].get("content") or ""
        return Generation(
            texts=[text],
            input_tokens=prompt_tokens,
            output_tokens=int(usage["completion_tokens"]),
            cached_tokens=_reused_prefix(before, _evaluated_tokens(llama)[:prompt_tokens]),
            truncated=response["choices"][0].get("finish_reason") == "length",
        )


def _evaluated_tokens(llama: Llama) -> list[int]:
    """The tokens whose KV entries the instance holds (its public ``input_ids[:n_tokens]``)."""
    return [int(token) for token in llama.input_ids[: llama.n_tokens]]


def _reused_prefix(before: list[int], prompt: list[int]) -> int:
    """Prompt tokens whose KV entries llama-cpp-python kept from the instance's previous call.

    Mirrors ``Llama.generate``: the common prefix of the cached tokens and the new prompt is
    reused, less one token when the whole prompt matched (it is replayed to refresh the logits).
    """
    common = 0
    for old, new in zip(before, prompt, strict=False):
        if old != new:
            break
        common += 1
    return common - 1 if common and common == len(prompt) else common


def _existing_file(spec: str, path: Path) -> Callable[[], Path]:
    """A locator that checks, when first used, that ``path`` is a file."""

    def locate() -> Path:
        found = path.expanduser()
        if not found.is_file():
            raise BackendError(f"model {spec!r}: no GGUF file at {found}")
        return found

    return locate


def _load_vocabulary(path: Path) -> Llama:
    """The model's tokenizer alone (no weights): llama.cpp's vocab-only load."""
    llama_type = _import_llama_cpp()
    with _loading:
        return llama_type(model_path=str(path), vocab_only=True, n_ctx=256, verbose=False)


def _import_llama_cpp() -> type[Llama]:
    """``llama_cpp.Llama``, imported on first use so ``import pdr`` stays fast."""
    try:
        from llama_cpp import Llama
    except ImportError as error:
        raise BackendError(
            "local GGUF models need llama-cpp-python (a default dependency of pdr; building it "
            'from source takes 4-7 minutes on 2 cores): pip install -e "." or '
            f"pip install llama-cpp-python ({error})"
        ) from error
    return Llama

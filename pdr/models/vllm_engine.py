"""An in-process ``vllm.LLM`` on this machine's GPU, with usage split exactly per request.

vLLM is an optional extra (``pip install "pdr[vllm]"``, CUDA only) and is imported on first use,
so this module loads without it. One ``LLM`` is driven by one worker thread; calls that arrive
while it is busy (the parallel drafts of a round) are submitted together as one batch, and a call
with ``n > 1`` asks for all its samples in one request (``SamplingParams(n=...)``), whose prompt
vLLM prefills once and shares through its prefix cache (on here).

Usage comes from the engine's own token ids: the prompt once per request
(``len(prompt_token_ids)``), each sample's output (``len(token_ids)``, kept per sample) and the
prompt tokens served from the prefix cache (``num_cached_tokens``).

With ``keep_tokens=True`` each sample also returns its token ids and the log-probability vLLM
reports for every sampled token (``SamplingParams(logprobs=0)``), as ``Generation.sampled``; with
``llm=`` the backend drives an engine someone else made, such as the colocated engine of TRL's
GRPOTrainer whose weights the trainer keeps in sync (``pdr train --vllm``).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from pdr.models.base import BackendError, Generation, Message, SampledTokens, SamplingOptions


@dataclass
class _Request:
    messages: list[Message]
    options: SamplingOptions
    future: Future[Generation] = field(default_factory=Future)


def engine_arguments() -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM``: prefix caching on, plus ``$PDR_VLLM_ARGS`` (JSON).

    Example: ``PDR_VLLM_ARGS='{"max_model_len": 16384, "gpu_memory_utilization": 0.85}'``.
    """
    arguments: dict[str, Any] = {"enable_prefix_caching": True}
    raw = os.environ.get("PDR_VLLM_ARGS")
    if raw:
        try:
            extra = json.loads(raw)
        except ValueError as error:
            raise BackendError(f"PDR_VLLM_ARGS must be a JSON object: {error}") from error
        if not isinstance(extra, dict):
            raise BackendError(f"PDR_VLLM_ARGS must be a JSON object, got {raw!r}")
        arguments.update(extra)
    return arguments


class VLLMEngineBackend:
    """``vllm.LLM`` loaded on first use; calls batched by one worker thread.

    Attributes:
        spec: the spec string recorded in the ledger.
        model_name: what ``vllm.LLM(model=...)`` loads (a hub id or a local folder).
        engine_kwargs: further ``vllm.LLM`` arguments (prefix caching on by default).
        batch_wait_s: how long the worker waits for more calls before submitting a batch.
    """

    supports_n = True

    def __init__(
        self,
        spec: str,
        model_name: str,
        *,
        engine_kwargs: dict[str, Any] | None = None,
        batch_wait_s: float = 0.005,
        llm: Any = None,
        keep_tokens: bool = False,
    ) -> None:
        """Describe the engine; nothing is imported or loaded until the first call.

        ``llm`` is an engine already made (then nothing is loaded); ``keep_tokens`` returns each
        sample's token ids and log-probabilities.
        """
        self.spec = spec
        self.model_name = model_name
        self.engine_kwargs = engine_arguments() if engine_kwargs is None else engine_kwargs
        self.batch_wait_s = batch_wait_s
        self.keep_tokens = keep_tokens
        self._llm: Any = llm
        self._sampling_params: Any = None
        self._load_lock = threading.Lock()
        self._worker_lock = threading.Lock()  # not the load lock: a load takes minutes
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker: threading.Thread | None = None

    async def generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        """All ``options.n`` samples from one request; prompt counted once."""
        request = _Request(messages, options)
        self._start_worker()
        self._queue.put(request)
        return await asyncio.wrap_future(request.future)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the engine's own tokenizer."""
        tokenizer = self._engine().get_tokenizer()
        return len(tokenizer.encode(text, add_special_tokens=False))

    def _engine(self) -> Any:
        """The ``vllm.LLM``, created once (the import and the load take a while)."""
        with self._load_lock:
            if self._llm is None or self._sampling_params is None:
                try:
                    import vllm
                except ImportError as error:
                    raise BackendError(
                        f"model {self.spec!r} needs vLLM on a machine with a CUDA GPU: "
                        f'pip install "pdr[vllm]"; or serve the model with `vllm serve` and use '
                        f"'vllm:MODEL@http://host:port/v1' ({error})"
                    ) from error
                self._sampling_params = vllm.SamplingParams
                if self._llm is None:
                    self._llm = vllm.LLM(model=self.model_name, **self.engine_kwargs)
            return self._llm

    def _start_worker(self) -> None:
        with self._worker_lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="pdr-vllm", daemon=True)
                self._worker.start()

    def _serve(self) -> None:
        """Take every waiting call, run them as one ``LLM.chat`` batch, hand out the results."""
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.batch_wait_s
            while (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        try:
            llm = self._engine()
            params = [self._params(request.options) for request in batch]
            outputs = llm.chat(
                [[dict(m) for m in request.messages] for request in batch],
                params,
                use_tqdm=False,
            )
            if len(outputs) != len(batch):
                raise BackendError(
                    f"model {self.spec!r}: vLLM returned {len(outputs)} outputs "
                    f"for {len(batch)} requests"
                )
        except Exception as error:
            failure = error if isinstance(error, BackendError) else _wrap(self.spec, error)
            for request in batch:
                request.future.set_exception(failure)
            return
        for request, output in zip(batch, outputs, strict=True):
            try:
                request.future.set_result(generation_from_output(output, self.keep_tokens))
            except BackendError as error:
                request.future.set_exception(error)

    def _params(self, options: SamplingOptions) -> Any:
        extra = {"logprobs": 0} if self.keep_tokens else {}  # 0: the sampled token's only
        return self._sampling_params(
            n=options.n,
            temperature=options.temperature,
            max_tokens=options.max_tokens,
            seed=options.seed,
            **extra,
        )


def generation_from_output(output: Any, keep_tokens: bool = False) -> Generation:
    """Exact usage of one ``RequestOutput``: prompt once, every sample's output, cache hits.

    With ``keep_tokens``, every sample's token ids and sampled tokens' log-probabilities too.
    """
    samples = sorted(output.outputs, key=lambda completion: completion.index)
    per_sample = [len(completion.token_ids) for completion in samples]
    sampled = None
    if keep_tokens:
        prompt = [int(token) for token in output.prompt_token_ids or []]
        sampled = [
            SampledTokens(prompt, [int(t) for t in c.token_ids], sampled_logprobs(c))
            for c in samples
        ]
    return Generation(
        texts=[completion.text for completion in samples],
        input_tokens=len(output.prompt_token_ids or []),
        output_tokens=sum(per_sample),
        cached_tokens=int(getattr(output, "num_cached_tokens", 0) or 0),
        sample_output_tokens=per_sample,
        truncated=any(getattr(c, "finish_reason", None) == "length" for c in samples),
        sampled=sampled,
    )


def sampled_logprobs(completion: Any) -> list[float]:
    """The log-probability vLLM reported for each token a sample drew.

    Raises:
        BackendError: the engine returned no log-probabilities (``logprobs`` was not asked for).
    """
    if completion.logprobs is None:
        raise BackendError("vLLM returned no log-probabilities; set SamplingParams(logprobs=0)")
    return [
        float(position[token].logprob)
        for position, token in zip(completion.logprobs, completion.token_ids, strict=True)
    ]


def _wrap(spec: str, error: Exception) -> BackendError:
    wrapped = BackendError(f"model {spec!r}: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped

"""A Hugging Face transformers causal language model in this process, with exact token counts.

Spec: ``transformers:SOURCE``, where SOURCE is a folder written by ``save_pretrained`` (``pdr
train`` writes one), a ``.gguf`` file (transformers dequantises it to float32; needs the ``gguf``
package), or ``embedded`` / ``embedded:fast`` for the embedded models' GGUF files. torch,
transformers and gguf come with the ``train`` extra (``pip install "pdr[train]"``) and are imported
on first use, so this module loads without them.

Calls that arrive while the model is busy (the drafts of a round, the rollouts of a training step)
are run together as one left-padded batch by one worker thread, grouped by temperature. Sampling is
plain ``softmax(logits / temperature)``: no top-k, top-p or repetition penalty, so the
log-probability a training policy reports for each sampled token (``keep_tokens=True``:
``Generation.sampled``) is that of the distribution the token was drawn from. A batch is seeded with
its first call's seed (torch's global generator), so samples repeat when the same calls are batched
the same way. Usage is exact: the prompt's token ids after the chat template, and the sampled
tokens up to and including the end-of-turn token.
"""

from __future__ import annotations

import asyncio
import importlib.util
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdr.models.base import BackendError, Generation, Message, SampledTokens, SamplingOptions

INSTALL_HINT = 'pip install "pdr[train]" (torch, transformers, gguf)'


@dataclass
class _Request:
    messages: list[Message]
    options: SamplingOptions
    future: Future[Generation] = field(default_factory=Future)


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401  (checked here so the error names both)
    except ImportError as error:
        raise BackendError(
            f"transformers models need torch and transformers: {INSTALL_HINT} ({error})"
        ) from error
    return torch


def resolve_source(source: str) -> Path:
    """The file or folder a ``transformers:`` spec names (the embedded GGUF files by name).

    Raises:
        BackendError: nothing there, or an unknown embedded model.
    """
    text = source.strip()
    if text == "embedded" or text.startswith("embedded:"):
        from pdr.models.embedded import embedded_model, ensure_model_file

        return ensure_model_file(embedded_model(text.partition(":")[2] or "default").name)
    path = Path(text).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix == ".gguf"):
        return path
    raise BackendError(
        f"model 'transformers:{source}': no model folder or .gguf file at {path}; give a folder "
        f"written by save_pretrained (pdr train writes one), a .gguf file, or 'embedded:fast'"
    )


def load_tokenizer(path: Path) -> Any:
    """The tokenizer of a model folder or GGUF file, padding on the left (batched generation)."""
    _import_torch()
    from transformers import AutoTokenizer

    if path.suffix == ".gguf":
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(path: Path) -> Any:
    """The causal language model of a folder or GGUF file, in float32 (GGUF weights dequantised)."""
    torch = _import_torch()
    from transformers import AutoModelForCausalLM

    if path.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model


class TransformersBackend:
    """A transformers model behind the ChatBackend protocol; see the module docstring.

    Attributes:
        spec: the spec string recorded in the ledger.
        keep_tokens: return every sample's token ids and log-probabilities (``Generation.sampled``).
        batch_wait_s: how long the worker waits for more calls before starting a batch.
        max_batch: at most this many calls in one batch.
    """

    supports_n = False

    def __init__(
        self,
        spec: str,
        source: str | None = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        keep_tokens: bool = False,
        batch_wait_s: float = 0.02,
        max_batch: int = 16,
    ) -> None:
        """Describe the model: a ``source`` to load on first use, or a loaded model and tokenizer.

        Building one loads nothing; the first call loads the model (in the worker thread) and the
        first token count loads the tokenizer. A missing torch or transformers, or a source path
        with nothing there, is refused at once (BackendError naming the fix).
        """
        if source is None and (model is None or tokenizer is None):
            raise BackendError(f"model {spec!r}: give a source, or a model and its tokenizer")
        if not all(importlib.util.find_spec(name) for name in ("torch", "transformers")):
            raise BackendError(f"model {spec!r} needs torch and transformers: {INSTALL_HINT}")
        if source is not None and not source.strip().startswith("embedded"):
            resolve_source(source)
        self.spec = spec
        self.source = source
        self.keep_tokens = keep_tokens
        self.batch_wait_s = batch_wait_s
        self.max_batch = max_batch
        self._model = model
        self._tokenizer = tokenizer
        self._path: Path | None = None
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker: threading.Thread | None = None

    async def generate(self, messages: list[Message], options: SamplingOptions) -> Generation:
        """One sample, batched with the calls waiting beside it."""
        if options.n != 1:
            raise BackendError(
                f"model {self.spec!r} returns one sample per call (supports_n is False); "
                f"asked for n={options.n}"
            )
        request = _Request(messages, options)
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="pdr-hf", daemon=True)
                self._worker.start()
        self._queue.put(request)
        return await asyncio.wrap_future(request.future)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's own tokenizer."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded on first use."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self._source_path())
            return self._tokenizer

    @property
    def model(self) -> Any:
        """The model, loaded on first use."""
        with self._lock:
            if self._model is None:
                self._model = load_model(self._source_path())
            return self._model

    def _source_path(self) -> Path:
        if self._path is None:
            assert self.source is not None
            self._path = resolve_source(self.source)
        return self._path

    def _serve(self) -> None:
        """Take every waiting call, run them in batches by temperature, hand out the results."""
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            groups: dict[float, list[_Request]] = {}
            for request in batch:
                groups.setdefault(request.options.temperature, []).append(request)
            for group in groups.values():
                self._run(group)

    def _run(self, batch: list[_Request]) -> None:
        try:
            results = self._sample(batch)
        except Exception as error:
            failure = error if isinstance(error, BackendError) else _wrap(self.spec, error)
            for request in batch:
                request.future.set_exception(failure)
            return
        for request, result in zip(batch, results, strict=True):
            request.future.set_result(result)

    def _sample(self, batch: list[_Request]) -> list[Generation]:
        torch = _import_torch()
        from transformers import GenerationConfig

        settings: Any = GenerationConfig  # untyped in transformers

        tokenizer, model = self.tokenizer, self.model
        prompts = [prompt_ids(tokenizer, request.messages) for request in batch]
        width = max(len(ids) for ids in prompts)
        pad = int(tokenizer.pad_token_id)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts])
        temperature = batch[0].options.temperature
        stops = stop_ids(tokenizer, model)
        config = settings(
            max_new_tokens=max(request.options.max_tokens for request in batch),
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else 1.0,
            top_k=0,
            top_p=1.0,
            min_p=None,
            repetition_penalty=1.0,
            pad_token_id=pad,
            eos_token_id=sorted(stops),
            return_dict_in_generate=True,
            output_logits=self.keep_tokens,
        )
        seed = batch[0].options.seed
        if seed is not None:
            torch.manual_seed(seed)
        device = next(model.parameters()).device
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=config,
            )
        sampled = out.sequences[:, width:].tolist()
        completions = [
            cut(row, stops, request.options.max_tokens)
            for row, request in zip(sampled, batch, strict=True)
        ]
        logprobs = None
        if self.keep_tokens:
            logprobs = token_logprobs(torch, out.logits, completions, temperature)
        results = []
        for position, (ids, completion) in enumerate(zip(prompts, completions, strict=True)):
            kept = None
            if logprobs is not None:
                kept = [SampledTokens(ids, completion, logprobs[position])]
            results.append(
                Generation(
                    texts=[tokenizer.decode(completion, skip_special_tokens=True)],
                    input_tokens=len(ids),
                    output_tokens=len(completion),
                    sample_output_tokens=[len(completion)],
                    sampled=kept,
                )
            )
        return results


def prompt_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    """The token ids of the chat template applied to ``messages``, ready for the reply."""
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_ids(tokenizer: Any, model: Any) -> set[int]:
    """Tokens that end a reply: the tokenizer's end-of-turn token and the model's own."""
    stops = {int(tokenizer.eos_token_id)}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        stops.add(configured)
    elif configured:
        stops.update(int(token) for token in configured)
    return stops


def cut(row: list[int], stops: set[int], cap: int) -> list[int]:
    """A sampled row up to its first stop token (kept) and at most ``cap`` tokens."""
    kept: list[int] = []
    for token in row[:cap]:
        kept.append(int(token))
        if token in stops:
            break
    return kept


def token_logprobs(
    torch: Any, logits: Any, completions: list[list[int]], temperature: float
) -> list[list[float]]:
    """Each kept token's log softmax(logits / temperature) (greedy calls: temperature 1)."""
    divisor = temperature if temperature > 0 else 1.0
    found: list[list[float]] = [[] for _ in completions]
    for step, scores in enumerate(logits):
        rows = [i for i, ids in enumerate(completions) if step < len(ids)]
        if not rows:
            break
        chosen = torch.tensor([completions[i][step] for i in rows])
        logp = torch.log_softmax(scores[rows].float() / divisor, dim=-1)
        values = logp.gather(1, chosen.to(logp.device).unsqueeze(1)).squeeze(1).tolist()
        for i, value in zip(rows, values, strict=True):
            found[i].append(float(value))
    return found


def _wrap(spec: str, error: Exception) -> BackendError:
    wrapped = BackendError(f"model {spec!r}: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped

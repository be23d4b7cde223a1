"""A Hugging Face transformers causal language model in this process, with exact token counts.

Spec: ``transformers:SOURCE``, where SOURCE is a folder written by ``save_pretrained`` (``pdr
train`` writes one), a ``.gguf`` file (transformers dequantises it to float32; needs the ``gguf``
package), or ``embedded`` / ``embedded:fast`` for the embedded models' GGUF files. torch,
transformers and gguf come with the ``train`` extra (``pip install "pdr[train]"``) and are imported
on first use, so this module loads without them.

Calls that arrive while the model is busy (the drafts of a round, the rollouts of a training step)
are run together as one left-padded batch with a KV cache by one worker thread, grouped by
temperature. Sampling is plain ``softmax(logits / temperature)``: no top-k, top-p or repetition
penalty, so the log-probability a training policy reports for each sampled token
(``keep_tokens=True``: ``Generation.sampled``) is that of the distribution the token was drawn
from. Each call samples with its own generator seeded by its own seed, so its sample does not
depend on the calls batched beside it (up to float rounding of the padded batch). Usage is exact:
the prompt's token ids after the chat template, and the sampled tokens up to and including the
end-of-turn token.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
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
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None and all(p.is_floating_point() for p in model.parameters()):
            # Dequantised to float32 on load: an ordinary model now, which a trainer may update
            # and save_pretrained writes without a GGUF quantization config.
            quantizer.remove_quantization_config(model)
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
        tokenizer, model = self.tokenizer, self.model
        prompts = [prompt_ids(tokenizer, request.messages) for request in batch]
        stops = stop_ids(tokenizer, model)
        completions, logprobs = decode(
            torch,
            model,
            prompts,
            caps=[request.options.max_tokens for request in batch],
            seeds=[request.options.seed for request in batch],
            temperature=batch[0].options.temperature,
            pad=int(tokenizer.pad_token_id),
            stops=stops,
        )
        results = []
        for ids, completion, kept in zip(prompts, completions, logprobs, strict=True):
            results.append(
                Generation(
                    texts=[tokenizer.decode(completion, skip_special_tokens=True)],
                    input_tokens=len(ids),
                    output_tokens=len(completion),
                    sample_output_tokens=[len(completion)],
                    truncated=not completion or completion[-1] not in stops,
                    sampled=[SampledTokens(ids, completion, kept)] if self.keep_tokens else None,
                )
            )
        return results


def decode(
    torch: Any,
    model: Any,
    prompts: list[list[int]],
    *,
    caps: list[int],
    seeds: list[int | None],
    temperature: float,
    pad: int,
    stops: set[int],
) -> tuple[list[list[int]], list[list[float]]]:
    """Sample a reply to each prompt, as one left-padded batch with a KV cache.

    Each row draws from ``softmax(logits / temperature)`` with its own generator seeded by its
    own seed (temperature 0: the most likely token), so a call's sample does not depend on the
    calls batched beside it. Returns each row's tokens (up to and including its first stop token,
    at most its cap) and each token's log-probability under the distribution it was drawn from
    (temperature 0: the raw softmax). transformers' ``generate`` draws every row from one global
    generator and keeps every step's full logits to report them, hence this loop.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompts)
    ids = torch.tensor([[pad] * (width - len(row)) + row for row in prompts], device=device)
    mask = torch.tensor(
        [[0] * (width - len(row)) + [1] * len(row) for row in prompts], device=device
    )
    generators = []
    for seed in seeds:
        generator = torch.Generator(device=device)
        generator.manual_seed(0 if seed is None else seed % (1 << 63))
        generators.append(generator)
    cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else None
    cache = DynamicCache()
    tokens: list[list[int]] = [[] for _ in prompts]
    found: list[list[float]] = [[] for _ in prompts]
    open_rows = set(range(len(prompts)))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        for _ in range(max(caps)):
            kwargs = {cache_argument or "past_key_values": cache}
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **kwargs,
            ).logits[:, -1]
            logp = torch.log_softmax(logits.float() / (temperature or 1.0), dim=-1)
            chosen = []
            for row in range(len(prompts)):
                if temperature > 0:
                    pick = torch.multinomial(logp[row].exp(), 1, generator=generators[row])
                    token = int(pick.item())
                else:
                    token = int(logp[row].argmax().item())
                chosen.append(token)
                if row in open_rows:
                    tokens[row].append(token)
                    found[row].append(float(logp[row, token].item()))
                    if token in stops or len(tokens[row]) >= caps[row]:
                        open_rows.discard(row)
            if not open_rows:
                break
            ids = torch.tensor(chosen, device=device).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
            positions = positions[:, -1:] + 1
    return tokens, found


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


def _wrap(spec: str, error: Exception) -> BackendError:
    wrapped = BackendError(f"model {spec!r}: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped

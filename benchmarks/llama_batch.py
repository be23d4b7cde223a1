"""llama.cpp's own multi-sequence batched decoding of M drafts, by llama-cpp-python's public API.

One llama.cpp context holds M sequences (``n_seq_max``, one unified KV cache). Each distinct
prompt is evaluated once and copied to the sequences that share it (``llama_memory_seq_cp``);
then every decode step sends one token per unfinished sequence in a single ``llama_batch``, and
each sequence samples its next token from its own row of logits with its own sampler chain (the
same chain ``Llama.create_chat_completion`` builds: top-k 40, typical 1.0, top-p 0.95, min-p 0.05,
temperature, then a seeded draw; greedy at temperature 0). Prompts are formatted by the model's
own chat template (``Jinja2ChatFormatter``, as ``Llama`` does) and tokenized the same way.

Token counts are exact per sequence: the prompt's tokens, and every sampled token up to an
end-of-generation token (not counted, as llama-cpp-python does not count it) or ``max_tokens``.
``kv_tokens`` reads the same figure back from llama.cpp's memory (the last position a sequence
holds), which the tests compare with the counts. Only public names of ``llama_cpp`` are used
(no underscore attribute or module: ``tests/test_benchmarks.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter


@dataclass(frozen=True)
class Request:
    """One draft to write."""

    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    seed: int


@dataclass(frozen=True)
class Drafted:
    """What one sequence produced, with its exact counts."""

    text: str
    input_tokens: int
    output_tokens: int
    shared_prompt: bool  # the prompt's KV entries were copied from another sequence


class BatchedDecoder:
    """Decode up to ``sequences`` requests together in one context of a loaded ``Llama``."""

    def __init__(self, llama: llama_cpp.Llama, sequences: int, n_ctx: int, threads: int) -> None:
        self.llama = llama  # the model must outlive the context
        self.sequences = sequences
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = sequences
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = True
        self.ctx = llama_cpp.llama_init_from_model(llama.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create the batched context")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self.batch = llama_cpp.llama_batch_init(512, 0, sequences)
        eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "ignore")
        bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "ignore")
        self.formatter = Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"], eos_token=eos, bos_token=bos
        )

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt as ``create_chat_completion`` tokenizes it."""
        formatted = self.formatter(messages=messages)  # type: ignore[arg-type]
        return self.llama.tokenize(
            formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
        )

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) items."""
        batch = self.batch
        batch.n_tokens = len(items)
        for i, (token, position, sequence, logits) in enumerate(items):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = sequence
            batch.logits[i] = logits
        if llama_cpp.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed (context full?)")

    def _sampler(self, request: Request) -> Any:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if request.temperature == 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
            return chain
        for sampler in (
            llama_cpp.llama_sampler_init_top_k(40),
            llama_cpp.llama_sampler_init_typical(1.0, 1),
            llama_cpp.llama_sampler_init_top_p(0.95, 1),
            llama_cpp.llama_sampler_init_min_p(0.05, 1),
            llama_cpp.llama_sampler_init_temp(request.temperature),
            llama_cpp.llama_sampler_init_dist(request.seed),
        ):
            llama_cpp.llama_sampler_chain_add(chain, sampler)
        return chain

    def generate(self, requests: list[Request]) -> list[Drafted]:
        """Write every request's draft; at most ``sequences`` requests at once."""
        if len(requests) > self.sequences:
            raise ValueError(f"{len(requests)} requests, but the context holds {self.sequences}")
        llama_cpp.llama_memory_clear(self.memory, True)
        prompts = [self.prompt_tokens(r.messages) for r in requests]
        groups: dict[tuple[int, ...], list[int]] = {}
        for sequence, prompt in enumerate(prompts):
            groups.setdefault(tuple(prompt), []).append(sequence)
        samplers = [self._sampler(r) for r in requests]
        produced: list[list[int]] = [[] for _ in requests]
        active: set[int] = set()

        def take(sequence: int, row: int) -> None:
            """Sample the sequence's next token from ``row`` of the last decode's logits."""
            token = llama_cpp.llama_sampler_sample(samplers[sequence], self.ctx, row)
            finished = len(produced[sequence]) >= requests[sequence].max_tokens
            if finished or llama_cpp.llama_vocab_is_eog(self.vocab, token):
                active.discard(sequence)
            else:
                produced[sequence].append(token)
                active.add(sequence)

        try:
            for key, members in groups.items():
                first, length = members[0], len(key)
                for start in range(0, length, 512):
                    chunk = key[start : start + 512]
                    self._decode(
                        [
                            (token, start + i, first, start + i == length - 1)
                            for i, token in enumerate(chunk)
                        ]
                    )
                for sequence in members[1:]:  # the same prompt: share its KV entries
                    llama_cpp.llama_memory_seq_cp(self.memory, first, sequence, -1, -1)
                for sequence in members:
                    take(sequence, (length - 1) % 512)
            while active:
                step = sorted(active)
                self._decode(
                    [
                        (produced[s][-1], len(prompts[s]) + len(produced[s]) - 1, s, True)
                        for s in step
                    ]
                )
                for row, sequence in enumerate(step):
                    take(sequence, row)
        finally:
            for chain in samplers:
                llama_cpp.llama_sampler_free(chain)
        return [
            Drafted(
                text=self.llama.detokenize(tokens).decode("utf-8", "ignore"),
                input_tokens=len(prompt),
                output_tokens=len(tokens),
                shared_prompt=sequence != groups[tuple(prompt)][0],
            )
            for sequence, (prompt, tokens) in enumerate(zip(prompts, produced, strict=True))
        ]

    def kv_tokens(self, sequence: int) -> int:
        """Tokens llama.cpp holds for ``sequence`` (its last position + 1)."""
        return int(llama_cpp.llama_memory_seq_pos_max(self.memory, sequence)) + 1

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)

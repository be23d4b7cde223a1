"""A tiny Qwen2-architecture policy for the training tests, built here from a config (no download).

The tokenizer is the embedded 0.5B model's own (read from its GGUF file, which the ``fast`` extra
installs); the model is a 2-layer, 32-wide Qwen2 with that vocabulary. A random model of that size
never writes a graded answer, so ``pretrain`` first teaches it the answer format on the prompts the
graphs build: after "Answer: " it writes 3 or 7 (about half each) and stops. The toy task's gold
answer is 7, so its mean reward starts near 0.5 and has room to rise.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pdr.graphs.context import LongCoTContext, PDRContext
from pdr.nodes.draft import draft_messages
from pdr.nodes.long_cot import long_cot_messages
from pdr.nodes.refine import refine_messages

NO_TRAIN_EXTRA = "the train extra (torch, transformers, trl) is not installed"
PROBLEM = "What is 3 + 4?"
GOLD = "7"
# Short system prompts keep the rollouts' prompts short: TRL scores every position on a CPU.
SHORT_PROMPTS = {
    "long_cot_system_prompt": "Answer.",
    "draft_system_prompt": "Answer.",
    "refine_system_prompt": "Answer again.",
}


def save_tokenizer(folder: Path) -> Path:
    """The embedded 0.5B model's tokenizer, converted from its GGUF file once and saved."""
    from pdr.models.transformers_backend import load_tokenizer, resolve_source

    tokenizer = load_tokenizer(resolve_source("embedded:fast"))
    tokenizer.save_pretrained(folder)
    return folder


def tiny_model(tokenizer: Any, seed: int = 0) -> Any:
    """A random 2-layer Qwen2 with the tokenizer's vocabulary (tied embeddings)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(config)


def toy_prompts(tokenizer: Any) -> list[list[int]]:
    """The prompts the graphs build for the toy problem: long CoT, a draft, a refine step."""
    from pdr.models.transformers_backend import prompt_ids

    long_cot = LongCoTContext(model="toy", long_cot_system_prompt="Answer.")
    pdr = PDRContext(
        model="toy", draft_system_prompt="Answer.", refine_system_prompt="Answer again."
    )
    workspaces = ["", "Candidate solution 1:\nAnswer: 3", "Candidate solution 1:\nAnswer: 7"]
    prompts = [prompt_ids(tokenizer, long_cot_messages(PROBLEM, long_cot))]
    prompts.append(prompt_ids(tokenizer, draft_messages(PROBLEM, "", pdr)))
    prompts += [prompt_ids(tokenizer, refine_messages(PROBLEM, w, pdr)) for w in workspaces]
    return prompts


def pretrain(model: Any, tokenizer: Any, iterations: int = 60, seed: int = 0) -> Any:
    """Teach the answer format: "Answer: 3" or "Answer: 7", then the end-of-turn token."""
    import torch

    rng = random.Random(seed)
    prompts = toy_prompts(tokenizer)
    answers = [
        [*tokenizer.encode(f"Answer: {digit}", add_special_tokens=False), tokenizer.eos_token_id]
        for digit in (3, 7)
    ]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pad = tokenizer.pad_token_id
    for _ in range(iterations):
        batch = [(rng.choice(prompts), rng.choice(answers)) for _ in range(8)]
        width = max(len(p) + len(a) for p, a in batch)
        keep = max(len(a) for _, a in batch) + 1
        ids = torch.full((len(batch), width), pad)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100)
        for row, (prompt, answer) in enumerate(batch):
            sequence = prompt + answer
            ids[row, width - len(sequence) :] = torch.tensor(sequence)
            mask[row, width - len(sequence) :] = 1
            labels[row, width - len(answer) :] = torch.tensor(answer)
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), labels[:, 1 - keep :].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def write_dataset(path: Path) -> Path:
    """The toy task: one problem whose gold answer is 7."""
    path.write_text(json.dumps({"id": "toy", "problem": PROBLEM, "answer": GOLD}) + "\n")
    return path

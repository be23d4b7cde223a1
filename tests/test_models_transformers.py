"""The transformers backend (``transformers:SOURCE``): batched sampling, exact usage, log-probs.

The fast tests use the tiny Qwen2 policy of tests/toy_policy.py (the embedded model's tokenizer, a
config, no download); the slow one loads the embedded 0.5B model's GGUF file with transformers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.toy_policy import NO_TRAIN_EXTRA

torch = pytest.importorskip("torch", reason=NO_TRAIN_EXTRA)

from pdr.events import TOKENS_SAMPLED  # noqa: E402
from pdr.graphs.catalog import make_context  # noqa: E402
from pdr.models import (  # noqa: E402
    BackendError,
    Message,
    SamplingOptions,
    register_model,
    unregister_model,
)
from pdr.models.specs import backend_from_spec  # noqa: E402
from pdr.models.transformers_backend import (  # noqa: E402
    TransformersBackend,
    load_model,
    load_tokenizer,
)
from pdr.runner import run_problem  # noqa: E402


def messages(question: str) -> list[Message]:
    return [{"role": "system", "content": "Answer."}, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def policy(toy_policy_dir: Path) -> TransformersBackend:
    return TransformersBackend(
        "toy",
        model=load_model(toy_policy_dir),
        tokenizer=load_tokenizer(toy_policy_dir),
        keep_tokens=True,
        batch_wait_s=0.2,
    )


def sample(backend: TransformersBackend, questions: list[str], temperature: float = 0.7) -> Any:
    async def all_at_once() -> Any:
        return await asyncio.gather(
            *[
                backend.generate(
                    messages(question),
                    SamplingOptions(max_tokens=8, temperature=temperature, seed=100 + i),
                )
                for i, question in enumerate(questions)
            ]
        )

    return asyncio.run(all_at_once())


def long_cot_run(
    policy: TransformersBackend, folder: Path, *, max_tokens: int, on_event: Any = None
) -> Any:
    """One long_cot run of "What is 3 + 4?" by the policy, through the runner."""
    register_model("toy-policy", policy)
    try:
        return asyncio.run(
            run_problem(
                graph="long_cot",
                problem="What is 3 + 4?",
                context=make_context(
                    "long_cot",
                    model="toy-policy",
                    max_tokens=max_tokens,
                    long_cot_system_prompt="Answer.",
                ),
                checkpoints=folder / "cp.sqlite",
                on_event=on_event,
            )
        )
    finally:
        unregister_model("toy-policy")


def test_a_spec_naming_nothing_is_refused_before_any_call() -> None:
    with pytest.raises(BackendError, match=r"no model folder or \.gguf file at"):
        backend_from_spec("transformers:/nonexistent/model")
    assert isinstance(backend_from_spec("transformers:embedded:fast"), TransformersBackend)


def test_usage_is_the_token_ids_and_log_probs_are_the_sampling_distributions(
    policy: TransformersBackend,
) -> None:
    questions = ["What is 3 + 4?", "What is 3 + 4? Think.", "Add 3 and 4, please, quickly."]
    generations = sample(policy, questions)
    tokenizer, model = policy.tokenizer, policy.model
    for question, generation in zip(questions, generations, strict=True):
        [kept] = generation.sampled
        expected_prompt = tokenizer.apply_chat_template(
            messages(question), add_generation_prompt=True, tokenize=False
        )
        assert tokenizer.decode(kept.prompt_ids) == expected_prompt
        assert generation.input_tokens == len(kept.prompt_ids)
        assert generation.output_tokens == len(kept.completion_ids) <= 8
        assert generation.texts == [tokenizer.decode(kept.completion_ids, skip_special_tokens=True)]
        # the same tokens scored by one full forward pass at the sampling temperature
        ids = torch.tensor([kept.prompt_ids + kept.completion_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(kept.prompt_ids) - 1 : -1] / 0.7
        forward = torch.log_softmax(logits, dim=-1)
        chosen = forward.gather(1, torch.tensor(kept.completion_ids).unsqueeze(1)).squeeze(1)
        assert chosen.tolist() == pytest.approx(kept.logprobs, abs=1e-4)


def test_a_calls_sample_does_not_depend_on_the_calls_batched_beside_it(
    policy: TransformersBackend,
) -> None:
    alone = sample(policy, ["What is 3 + 4?"])[0]
    batched = sample(policy, ["What is 3 + 4?", "What is 3 + 4? Think.", "Add 3 and 4."])[0]
    assert batched.sampled[0].completion_ids == alone.sampled[0].completion_ids
    greedy = [sample(policy, ["What is 3 + 4?"], temperature=0.0)[0] for _ in range(2)]
    assert greedy[0].texts == greedy[1].texts


def test_call_model_emits_the_tokens_of_a_backend_that_keeps_them(
    policy: TransformersBackend, tmp_path: Path
) -> None:
    events: list[dict[str, Any]] = []
    outcome = long_cot_run(policy, tmp_path, max_tokens=8, on_event=events.append)
    sampled = [event for event in events if event["event"] == TOKENS_SAMPLED]
    assert [(event["role"], event["round"], event["index"]) for event in sampled] == [
        ("long_cot", 1, 0)
    ]
    [record] = outcome.calls
    [kept] = sampled[0]["samples"]
    assert record["input_tokens"] == len(kept.prompt_ids)
    assert record["output_tokens"] == len(kept.completion_ids)


def test_a_reply_stopped_by_its_cap_is_truncated_and_one_that_ends_its_turn_is_not(
    policy: TransformersBackend, tmp_path: Path
) -> None:
    """The toy policy writes "Answer: 7" or "Answer: 3" and its end-of-turn token (5 tokens)."""

    async def one(max_tokens: int) -> Any:
        options = SamplingOptions(max_tokens=max_tokens, temperature=0.7, seed=5)
        return await policy.generate(messages("What is 3 + 4?"), options)

    capped = asyncio.run(one(2))
    assert capped.output_tokens == 2 and capped.truncated
    finished = asyncio.run(one(16))
    [kept] = finished.sampled
    assert kept.completion_ids[-1] == policy.tokenizer.eos_token_id
    assert finished.output_tokens == 5 and not finished.truncated
    assert long_cot_run(policy, tmp_path, max_tokens=2).status == "truncated"


@pytest.mark.slow
def test_the_embedded_gguf_model_loads_and_answers(tmp_path: Path) -> None:
    """transformers dequantises the embedded 0.5B GGUF file; the result is an ordinary model."""
    backend = backend_from_spec("transformers:embedded:fast")
    assert isinstance(backend, TransformersBackend)
    [generation] = sample(backend, ["What is 17 * 23?"], temperature=0.0)
    assert generation.output_tokens == 8 and generation.truncated
    assert generation.input_tokens == len(
        backend.tokenizer(
            backend.tokenizer.apply_chat_template(
                messages("What is 17 * 23?"), add_generation_prompt=True, tokenize=False
            ),
            add_special_tokens=False,
        )["input_ids"]
    )
    assert getattr(backend.model, "hf_quantizer", None) is None
    backend.model.save_pretrained(tmp_path)
    assert "quantization_config" not in (tmp_path / "config.json").read_text()

"""The workspace never exceeds kappa tokens of the refine model's tokenizer, whatever the drafts."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import register_model, truncate_to_tokens, unregister_model
from pdr.nodes.distill import random_k, summary, topk, topk_per_sample
from tests.scripted import Call, Script, ScriptedChatModel, words

OPERATORS = {
    "summary": summary,
    "topk": topk("vote"),
    "topk_verify": topk("verify"),
    "topk_per_sample": topk_per_sample("vote"),
    "random_k": random_k,
}


async def workspaces_of(operator: str, schedule: list[int], kappa: int, k: int) -> list[str]:
    found: list[str] = []
    async for update in (
        build_pdr(distill=OPERATORS[operator])
        .compile()
        .astream(
            {"problem": "What is 17 * 23?"},
            context=PDRContext(model="scripted", schedule=schedule, kappa=kappa, k=k),
            stream_mode="updates",
        )
    ):
        distilled: dict[str, Any] | None = update.get("distill")
        if distilled and "workspaces" in distilled:  # not a visit that waits for verification
            found.extend(distilled["workspaces"])
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    operator=st.sampled_from(sorted(OPERATORS)),
    lengths=st.lists(st.integers(min_value=0, max_value=400), min_size=2, max_size=6),
    kappa=st.integers(min_value=1, max_value=120),
    k=st.integers(min_value=1, max_value=4),
)
def test_every_workspace_fits_in_kappa(
    operator: str, lengths: list[int], kappa: int, k: int
) -> None:
    def reply_tokens(call: Call) -> int:
        # drafts of random length; the summary tries to overrun its cap by 3x
        return 3 * kappa if call.role == "distill" else lengths[call.index % len(lengths)]

    model = ScriptedChatModel(script=Script(reply_tokens=reply_tokens))
    register_model("scripted", model)
    try:
        schedule = [len(lengths), 2, 1]
        workspaces = asyncio.run(workspaces_of(operator, schedule, kappa, k))
    finally:
        unregister_model("scripted")
    # round 1 feeds 2 drafts: one shared workspace, or one each; round 2 feeds the refine step
    shared = operator in {"summary", "topk", "topk_verify"}
    assert len(workspaces) == (1 if shared else 2) + 1
    assert all(words(text) <= kappa for text in workspaces), [words(t) for t in workspaces]


@given(text=st.text(alphabet=st.sampled_from("ab c\n"), max_size=300), limit=st.integers(0, 60))
def test_truncation_keeps_the_longest_tail_that_fits(text: str, limit: int) -> None:
    kept = truncate_to_tokens(text, limit, words)
    assert words(kept) <= limit
    assert text.endswith(kept)
    if words(text) <= limit:
        assert kept == text

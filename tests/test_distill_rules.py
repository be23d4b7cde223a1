"""What the distill step lets through: only workspaces and calls, bounded by kappa with their label
and answer kept, never empty; and the summary call's room for thinking.

The model is the scripted chat model of tests/scripted.py (a double: the graphs must run offline
here); the thinking-model checks use pdr's OpenAI and Gemini backends, built offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

from pdr import calls
from pdr.graphs.context import ContextError, PDRContext, SRContext
from pdr.graphs.pdr import build_pdr
from pdr.graphs.sr import build_sr
from pdr.graphs.state import State
from pdr.models import register_model, unregister_model
from pdr.models.providers import GeminiBackend, OpenAIBackend
from pdr.nodes.distill import round_drafts, summary_cap
from pdr.prompts import draft as draft_prompts
from pdr.prompts.distill import ELISION
from pdr.runner import run_problem
from pdr.store.ledger import Ledger
from tests.scripted import Call, Script, ScriptedChatModel, words

PROBLEM = {"problem": "What is 17 * 23?"}


async def rewrite_problem(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
    """An operator that smuggles the drafts into the problem, past kappa."""
    drafts = "\n".join(d["text"] for d in round_drafts(state))
    return {"workspaces": ["ok"], "problem": f"{state['problem']}\n{drafts}"}


async def test_an_operator_may_return_only_workspaces_and_calls(
    scripted: ScriptedChatModel,
) -> None:
    with pytest.raises(ValueError, match="'rewrite_problem' returned the key 'problem'") as error:
        await (
            build_pdr(distill=rewrite_problem)
            .compile()
            .ainvoke(PROBLEM, context=PDRContext(model="scripted", schedule=[3, 3, 3, 1]))
        )
    assert "only 'workspaces' and 'calls'" in str(error.value)
    # It stopped at the first distill: the round-2 drafts never read a grown problem.
    assert {(c.role, c.round) for c in scripted.calls} == {("draft", 1)}


async def test_an_empty_workspace_fails_the_run_naming_the_operator(
    scripted: ScriptedChatModel,
) -> None:
    async def nothing(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
        return {"workspaces": ["   "]}

    with pytest.raises(ValueError, match=r"'nothing' wrote an empty workspace \(number 0\)"):
        await (
            build_pdr(distill=nothing)
            .compile()
            .ainvoke(PROBLEM, context=PDRContext(model="scripted", schedule=[2, 1]))
        )


@pytest.mark.parametrize(("kappa", "length"), [(40, 60), (30, 30)])
async def test_sr_keeps_the_label_and_the_answer_when_it_cuts(
    kappa: int, length: int, scripted: ScriptedChatModel
) -> None:
    # (40, 60): a 60-word answer into a 40-token workspace; (30, 30): the eval harness's default
    # ladder, kappa = max_tokens, with an answer that used its whole cap.
    scripted.script = Script(reply_tokens=lambda call: length)
    out = await (
        build_sr()
        .compile()
        .ainvoke(PROBLEM, context=SRContext(model="scripted", rounds=2, kappa=kappa))
    )
    draft = " ".join(["step"] * (length - 2) + ["Answer:", "391"])  # the round-1 draft
    # label (3 words) + mark (1) + the last kappa - 4 words of the answer
    kept = " ".join(draft.split()[-(kappa - 4) :])
    workspace = f"Your previous solution:\n{ELISION}{kept}"
    assert words(workspace) == kappa
    refine = next(call for call in scripted.calls if call.role == "refine")
    assert (
        f"Notes from earlier attempts (they may contain mistakes; check them):\n{workspace}\n"
        in (refine.prompt)
    )
    assert out["answer"] == "391"


def test_the_summary_cap_leaves_room_for_thinking(
    scripted: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"schedule": [2, 1], "kappa": 100, "max_tokens": 300}
    assert summary_cap(PDRContext(model="scripted", **base)) == 100
    assert summary_cap(PDRContext(model="scripted", reasoning_effort="low", **base)) == 400
    assert summary_cap(PDRContext(model="scripted", thinking_budget=0, **base)) == 100
    assert summary_cap(PDRContext(model="scripted", summary_thinking_tokens=50, **base)) == 150
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("GOOGLE_API_KEY", "test")
    thinking = {
        "o3": OpenAIBackend("o3", "o3-mini"),
        "gpt41": OpenAIBackend("gpt41", "gpt-4.1"),
        "flash25": GeminiBackend("flash25", "gemini-2.5-flash"),
        "flash20": GeminiBackend("flash20", "gemini-2.0-flash"),
    }
    caps = {}
    for name, backend in thinking.items():
        register_model(name, backend)
        try:
            caps[name] = summary_cap(PDRContext(model="scripted", distill_model=name, **base))
        finally:
            unregister_model(name)
    assert caps == {"o3": 400, "gpt41": 100, "flash25": 400, "flash20": 100}
    with pytest.raises(ContextError, match="summary_thinking_tokens: must be a whole number"):
        PDRContext(model="scripted", summary_thinking_tokens=-1)


async def test_the_summary_call_is_sent_its_cap(scripted: ScriptedChatModel) -> None:
    context = PDRContext(model="scripted", schedule=[2, 1], kappa=64, summary_thinking_tokens=200)
    await build_pdr().compile().ainvoke(PROBLEM, context=context)
    assert [c.max_tokens for c in scripted.calls if c.role == "distill"] == [264]


async def test_a_summary_that_spent_its_cap_thinking_is_a_recorded_error(
    scripted: ScriptedChatModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)

    def text(call: Call) -> str:
        return "" if call.role == "distill" else "work . Answer: 391"

    # A thinking model that used its whole cap thinking: usage reports it, the text is empty.
    scripted.script = Script(
        text=text,
        usage=lambda call, reply: (300, int(call.max_tokens or 0)) if not reply else (50, 4),
    )
    ledger = Ledger(tmp_path / "ledger.sqlite")
    outcome = await run_problem(
        graph="pdr",
        problem=PROBLEM["problem"],
        context=PDRContext(model="scripted", schedule=[2, 1], kappa=64, max_retries=1),
        ledger=ledger,
        checkpoints=tmp_path / "checkpoints.sqlite",
    )
    assert outcome.status == "failed"
    assert outcome.error is not None and "wrote no text" in outcome.error
    stored = ledger.get_run(outcome.thread_id)
    assert stored is not None and stored.status == "failed"
    summaries = [c for c in stored.call_records if c["role"] == "distill"]
    assert [(c["attempt"], c["input_tokens"], c["output_tokens"]) for c in summaries] == [
        (0, 300, 64),
        (1, 300, 64),
    ]
    assert all("NoTextError" in str(c["error"]) and c["reached_model"] for c in summaries)
    # Both attempts count: two drafts (54 each) and two empty summaries (364 each).
    assert (outcome.b_seq, outcome.b_tot) == (54 + 2 * 364, 2 * 54 + 2 * 364)
    assert not stored.workspaces  # no empty round was written
    ledger.close()


def test_draft_prompts_ask_for_the_working() -> None:
    # Round-1 drafts are the task a long chain-of-thought call does; a small model told only to
    # end with an answer line writes just that line.
    for phrase in ("step by step", "show your working", "check your work"):
        assert phrase in draft_prompts.SYSTEM
    assert "working" in draft_prompts.WITH_WORKSPACE

"""A distill operator written by a user runs in PDR: bounded by kappa, its calls in the ledger.

The two operators below are the README's "Swapping the distill node" examples, character for
character (a test checks that the README still shows them). The model is the scripted chat model
of tests/scripted.py (a double: the graphs must run offline and fast here); the refine model gets
its own tokenizer so the test can tell which tokenizer measured kappa.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime

from pdr.calls import call_model
from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.graphs.state import InputState, State
from pdr.models import register_model, unregister_model
from pdr.nodes.distill import round_drafts, summary_messages
from pdr.nodes.routing import allowance
from pdr.prompts.distill import ELISION
from tests.scripted import Call, Script, ScriptedChatModel, words

ROOT = Path(__file__).resolve().parents[1]
PROBLEM: InputState = {"problem": "What is 17 * 23?"}


# --- the README's examples (keep them identical to README.md) -------------------------------


async def longest_draft(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
    """Keep the longest draft of the round as the next workspace (no model call)."""
    drafts = round_drafts(state)
    return {"workspaces": [max(drafts, key=lambda d: len(d["text"]))["text"]]}


async def majority_summary(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
    """Summarise only the drafts whose final answer is the most common one (one model call)."""
    context = runtime.context
    drafts = round_drafts(state)
    votes = Counter(d["answer"] for d in drafts if d["answer"] is not None)
    if votes:
        winner = votes.most_common(1)[0][0]
        drafts = [d for d in drafts if d["answer"] == winner]
    result = await call_model(
        context,
        role="distill",
        round_=state["round"],
        index=0,
        messages=summary_messages(state["problem"], drafts, context),
        allowance=allowance(context, state.get("calls") or [], 1),  # the run's token caps
    )
    return {"workspaces": [result.text], "calls": result.records}


# --- the tests ------------------------------------------------------------------------------


class CharTokenizerModel(ScriptedChatModel):
    """The scripted model with a different tokenizer: one token per 3 characters (rounded up)."""

    def get_num_tokens(self, text: str) -> int:
        return -(-len(text) // 3)


@pytest.fixture
def refiner() -> Iterator[CharTokenizerModel]:
    model = CharTokenizerModel(script=Script())
    register_model("scripted-refiner", model)
    yield model
    unregister_model("scripted-refiner")


def split_answers(call: Call) -> str:
    """Round 1: drafts 0 and 1 answer 391, drafts 2 and 3 answer 400, draft 4 answers 391."""
    return "400" if call.role == "draft" and call.round == 1 and call.index in (2, 3) else "391"


async def run(distill: Any, context: PDRContext) -> tuple[dict[str, Any], list[list[str]]]:
    """Run PDR with ``distill``; the final state and every workspace the distill node wrote."""
    graph = build_pdr(distill=distill).compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "custom"}}
    workspaces: list[list[str]] = []
    final: dict[str, Any] = {}
    async for mode, chunk in graph.astream(
        PROBLEM, config, context=context, stream_mode=["updates", "values"]
    ):
        if mode == "updates" and "distill" in chunk:
            workspaces.append(chunk["distill"]["workspaces"])
        elif mode == "values":
            final = chunk
    return final, workspaces


async def test_majority_summary_runs_bounded_and_recorded(
    scripted: ScriptedChatModel, refiner: CharTokenizerModel
) -> None:
    kappa = 40
    # Long summaries (150 words), far over kappa, so the bound has something to cut.
    scripted.script = Script(
        answer=split_answers, reply_tokens=lambda call: 150 if call.role == "distill" else 12
    )
    context = PDRContext(
        model="scripted", refine_model="scripted-refiner", schedule=[5, 3, 1], kappa=kappa
    )
    final, workspaces = await run(majority_summary, context)

    # One summary call per distill, recorded in the ledger with the tokens the model reported.
    distill_calls = [c for c in final["calls"] if c["role"] == "distill"]
    assert [(c["round"], c["index"], c["attempt"]) for c in distill_calls] == [(1, 0, 0), (2, 0, 0)]
    assert Counter(c["role"] for c in final["calls"]) == {"draft": 8, "distill": 2, "refine": 1}
    seen = [call for call in scripted.calls if call.role == "distill"]
    assert [c["output_tokens"] for c in distill_calls] == [150, 150]
    assert [c["input_tokens"] for c in distill_calls] == [words(call.prompt) for call in seen]
    # By hand: every call costs the words of its prompt plus its reply (drafts 12 words, summaries
    # 150, the refine step's default 8); a round's drafts share one prompt.
    prompt = {(c.role, c.round): words(c.prompt) for c in [*scripted.calls, *refiner.calls]}
    b_seq = (
        (prompt["draft", 1] + 12)
        + (prompt["distill", 1] + 150)
        + (prompt["draft", 2] + 12)
        + (prompt["distill", 2] + 150)
        + (prompt["refine", 3] + 8)
    )
    assert final["b_seq"] == b_seq
    assert final["b_tot"] == b_seq + 4 * (prompt["draft", 1] + 12) + 2 * (prompt["draft", 2] + 12)

    # The summary prompt of round 1 shows only the three drafts that answered 391.
    assert seen[0].prompt.count("Answer: 391") == 3
    assert "Answer: 400" not in seen[0].prompt

    # Each workspace fits kappa in the refine model's tokenizer (characters / 3), and the cut
    # kept most of it; by the draft model's tokenizer (words) it would have been 150 tokens.
    assert [len(w) for w in workspaces] == [1, 1]
    for [workspace] in workspaces:
        assert kappa - 6 <= refiner.get_num_tokens(workspace) <= kappa
        assert words(workspace) < 150
    assert final["answer"] == "391"


async def test_longest_draft_makes_no_call_and_is_bounded(
    scripted: ScriptedChatModel, refiner: CharTokenizerModel
) -> None:
    kappa = 24
    # Draft i of a round writes 20 + 10 i words: the longest is the last one. Every prompt of
    # round r is reported as 100 + r tokens.
    scripted.script = Script(
        reply_tokens=lambda call: 20 + 10 * call.index,
        usage=lambda call, text: (100 + call.round, words(text)),
    )
    refiner.script = scripted.script  # the refine model (its own tokenizer) reports the same way
    context = PDRContext(
        model="scripted", refine_model="scripted-refiner", schedule=[3, 2, 1], kappa=kappa
    )
    final, workspaces = await run(longest_draft, context)

    assert Counter(c["role"] for c in final["calls"]) == {"draft": 5, "refine": 1}
    # drafts 101+20, 101+30, 101+40 | drafts 102+20, 102+30 | refine 103+20
    assert final["b_seq"] == 141 + 132 + 123
    assert final["b_tot"] == (121 + 131 + 141) + (122 + 132) + 123
    longest_round_1 = " ".join(["step"] * 38 + ["Answer:", "391"])  # draft 2: 40 words
    [[workspace_1], [workspace_2]] = workspaces
    # Cut to kappa: its end (the answer) kept, the cut marked.
    assert workspace_1.startswith(ELISION)
    assert longest_round_1.endswith(workspace_1.removeprefix(ELISION))
    assert workspace_1.endswith("Answer: 391")
    for workspace in (workspace_1, workspace_2):
        assert kappa - 6 <= refiner.get_num_tokens(workspace) <= kappa
    # The refine prompt carried the last workspace.
    assert workspace_2 in next(call.prompt for call in refiner.calls if call.role == "refine")


async def test_distiller_returning_wrong_number_of_workspaces_fails_clearly(
    scripted: ScriptedChatModel,
) -> None:
    async def two_workspaces(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
        return {"workspaces": ["a", "b"]}

    with pytest.raises(ValueError, match=r"returned 2 workspaces; return 1 \(shared\) or 3"):
        await run(two_workspaces, PDRContext(model="scripted", schedule=[2, 3, 1]))


def test_readme_shows_the_examples_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    for example in (longest_draft, majority_summary):
        assert inspect.getsource(example) in readme

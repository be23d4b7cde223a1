"""The method itself, pinned: what each draft reads in every round, which drafts top-k keeps, who
serves each role, and the budgets of it all, checked against numbers worked out by hand.

The model is the scripted chat model of tests/scripted.py (a double: these graphs must run
offline and fast), given replies that name their round and draft, so every prompt can be checked
for exactly the text it should carry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import register_model, unregister_model
from pdr.nodes.distill import Distiller, random_k, summary, topk, topk_per_sample
from pdr.prompts import distill as distill_prompts
from pdr.prompts import draft as draft_prompts
from pdr.prompts import refine as refine_prompts
from pdr.prompts import verify as verify_prompts
from pdr.prompts.distill import ELISION
from tests.helpers import final_and_events
from tests.scripted import Call, Script, ScriptedChatModel, words

PROBLEM = "What is 17 * 23?"

# Round-1 answers by draft: two right (391), two different wrong ones.
ROUND_1 = ("400", "391", "401", "391")


def answer_of(call: Call) -> str:
    if call.role == "draft" and call.round == 1:
        return ROUND_1[call.index % len(ROUND_1)]
    return "391"


def named_reply(call: Call) -> str:
    """A reply that says which call wrote it (and, for verify, the default graded score)."""
    if call.role == "draft":
        return f"draft {call.round}-{call.index} works . Answer: {answer_of(call)}"
    if call.role == "distill":
        return f"summary of round {call.round}"
    if call.role == "verify":
        shown = call.prompt.split("Proposed solution:")[-1]
        return f"Score: {9 if 'Answer: 391' in shown else 2}"
    return "final . Answer: 391"


def draft_text(round_: int, index: int) -> str:
    return f"draft {round_}-{index} works . Answer: {ROUND_1[index] if round_ == 1 else '391'}"


def candidates(*indices: int, round_: int = 1) -> str:
    return "\n\n".join(
        distill_prompts.CANDIDATE.format(number=n, text=draft_text(round_, i))
        for n, i in enumerate(indices, start=1)
    )


def draft_prompt(workspace: str) -> str:
    user = (
        draft_prompts.WITH_WORKSPACE.format(problem=PROBLEM, workspace=workspace)
        if workspace
        else draft_prompts.FIRST.format(problem=PROBLEM)
    )
    return f"{draft_prompts.SYSTEM}\n{user}"


async def run(
    distill: Distiller, context: PDRContext, thread: str = "t"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Final state and the custom events of one run (memory checkpointer, given thread)."""
    graph = build_pdr(distill=distill).compile(checkpointer=InMemorySaver())
    return await final_and_events(graph, PROBLEM, context, thread)


def workspaces_after(events: list[dict[str, Any]], round_: int) -> list[str]:
    return next(
        e["texts"] for e in events if e["event"] == "workspace_written" and e["round"] == round_
    )


def prompts_of(model: ScriptedChatModel, role: str, round_: int) -> dict[int, str]:
    return {c.index: c.prompt for c in model.calls if (c.role, c.round) == (role, round_)}


async def test_every_round_reads_the_problem_and_the_last_workspace(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script = Script(text=named_reply)
    final, _ = await run(summary, PDRContext(model="scripted", schedule=[3, 2, 1]))

    # Round 1: the problem alone; round 2: the summary of round 1; refine: that of round 2.
    assert prompts_of(scripted, "draft", 1) == {i: draft_prompt("") for i in range(3)}
    assert prompts_of(scripted, "draft", 2) == {
        i: draft_prompt("summary of round 1") for i in range(2)
    }
    refine_user = refine_prompts.REFINE.format(problem=PROBLEM, workspace="summary of round 2")
    assert prompts_of(scripted, "refine", 3) == {0: f"{refine_prompts.SYSTEM}\n{refine_user}"}
    # Each summary shows that round's drafts, in order.
    shown = prompts_of(scripted, "distill", 2)[0]
    assert shown.index("Attempt 1:\ndraft 2-0 works") < shown.index("Attempt 2:\ndraft 2-1 works")
    assert final["answer"] == "391"


@pytest.mark.parametrize("scorer", ["vote", "verify"])
async def test_top_k_keeps_the_best_scored_drafts(scorer: str, scripted: ScriptedChatModel) -> None:
    scripted.script = Script(text=named_reply)
    await run(topk(scorer), PDRContext(model="scripted", schedule=[4, 1], k=2))
    # Drafts 1 and 3 answer 391: two votes each against one, or a verdict of 9 against 2.
    workspace = candidates(1, 3)
    assert prompts_of(scripted, "refine", 2)[0].endswith(
        refine_prompts.REFINE.format(problem=PROBLEM, workspace=workspace)
    )
    if scorer == "verify":
        verdicts = {c.index: c.prompt for c in scripted.calls if c.role == "verify"}
        assert sorted(verdicts) == [0, 1, 2, 3]
        assert all(draft_text(1, i) in verdicts[i] for i in range(4))


@pytest.mark.parametrize("operator", ["topk_per_sample", "random_k"])
async def test_each_next_round_draft_reads_its_own_workspace(
    operator: str, scripted: ScriptedChatModel
) -> None:
    scripted.script = Script(text=named_reply)
    distill = topk_per_sample("vote") if operator == "topk_per_sample" else random_k
    _, events = await run(distill, PDRContext(model="scripted", schedule=[4, 3, 1], k=2, seed=3))
    workspaces = workspaces_after(events, 1)
    assert len(workspaces) == 3
    assert len(set(workspaces)) > 1  # they differ, so a draft given another's would show
    assert prompts_of(scripted, "draft", 2) == {j: draft_prompt(workspaces[j]) for j in range(3)}


async def test_random_k_picks_are_seeded(scripted: ScriptedChatModel) -> None:
    scripted.script = Script(text=named_reply)

    async def picks(seed: int) -> list[str]:
        _, events = await run(random_k, PDRContext(model="scripted", schedule=[4, 3, 1], seed=seed))
        return workspaces_after(events, 1)

    first = await picks(3)
    # The drafts each workspace holds, for seed 3 and this problem (pinned: a resumed run must
    # rebuild exactly these).
    assert first == [candidates(3, 0), candidates(2, 1), candidates(3, 0)]
    assert await picks(3) == first
    assert await picks(4) != first


def long_drafts(call: Call) -> str:
    """Drafts of 20 words; "Score: 7" from verify, "notes" from the summary and refine."""
    if call.role == "draft":
        return " ".join(f"d{call.index}w{k}" for k in range(18)) + " Answer: 391"
    return "Score: 7" if call.role == "verify" else "notes"


def shown_excerpt(index: int) -> str:
    """Draft ``index`` within 4 tokens (12 for 3 drafts): the mark and its last 3 words."""
    excerpt = f"{ELISION}d{index}w17 Answer: 391"
    assert words(excerpt) == 4
    return excerpt


async def test_summary_prompt_shows_drafts_within_distill_input_tokens(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script = Script(text=long_drafts)
    await run(summary, PDRContext(model="scripted", schedule=[3, 1], distill_input_tokens=12))
    shown = prompts_of(scripted, "distill", 1)[0]
    for index in range(3):
        excerpt = shown_excerpt(index)
        assert distill_prompts.DRAFT_IN_SUMMARY.format(number=index + 1, text=excerpt) in shown
        assert f"d{index}w16" not in shown


async def test_verify_prompts_show_drafts_within_distill_input_tokens(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script = Script(text=long_drafts)
    context = PDRContext(model="scripted", schedule=[3, 1], k=2, distill_input_tokens=12)
    await run(topk("verify"), context)
    assert prompts_of(scripted, "verify", 1) == {
        index: f"{verify_prompts.SYSTEM}\n"
        + verify_prompts.VERIFY.format(problem=PROBLEM, draft=shown_excerpt(index))
        for index in range(3)
    }


def fixed_usage(call: Call, text: str) -> tuple[int, int]:
    """Usage the budget checks below work out by hand."""
    if call.role == "draft":
        return 100, 10 * (call.index + 1) + 100 * (call.round - 1)
    if call.role == "distill":
        return 300, 40
    if call.role == "verify":
        return 50, 5 + call.index
    return 150, 50


async def test_a_second_run_on_a_thread_counts_only_its_own_calls(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script = Script(text=named_reply, usage=fixed_usage)
    graph = build_pdr().compile(checkpointer=InMemorySaver())
    context = PDRContext(model="scripted", schedule=[2, 1])
    # drafts 110 / 120, summary 340, refine 200
    for _ in range(2):
        final, _ = await final_and_events(graph, PROBLEM, context, "same-thread")
        assert (final["b_seq"], final["b_tot"]) == (120 + 340 + 200, 110 + 120 + 340 + 200)
        assert len(final["calls"]) == 4


async def test_per_sample_budgets_by_hand(scripted: ScriptedChatModel) -> None:
    scripted.script = Script(text=named_reply, usage=fixed_usage)
    final, _ = await run(
        topk_per_sample("verify"), PDRContext(model="scripted", schedule=[4, 3, 1], k=2)
    )
    # round 1: drafts 110..140, verify 55..58; round 2: drafts 210..230, verify 55..57; refine 200
    assert final["b_seq"] == 140 + 58 + 230 + 57 + 200
    assert (
        final["b_tot"]
        == (110 + 120 + 130 + 140) + (55 + 56 + 57 + 58) + (210 + 220 + 230) + (55 + 56 + 57) + 200
    )


@pytest.fixture
def role_models() -> Iterator[dict[str, ScriptedChatModel]]:
    models = {
        name: ScriptedChatModel(script=Script(text=named_reply))
        for name in ("main", "draft", "distill", "verify", "refine")
    }
    for name, model in models.items():
        register_model(f"m-{name}", model)
    yield models
    for name in models:
        unregister_model(f"m-{name}")


@pytest.mark.parametrize(("operator", "scored"), [("summary", "distill"), ("topk", "verify")])
async def test_each_role_is_served_by_its_own_model(
    operator: str, scored: str, role_models: dict[str, ScriptedChatModel]
) -> None:
    context = PDRContext(
        model="m-main",
        draft_model="m-draft",
        distill_model="m-distill",
        verify_model="m-verify",
        refine_model="m-refine",
        schedule=[2, 1],
    )
    final, _ = await run(summary if operator == "summary" else topk("verify"), context)
    served = {name: sorted({c.role for c in model.calls}) for name, model in role_models.items()}
    assert served == {
        "main": [],
        "draft": ["draft"],
        "distill": ["distill"] if scored == "distill" else [],
        "verify": ["verify"] if scored == "verify" else [],
        "refine": ["refine"],
    }
    by_role = {c["role"]: c["model"] for c in final["calls"]}
    assert by_role == {"draft": "m-draft", scored: f"m-{scored}", "refine": "m-refine"}


async def test_a_backend_without_usage_is_counted_by_its_tokenizer_and_marked(
    scripted: ScriptedChatModel,
) -> None:
    scripted.script = Script(text=named_reply, report_usage=False)
    final, _ = await run(summary, PDRContext(model="scripted", schedule=[2, 1]))
    assert [c["estimated"] for c in final["calls"]] == [True] * 4
    seen = {(c.role, c.round, c.index): c for c in scripted.calls}
    for record in final["calls"]:
        call = seen[(record["role"], record["round"], record["index"])]
        assert record["input_tokens"] == words(call.prompt)
        assert record["output_tokens"] == words(named_reply(call))

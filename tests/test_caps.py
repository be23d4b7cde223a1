"""Token caps: no run ever spends more than ``max_total_tokens`` (B_tot) or
``max_sequential_tokens`` (B_seq), whatever the schedule; a run a cap stops ends with the best
answer so far.

The property test drives the real graphs with the scripted model (tests/scripted.py), which
honours each call's output cap and reports the whitespace words of prompt and reply as usage; the
last test runs the command line against the OpenAI-compatible server on loopback
(tests/openai_server.py, a double for a paid API).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pdr.budget import budgets
from pdr.caps import TEMPLATE_TOKENS_PER_MESSAGE, majority
from pdr.cli import app
from pdr.graphs.catalog import build_graph, make_context
from pdr.graphs.state import Draft
from pdr.models import register_model, unregister_model
from pdr.nodes.distill import summary_messages
from pdr.store.ledger import Ledger
from tests.openai_server import FakeOpenAIServer
from tests.scripted import DRAFT_ANSWERS, Call, Script, ScriptedChatModel, words

PROBLEM = "What is 17 * 23?"
METHODS = [
    ("pdr", "summary", None),
    ("pdr", "topk", "verify"),
    ("pdr", "topk_per_sample", "verify"),
    ("pdr", "random_k", None),
    ("sr", None, None),
    ("long_cot", None, None),
]


def run_capped(
    method: tuple[str, str | None, str | None],
    sizes: list[int],
    max_tokens: int,
    lengths: list[int],
    total: int | None,
    sequential: int | None,
) -> dict[str, object]:
    graph, distill, scorer = method
    values: dict[str, object] = {
        "model": "scripted",
        "max_tokens": max_tokens,
        "max_total_tokens": total,
        "max_sequential_tokens": sequential,
    }
    if graph == "pdr":
        values |= {"schedule": [*sizes, 1], "kappa": 40, "verify_max_tokens": 12}
    elif graph == "sr":
        values |= {"rounds": len(sizes) + 1, "kappa": 40}

    def reply_tokens(call: Call) -> int:  # the model stops by itself or at its cap
        return max(2, min(call.max_tokens or 2, lengths[call.number % len(lengths)]))

    model = ScriptedChatModel(script=Script(reply_tokens=reply_tokens))
    register_model("scripted", model)
    try:
        compiled = build_graph(graph, distill, scorer).compile()
        return asyncio.run(
            compiled.ainvoke({"problem": PROBLEM}, context=make_context(graph, **values))
        )
    finally:
        unregister_model("scripted")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(METHODS),
    sizes=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3),
    max_tokens=st.integers(min_value=2, max_value=40),
    lengths=st.lists(st.integers(min_value=2, max_value=60), min_size=1, max_size=5),
    total=st.one_of(st.none(), st.integers(min_value=1, max_value=1500)),
    sequential=st.one_of(st.none(), st.integers(min_value=1, max_value=600)),
)
def test_no_run_exceeds_its_caps(
    method: tuple[str, str | None, str | None],
    sizes: list[int],
    max_tokens: int,
    lengths: list[int],
    total: int | None,
    sequential: int | None,
) -> None:
    out = run_capped(method, sizes, max_tokens, lengths, total, sequential)
    spent = budgets(out["calls"])  # type: ignore[arg-type]
    assert (out["b_seq"], out["b_tot"]) == spent
    if total is not None:
        assert spent.b_tot <= total
    if sequential is not None:
        assert spent.b_seq <= sequential
    stopped = out.get("stopped")
    if stopped:
        assert str(stopped).startswith("budget_exhausted: ")
        assert out["final_text"] is None
        # the best answer so far (the scripted drafts answer 391 or 400), or none
        assert out["answer"] in (None, *DRAFT_ANSWERS)
    else:
        assert out["answer"] == "391" or out.get("truncated")


def test_a_run_without_room_for_its_summary_answers_with_the_majority_so_far() -> None:
    # Three drafts fit in 320 tokens (each one's worst case, 101, within its third); their
    # summary does not (its worst case, 151, over the 125 left): the run stops after round 1.
    out = run_capped(("pdr", "summary", None), [3], 30, [10], total=320, sequential=None)
    calls = out["calls"]
    assert [c["role"] for c in calls] == ["draft"] * 3  # type: ignore[union-attr]
    drafts = [
        Draft(round=1, index=i, text="step " * 8 + "Answer: 391", answer="391") for i in range(3)
    ]
    context = make_context("pdr", model="scripted", schedule=[3, 1], kappa=40)
    prompt = sum(words(m["content"]) for m in summary_messages(PROBLEM, drafts, context))
    worst = prompt + 2 * TEMPLATE_TOKENS_PER_MESSAGE + 40  # the summary is capped at kappa
    assert out["stopped"] == (
        f"budget_exhausted: distill call of round 1 (branch 0) not made: its worst case is "
        f"{worst} tokens of B_tot (prompt and output cap) and {320 - out['b_tot']} are left to "
        f"it under max_total_tokens"
    )
    assert out["answer"] == majority(["391", "400", "391"]) == "391"  # the scripted drafts
    assert out["final_text"] is None


def test_the_command_line_stops_at_max_total_tokens_with_exit_4(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.sqlite")
    with FakeOpenAIServer() as server:
        result = CliRunner().invoke(
            app,
            [
                "run",
                PROBLEM,
                "--model",
                server.spec(),
                "--schedule",
                "2,2,1",
                "--max-tokens",
                "16",
                "--max-total-tokens",
                "300",
                "--thread-id",
                "cap",
                "--db",
                db,
                "-q",
                "--checkpoints",
                str(tmp_path / "cp.sqlite"),
            ],
        )
        asked = len(server.requests)
    assert result.exit_code == 4, result.output
    assert result.output.startswith("Best answer so far: 391\n")
    assert "Stopped: budget_exhausted: " in result.output
    ledger = Ledger(db)
    run = ledger.get_run("cap")
    ledger.close()
    assert run is not None and run.status == "budget_exhausted" and run.answer == "391"
    assert run.b_tot is not None and run.b_tot <= 300 and run.calls == asked

"""Bad run parameters fail with a message naming the field and the fix, before any model call."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from pdr.graphs.context import (
    ContextError,
    LongCoTContext,
    PDRContext,
    RefineContext,
    RunContext,
    SRContext,
)
from pdr.graphs.fields import field_default, field_hints, optional_inner
from pdr.graphs.pdr import build_pdr
from pdr.graphs.pdr import graph as pdr_graph
from pdr.prompts import distill as distill_prompts
from pdr.prompts import draft as draft_prompts
from pdr.prompts import long_cot as long_cot_prompts
from pdr.prompts import refine as refine_prompts
from pdr.prompts import verify as verify_prompts
from pdr.store.checkpoints import compile_with_sqlite
from tests.helpers import config
from tests.scripted import ScriptedChatModel


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"schedule": [8, 4]},
            r"schedule: the last round is the refine step and must be 1, got \[8, 4\]; "
            r"append 1, e.g. \[8, 4, 1\]",
        ),
        ({"schedule": [4, 0, 1]}, r"schedule: every round needs at least 1 draft"),
        ({"schedule": []}, r"schedule: must be a non-empty list"),
        ({"kappa": 0}, r"kappa: must be a whole number >= 1, got 0"),
        ({"k": -2}, r"k: must be a whole number >= 1, got -2"),
        ({"temperature": 3.5}, r"temperature: must be a number from 0.0 to 2.0, got 3.5"),
        ({"max_tokens": 0}, r"max_tokens: must be a whole number >= 1"),
        ({"max_concurrency": 0}, r"max_concurrency: must be a whole number >= 1"),
        ({"model": " "}, r"model: must be a model spec"),
        (
            {"reasoning_effort": "max"},
            r"reasoning_effort: must be 'minimal', 'low', 'medium' or 'high'",
        ),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ContextError, match=message):
        PDRContext(**{"model": "scripted", **fields})


def test_sr_rounds_are_checked() -> None:
    with pytest.raises(ContextError, match="rounds: must be a whole number >= 1, got 0"):
        SRContext(rounds=0)
    assert SRContext(rounds=3).round_sizes() == [1, 1, 1]


def test_environment_variables_give_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDR_SCHEDULE", "6,3,1")
    monkeypatch.setenv("PDR_KAPPA", "99")
    monkeypatch.setenv("PDR_MODEL", "scripted")
    context = PDRContext()
    assert (context.schedule, context.kappa, context.model) == ([6, 3, 1], 99, "scripted")


def test_bad_input_fails_before_any_call_and_keeps_the_saved_run(
    scripted: ScriptedChatModel, tmp_path: Path
) -> None:
    graph = compile_with_sqlite(build_pdr(), tmp_path / "cp.sqlite")
    good = graph.invoke(
        {"problem": "What is 17 * 23?"}, config(), context={"model": "scripted", "schedule": [2, 1]}
    )
    calls_made = len(scripted.calls)
    with pytest.raises(ContextError, match="schedule: the last round"):
        graph.invoke(
            {"problem": "What is 17 * 23?"},
            config(),
            context={"model": "scripted", "schedule": [4, 2]},
        )
    with pytest.raises(ValueError, match="problem: the input needs a non-empty 'problem' string"):
        graph.invoke({"problem": "  "}, config(), context={"model": "scripted"})
    assert len(scripted.calls) == calls_made
    saved = graph.get_state(config()).values
    assert saved["answer"] == good["answer"] == "391"
    assert saved["b_tot"] == good["b_tot"]


# --- the environment fallback, for every field ------------------------------------------------

CONTEXTS = (RunContext, RefineContext, PDRContext, SRContext, LongCoTContext)


def text_for(name: str, hint: Any) -> tuple[str, Any]:
    """An environment value for a field that differs from every default, and what it parses to."""
    inner, _ = optional_inner(hint)
    if name == "reasoning_effort":
        return "low", "low"
    if name == "schedule":
        return "3,1", [3, 1]
    if inner is int:
        return "5", 5
    if inner is float:
        return "0.5", 0.5
    return "Be brief and exact.", "Be brief and exact."


@pytest.mark.parametrize("kind", CONTEXTS, ids=lambda kind: kind.__name__)
def test_every_field_falls_back_on_its_environment_variable(
    kind: type[RunContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    hints = field_hints(kind)
    for item in fields(kind):
        raw, value = text_for(item.name, hints[item.name])
        monkeypatch.setenv(f"PDR_{item.name.upper()}", raw)
        assert getattr(kind(), item.name) == value, item.name
        # A value passed explicitly wins over the environment, even when it is the default.
        default = field_default(item)
        if default is not None:
            assert getattr(kind(**{item.name: default}), item.name) == default, item.name
        monkeypatch.delenv(f"PDR_{item.name.upper()}")


def test_pdr_k_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDR_K", "5")
    assert PDRContext().k == 5
    assert PDRContext(k=2).k == 2


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        (
            "PDR_SCHEDULE",
            "abc",
            "PDR_SCHEDULE: give drafts per round as whole numbers separated by commas, such as "
            "8,4,1; got 'abc'",
        ),
        ("PDR_KAPPA", "many", "PDR_KAPPA: must be a whole number, got 'many'"),
        ("PDR_TEMPERATURE", "hot", "PDR_TEMPERATURE: must be a number, got 'hot'"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, message: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ContextError) as error:
        PDRContext()
    assert str(error.value) == message


def test_system_prompts_are_fields_with_the_prompt_modules_as_defaults() -> None:
    context = PDRContext()
    assert context.draft_system_prompt == draft_prompts.SYSTEM
    assert context.refine_system_prompt == refine_prompts.SYSTEM
    assert context.summary_system_prompt == distill_prompts.SUMMARY_SYSTEM
    assert context.verify_system_prompt == verify_prompts.SYSTEM
    assert LongCoTContext().long_cot_system_prompt == long_cot_prompts.SYSTEM
    with pytest.raises(ContextError, match="draft_system_prompt: must be a non-empty text"):
        PDRContext(draft_system_prompt=" ")


def test_a_changed_prompt_reaches_the_model(scripted: ScriptedChatModel) -> None:
    custom = "You are terse. End with 'Answer: N'."
    out = pdr_graph.invoke(
        {"problem": "What is 17 * 23?"},
        context=PDRContext(model="scripted", schedule=[2, 1], draft_system_prompt=custom),
    )
    assert out["answer"] == "391"
    systems = [call.prompt.split("\n")[0] for call in scripted.calls]
    assert systems.count(custom) == 2  # the two drafts
    assert systems.count(refine_prompts.SYSTEM) == 1

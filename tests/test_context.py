"""Bad run parameters fail with a message naming the field and the fix, before any model call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pdr.graphs.context import ContextError, PDRContext, SRContext
from pdr.graphs.pdr import build_pdr
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

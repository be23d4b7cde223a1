from __future__ import annotations

from collections.abc import Iterator

import pytest

from pdr.models import register_model, unregister_model
from tests.scripted import Script, ScriptedChatModel


@pytest.fixture
def scripted() -> Iterator[ScriptedChatModel]:
    """A fresh scripted model registered as the spec 'scripted'."""
    model = ScriptedChatModel(script=Script())
    register_model("scripted", model)
    yield model
    unregister_model("scripted")

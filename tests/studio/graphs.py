"""The three graphs as the Studio test's server loads them, with the offline model registered.

``tests/studio/langgraph.json`` points ``langgraph dev`` here instead of at ``graphs/*.py``, so the
server process itself knows the spec "scripted" (the scripted chat model of tests/scripted.py: a
double standing in for a real model, which would be slow or need a network). The graphs are the
very objects the root langgraph.json serves, imported and re-exported unchanged.
"""

from __future__ import annotations

from pdr.graphs.long_cot import graph as long_cot
from pdr.graphs.pdr import graph as pdr
from pdr.graphs.sr import graph as sr
from pdr.models import register_model
from tests.scripted import ScriptedChatModel

register_model("scripted", ScriptedChatModel())

__all__ = ["long_cot", "pdr", "sr"]

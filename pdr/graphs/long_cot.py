"""The long chain-of-thought baseline: one call with a large thinking budget."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from pdr.aio import SYNC_FAN_OUT, node
from pdr.graphs.context import LongCoTContext
from pdr.graphs.state import InputState, OutputState, State
from pdr.nodes.long_cot import long_cot
from pdr.nodes.refine import after_final
from pdr.nodes.start import start


def build_long_cot() -> StateGraph[State, LongCoTContext, InputState, OutputState]:
    """The uncompiled long CoT graph: start, then one call."""
    builder = StateGraph(
        State, context_schema=LongCoTContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("start", node(start))
    builder.add_node("long_cot", node(long_cot))
    builder.add_edge(START, "start")
    builder.add_edge("start", "long_cot")
    builder.add_conditional_edges("long_cot", after_final("long_cot"), ["long_cot", END])
    return builder


graph = build_long_cot().compile(name="long_cot").with_config(SYNC_FAN_OUT)

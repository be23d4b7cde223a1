"""Sequential Refine: one answer, improved round after round with itself as the workspace."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from pdr.aio import SYNC_FAN_OUT, node
from pdr.graphs.context import SRContext
from pdr.graphs.state import DraftTask, InputState, OutputState, State
from pdr.nodes.distill import distill_step, previous_answer
from pdr.nodes.draft import draft
from pdr.nodes.refine import refine
from pdr.nodes.routing import next_round
from pdr.nodes.start import start


def build_sr() -> StateGraph[State, SRContext, InputState, OutputState]:
    """The uncompiled SR graph.

    PDR's shape with one draft per round and the previous answer (bounded by kappa) as the
    workspace; ``rounds`` in the context sets its length.
    """
    builder = StateGraph(
        State, context_schema=SRContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("start", node(start))
    builder.add_node("draft", node(draft), input_schema=DraftTask)
    builder.add_node("distill", node(distill_step(previous_answer)))
    builder.add_node("refine", node(refine))
    builder.add_edge(START, "start")
    builder.add_conditional_edges("start", next_round, ["draft", "refine"])
    builder.add_edge("draft", "distill")
    builder.add_conditional_edges("distill", next_round, ["draft", "refine"])
    builder.add_edge("refine", END)
    return builder


graph = build_sr().compile(name="sr").with_config(SYNC_FAN_OUT)

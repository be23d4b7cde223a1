"""Parallel-Distill-Refine: rounds of parallel drafts, each distilled into a bounded workspace."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from pdr.aio import SYNC_FAN_OUT, node
from pdr.graphs.context import PDRContext
from pdr.graphs.state import DraftTask, InputState, OutputState, State
from pdr.nodes.distill import Distiller, distill_step, summary
from pdr.nodes.draft import draft
from pdr.nodes.refine import refine
from pdr.nodes.routing import next_round
from pdr.nodes.start import start


def build_pdr(
    distill: Distiller = summary,
) -> StateGraph[State, PDRContext, InputState, OutputState]:
    """The uncompiled PDR graph.

    ``distill`` is the operator that turns a round's drafts into the next workspace: ``summary``
    (default), ``topk()``, ``topk(scorer="verify")``, ``topk_per_sample()``, ``random_k`` or your
    own async ``(state, runtime) -> {"workspaces": [...]}`` function. The node is always named
    "distill", so checkpoints and Studio see the same graph whichever operator runs.
    """
    builder = StateGraph(
        State, context_schema=PDRContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("start", node(start))
    builder.add_node("draft", node(draft), input_schema=DraftTask)
    builder.add_node("distill", node(distill_step(distill)))
    builder.add_node("refine", node(refine))
    builder.add_edge(START, "start")
    builder.add_conditional_edges("start", next_round, ["draft", "refine"])
    builder.add_edge("draft", "distill")
    builder.add_conditional_edges("distill", next_round, ["draft", "refine"])
    builder.add_edge("refine", END)
    return builder


graph = build_pdr().compile(name="pdr").with_config(SYNC_FAN_OUT)
